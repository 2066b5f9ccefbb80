"""char_lm and word_lm: sampled specs validate, cost matches the built model, tasks train on real text."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from families.base import ConfigError
from families.lm import CharLMFamily, WordLMFamily, clip_word_vocab, load_streams, reduce_byte_vocab
from families.sampling import SpecRNG
from taskgen.spec import TaskSpec
from tests.family_checks import N_SPECS as FAMILY_SPECS
from tests.family_checks import (adam_losses, check_finite_loss_and_grad, loss_decreased, param_count,
                                 sample_specs)

FAMILIES = {"char_lm": CharLMFamily(), "word_lm": WordLMFamily()}
N_SPECS = FAMILY_SPECS


@functools.lru_cache(maxsize=None)
def _tasks(name):
    fam = FAMILIES[name]
    return [fam.build(s) for s in sample_specs(fam, N_SPECS)]


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_deterministic_and_valid(name):
    fam = FAMILIES[name]
    for seed in range(50):
        a, b = fam.sample(SpecRNG(seed)), fam.sample(SpecRNG(seed))
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        fam.validate(a)
        assert fam.variant(a) == f"{name}/{a['core']['kind']}"
        assert fam.describe(a)["input_shape"] == [a["seq_len"]]


@pytest.mark.parametrize("name", FAMILIES)
def test_specs_cost_finite_and_train(name):
    """Cost params equal the real count; loss/grad finite; 200 Adam steps lower the loss for >= 90%."""
    fam = FAMILIES[name]
    failed = []
    for task in _tasks(name):
        params = task.init(task.init_key())
        assert fam.cost(task.spec.config).params == param_count(params), task.spec.task_id
        assert fam.cost(task.spec.config).flops_per_step > 0
        check_finite_loss_and_grad(task)
        losses = adam_losses(task, steps=200, lr=3e-3)
        if not loss_decreased(losses):
            failed.append((task.spec.task_id, float(losses[:20].mean()), float(losses[-20:].mean())))
    rate = 1 - len(failed) / N_SPECS
    print(f"{name}: {rate:.0%} decreased; failing: {failed}")
    assert rate >= 0.9, failed


@pytest.mark.parametrize("name", FAMILIES)
def test_init_deterministic_and_batches(name):
    task = _tasks(name)[0]
    c = task.spec.config
    p1, p2 = task.init(jax.random.PRNGKey(3)), task.init(jax.random.PRNGKey(3))
    assert all(np.asarray(a).tobytes() == np.asarray(b).tobytes()
               for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p2)))
    for split in ("train", "inner_valid", "outer_valid", "test"):
        stream = np.asarray(task.splits[split]["stream"])
        assert stream.dtype == np.int32 and stream.min() >= 0 and stream.max() < c["vocab"]
        batch = np.asarray(jax.jit(task.sample_batch)(task.splits[split], jax.random.PRNGKey(5)))
        assert batch.shape == (c["batch_size"], c["seq_len"] + 1)
        # every row is a contiguous window of the stream
        for row in batch[:3]:
            hits = np.flatnonzero(np.lib.stride_tricks.sliding_window_view(stream, len(row)).__eq__(row).all(1))
            assert hits.size > 0
    # the untrained model is near the uniform predictor; the normalizer maps that into ~0..10
    loss = task.loss(p1, task.batch("train", jax.random.PRNGKey(0)), jax.random.PRNGKey(0))
    assert 0 < float(task.normalizer(loss)) < 10


def test_static_key_shared_across_datasets():
    fam = CharLMFamily()
    config = fam.sample(SpecRNG(7))
    other = dict(config, dataset="fortunes" if config["dataset"] != "fortunes" else "bible_kjv")
    t1 = fam.build(TaskSpec.create(fam.name, 1, 1, config))
    t2 = fam.build(TaskSpec.create(fam.name, 1, 2, other))
    assert t1.static_key == t2.static_key and t1.loss is t2.loss and t1.sample_batch is t2.sample_batch
    changed = dict(config, seq_len=config["seq_len"] + 1 if config["seq_len"] < 64 else 8)
    assert fam.functions(changed)[0] != t1.static_key


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("field,value", [
    ("embed", 7), ("embed", 129), ("vocab", 99), ("vocab", 40000), ("seq_len", 1000), ("batch_size", 0),
    ("dataset", "imdb"), ("trainable_init", 1), ("core.kind", "transformer"), ("core.hidden", 16),
    ("core.hidden", 1.5), ("extra", 1),
])
def test_invalid_config_names_field(name, field, value):
    fam = FAMILIES[name]
    config = json.loads(json.dumps(fam.sample(SpecRNG(1))))
    if field.startswith("core."):
        config["core"][field[5:]] = value
    else:
        config[field] = value
    with pytest.raises(ConfigError) as err:
        fam.validate(config)
    assert err.value.field.startswith(field.split(".")[0])
    assert field.split(".")[-1] in str(err.value) or field in str(err.value)


def test_missing_field():
    fam = WordLMFamily()
    config = fam.sample(SpecRNG(2))
    del config["seq_len"]
    with pytest.raises(ConfigError, match="seq_len"):
        fam.validate(config)


def test_reduce_byte_vocab():
    train = np.array([5, 5, 5, 7, 7, 9, 200], np.int32)
    out = reduce_byte_vocab({"train": train, "test": np.array([9, 7, 5, 3], np.int32)}, 3)
    np.testing.assert_array_equal(out["train"], [0, 0, 0, 1, 1, 2, 2])  # 5 -> 0, 7 -> 1, rest -> UNK 2
    np.testing.assert_array_equal(out["test"], [2, 1, 0, 2])
    same = reduce_byte_vocab({"train": train}, 256)
    np.testing.assert_array_equal(same["train"], train)


def test_word_vocab_cut_equals_smaller_vocab():
    """Cutting the 8192-word streams to V ids equals asking datasets_cache for a V-word vocabulary."""
    import datasets_cache

    direct = datasets_cache.lm_stream("fortunes", tokenizer="word", vocab_size=1000)
    cut = load_streams("fortunes", "word", 1000)
    for split in ("train", "test"):
        np.testing.assert_array_equal(cut[split], direct.splits[split])
    assert clip_word_vocab({"a": np.array([0, 5, 10])}, 6)["a"].tolist() == [0, 5, 1]


def test_real_data_not_trivial():
    """Streams are real text: bytes of Shakespeare include the word 'the' and newlines."""
    s = load_streams("shakespeare", "byte", 256)["train"][:100000]
    text = bytes(s.astype(np.uint8)).decode("utf-8", errors="replace")
    assert " the " in text and "\n" in text
    assert jnp.asarray(s).dtype == jnp.int32
