"""``python -m research``: the lab's command line (:mod:`research.cli`), run from a checkout."""

from research.cli import main

main()
