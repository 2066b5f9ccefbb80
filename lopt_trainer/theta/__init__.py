"""θ, the learned optimizer's meta-parameters, in one place.

* :mod:`.load` — :func:`~.load.load_theta` for every way of naming θ (a ``.npz``, a run folder, a checkpoint,
  ``handset``, ``random``), the warm start, digests and byte comparisons.
* :mod:`.check` — the checks every θ read from a file passes (finite, and shaped like the optimizer's θ).
* :mod:`.reference_io` — the reference implementation's ``.npz`` layout.
* :mod:`.shipped` — the θ shipped with the package and its recipe.
* :mod:`.interpolate` — θ on the line between two θ (a meta-trained θ mixed with its start, WiSE-FT).
"""
