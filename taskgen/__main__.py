"""``python -m taskgen``: the same as the ``taskgen`` console script."""

from taskgen.cli import main

main()
