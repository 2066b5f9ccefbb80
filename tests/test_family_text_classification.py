"""rnn_text_classification: sampled specs validate, cost matches the model, tasks train on real labelled text."""

import functools
import json

import jax
import numpy as np
import pytest

from families.base import ConfigError
from families.sampling import SpecRNG
from families.text_classification import NUM_CLASSES, RNNTextClassificationFamily
from taskgen.spec import TaskSpec
from tests.family_checks import N_SPECS as FAMILY_SPECS
from tests.family_checks import (adam_losses, check_finite_loss_and_grad, loss_decreased, param_count,
                                 sample_specs)

FAM = RNNTextClassificationFamily()
N_SPECS = FAMILY_SPECS


@functools.lru_cache(maxsize=None)
def _tasks():
    return [FAM.build(s) for s in sample_specs(FAM, N_SPECS)]


def test_sample_deterministic_and_valid():
    seen = set()
    for seed in range(100):
        a, b = FAM.sample(SpecRNG(seed)), FAM.sample(SpecRNG(seed))
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        FAM.validate(a)
        seen.add((a["dataset"], a["label"]))
        assert FAM.variant(a) == f"rnn_text_classification/{a['core']['kind']}"
    assert seen == set(NUM_CLASSES)


def test_specs_cost_finite_and_train():
    """Cost params equal the real count; loss/grad finite; 200 Adam steps lower the loss for >= 90%."""
    failed = []
    for task in _tasks():
        params = task.init(task.init_key())
        assert FAM.cost(task.spec.config).params == param_count(params), task.spec.task_id
        check_finite_loss_and_grad(task)
        losses = adam_losses(task, steps=200, lr=3e-3)
        if not loss_decreased(losses):
            failed.append((task.spec.task_id, float(losses[:20].mean()), float(losses[-20:].mean())))
    rate = 1 - len(failed) / N_SPECS
    print(f"rnn_text_classification: {rate:.0%} decreased; failing: {failed}")
    assert rate >= 0.9, failed


def test_data_and_batches():
    for task in _tasks()[:5]:
        c = task.spec.config
        vocab = 256 if c["tokens"]["kind"] == "byte" else c["tokens"]["vocab"]
        classes = NUM_CLASSES[(c["dataset"], c["label"])]
        for split, (tokens, lengths, labels) in task.splits.items():
            tokens, lengths, labels = map(np.asarray, (tokens, lengths, labels))
            assert tokens.shape[1] == c["seq_len"] and tokens.min() >= 0 and tokens.max() < vocab
            assert lengths.min() >= 1 and lengths.max() <= c["seq_len"]
            assert labels.min() >= 0 and labels.max() < classes
            if split == "train":
                assert len(np.unique(labels)) > 1
        tokens, lengths, labels = jax.jit(task.sample_batch)(task.splits["train"], jax.random.PRNGKey(0))
        assert tokens.shape == (c["batch_size"], c["seq_len"]) and labels.shape == (c["batch_size"],)
        p = task.init(task.init_key())
        loss = float(task.loss(p, (tokens, lengths, labels), None))
        assert np.isfinite(loss) and 0 < loss < 3 * np.log(classes)
        # the shared classification normalizer: chance (log C) maps to 10·log 5 / log C
        np.testing.assert_allclose(task.normalizer(np.log(classes)), 10 * np.log(5) / np.log(classes), rtol=1e-5)


def test_padding_is_ignored():
    """Changing tokens after an example's length does not change the loss (for every aggregation)."""
    base = FAM.sample(SpecRNG(3))
    for agg in ("last", "mean", "max"):
        config = dict(base, aggregation=agg)
        task = FAM.build(TaskSpec.create(FAM.name, 1, 0, config))
        tokens, lengths, labels = task.batch("train", jax.random.PRNGKey(1))
        lengths = np.minimum(np.asarray(lengths), max(1, config["seq_len"] // 2))
        pos = np.arange(config["seq_len"])[None, :] >= lengths[:, None]
        noisy = np.where(pos, 7, np.asarray(tokens))
        p = task.init(task.init_key())
        a = task.loss(p, (tokens, lengths, labels), None)
        b = task.loss(p, (noisy, lengths, labels), None)
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_init_deterministic_and_static_key():
    task = _tasks()[0]
    p1, p2 = task.init(jax.random.PRNGKey(4)), task.init(jax.random.PRNGKey(4))
    assert all(np.asarray(a).tobytes() == np.asarray(b).tobytes()
               for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)))
    c = dict(task.spec.config)
    # shakespeare/genre (4 classes) vs bible_kjv/testament (2): different heads, different keys
    k_genre = FAM.functions(dict(c, dataset="shakespeare", label="genre"))[0]
    k_test = FAM.functions(dict(c, dataset="bible_kjv", label="testament"))[0]
    assert k_genre != k_test
    assert FAM.functions(dict(c, dataset="shakespeare", label="genre"))[1] is \
        FAM.functions(dict(c, dataset="shakespeare", label="genre"))[1]


@pytest.mark.parametrize("field,value", [
    ("embed", 7), ("seq_len", 200), ("batch_size", 1000), ("aggregation", "sum"), ("dataset", "imdb"),
    ("core.kind", "lstm2"), ("core.hidden", 500), ("tokens.kind", "bpe"), ("tokens.vocab", 50),
    ("trainable_init", "yes"), ("extra", 0),
])
def test_invalid_config_names_field(field, value):
    config = json.loads(json.dumps(FAM.sample(SpecRNG(11))))
    config["tokens"] = {"kind": "word", "vocab": 500}
    head, _, tail = field.partition(".")
    if tail:
        config[head][tail] = value
    else:
        config[head] = value
    with pytest.raises(ConfigError) as err:
        FAM.validate(config)
    assert err.value.field.startswith(head)


def test_label_must_match_dataset():
    config = dict(FAM.sample(SpecRNG(5)), dataset="fortunes", label="genre")
    with pytest.raises(ConfigError, match="label") as err:
        FAM.validate(config)
    assert err.value.field == "label"
    with pytest.raises(ConfigError):
        FAM.validate(dict(config, tokens={"kind": "byte", "vocab": 300}))
