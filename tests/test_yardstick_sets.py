"""The yardstick's frozen task sets and the committed-baseline table: sizes, disjointness, reproducibility,
digests, and the table's round trip and refusals (synthetic run records, no training)."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

import taskgen
from lopt_trainer.common.task_pool import limits_for, within_limits
from lopt_trainer.evaluation import baseline_table as bt
from lopt_trainer.evaluation import task_sets as ts
from lopt_trainer.evaluation.records import save_records
from taskgen import default_registry
from taskgen.specfile import specs_to_jsonl
from taskgen.suite import DEFAULT_HELD_OUT_VARIANTS


@pytest.fixture(scope="module")
def sets():
    return {name: ts.load_task_set(name) for name in ts.SET_NAMES}


def test_sizes_and_strata(sets):
    for name, total, per in (("valid", 120, 10), ("test", 240, 20)):
        specs = sets[name]
        assert len(specs) >= total
        counts = {f: sum(s.family == f for s in specs) for f in ts.FAMILIES}
        assert min(counts.values()) >= per and set(counts) == set(ts.FAMILIES)


def test_disjoint_from_each_other_and_from_training(sets):
    suite = taskgen.load_specs(None)
    train_ids = {s.task_id for s in suite}
    train_configs = {(s.family, s.config_json) for s in suite}
    valid, test = sets["valid"], sets["test"]
    assert not {s.task_id for s in valid} & {s.task_id for s in test}
    assert not {(s.family, s.config_json) for s in valid} & {(s.family, s.config_json) for s in test}
    for s in valid + test:
        assert s.task_id not in train_ids and (s.family, s.config_json) not in train_configs


def test_within_the_recipes_limits_and_training_variants(sets):
    reg = default_registry()
    for s in sets["valid"] + sets["test"]:
        limits = limits_for(s.family, ts.DEFAULT_LIMITS["max_params"], ts.DEFAULT_LIMITS["max_flops"],
                            ts.FAMILY_LIMITS)
        assert within_limits(s, *limits, reg)
        assert reg.get(s.family).variant(s.config) not in DEFAULT_HELD_OUT_VARIANTS


def test_recipe_limits_match_the_shipped_recipe():

    recipe = json.loads((ts.DATA_DIR.parent / "pretrain_config.json").read_text())
    assert recipe["family_limits"] == ts.FAMILY_LIMITS
    assert {"max_params": recipe["max_params"], "max_flops": recipe["max_flops"]} == ts.DEFAULT_LIMITS
    assert tuple(recipe["filters"]["family"]) == ts.FAMILIES


def test_sampling_reproduces_the_committed_bytes(sets):
    fresh = ts.sample_task_sets(taskgen.load_specs(None))
    for name in ts.SET_NAMES:
        assert specs_to_jsonl(fresh[name]) == (ts.DATA_DIR / f"{name}.jsonl").read_bytes()


def test_an_appended_block_keeps_the_frozen_sets_as_prefixes(sets):
    """Enlarging a set appends a block of each family's stream: the frozen files stay the start of the new ones,
    the new tasks come from positions after every frozen one, and the two sets stay disjoint."""
    suite = taskgen.load_specs(None)
    families = ("quadratic", "twod")
    grown = ts.sample_task_sets(suite, families=families, layout=ts.LAYOUT + (("valid", 2), ("test", 3)))
    base = ts.sample_task_sets(suite, families=families)
    for name, extra in (("valid", 2), ("test", 3)):
        assert grown[name][:len(base[name])] == base[name]
        assert len(grown[name]) == len(base[name]) + extra * len(families)
    assert not {s.task_id for s in grown["valid"]} & {s.task_id for s in grown["test"]}
    with pytest.raises(ts.TaskSetError, match="a layout takes blocks"):
        ts.sample_task_sets(suite, families=families, layout=(("train", 2),))


def test_an_edited_set_is_refused(tmp_path):
    data = tmp_path / "yardstick"
    shutil.copytree(ts.DATA_DIR, data)
    path = data / "valid.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"seed":', b'"seed": ', 1))
    with pytest.raises(ts.TaskSetError, match="differs from its recorded sha256"):
        ts.load_task_set("valid", data)
    with pytest.raises(ts.TaskSetError, match="unknown task set 'train'"):
        ts.load_task_set("train", data)


# ------------------------------------------------------------------------------------ the baseline table


def _toy_data_dir(tmp_path, n=2):
    """A data folder with a 'valid' set of ``n`` real twod specs from the committed valid set."""
    specs = [s for s in ts.load_task_set("valid") if s.family == "twod"][:n]
    data = tmp_path / "data"
    data.mkdir()
    (data / "valid.jsonl").write_bytes(specs_to_jsonl(specs))
    import hashlib

    index = {"sets": {"valid": {"file": "valid.jsonl", "tasks": n,
                                "sha256": hashlib.sha256(specs_to_jsonl(specs)).hexdigest()}}}
    (data / "sets.json").write_text(json.dumps(index))
    return data, specs


def _fake_records(specs, work):
    settings = bt.YARDSTICK_SETTINGS
    grid = settings.trial_hparams("adamlr")
    key = settings.run_key("adamlr")
    for k, spec in enumerate(specs):
        recs = {}
        for trial, hp in enumerate(grid):
            for seed in settings.seed_list():
                final = None if trial == 13 else 1.0 + k + 0.1 * abs(trial - 7) + 0.01 * seed
                recs[(trial, seed)] = {
                    "task_id": spec.task_id, "optimizer": "adamlr", "trial": trial, "seed": seed, "hparams": hp,
                    "steps": [0, 500, 1000], "report_curve": [5.0 + seed, 3.0, final],
                    "select_curve": [5.0, 3.0, None if final is None else final + 0.2],
                    "diverged": final is None, "diverged_at": 900 if final is None else -1}
        save_records(work, spec.task_id, "adamlr", key, recs, [])


def test_table_round_trip(tmp_path):
    data, specs = _toy_data_dir(tmp_path)
    _fake_records(specs, tmp_path / "work")
    path = bt.write_baselines("valid", tmp_path / "work", data_dir=data)
    assert path == data / "baselines_valid.arrow"
    base = bt.load_baselines("valid", data_dir=data)
    assert base.task_ids == tuple(s.task_id for s in specs)
    assert base.final.shape == (2, 14, 3) and base.init.shape == (2, 3)
    assert base.init[0].tolist() == [5.0, 6.0, 7.0]
    assert base.final[1, 7, 2] == pytest.approx(2.02)
    assert np.isnan(base.final[0, 13]).all() and np.isnan(base.curve_mean[0, 13]).all()
    assert base.select_final[0, 7, 0] == pytest.approx(1.2)
    # curve mean by the trapezoid rule over steps 0, 500, 1000: (5+3)/4 + (3+1)/4 = 3 for task 0, trial 7, seed 0
    assert base.curve_mean[0, 7, 0] == pytest.approx(3.0)
    assert base.lrs[0] == pytest.approx(1e-7) and base.lrs.size == 14
    meta = base.meta
    assert meta["baseline_version"] == str(bt.BASELINE_VERSION) and "cpu" in json.loads(meta["machine"])
    # the same records give the same bytes but for the machine (recorded in the metadata)
    again = bt.write_baselines("valid", tmp_path / "work", data_dir=data)
    assert bt.load_baselines("valid", data_dir=data).final.tobytes() == base.final.tobytes() and again == path


def test_incomplete_work_is_refused_and_writes_nothing(tmp_path):
    data, specs = _toy_data_dir(tmp_path)
    _fake_records(specs[:1], tmp_path / "work")
    with pytest.raises(bt.BaselineTableError, match=f"task {specs[1].task_id} lacks trial 0 seed 0"):
        bt.write_baselines("valid", tmp_path / "work", data_dir=data)
    assert not (data / "baselines_valid.arrow").exists()


def test_stale_or_missing_table_is_refused(tmp_path):
    data, specs = _toy_data_dir(tmp_path)
    with pytest.raises(bt.BaselineTableError, match="cannot be read.*taskgen lopt yardstick baselines --on valid"):
        bt.load_baselines("valid", data_dir=data)
    _fake_records(specs, tmp_path / "work")
    path = bt.write_baselines("valid", tmp_path / "work", data_dir=data)
    with pa.memory_map(str(path)) as src:
        table = pa.ipc.open_file(src).read_all()
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    for key, bad in (("baseline_version", "0"), ("run_key", "{}"), ("set_sha256", "0" * 64)):
        t = table.replace_schema_metadata({**meta, key: bad})
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
            w.write_table(t)
        with pytest.raises(bt.BaselineTableError, match=f"{key} is"):
            bt.load_baselines("valid", data_dir=data)


def test_committed_valid_baselines_agree_with_a_recomputation_here(tmp_path):
    """The cheapest task of each of the five cheapest families, recomputed on this machine: L* within the
    tolerance and per-task AdamLR's learning rate unchanged."""
    reg = default_registry()
    cheapest = {}
    for s in ts.load_task_set("valid"):
        cost = reg.get(s.family).cost(s.config).flops_per_step
        if s.family not in cheapest or cost < cheapest[s.family][0]:
            cheapest[s.family] = (cost, s.task_id)
    ids = [tid for _, tid in sorted(cheapest.values())[:5]]
    out = bt.verify_baselines("valid", tmp_path, task_ids=ids, progress=False)
    assert out["tasks"] == ids
    assert out["max_best_loss_diff_normalized"] <= bt.VERIFY_TOLERANCE, out["per_task"]
    assert out["per_task_choice_changed"] == 0, out["per_task"]
    with pytest.raises(bt.BaselineTableError, match="not in set 'valid'"):
        bt.verify_baselines("valid", tmp_path, task_ids=["nosuch"], progress=False)
