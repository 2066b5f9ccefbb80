"""The hierarchical learned optimizer of Metz et al. 2020 (arXiv 2009.11243) and the protocol it follows.

* :mod:`.features` — the named input layouts of the per-tensor LSTM and the per-parameter MLP.
* :mod:`.hierarchical` — the optimizer's math: θ, its inner state, one update, the validation-loss feed.
* :mod:`.protocol` — :class:`~.protocol.LearnedOptimizer`, the four pure functions meta-training needs.
* :mod:`.optax_api` — the optimizer as an optax transformation (:func:`~.optax_api.optax_lopt`).
"""
