"""``rnn_text_classification``: a recurrent classifier of real text with real labels taken from the text itself.

Model: token embedding → recurrent core (vanilla RNN / GRU / LSTM, :mod:`families.rnn_cores`) → aggregation over
the real tokens of each example (``last``: the state after the last real token; ``mean`` / ``max`` over real
tokens, padding excluded) → linear → softmax cross-entropy.

Tasks (``dataset`` / ``label``, from :mod:`datasets_cache`; examples are split 80/5/5/10 there):

* ``shakespeare/genre`` — 8 consecutive non-empty lines of a work → comedy / history / tragedy / poetry (4).
* ``shakespeare/work`` — the same chunks → which of the 42 works (42).
* ``bible_kjv/testament`` — one KJV verse → Old or New Testament (2).
* ``bible_kjv/book_group`` — a verse → law, OT history, wisdom, major / minor prophets, gospels+Acts, epistles,
  Revelation (8).
* ``bible_kjv/book`` — a verse → its book (66).
* ``fortunes/file`` — one fortune → the Debian ``fortunes`` file (category) it is in (40 in the Debian package).

Classes are unbalanced (as the text is). The class counts are fixed here (:data:`NUM_CLASSES`) so that
:meth:`cost` stays analytic; ``build`` checks them against the data.

Config (TaskSet's ranges, shrunk for a 2-core CPU):

* ``tokens``: ``{"kind": "byte"}`` (UTF-8 bytes, 256 ids) with p 0.5, else ``{"kind": "word", "vocab":
  logint[100, 10000]}`` (the frequency-ranked train-split word vocabulary of ``datasets_cache`` — read once at
  10000 and cut to ``vocab`` ids, rarer words → ``<unk>``; TaskSet's range).
* ``embed`` logint[8, 128]; ``core`` ``{"kind", "hidden": logint[32, 128]}``; ``trainable_init`` (p 0.5);
  ``aggregation`` ∈ {last, mean, max}.
* ``seq_len`` logint[8, 64] (reference [8, 128]): examples are truncated to their first ``seq_len`` tokens.
* ``batch_size`` logint[8, 64] (reference up to 512).

Batches: :func:`families.common.sample_rows` over ``(tokens (N, seq_len) int32, lengths (N,), labels (N,))``.
Normalizer: :func:`families.common.classification_normalizer` of the task's number of classes.
FLOPs: ``3 × batch × (seq_len × core forward per token + 2·hidden·classes + 5·classes)``; embedding lookups and
pooling counted as free.
"""

from __future__ import annotations

import functools

from families._lazy import LazyModule, jax, jnp, nn, np

from families import common
from families.base import SPLITS, ConfigError, Cost, Family, Task
from families.rnn_cores import (AGGREGATIONS, aggregate, core_config_space, core_forward_flops,
                                core_param_count, sample_core)
from families.space import Bool, Int, Struct, Tagged, choices


_nets = LazyModule("families.nets.text_classification")


def __getattr__(name):  # the Flax modules live in families.nets.text_classification; still importable from here
    if name in ('RNNClassifier',):
        return getattr(_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

NUM_CLASSES = {
    ("shakespeare", "genre"): 4,
    ("shakespeare", "work"): 42,
    ("bible_kjv", "testament"): 2,
    ("bible_kjv", "book_group"): 8,
    ("bible_kjv", "book"): 66,
    ("fortunes", "file"): 40,
}
"""Classes of each (dataset, label) task; fixed so that the cost and static key need no data."""

DATASETS = tuple(dict.fromkeys(d for d, _ in NUM_CLASSES))
LABELS = tuple(dict.fromkeys(lab for _, lab in NUM_CLASSES))
BYTE_VOCAB = 256
MAX_WORD_VOCAB = 10000
MAX_SEQ_LEN = 64


def vocab_of(config) -> int:
    """Token ids of a config's tokenizer: 256 for bytes, ``tokens.vocab`` for words."""
    return BYTE_VOCAB if config["tokens"]["kind"] == "byte" else config["tokens"]["vocab"]


@functools.lru_cache(maxsize=None)
def _functions(key: str, vocab: int, embed: int, core: str, hidden: int, trainable_init: bool, aggregation: str,
               num_classes: int, seq_len: int, batch_size: int):
    """The four pure functions of a classification task, shared by every task with the same static ``key``."""
    model = _nets.RNNClassifier(vocab, embed, core, hidden, trainable_init, aggregation, num_classes)

    def init(rng):
        return model.init(rng, jnp.zeros((1, 2), jnp.int32), jnp.ones((1,), jnp.int32))["params"]

    def loss(params, batch, rng):
        del rng  # deterministic
        tokens, lengths, labels = batch
        logits = model.apply({"params": params}, tokens, lengths).astype(jnp.float32)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))

    def sample_batch(split_data, rng):
        return common.sample_rows(split_data, rng, batch_size)

    # jitted so eager callers (checks, notebooks) compile once instead of dispatching op by op; inside a
    # trainer's jit they are simply inlined.
    return jax.jit(init), jax.jit(loss), jax.jit(sample_batch), common.classification_normalizer(num_classes)


@functools.lru_cache(maxsize=16)
def _raw_examples(dataset: str, label: str, tokenizer: str):
    """``(splits, num_classes, unk_id)`` from :func:`datasets_cache.text_classification` at the largest vocab and length
    (one cache entry per task and tokenizer; read once per process)."""
    import datasets_cache

    data = datasets_cache.text_classification(dataset, label, tokenizer,
                                              None if tokenizer == "byte" else MAX_WORD_VOCAB, MAX_SEQ_LEN)
    splits = {s: tuple(np.asarray(a, np.int32) for a in data.splits[s]) for s in SPLITS}
    for arrays in splits.values():
        for a in arrays:
            a.setflags(write=False)
    return splits, data.num_classes, (-1 if data.vocab is None else data.vocab.words.index("<unk>"))


def load_examples(config) -> dict:
    """``{split: (tokens (N, seq_len), lengths (N,), labels (N,))}`` int32 for ``config``: truncated to
    ``seq_len``, word ids cut to ``tokens.vocab`` (rarer words → ``<unk>``), empty examples dropped."""
    dataset, label, tok = config["dataset"], config["label"], config["tokens"]["kind"]
    raw, num_classes, unk = _raw_examples(dataset, label, tok)
    want = NUM_CLASSES[(dataset, label)]
    if num_classes != want:
        raise ValueError(f"{dataset}/{label} has {num_classes} classes in the data, this family version expects "
                         f"{want} (a different {dataset} source version?)")
    vocab, seq_len = vocab_of(config), config["seq_len"]
    out = {}
    for s in SPLITS:
        tokens, lengths, labels = raw[s]
        keep = lengths > 0
        tokens = tokens[keep, :seq_len]
        if tok == "word":
            tokens = np.where(tokens < vocab, tokens, unk).astype(np.int32)
        out[s] = (tokens, np.minimum(lengths[keep], seq_len).astype(np.int32), labels[keep])
    return out


class RNNTextClassificationFamily(Family):
    """Recurrent text classifiers on Shakespeare / KJV / fortunes with labels from the text (see module doc)."""

    name = "rnn_text_classification"
    version = 1

    def config_space(self) -> Struct:
        """Fields: dataset, label, tokens, embed, core, trainable_init, aggregation, seq_len, batch_size."""
        return Struct({
            "dataset": choices(DATASETS),
            "label": choices(LABELS),
            "tokens": Tagged("kind", {"byte": Struct({}), "word": Struct({"vocab": Int(100, MAX_WORD_VOCAB)})}),
            "embed": Int(8, 128),
            "core": core_config_space(),
            "trainable_init": Bool(),
            "aggregation": choices(AGGREGATIONS),
            "seq_len": Int(8, MAX_SEQ_LEN),
            "batch_size": Int(8, 64),
        })

    def validate(self, config) -> None:
        """The generic check, then: ``label`` must be one of ``dataset``'s labels."""
        super().validate(config)
        if (config["dataset"], config["label"]) not in NUM_CLASSES:
            allowed = [lab for d, lab in NUM_CLASSES if d == config["dataset"]]
            raise ConfigError("label", f"{config['label']!r} is not a label of {config['dataset']}; allowed: "
                                       f"{allowed}")

    def sample(self, rng) -> dict:
        """A config: (dataset, label) uniformly over :data:`NUM_CLASSES`, then TaskSet-like draws."""
        dataset, label = rng.choice(list(NUM_CLASSES))
        tokens = {"kind": "byte"} if rng.bool(0.5) else {"kind": "word", "vocab": rng.log_int(100, MAX_WORD_VOCAB)}
        return {
            "dataset": dataset,
            "label": label,
            "tokens": tokens,
            "embed": rng.log_int(8, 128),
            "core": sample_core(rng),
            "trainable_init": rng.bool(),
            "aggregation": rng.choice(list(AGGREGATIONS)),
            "seq_len": rng.log_int(8, MAX_SEQ_LEN),
            "batch_size": rng.log_int(8, 64),
        }

    def cost(self, config) -> Cost:
        """Exact parameter count and ≈ 3 × forward FLOPs per step (no model build, no data)."""
        c = config
        classes, vocab = NUM_CLASSES[(c["dataset"], c["label"])], vocab_of(c)
        kind, hid = c["core"]["kind"], c["core"]["hidden"]
        params = vocab * c["embed"] + core_param_count(kind, c["embed"], hid, c["trainable_init"]) + \
            hid * classes + classes
        fwd = c["seq_len"] * core_forward_flops(kind, c["embed"], hid) + 2 * hid * classes + 5 * classes
        return Cost(params, 3 * fwd * c["batch_size"])

    def variant(self, config) -> str:
        """``rnn_text_classification/<core kind>``."""
        return f"{self.name}/{config['core']['kind']}"

    def describe(self, config) -> dict:
        """Manifest columns: dataset (``<dataset>/<label>``), input_shape ``[seq_len]``, batch_size."""
        return {"dataset": f"{config['dataset']}/{config['label']}", "input_shape": [config["seq_len"]],
                "batch_size": config["batch_size"]}

    def functions(self, config):
        """``(static_key, (init, loss, sample_batch, normalizer))``; the key drops dataset/label but keeps the
        number of classes (tasks of equal shape share compiled code)."""
        c = config
        classes = NUM_CLASSES[(c["dataset"], c["label"])]
        key = common.static_key(self.name, {**c, "num_classes": classes}, drop=("dataset", "label"))
        fns = _functions(key, vocab_of(c), c["embed"], c["core"]["kind"], c["core"]["hidden"], c["trainable_init"],
                         c["aggregation"], classes, c["seq_len"], c["batch_size"])
        return key, fns

    def build(self, spec) -> Task:
        """Validate, load the real examples, and return the :class:`Task`."""
        config = spec.config
        self.validate(config)
        key, (init, loss, sample_batch, normalizer) = self.functions(config)
        data = load_examples(config)
        splits = {s: tuple(jax.device_put(a) for a in data[s]) for s in SPLITS}
        return Task(spec=spec, init=init, loss=loss, sample_batch=sample_batch, splits=splits,
                    normalizer=normalizer, static_key=key, batch_size=config["batch_size"])
