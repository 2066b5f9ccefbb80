"""Task families for taskgen (a template: rename the package and the family)."""
