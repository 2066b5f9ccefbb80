"""A tiny yardstick for tests: 'valid' and 'test' sets of two real twod tasks each, with computed baselines."""

import hashlib
import json

from lopt_trainer.evaluation import baseline_table as bt
from lopt_trainer.evaluation import task_sets as ts
from taskgen.specfile import specs_to_jsonl


def tiny_yardstick(root):
    """Write the two sets, their index and their AdamLR baseline tables under ``root/data``; returns that folder."""
    twod = [s for s in ts.load_task_set("test") if s.family == "twod"]
    data = root / "data"
    data.mkdir()
    index = {"sets": {}}
    for name, specs in (("valid", twod[:2]), ("test", twod[2:4])):
        raw = specs_to_jsonl(specs)
        (data / f"{name}.jsonl").write_bytes(raw)
        index["sets"][name] = {"file": f"{name}.jsonl", "tasks": 2, "sha256": hashlib.sha256(raw).hexdigest()}
    (data / "sets.json").write_text(json.dumps(index))
    for name in ("valid", "test"):
        bt.compute_baselines(name, root / f"work_{name}", progress=False, data_dir=data)
        bt.write_baselines(name, root / f"work_{name}", data_dir=data)
    return data
