"""research/panel_vs_quality.py: panel scores against quality benchmark scores over several θ, on tables and
results worked by hand."""

import json
import math

import numpy as np
import pytest

from research import panel_vs_quality as P
from tests.test_compare_panels import _panel

FAMILIES = {"m1": "mlp", "m2": "mlp", "w1": "word_lm", "x1": "mlp"}


def _quality(path, unseen: dict, seen: dict | None = None):
    """A quality result whose unseen (mlp) / seen (nvp) task scores are ``unseen`` / ``seen``; final = −score (0
    where the score is NaN)."""
    def final(s):
        return -s if math.isfinite(s) else 0.0

    tasks = {t: {"group": "unseen", "family": "mlp", "score": s, "final": final(s), "diverged": 0}
             for t, s in unseen.items()}
    tasks.update({t: {"group": "seen", "family": "nvp", "score": s, "final": final(s), "diverged": 0}
                  for t, s in (seen or {}).items()})
    path.write_text(json.dumps({"rows": [], "lopt_tasks": tasks}))
    return path


def test_a_point_reads_the_panel_score_its_shared_families_and_the_benchmarks_groups(tmp_path):
    panel = _panel(tmp_path / "p", {"m1": 1.0, "m2": 2.0, "w1": -3.0}, FAMILIES)
    q = _quality(tmp_path / "q.json", {"u1": 0.5, "u2": -1.5}, {"s1": 2.0})
    p = P.point("a", panel, q)
    assert p["panel"] == pytest.approx(0.0) and p["panel_tasks"] == 3
    assert p["panel_shared_families"] == pytest.approx(1.5)  # word_lm is not among the unseen families
    assert p["quality_unseen"] == pytest.approx(-0.5) and p["quality_seen"] == pytest.approx(2.0)
    assert p["beats_global_unseen"] == 0.5 and p["shared_families"] == ["mlp"]
    assert p["panel_task_scores"] == {"m1": 1.0, "m2": 2.0, "w1": -3.0}


def test_correlations_are_exact_on_lines_and_ranks_and_nan_when_undefined():
    x = [0.0, 1.0, 2.0, 3.0, 4.0]
    c = P.correlation(x, [2 * v + 1 for v in x])
    assert c["n"] == 5 and c["pearson"]["r"] == pytest.approx(1.0) and c["spearman"]["r"] == pytest.approx(1.0)
    assert c["pearson"]["low"] == pytest.approx(1.0)  # every resample of a line is the line
    d = P.correlation(x, [-(v ** 3) for v in x])  # monotone, not linear: Spearman exactly -1, Pearson above it
    assert d["spearman"]["r"] == pytest.approx(-1.0) and -1.0 < d["pearson"]["r"] < -0.9
    assert list(P._ranks(np.asarray([3.0, 1.0, 3.0, 0.0]))) == [2.5, 1.0, 2.5, 0.0]
    assert math.isnan(P.correlation(x, [1.0] * 5)["pearson"]["r"])
    assert P.correlation([1.0, float("nan"), 2.0, 3.0], [1.0, 5.0, 2.0, 3.0])["n"] == 3
    assert math.isnan(P.correlation([1.0, 2.0], [1.0, 2.0])["spearman"]["r"])


def test_the_bootstrap_interval_brackets_a_noisy_correlation_and_repeats_with_its_seed():
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    y = 0.5 * x + rng.normal(size=12)
    c = P.correlation(x, y)
    for name in ("pearson", "spearman"):
        assert -1.0 <= c[name]["low"] < c[name]["r"] < c[name]["high"] <= 1.0
    assert P.correlation(x, y) == c and P.correlation(x, y, seed=1) != c
    assert c["pearson"]["r"] == pytest.approx(np.corrcoef(x, y)[0, 1])


def test_tasks_vs_first_counts_the_others_ahead_by_final_loss_and_puts_nan_last(tmp_path):
    tables = [P.quality_tasks(_quality(tmp_path / f"q{i}.json", {"a": s_a, "b": s_b, "c": s_c}, {"s": 1.0}))
              for i, (s_a, s_b, s_c) in enumerate(((0.0, 1.0, float("nan")), (1.0, 0.0, 1.0), (-1.0, 3.0, 0.0),
                                                   (0.0005, 1.0, 2.0)))]
    rows = P.tasks_vs_first(tables)  # final = -score: a higher score is ahead
    assert [r["task"] for r in rows] == ["a", "b", "c"]  # most lost first, the NaN difference last
    assert rows[0] == {"task": "a", "first_score": 0.0, "mean_score_diff": pytest.approx(0.0005 / 3), "ahead": 1,
                       "of": 3}  # +1 ahead, -1 behind, +0.0005 within ε
    assert rows[1]["ahead"] == 1 and rows[1]["mean_score_diff"] == pytest.approx(1 / 3)  # -1, +2 and 0
    assert math.isnan(rows[2]["mean_score_diff"]) and rows[2]["of"] == 3


def test_main_writes_the_points_and_refuses_bad_input_before_writing(tmp_path, monkeypatch, capsys):
    import research.common as common

    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(P, "RESULTS_DIR", tmp_path)
    args = []
    for i in range(5):  # the panel rises while the benchmark falls: a correlation of -1
        panel = _panel(tmp_path / f"p{i}", {"m1": i / 2, "m2": i / 2, "w1": 0.0}, FAMILIES)  # below the ±3 clip
        args += ["--point", f"t{i}", str(panel), str(_quality(tmp_path / f"q{i}.json", {"u": -float(i)}))]
    P.main(args + ["--name", "pvq"])
    saved = json.loads((tmp_path / "pvq.json").read_text())
    assert [r["label"] for r in saved["rows"]] == ["t0", "t1", "t2", "t3", "t4"]
    c = saved["correlations_with_quality_unseen"]
    assert c["panel"]["pearson"]["r"] == pytest.approx(-1.0) and c["panel"]["spearman"]["r"] == pytest.approx(-1.0)
    assert saved["correlations_without_first"]["panel"]["pearson"]["r"] == pytest.approx(-1.0)
    assert saved["correlations_without_first"]["panel"]["n"] == 4
    assert saved["unseen_tasks_vs_first"] == [{"task": "u", "first_score": 0.0, "mean_score_diff": -2.5,
                                                "ahead": 0, "of": 4}]
    assert (tmp_path / "pvq.png").stat().st_size > 0 and "Spearman" in capsys.readouterr().out

    def quality(name, tasks):
        (tmp_path / name).write_text(json.dumps({"rows": [], "lopt_tasks": tasks}))
        return str(tmp_path / name)

    unseen = {"group": "unseen", "family": "mlp", "score": 0.0, "final": 0.0}
    other_tasks = _panel(tmp_path / "other", {"m1": 0.0, "m2": 0.0, "x1": 0.0}, FAMILIES)  # same size, other tasks
    small = _panel(tmp_path / "small", {"m1": 0.0}, FAMILIES)
    first4 = args[:16]
    for extra, message in (
            ([], "at least 5"),
            (["--point", "x", str(tmp_path / "none"), args[3]], "no readable panel results"),
            (["--point", "x", str(small), args[3]], "other panel tasks"),
            (["--point", "x", str(other_tasks), args[3]], "other panel tasks"),
            (["--point", "t0", args[2], args[3]], "labels repeat"),
            (["--point", "x", args[2], quality("nolist.json", None)], "no per-task results"),
            (["--point", "x", args[2], quality("nofinal.json", {"u": {**unseen, "final": None}})], "final a finite"),
            (["--point", "x", args[2], quality("nanfinal.json", {"u": {**unseen, "final": float("nan")}})],
             "final a finite"),
            (["--point", "x", args[2], quality("strscore.json", {"u": {**unseen, "score": "1"}})], "score a number"),
            (["--point", "x", args[2], quality("group.json", {"u": {**unseen, "group": "held"}})], "group must be"),
            (["--point", "x", args[2], quality("draw.json", {"v": unseen})], "not the task draw"),
            (["--point", "x", args[2], quality("seen.json", {"u": {**unseen, "group": "seen"}})], "not the task draw"),
            (["--point", "x", args[2], str(tmp_path / "missing.json")], "cannot read")):
        with pytest.raises(SystemExit) as e:
            P.main(first4 + extra + ["--name", "bad"])
        assert e.value.code == 2 and message in capsys.readouterr().err, message
    with pytest.raises(SystemExit) as e:
        P.main(args + ["--name", "../pvq"])
    assert e.value.code == 2 and "--name" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists() and not (tmp_path.parent / "pvq.json").exists()
