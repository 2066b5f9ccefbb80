"""The frozen default suite: regeneration is byte-identical, and its manifest matches it."""

from taskgen.api import default_suite_path
from taskgen.manifest import load_manifest, manifest_bytes, manifest_table, specs_from_manifest
from taskgen.specfile import read_specs, specs_to_jsonl
from taskgen.suite import DEFAULT_HELD_OUT_VARIANTS, generate_suite


def test_regenerating_the_default_suite_is_byte_identical():
    assert specs_to_jsonl(generate_suite()) == default_suite_path().read_bytes()


def test_default_suite_shape():
    specs = read_specs(default_suite_path())
    families = {s.family for s in specs}
    assert len(specs) == 6000 and len(families) == 12
    assert all(sum(s.family == f for s in specs) == 500 for f in families)
    test_share = sum(s.split == "meta_test" for s in specs) / len(specs)
    assert 0.2 < test_share < 0.35


def test_held_out_variants_are_never_meta_train():
    table = load_manifest(default_suite_path().with_suffix(".arrow"))
    rows = [r for r in table.select(["variant", "split"]).to_pylist() if r["variant"] in DEFAULT_HELD_OUT_VARIANTS]
    assert rows and all(r["split"] == "meta_test" for r in rows)


def test_frozen_manifest_matches_the_suite():
    path = default_suite_path().with_suffix(".arrow")
    specs = read_specs(default_suite_path())
    assert specs_from_manifest(load_manifest(path)) == specs
    assert manifest_bytes(manifest_table(specs)) == path.read_bytes()


def test_frozen_suite_record_is_true_and_guards_the_fast_path(monkeypatch):
    """default-v1.lock.json names the suite's bytes and its families' versions; the unchecked fast path of
    load_specs() is taken only while both match (refreeze with the suite when a family version changes)."""
    import hashlib
    import json

    import taskgen
    from taskgen import api
    from taskgen.registry import default_registry

    path = api.default_suite_path()
    lock = json.loads(path.with_name("default-v1.lock.json").read_text())
    assert lock["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    manifest = path.with_name(lock["manifest_file"])
    assert manifest == api.default_manifest_path()
    assert lock["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()  # its fast path's record
    reg = default_registry()
    families = sorted({s.family for s in taskgen.load_specs(path)})  # the checked path
    assert lock["family_versions"] == {f: reg.get(f).version for f in families}
    fast = api._frozen_default_suite()
    assert fast is not None and [s.task_id for s in fast] == [s.task_id for s in taskgen.load_specs(path)]
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda data: real_sha256(data + b"changed"))
    assert api._frozen_default_suite() is None  # the bytes differ from the record: every spec is checked


def test_colliding_seeds_are_drawn_again_so_every_spec_is_distinct(monkeypatch):
    """31-bit seeds collide in large suites (200k specs: most suite seeds); a collision draws the seed again."""
    from taskgen import suite as S

    real = S.derive_seed
    monkeypatch.setattr(S, "derive_seed", lambda *parts: real(*parts) if len(parts) > 4 else 12345)
    specs = S.generate_suite(["quadratic"], per_family=5)
    assert len({s.task_id for s in specs}) == 5 and len({s.seed for s in specs}) == 5
    monkeypatch.setattr(S, "derive_seed", real)
    assert [s.seed for s in S.generate_suite(["quadratic"], per_family=3)] == [
        real("suite", 0, "quadratic", i) for i in range(3)]  # without a collision, the seeds are unchanged
