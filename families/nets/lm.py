"""The Flax modules of :mod:`families.lm` (imported only when a task is built)."""

from __future__ import annotations

import flax.linen as nn

from families.nets.rnn_cores import RNNCore


class RNNLanguageModel(nn.Module):
    """Embedding → :class:`RNNCore` → Dense(vocab): ``__call__(tokens (B, T) int32) -> logits (B, T, vocab)``."""

    vocab: int
    embed: int
    core: str
    hidden: int
    trainable_init: bool

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(self.vocab, self.embed, embedding_init=nn.initializers.normal(1.0), name="embed")(tokens)
        hs = RNNCore(self.core, self.hidden, self.trainable_init, name="core")(x)
        return nn.Dense(self.vocab, name="readout")(hs)
