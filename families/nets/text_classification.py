"""The Flax modules of :mod:`families.text_classification` (imported only when a task is built)."""

from __future__ import annotations

import flax.linen as nn

from families.rnn_cores import aggregate
from families.nets.rnn_cores import RNNCore


class RNNClassifier(nn.Module):
    """Embedding → :class:`RNNCore` → aggregate over real tokens → Dense(classes).

    ``__call__(tokens (B, T) int32, lengths (B,) int32) -> logits (B, classes)``.
    """

    vocab: int
    embed: int
    core: str
    hidden: int
    trainable_init: bool
    aggregation: str
    num_classes: int

    @nn.compact
    def __call__(self, tokens, lengths):
        x = nn.Embed(self.vocab, self.embed, embedding_init=nn.initializers.normal(1.0), name="embed")(tokens)
        hs = RNNCore(self.core, self.hidden, self.trainable_init, name="core")(x)
        return nn.Dense(self.num_classes, name="head")(aggregate(hs, lengths, self.aggregation))
