"""A meta-training run's end in words: why it stopped, where its time went, and whether θ improved."""

from __future__ import annotations

from lopt_trainer.common.run_files import read_json
from lopt_trainer.meta.trainer import STOP_REASONS, SUMMARY_FILE

__all__ = ["SCORE_LEGEND", "end_lines"]

SCORE_LEGEND = {
    "normalized_loss": "score = −mean over tasks of n = (L − L*) / (L₀ − L*), L the final test loss after 1000 "
                       "steps (seed mean), L₀ the loss at initialisation, L* the best of the per-task AdamLR grid "
                       "(Metz et al. 2020); 0 matches the best tuned Adam, −1 makes no progress",
    "clipped_improvement": "score = mean over tasks of the improvement over Global AdamLR, log(B − b + ε) − "
                           "log(L − b + ε) with B Global AdamLR's final loss, L θ's and b the best any run reached, "
                           "clipped to ±3",
}
"""What a panel's score means, by the kind of panel (``summary.json``'s ``panel_score``)."""


def end_lines(result) -> list[str]:
    """The end of a run in words: why it stopped and, with a panel, the start θ against the best and last θ."""
    out = [f"stopped after outer step {result.state.step}: {STOP_REASONS[result.stop_reason]}"]
    spent = read_json(result.run_dir / SUMMARY_FILE) or {}
    if spent.get("step_seconds"):
        out.append(f"time: outer steps {spent['step_seconds']:.0f} s, of which compiling {spent['compile_seconds']:.0f} s "
                   f"({100 * spent['compile_seconds'] / spent['step_seconds']:.0f}%); panel "
                   f"{spent['panel_seconds']:.0f} s")
    panel = (result.summary or {}).get("panel")
    if not panel:
        return out + ["no panel measured θ, so nothing says whether it improved (--set panel_every=N turns it on)"]
    ci = lambda d: f"{d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"  # noqa: E731
    out.append(f"panel ({result.summary['panel_tasks']} {result.summary['panel_on']}; score: higher is better, "
               "intervals 95%, paired over tasks):")
    out.append(f"  legend: {SCORE_LEGEND[result.summary.get('panel_score', 'normalized_loss')]}; a difference "
               "whose interval lies above 0 favours the first θ, below 0 the second")
    out.append(f"  start θ (step {panel['start_step']}) {panel['start_score']:+.4f}   last θ (step "
               f"{panel['last_step']}) {panel['last_score']:+.4f}   last − start {ci(panel['last_vs_start'])}")
    if "best_vs_start" in panel:
        out.append(f"  best θ (step {panel['best_step']}) {panel['best_score']:+.4f}   best − start "
                   f"{ci(panel['best_vs_start'])}   (RUN/best_theta.npz)")
    if "last_vs_global_adamlr" in panel:
        glob = panel.get("global_adamlr_score")
        out.append(f"  last θ − Global AdamLR {ci(panel['last_vs_global_adamlr'])}"
                   + (f"   (Global AdamLR {glob:+.4f})" if glob is not None else ""))
    out.append(f"verdict: {panel['verdict']}")
    return out
