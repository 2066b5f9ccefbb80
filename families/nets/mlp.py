"""The Flax modules of :mod:`families.mlp` (imported only when a task is built)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from families import common


class DenseStack(nn.Module):
    """Dense layers of ``features`` with ``activation`` between them (none after the last)."""

    features: Sequence[int]
    activation: str
    init_config: tuple
    activate_last: bool = False

    @nn.compact
    def __call__(self, x):
        act = common.activation_fn(self.activation)
        kinit = common.initializer_fn(dict(self.init_config))
        for i, f in enumerate(self.features):
            x = nn.Dense(f, kernel_init=kinit, bias_init=nn.initializers.zeros, name=f"dense_{i}")(x)
            if i < len(self.features) - 1 or self.activate_last:
                x = act(x)
        return x
