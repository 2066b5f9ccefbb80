"""Recurrent language models on real text: ``char_lm`` (bytes) and ``word_lm`` (words).

Model: token embedding → recurrent core (vanilla RNN / GRU / LSTM, see :mod:`families.rnn_cores`) → linear
read-out → next-token cross-entropy, averaged over every position of a batch of windows (nats per token).
Windows are cut from one contiguous token stream, so there is no padding to mask.

Config (TaskSet's ranges, shrunk for a 2-core CPU):

* ``dataset`` ∈ {shakespeare, bible_kjv, fortunes} (data only: not part of the static key).
* ``embed`` logint[8, 128].
* ``core``: ``{"kind": vanilla|gru|lstm, "hidden": logint[32, 128]}`` — each kind has its own width.
* ``trainable_init``: learn the initial state (p 0.5).
* ``seq_len``: char_lm logint[8, 64] (reference [10, 160]); word_lm logint[8, 32] (reference [10, 256]).
* ``batch_size``: char_lm logint[8, 64], word_lm logint[8, 32] (reference [8, 512]).
* ``vocab``: char_lm: 256 (all bytes) with p 0.8, else logint[100, 256): the ``vocab − 1`` most frequent bytes
  of the training split keep an id, every other byte maps to one UNK id. word_lm: logint[1000, 4000]
  (reference [1000, 30000]) — the read-out layer (hidden × vocab per token) dominates the cost, so the range is
  capped for CPU. Words: ``datasets_cache``'s frequency-ranked train-split vocabulary (id 0 ``<pad>``, never in
  a stream; id 1 ``<unk>``), cut to ``vocab`` ids (see :data:`WORD_VOCAB_SOURCE`).

Batches: ``batch_size`` windows of ``seq_len + 1`` tokens at uniform random offsets of the split's 1-D int32
stream (``{"stream": array}``, passed as an argument), drawn with ``jax.random`` inside jit.

Normalizer: :func:`families.common.classification_normalizer` with ``vocab`` classes, i.e. the uniform
predictor (``log vocab`` nats/token) maps to ``10·log 5 / log vocab`` (~2.9 for 256 bytes), lower is better,
divergence is capped at ``log(2·vocab)``.

FLOPs: ``3 × forward × batch × seq_len``, forward per token = the core's matmuls and gate arithmetic
(:func:`families.rnn_cores.core_forward_flops`) + ``2·hidden·vocab`` for the read-out + ``5·vocab`` for the
softmax cross-entropy; the embedding lookup is counted as free.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from families._lazy import LazyModule, jax, jnp, nn, np

from families import common
from families.base import SPLITS, Cost, Family, Task
from families.rnn_cores import core_config_space, core_forward_flops, core_param_count, sample_core
from families.space import Bool, Int, Struct, choices


_nets = LazyModule("families.nets.lm")


def __getattr__(name):  # the Flax modules live in families.nets.lm; still importable from here
    if name in ('RNNLanguageModel',):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

LM_DATASETS = ("shakespeare", "bible_kjv", "fortunes")


def lm_param_count(vocab: int, embed: int, core: str, hidden: int, trainable_init: bool) -> int:
    """Trainable scalars of :class:`RNNLanguageModel`: embedding + core + read-out (weights and bias)."""
    return vocab * embed + core_param_count(core, embed, hidden, trainable_init) + hidden * vocab + vocab


def lm_flops_per_step(vocab, embed, core, hidden, seq_len, batch_size) -> int:
    """≈ 3 × forward FLOPs of one batch (see the module docstring)."""
    per_token = core_forward_flops(core, embed, hidden) + 2 * hidden * vocab + 5 * vocab
    return 3 * per_token * seq_len * batch_size


@functools.lru_cache(maxsize=None)
def _lm_functions(key: str, vocab: int, embed: int, core: str, hidden: int, trainable_init: bool,
                  seq_len: int, batch_size: int):
    """The four pure functions of an LM task, shared by every task with the same static ``key``."""
    model = _nets.RNNLanguageModel(vocab, embed, core, hidden, trainable_init)

    def init(rng):
        return model.init(rng, jnp.zeros((1, 2), jnp.int32))["params"]

    def loss(params, batch, rng):
        del rng  # deterministic
        logits = model.apply({"params": params}, batch[:, :-1])
        logp = jax.nn.log_softmax(logits.astype(jnp.float32))
        nll = -jnp.take_along_axis(logp, batch[:, 1:, None], axis=-1)
        return jnp.mean(nll)

    def sample_batch(split_data, rng):
        stream = split_data["stream"]
        starts = jax.random.randint(rng, (batch_size,), 0, stream.shape[0] - seq_len)
        return jnp.take(stream, starts[:, None] + jnp.arange(seq_len + 1)[None, :], axis=0)

    # jitted so eager callers (checks, notebooks) compile once instead of dispatching op by op; inside a
    # trainer's jit they are simply inlined.
    return jax.jit(init), jax.jit(loss), jax.jit(sample_batch), common.classification_normalizer(vocab)


def reduce_byte_vocab(streams: Mapping[str, np.ndarray], vocab: int) -> dict[str, np.ndarray]:
    """Map byte streams to ``vocab`` ids: the ``vocab − 1`` most frequent bytes of ``train`` (ties by byte value)
    get ids 0.. in that order, every other byte gets the UNK id ``vocab − 1``. ``vocab = 256`` is the identity."""
    if vocab >= 256:
        return {k: np.asarray(v, np.int32) for k, v in streams.items()}
    counts = np.bincount(np.asarray(streams["train"]), minlength=256)
    order = np.lexsort((np.arange(256), -counts))  # by count descending, then byte value
    table = np.full(256, vocab - 1, np.int32)
    table[order[:vocab - 1]] = np.arange(vocab - 1, dtype=np.int32)
    return {k: table[np.asarray(v)] for k, v in streams.items()}


WORD_VOCAB_SOURCE = 8192
"""Word vocabularies are read once at this size from :mod:`datasets_cache` and cut to the config's ``vocab``:
the vocabulary is ranked by train-split frequency, so keeping ids ``< vocab`` (others → ``<unk>``) is exactly the
``vocab``-sized vocabulary, and the cache holds one entry per dataset instead of one per sampled size."""


@functools.lru_cache(maxsize=8)
def _raw_streams(dataset: str, tokenizer: str) -> tuple[dict[str, np.ndarray], int]:
    """``({split: int32 stream}, unk_id)`` of ``dataset`` from :mod:`datasets_cache` (bytes, or words at
    :data:`WORD_VOCAB_SOURCE`), read once per process. ``unk_id`` is -1 for bytes."""
    import datasets_cache

    size = None if tokenizer == "byte" else WORD_VOCAB_SOURCE
    out = datasets_cache.lm_stream(dataset, tokenizer=tokenizer, vocab_size=size)
    streams = {s: np.asarray(out.splits[s], np.int32) for s in SPLITS}
    for a in streams.values():
        a.setflags(write=False)
    return streams, (-1 if out.vocab is None else out.vocab.words.index("<unk>"))


def clip_word_vocab(streams: Mapping[str, np.ndarray], vocab: int, unk_id: int = 1) -> dict[str, np.ndarray]:
    """Cut frequency-ranked word ids to a ``vocab``-sized vocabulary: ids ``>= vocab`` become ``unk_id``."""
    return {k: np.where(np.asarray(v) < vocab, v, unk_id).astype(np.int32) for k, v in streams.items()}


def load_streams(dataset: str, tokenizer: str, vocab: int) -> dict[str, np.ndarray]:
    """``{split: int32 1-D token stream}`` of real text ``dataset`` with ids in ``[0, vocab)``."""
    raw, unk = _raw_streams(dataset, tokenizer)
    streams = reduce_byte_vocab(raw, vocab) if tokenizer == "byte" else clip_word_vocab(raw, vocab, unk)
    for split in SPLITS:
        s = streams[split]
        if s.ndim != 1 or s.size < 2 or s.min() < 0 or s.max() >= vocab:
            raise ValueError(f"{dataset} {tokenizer} stream {split!r} has ids outside [0, {vocab}) or is empty")
    return streams


@functools.lru_cache(maxsize=8)
def _device_splits(dataset: str, tokenizer: str, vocab: int) -> dict:
    """``{split: {"stream": jnp int32}}``, shared by every task on the same data (saves memory)."""
    streams = load_streams(dataset, tokenizer, vocab)
    return {s: {"stream": jax.device_put(streams[s])} for s in SPLITS}


class _LMFamily(Family):
    """Shared code of the two recurrent LM families (subclasses set the tokenizer and the ranges)."""

    tokenizer = "byte"
    vocab_range = (100, 256)
    seq_range = (8, 64)
    batch_range = (8, 64)

    def config_space(self) -> Struct:
        """Fields: dataset, embed, vocab, core, trainable_init, seq_len, batch_size (see the module docstring)."""
        return Struct({
            "dataset": choices(LM_DATASETS),
            "embed": Int(8, 128),
            "vocab": Int(*self.vocab_range),
            "core": core_config_space(),
            "trainable_init": Bool(),
            "seq_len": Int(*self.seq_range),
            "batch_size": Int(*self.batch_range),
        })

    def _sample_vocab(self, rng) -> int:
        return rng.log_int(*self.vocab_range)

    def sample(self, rng) -> dict:
        """A config drawn with TaskSet-like distributions inside :meth:`config_space`."""
        return {
            "dataset": rng.choice(list(LM_DATASETS)),
            "embed": rng.log_int(8, 128),
            "vocab": self._sample_vocab(rng),
            "core": sample_core(rng),
            "trainable_init": rng.bool(),
            "seq_len": rng.log_int(*self.seq_range),
            "batch_size": rng.log_int(*self.batch_range),
        }

    def cost(self, config) -> Cost:
        """Exact parameter count and ≈ 3 × forward FLOPs per step (no model build)."""
        c = config
        params = lm_param_count(c["vocab"], c["embed"], c["core"]["kind"], c["core"]["hidden"], c["trainable_init"])
        flops = lm_flops_per_step(c["vocab"], c["embed"], c["core"]["kind"], c["core"]["hidden"], c["seq_len"],
                                  c["batch_size"])
        return Cost(params, flops)

    def variant(self, config) -> str:
        """``<family>/<core kind>``, e.g. ``char_lm/lstm``."""
        return f"{self.name}/{config['core']['kind']}"

    def describe(self, config) -> dict:
        """Manifest columns: dataset, input_shape ``[seq_len]``, batch_size."""
        return {"dataset": config["dataset"], "input_shape": [config["seq_len"]], "batch_size": config["batch_size"]}

    def functions(self, config):
        """``(static_key, (init, loss, sample_batch, normalizer))`` for ``config``, cached by static key."""
        key = common.static_key(self.name, config, drop=("dataset",))
        c = config
        fns = _lm_functions(key, c["vocab"], c["embed"], c["core"]["kind"], c["core"]["hidden"],
                            c["trainable_init"], c["seq_len"], c["batch_size"])
        return key, fns

    def build(self, spec) -> Task:
        """Validate the spec's config, load the real token streams, and return the :class:`Task`."""
        config = spec.config
        self.validate(config)
        key, (init, loss, sample_batch, normalizer) = self.functions(config)
        splits = _device_splits(config["dataset"], self.tokenizer, config["vocab"])
        for s in SPLITS:
            if splits[s]["stream"].shape[0] < config["seq_len"] + 1:
                raise ValueError(f"split {s!r} of {config['dataset']} is shorter than a window")
        return Task(spec=spec, init=init, loss=loss, sample_batch=sample_batch, splits=splits,
                    normalizer=normalizer, static_key=key, batch_size=config["batch_size"])


class CharLMFamily(_LMFamily):
    """Byte-level recurrent language model (vocab 256, or the most frequent bytes + UNK)."""

    name = "char_lm"
    version = 1
    tokenizer = "byte"
    vocab_range = (100, 256)
    seq_range = (8, 64)
    batch_range = (8, 64)

    def _sample_vocab(self, rng) -> int:
        return 256 if rng.bool(0.8) else rng.log_int(100, 255)


class WordLMFamily(_LMFamily):
    """Word-level recurrent language model (vocabulary of the most frequent words + UNK, from datasets_cache)."""

    name = "word_lm"
    version = 1
    tokenizer = "word"
    vocab_range = (1000, 4000)
    seq_range = (8, 32)
    batch_range = (8, 32)
