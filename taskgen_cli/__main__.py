"""``python -m taskgen_cli``: the same as the ``taskgen`` console script."""

from taskgen_cli.main import main

main()
