"""The lab: studies that use the toolkit rather than belong to it (not installed; run from a checkout).

``python -m research <command>`` runs its command line (:mod:`research.cli`); README.md lists every script, what
it reproduces and its command."""
