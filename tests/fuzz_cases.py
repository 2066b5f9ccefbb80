"""Seeded fuzzing of the files the toolkit reads back: spec files (JSON Lines) and Arrow/Parquet manifests.

Every case is a deterministic function of ``(seed, index)``: a mutation of a real file built from the shipped
default suite. Reading it must end in one of two ways:

* ``refused`` — the toolkit's own error (:class:`SpecFileError` / :class:`ManifestError`), naming the file, in a
  message of at most :data:`MESSAGE_LIMIT` characters;
* ``accepted`` — and then the result is valid by an independent oracle: a manifest equals the file it was mutated
  from (so a damaged or contradictory file never slips through), a spec passes a strict, separately written type
  check of its config against its family's declared space, round-trips and exports to a manifest row.

Anything else is a failure: ``crash`` (any other exception, or the process killed by a signal — cases run in a
worker process so a segfault is counted, not fatal), ``accepted-invalid``, ``unnamed error`` (a toolkit error that
does not name the file) and ``long message``. ``tests/test_manifest_robustness.py`` runs a few hundred cases in CI;
``research/tools/fuzz_files.py`` runs thousands and reports the table.

Run a worker by hand: ``python -m tests.fuzz_cases {specs|manifests} SEED START COUNT`` (one JSON line per case).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

MESSAGE_LIMIT = 1000
"""Longest acceptable error message (values are echoed cut; issue 17 saw a 4,000,186-character line)."""
BAD_OUTCOMES = ("crash", "accepted-invalid", "unnamed error", "long message")
REPO = Path(__file__).resolve().parent.parent


# ---- the base files --------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def suite_lines() -> tuple[bytes, ...]:
    """The default suite's spec lines."""
    from taskgen.api import default_suite_path

    return tuple(default_suite_path().read_bytes().split(b"\n")[:-1])


@lru_cache(maxsize=None)
def base_specs():
    """Two specs of every built-in family (24 rows): the manifest that manifest cases mutate."""
    from taskgen.spec import TaskSpec

    lines, seen, out = suite_lines(), {}, []
    for line in lines:
        spec = TaskSpec.from_json(line)
        if seen.get(spec.family, 0) < 2:
            seen[spec.family] = seen.get(spec.family, 0) + 1
            out.append(spec)
    return tuple(out)


@lru_cache(maxsize=None)
def base_table():
    from taskgen.manifest import manifest_table

    return manifest_table(list(base_specs()))


@lru_cache(maxsize=None)
def base_bytes(fmt: str) -> bytes:
    from taskgen.manifest import manifest_bytes

    return manifest_bytes(base_table(), fmt)


# ---- manifest mutations ----------------------------------------------------------------------------------------

def _ipc(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _set_cell(table, name: str, row: int, value):
    import pyarrow as pa

    values = table.column(name).to_pylist()
    values[row] = value
    field = table.schema.field(name)
    return table.set_column(table.schema.get_field_index(name), field, pa.array(values, field.type))


def _bad_utf8_strings(values: list[str], row: int):
    """A string array whose ``row`` holds bytes that are not UTF-8 (built from buffers, bypassing checks)."""
    import array

    import pyarrow as pa

    data = [v.encode() for v in values]
    data[row] = data[row][:3] + b"\xff\xfe" + data[row][3:]
    offsets = array.array("i", [0])
    for d in data:
        offsets.append(offsets[-1] + len(d))
    return pa.Array.from_buffers(pa.string(), len(data), [None, pa.py_buffer(offsets.tobytes()),
                                                          pa.py_buffer(b"".join(data))])


_CONTRADICTIONS = {  # column -> a function of (rng, old value) giving a wrong value of the column's type
    "task_id": lambda rng, v: v[:-1] + ("0" if v[-1] != "0" else "1"),
    "family": lambda rng, v: "mlp" if v != "mlp" else "quadratic",
    "family_version": lambda rng, v: rng.choice([0, 2, -1, 2**31 - 1]),
    "seed": lambda rng, v: rng.choice([v + 1, 2**32, -1, 2**63 - 1]),
    "split": lambda rng, v: rng.choice(["meta_val", "", "META_TRAIN", "meta_test" if v == "meta_train"
                                        else "meta_train"]),
    "variant": lambda rng, v: rng.choice(["twod/rosenbrock", "x", ""]) if v != "twod/rosenbrock" else "x",
    "dataset": lambda rng, v: rng.choice(["mnist", "nope", ""]) if v != "mnist" else "digits",
    "input_shape": lambda rng, v: rng.choice([[], [1], list(v) + [1], [-1] * max(1, len(v))]),
    "batch_size": lambda rng, v: rng.choice([v + 1, 0, -5, 2**31 - 1]),
    "params": lambda rng, v: rng.choice([v + 1, -1, 0, 2**63 - 1]),
    "flops_per_step": lambda rng, v: rng.choice([v - 1, -(2**40), 2**62]),
}


def manifest_case(seed: int, index: int):
    """``(kind, file bytes, expect)`` of manifest case ``index``; ``expect`` is ``invalid`` (must be refused),
    ``equivalent`` (a faithful rewrite: must load equal to the base) or ``either`` (a damaged file: refused, or
    loaded equal to the base)."""
    import pyarrow as pa

    rng = random.Random(f"manifest:{seed}:{index}")
    table = base_table()
    kind = rng.choices(["flip", "flip-parquet", "truncate", "contradiction", "spec_json", "duplicate-column",
                        "bad-utf8", "metadata", "null", "duplicate-row", "equivalent"],
                       weights=[30, 8, 5, 20, 6, 4, 5, 8, 4, 3, 7])[0]
    if kind in ("flip", "flip-parquet"):
        b = bytearray(base_bytes("arrow" if kind == "flip" else "parquet"))
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b), "either"
    if kind == "truncate":
        data = base_bytes(rng.choice(["arrow", "parquet"]))
        return kind, data[: rng.randrange(len(data))], "either"
    row = rng.randrange(table.num_rows)
    if kind == "contradiction":
        name = rng.choice(sorted(_CONTRADICTIONS))
        old = table.column(name)[row].as_py()
        new = _CONTRADICTIONS[name](rng, old)
        if new == old:
            new = _CONTRADICTIONS[name](rng, new)
        return f"{kind} {name}", _ipc(_set_cell(table, name, row, new)), "invalid"
    if kind == "spec_json":
        lines = table.column("spec_json").to_pylist()
        data = json.loads(lines[row])
        choice = rng.randrange(5)
        if choice == 0:  # another row's spec
            lines[row] = lines[(row + 1) % len(lines)]
        elif choice == 1:  # seed out of range in the spec and the column alike
            data["seed"] = rng.choice([2**32, -1, 2**40])
            del data["task_id"]
            lines[row] = json.dumps(data)
            table = _set_cell(table, "seed", row, data["seed"])
        elif choice == 2:
            data["split"] = "meta_val"
            lines[row] = json.dumps(data)
            table = _set_cell(table, "split", row, "meta_val")
        elif choice == 3:
            lines[row] = lines[row][: rng.randrange(len(lines[row]))]
        else:
            data["schema_version"] = rng.choice([1.0, 2, "1", True])
            lines[row] = json.dumps(data)
        return f"spec_json {choice}", _ipc(_set_cell(table, "spec_json", row, lines[row])), "invalid"
    if kind == "duplicate-column":
        name = rng.choice(table.column_names)
        return kind, _ipc(table.append_column(name, table.column(name))), "invalid"
    if kind == "bad-utf8":
        name = rng.choice(["task_id", "family", "split", "variant", "dataset", "spec_json"])
        col = _bad_utf8_strings(table.column(name).to_pylist(), row)
        return f"{kind} {name}", _ipc(table.set_column(table.schema.get_field_index(name), name, col)), "invalid"
    if kind == "metadata":
        meta = dict(table.schema.metadata)
        choice = rng.randrange(4)
        if choice == 0:
            meta[b"taskgen.manifest_version"] = rng.choice([b"2", b"0", b"x", b"1.0", b""])
        elif choice == 1:
            meta[b"taskgen.spec_schema_version"] = rng.choice([b"2", b"1.0"])
        elif choice == 2:
            meta[b"taskgen.toolkit_version\xff"] = b"1"
        else:
            meta[b"taskgen.manifest_version"] = b"\xff\xfe"
        return f"{kind} {choice}", _ipc(table.replace_schema_metadata(meta)), "invalid"
    if kind == "null":
        name = rng.choice(table.column_names)
        field = table.schema.field(name)
        values = table.column(name).to_pylist()
        values[row] = None
        nullable = pa.field(name, field.type, nullable=True)
        return f"{kind} {name}", _ipc(table.set_column(table.schema.get_field_index(name), nullable,
                                                       pa.array(values, field.type))), "invalid"
    if kind == "duplicate-row":
        return kind, _ipc(pa.concat_tables([table, table.slice(row, 1)])), "invalid"
    # faithful rewrites another tool might make
    choice = rng.randrange(4)
    if choice == 0:
        out = pa.table({n: (c.cast(pa.large_string()) if pa.types.is_string(c.type) else c)
                        for n, c in zip(table.column_names, table.columns)})
    elif choice == 1:
        out = pa.table({n: (c.cast(pa.int64()) if pa.types.is_int32(c.type) else c)
                        for n, c in zip(table.column_names, table.columns)}).append_column(
            "extra", pa.array(range(table.num_rows)))
    elif choice == 2:
        out = pa.concat_tables([table.slice(0, 5), table.slice(5)])  # two record batches
    else:
        out = table.replace_schema_metadata(None)
    return f"equivalent {choice}", _ipc(out), "equivalent"


def run_manifest_case(seed: int, index: int, path: Path) -> tuple[str, str, str]:
    """``(kind, outcome, detail)`` of manifest case ``index`` read from ``path``."""
    from taskgen.manifest import ManifestError, filter_manifest, load_manifest, row_summary, specs_from_manifest
    from taskgen.specfile import SpecFileError

    kind, data, expect = manifest_case(seed, index)
    path.write_bytes(data)
    try:
        table = load_manifest(path)
    except (ManifestError, SpecFileError) as e:
        return kind, _refusal(e, path, expect == "equivalent"), str(e)[:200]
    except Exception as e:  # noqa: BLE001 -- anything else is what the fuzzer looks for
        return kind, "crash", f"{type(e).__name__}: {str(e)[:200]}"
    try:
        base = base_table()
        same = table.num_rows == base.num_rows and all(table.column(n).equals(base.column(n))
                                                       for n in base.column_names)
        filter_manifest(table, family=["mlp"], max_params=10**5, split="meta_train")
        row_summary(table.slice(0, 3))
        specs_from_manifest(table.slice(0, 3), validate=True)
    except Exception as e:  # noqa: BLE001
        return kind, "crash", f"after loading: {type(e).__name__}: {str(e)[:200]}"
    if not same and expect != "equivalent" or expect == "invalid":
        return kind, "accepted-invalid", "loaded, but it differs from the file it was mutated from"
    return kind, "accepted", ""


def _refusal(e: Exception, path: Path, valid: bool) -> str:
    text = str(e)
    if not text.startswith(str(path)):
        return "unnamed error"
    if len(text) > MESSAGE_LIMIT:
        return "long message"
    return "refused-valid" if valid else "refused"


# ---- spec-file mutations ---------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _lines_with_floats() -> tuple[bytes, ...]:
    """Suite lines whose config holds a float (the targets of the huge-integer-in-a-float-field case)."""
    return tuple(x for x in suite_lines() if any(type(v) is float for _, v in _leaves(json.loads(x)["config"])))


def _leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, path + (i,))
    else:
        yield path, value


def _set(config, path, value):
    target = config
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value


def spec_case(seed: int, index: int) -> tuple[str, bytes]:
    """``(kind, spec line)`` of spec case ``index``: byte flips, truncation, wrong types, huge numbers, integers
    written as floats, huge integers in float fields, long strings, unknown families, id mismatches, deep nesting."""
    rng = random.Random(f"spec:{seed}:{index}")
    kind = rng.randrange(13)
    line = rng.choice(suite_lines() if kind != 9 else _lines_with_floats())
    text = line.decode()
    data = json.loads(text)
    if kind == 0:
        b = bytearray(line)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return "flip", bytes(b)
    if kind == 1:
        return "truncate", line[: rng.randrange(len(line))]
    if kind == 6:
        return "deep", b'{"config":' + b"[" * rng.randint(60, 20000) + b"]"
    if kind == 7:
        key = rng.choice(sorted(data["config"]))
        return "huge-literal", text.replace(f'"{key}":', f'"{key}":{"7" * rng.randint(20, 6000)},"{key}x":',
                                            1).encode()
    if rng.random() < 0.8:  # mostly without the stored id, so that the family's own check is reached
        del data["task_id"]
    leaves = list(_leaves(data["config"]))
    ints = [(p, v) for p, v in leaves if type(v) is int]
    floats = [(p, v) for p, v in leaves if type(v) is float]
    if kind == 2:
        path, _ = rng.choice(leaves)
        _set(data["config"], path, rng.choice([[1], {"a": 1}, "x", None, True, -1, 1.5, [[[[]]]], 0, 2**40]))
        return "wrong-type", json.dumps(data).encode()
    if kind == 3:
        field = rng.choice(["seed", "family_version"])
        data[field] = rng.choice([2**63, 2**64 + 1, -(2**70), 10**40, 2**32, -1])
        return "huge-number", json.dumps(data).encode()
    if kind == 4:
        data["family"] = rng.choice(["nope", "", "QUADRATIC", "mlp", "x" * 100_000])
        return "unknown-family", json.dumps(data).encode()
    if kind == 5:
        stored = text[text.index('"task_id":"') + 11:-2]
        data["task_id"] = stored[:-1] + ("0" if stored[-1] != "0" else "1")
        return "id-mismatch", json.dumps(data).encode()
    if kind == 8:  # an integer field written as a float (8.0), or a boolean
        if not ints:
            return "int-as-float", json.dumps(data).encode()
        path, value = rng.choice(ints)
        _set(data["config"], path, rng.choice([float(value), value + 0.5, True, False]))
        return "int-as-float", json.dumps(data).encode()
    if kind == 9:  # an integer too large for a float, in a float field (1 followed by 400 zeros)
        if floats:
            path, _ = rng.choice(floats)
            _set(data["config"], path, rng.choice([10**400, -(10**400), 10**308 * 2, 2**1024]))
        return "huge-int-in-float-field", json.dumps(data).encode()
    if kind == 10:  # header integers written as floats
        field = rng.choice(["schema_version", "family_version", "seed"])
        data[field] = float(data.get(field, 1))
        return "header-as-float", json.dumps(data).encode()
    if kind == 11:  # a long value somewhere: the message must not repeat it
        path, _ = rng.choice(leaves)
        big = rng.choice(["x" * rng.randint(1000, 4_000_000), [1] * rng.randint(1000, 200_000),
                          {f"k{i}": i for i in range(rng.randint(1000, 20_000))}])
        _set(data["config"], path, big)
        return "long-value", json.dumps(data).encode()
    # kind 12: an unknown or very long config key
    data["config"][rng.choice(["zz", "k" * rng.randint(1000, 100_000)])] = 1
    return "unknown-key", json.dumps(data).encode()


def _strict_check(value, schema: dict, path: str) -> str | None:
    """An independent check of ``value`` against a ``describe_space`` schema, JSON types exact (an int field
    takes JSON integers only; a float field integers or finite floats); the first problem, or None."""
    import math

    t = schema["type"]
    if t == "int":
        lo, hi = schema["range"]
        ok = type(value) is int and lo <= value <= hi
    elif t == "float":
        lo, hi = schema["range"]
        ok = type(value) in (int, float) and (type(value) is int or math.isfinite(value)) and lo <= value <= hi
    elif t == "bool":
        ok = type(value) is bool
    elif t == "choice":
        ok = any(type(value) is type(o) and value == o for o in schema["options"])
    elif t == "list":
        lo, hi = schema["length"]
        if type(value) is not list or not lo <= len(value) <= hi:
            return path
        for i, v in enumerate(value):
            bad = _strict_check(v, schema["item"], f"{path}[{i}]")
            if bad:
                return bad
        return None
    elif t == "object":
        if type(value) is not dict or not set(value) <= set(schema["fields"]):
            return path
        for name, sub in schema["fields"].items():
            if name not in value:
                if name in schema["optional"]:
                    continue
                return f"{path}.{name}"
            bad = _strict_check(value[name], sub, f"{path}.{name}")
            if bad:
                return bad
        return None
    elif t == "tagged":
        if type(value) is not dict or value.get(schema["tag"]) not in schema["variants"]:
            return path
        rest = {k: v for k, v in value.items() if k != schema["tag"]}
        return _strict_check(rest, schema["variants"][value[schema["tag"]]], path)
    else:
        return f"{path} (unknown schema type {t})"
    return None if ok else path


def run_spec_case(seed: int, index: int, path: Path) -> tuple[str, str, str]:
    """``(kind, outcome, detail)`` of spec case ``index``, written as line 2 after a valid line 1."""
    from families.space import describe_space
    from taskgen.manifest import manifest_table
    from taskgen.registry import default_registry
    from taskgen.spec import SEED_LIMIT, TaskSpec
    from taskgen.specfile import SpecFileError, read_specs

    kind, bad = spec_case(seed, index)
    path.write_bytes(suite_lines()[0] + b"\n" + bad + b"\n")
    try:
        specs = read_specs(path)
    except SpecFileError as e:
        text = str(e)
        if not (text.startswith(f"{path}:2: ") or text.startswith(f"{path}:1: ")):
            return kind, "unnamed error", text[:200]
        return kind, ("long message" if len(text) > MESSAGE_LIMIT else "refused"), text[:200]
    except Exception as e:  # noqa: BLE001
        return kind, "crash", f"{type(e).__name__}: {str(e)[:200]}"
    try:
        raw = json.loads(bad) if len(specs) == 2 else {}
        if any(k in raw and type(raw[k]) is not int for k in ("seed", "family_version", "schema_version")):
            return kind, "accepted-invalid", f"a header integer written as {raw!r:.200}"
        for spec in specs:
            family = default_registry().get(spec.family)
            problem = _strict_check(dict(spec.config), describe_space(family.config_space()), "config")
            header_ok = (type(spec.seed) is int and 0 <= spec.seed < SEED_LIMIT and type(spec.family_version) is int
                         and type(spec.schema_version) is int and spec.split in ("meta_train", "meta_test"))
            if problem or not header_ok or TaskSpec.from_json(spec.to_json()) != spec:
                return kind, "accepted-invalid", f"{spec.to_json()[:200]} ({problem or 'header'})"
        manifest_table(specs)
    except Exception as e:  # noqa: BLE001
        return kind, "crash", f"after reading: {type(e).__name__}: {str(e)[:200]}"
    return kind, "accepted", ""


# ---- running cases in worker processes -------------------------------------------------------------------------

def _worker(what: str, seed: int, start: int, count: int) -> None:
    run = run_manifest_case if what == "manifests" else run_spec_case
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("fuzz.arrow" if what == "manifests" else "fuzz.jsonl")
        for index in range(start, start + count):
            kind, outcome, detail = run(seed, index, path)
            print(json.dumps({"index": index, "kind": kind, "outcome": outcome, "detail": detail}), flush=True)


def run_cases(what: str, n: int, seed: int = 0, timeout: float = 3600) -> list[dict]:
    """Run cases ``0..n-1`` of ``what`` (``specs`` or ``manifests``) in worker processes; a worker killed by a
    signal (or exiting early) makes the case it was on a ``crash`` and a new worker goes on from the next case."""
    results, start = [], 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep), "JAX_PLATFORMS": "cpu"}
    while start < n:
        proc = subprocess.run([sys.executable, "-m", "tests.fuzz_cases", what, str(seed), str(start), str(n - start)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        results += lines
        start += len(lines)
        if start < n:  # the worker died on case ``start``
            kind = (manifest_case(seed, start)[0] if what == "manifests" else spec_case(seed, start)[0])
            results.append({"index": start, "kind": kind, "outcome": "crash",
                            "detail": f"worker exited with status {proc.returncode}: {proc.stderr[-300:]}"})
            start += 1
    return results


def tally(results: list[dict]) -> dict:
    """Counts by outcome, and by (kind family, outcome)."""
    by_outcome, by_kind = {}, {}
    for r in results:
        by_outcome[r["outcome"]] = by_outcome.get(r["outcome"], 0) + 1
        key = f"{r['kind'].split()[0]}|{r['outcome']}"
        by_kind[key] = by_kind.get(key, 0) + 1
    return {"cases": len(results), "outcomes": dict(sorted(by_outcome.items())),
            "by_kind": dict(sorted(by_kind.items()))}


if __name__ == "__main__":
    _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
