"""Training one task: the inner loop, the baselines the learned optimizer is judged against, and their curves.

* :mod:`.loop` — :func:`~.loop.train` / :func:`~.loop.train_many`: one scanned, jitted run per (trial, seed),
  vmapped, with curves on four data splits.
* :mod:`.baselines` — AdamLR, Adam8p, NAdamW/opt_list as optax transformations; :mod:`.opt_list` — the list.
* :mod:`.names` — the one tuple of optimizer names.
* :mod:`.selection` — choosing a baseline's trial per task or globally.
* :mod:`.curves` — a run's curves as JSON, Arrow and PNG.
"""
