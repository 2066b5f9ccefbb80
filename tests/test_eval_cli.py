"""Option checking of the evaluation commands and the lab's experiment commands (no training runs)."""

from click.testing import CliRunner

from lopt_trainer.app.cli import eval_cmd
from research.cli import implicit_reg_cmd, self_train_cmd


def _theta(tmp_path):
    import jax

    from lopt_trainer.optimizer import hierarchical
    from lopt_trainer.theta.reference_io import save_reference_npz

    path = tmp_path / "theta.npz"
    save_reference_npz(hierarchical.init(jax.random.PRNGKey(0)), path)
    return str(path)


def test_bad_options(tmp_path):
    from taskgen import generate_suite, write_specs

    suite = tmp_path / "s.jsonl"
    write_specs(generate_suite(["twod"], per_family=10, seed=0), suite)
    theta = _theta(tmp_path)
    runner = CliRunner()
    base = ["--theta", theta, "--suite", str(suite), "--out", str(tmp_path / "o")]
    res = runner.invoke(eval_cmd, base + ["--trials", "0"])
    assert res.exit_code != 0 and "1" in res.output
    res = runner.invoke(eval_cmd, base + ["--baselines", "sgd"])
    assert res.exit_code != 0 and "unknown baselines" in res.output
    res = runner.invoke(eval_cmd, base + ["--filter", "family=nope"])
    assert res.exit_code != 0 and "no task" in res.output
    res = runner.invoke(implicit_reg_cmd, ["--theta", theta, "--start", "1,2,3", "--out", str(tmp_path / "i")])
    assert res.exit_code != 0 and "x,y" in res.output
    res = runner.invoke(self_train_cmd, ["--theta", theta, "--set", "nonsense=1", "--out", str(tmp_path / "s")])
    assert res.exit_code != 0 and "nonsense" in res.output
