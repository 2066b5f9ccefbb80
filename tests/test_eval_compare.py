"""Two θ on the same tasks, task by task (lopt_trainer.evaluation.compare): the per-task table read from a results
table, and the paired comparison's counts and interval on toy numbers worked by hand."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lopt_trainer.evaluation.compare import lopt_tasks, paired_comparison
from lopt_trainer.evaluation.scoring import SCHEMA, rows_to_table


def _row(task, group, optimizer, seed, final, improvement=math.nan, diverged=False):
    row = {f.name: None for f in SCHEMA}
    row.update(task_id=task, family="mlp", variant="base", group=group, optimizer=optimizer,
               baseline=optimizer.split("@")[0].replace("global_", "").replace("per_task_", ""),
               selection="-", budget=1, seed=seed, trial=0, hparams="{}", diverged=diverged, final=final,
               auc=final, best_known_final=0.0, best_known_auc=0.0, worst=5.0, improvement_final=improvement,
               improvement_auc=improvement, reach_step=math.nan, speedup=math.nan, steps=[0, 10], curve=[1.0, final])
    return row


def test_lopt_tasks_averages_seeds_and_reads_the_global_adamlr_score():
    table = rows_to_table([
        _row("a", "unseen", "lopt", 0, 0.2), _row("a", "unseen", "lopt", 1, 0.4, diverged=True),
        _row("a", "unseen", "global_adamlr", 0, 0.3, improvement=1.0),
        _row("a", "unseen", "global_adamlr", 1, 0.3, improvement=9.0),  # mean 5.0, clipped to 3
        _row("a", "unseen", "per_task_adamlr@14", 0, 0.1, improvement=-2.0),
        _row("b", "seen", "lopt", 0, 1.0), _row("b", "seen", "global_adamlr", 0, 0.5, improvement=-0.5),
        _row("c", "seen", "lopt", 0, 2.0),  # no baseline row: score NaN
    ])
    got = lopt_tasks(table)
    assert list(got) == ["a", "b", "c"]
    assert got["a"] == {"group": "unseen", "family": "mlp", "final": pytest.approx(0.3), "score": 3.0, "diverged": 1}
    assert got["b"]["score"] == -0.5 and got["b"]["final"] == 1.0 and got["b"]["diverged"] == 0
    assert math.isnan(got["c"]["score"])


def _tasks(finals, scores=None, group="unseen"):
    return {t: {"group": group, "family": "mlp", "final": f, "score": (scores or {}).get(t, 0.0), "diverged": 0}
            for t, f in finals.items()}


def test_paired_comparison_counts_ahead_ties_and_behind_on_the_group_only():
    a = {**_tasks({"t0": 0.1, "t1": 0.5, "t2": 0.9}, {"t0": 1.0, "t1": 0.0, "t2": -1.0}), **_tasks({"s": 0.0}, group="seen")}
    b = {**_tasks({"t0": 0.2, "t1": 0.5, "t2": 0.3, "t3": 0.1}, {"t0": 0.0, "t1": 0.0, "t2": 1.0}),
         **_tasks({"s": 9.0}, group="seen")}
    got = paired_comparison(a, b, "unseen")
    assert (got["tasks"], got["ahead"], got["ties"], got["behind"]) == (3, 1, 1, 1)  # t3 is not in a
    assert got["frac_ahead"] == pytest.approx(1 / 3)
    assert got["score_diff"]["mean"] == pytest.approx((1.0 + 0.0 - 2.0) / 3)
    assert got["score_diff"]["low"] <= got["score_diff"]["mean"] <= got["score_diff"]["high"]
    assert paired_comparison(a, b, None)["tasks"] == 4 and paired_comparison(a, b, "seen")["ahead"] == 1
    assert math.isnan(paired_comparison(a, {}, "unseen")["frac_ahead"])


def test_differences_within_eps_are_ties():
    got = paired_comparison(_tasks({"t0": 0.5, "t1": 0.5, "t2": 0.5}), _tasks({"t0": 0.5 + 1e-9, "t1": 0.5 + 2e-3,
                                                                               "t2": 0.5 - 2e-3}))
    assert (got["ahead"], got["ties"], got["behind"]) == (1, 1, 1)


def test_a_task_without_a_finite_final_loss_is_refused_by_name():
    with pytest.raises(ValueError, match=r"tasks \['t1'\] have no finite final loss"):
        paired_comparison(_tasks({"t0": 0.1, "t1": float("nan")}), _tasks({"t0": 0.2, "t1": 0.2}))


@pytest.mark.parametrize("group", [None, "unseen", "seen"])
def test_paired_comparison_refuses_tables_of_different_task_sets(group):
    with pytest.raises(ValueError, match="task t0 is 'unseen' in one evaluation and 'seen'"):
        paired_comparison(_tasks({"t0": 0.1}), _tasks({"t0": 0.1}, group="seen"), group)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=20))
def test_paired_comparison_is_antisymmetric(pairs):
    a = _tasks({f"t{i}": x for i, (x, _) in enumerate(pairs)}, {f"t{i}": x for i, (x, _) in enumerate(pairs)})
    b = _tasks({f"t{i}": y for i, (_, y) in enumerate(pairs)}, {f"t{i}": y for i, (_, y) in enumerate(pairs)})
    ab, ba = paired_comparison(a, b), paired_comparison(b, a)
    assert ab["ahead"] == ba["behind"] and ab["ties"] == ba["ties"] and ab["tasks"] == len(pairs)
    assert ab["score_diff"]["mean"] == pytest.approx(-ba["score_diff"]["mean"])


def test_bench_quality_refuses_an_unusable_against_file_before_evaluating(tmp_path, capsys):
    from research.quality import main

    old = tmp_path / "old.json"
    for text, message in (('{"rows": []}', "not a quality result with per-task results"),  # written before them
                          ('{"lopt_tasks": null}', "not a quality result with per-task results"),
                          ('{"lopt_tasks": {"x": {"group": "seen"}}}', "not a quality result with per-task results"),
                          ('{"lopt_tasks": {"x": {"group": "seen", "final": "1", "score": 0.0}}}',
                           "not a quality result with per-task results: lopt_tasks['x']"),
                          ("{", "cannot be read"),
                          ('{"lopt_tasks": {"x": {"group": "seen", "final": 1.0, "score": 0.0}}, "settings": {}}',
                           "measured on other tasks or with other settings")):
        old.write_text(text)
        with pytest.raises(SystemExit) as e:
            main(["--theta", "handset", "--against", str(old), "--out", str(tmp_path / "eval"), "--tasks", "4"])
        assert e.value.code == 2
        assert f"--against {old}: {message}" in capsys.readouterr().err
        assert not (tmp_path / "eval").exists()


def test_check_lopt_tasks_refuses_a_missing_table_or_field_and_a_malformed_entry():
    from lopt_trainer.evaluation.compare import check_lopt_tasks

    good = {"x": {"group": "unseen", "family": "mlp", "final": 0.5, "score": float("nan")}}
    assert check_lopt_tasks({"lopt_tasks": good}) is good  # a NaN score (no Global AdamLR row) is allowed
    for result, message in (([], "no per-task results"), ({"lopt_tasks": {}}, "no per-task results"),
                            ({"lopt_tasks": {"x": {"group": "seen", "final": 0.5}}}, "with group, score, final"),
                            ({"lopt_tasks": {"x": {**good["x"], "group": "held"}}}, "group must be"),
                            ({"lopt_tasks": {"x": {**good["x"], "final": float("inf")}}}, "final a finite number"),
                            ({"lopt_tasks": {"x": {**good["x"], "score": True}}}, "score a number")):
        with pytest.raises(ValueError, match=message):
            check_lopt_tasks(result)
    with pytest.raises(ValueError, match="with group, score, final, family per task"):
        check_lopt_tasks({"lopt_tasks": {"x": {"group": "seen", "final": 0.5, "score": 0.0}}},
                         ("group", "score", "final", "family"))
