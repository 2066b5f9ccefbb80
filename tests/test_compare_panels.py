"""research/compare_panels.py: two panel evaluations paired task by task, on results tables worked by hand."""

import math

import pytest

from research import compare_panels as C
from lopt_trainer.evaluation.scoring import rows_to_table, table_bytes
from tests.test_eval_compare import _row


def _panel(folder, scores: dict, families: dict):
    """A panel evaluation folder whose Global AdamLR improvements (the panel's task scores) are ``scores``."""
    rows = []
    for t, s in scores.items():
        rows += [_row(t, "unseen", "lopt", 0, 0.5), _row(t, "unseen", "global_adamlr", 0, 0.5, improvement=s)]
        for r in rows[-2:]:
            r["family"] = families[t]
    folder.mkdir(parents=True)
    (folder / "results.arrow").write_bytes(table_bytes(rows_to_table(rows)))
    return folder


FAMILIES = {"m1": "mlp", "m2": "mlp", "q1": "quadratic"}


def test_a_pair_gives_both_scores_the_paired_difference_and_each_familys(tmp_path):
    a = _panel(tmp_path / "a", {"m1": 1.0, "m2": 5.0, "q1": -1.0}, FAMILIES)  # 5.0 is clipped to 3
    b = _panel(tmp_path / "b", {"m1": 0.0, "m2": 1.0, "q1": 0.0}, FAMILIES)
    row = C.compare_pair("x", a, b)
    assert row["tasks"] == 3
    assert row["score_a"] == pytest.approx(1.0) and row["score_b"] == pytest.approx(1 / 3)
    assert row["diff"] == pytest.approx(2 / 3) and row["low"] <= row["diff"] <= row["high"]
    assert row["by_family"] == {"mlp": 1.5, "quadratic": -1.0}
    assert C.compare_pair("y", a, a)["diff"] == 0.0


def test_main_writes_the_rows_and_refuses_mismatched_or_missing_folders(tmp_path, monkeypatch, capsys):
    import json

    monkeypatch.setattr("research.common.RESULTS_DIR", tmp_path)
    a = _panel(tmp_path / "a", {"m1": 1.0, "m2": 2.0, "q1": 0.0}, FAMILIES)
    b = _panel(tmp_path / "b", {"m1": 0.0, "m2": 0.0, "q1": 0.0}, FAMILIES)
    C.main(["--pair", "a-b", str(a), str(b), "--name", "cmp"])
    saved = json.loads((tmp_path / "cmp.json").read_text())
    assert saved["rows"][0]["pair"] == "a-b" and saved["rows"][0]["diff"] == pytest.approx(1.0)
    assert saved["pairs"][0]["by_family"] == {"mlp": 1.5, "quadratic": 0.0}
    assert "mlp" in capsys.readouterr().out
    other = _panel(tmp_path / "c", {"m1": 0.0, "q1": 0.0}, FAMILIES)
    for pair, message in (((str(a), str(other)), "hold different panel tasks (3 and 2, 2 shared)"),
                          ((str(a), str(tmp_path / "none")), "no readable panel results")):
        with pytest.raises(SystemExit) as exit_:
            C.main(["--pair", "p", *pair, "--name", "bad"])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
    with pytest.raises(SystemExit) as exit_:  # a results name that is a path is refused before anything runs
        C.main(["--pair", "a-b", str(a), str(b), "--name", "../cmp"])
    assert exit_.value.code == 2 and "--name '../cmp'" in capsys.readouterr().err
    assert not (tmp_path.parent / "cmp.json").exists()
    assert math.isfinite(saved["rows"][0]["low"])
