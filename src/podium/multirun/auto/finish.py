"""The end of ``podium auto``: from the trained runs to one final folder with a validated submission.

    blend_runs   ``podium ensemble`` of the runs (shared folds); kept when its honest, cross-fitted CV score beats
                 the best run's, else the best run is
    pseudo_run   time left: the best result's pseudo-labels (``data.pseudo``, matched folds: an honest CV) retrain its
                 candidate with the epochs that fit; kept when it scores better
    report       report.html of the final run (an ensemble writes its own)

Each step starts only when its calibrated prediction fits the budget. ``finish`` is where a limit on inference time
(members, folds and TTA views a hidden test set can afford) applies to the chosen folder.
"""

from __future__ import annotations

from pathlib import Path

from podium.config import PodiumConfig
from podium.core.console import Reporter
from podium.core.errors import PodiumError
from podium.multirun.auto.execute import Session, Step, Trainer, train_one
from podium.multirun.auto.ladder import Candidate
from podium.multirun.auto.plan import MIN_EPOCHS, TARGET, PlannedRun, fit_epochs, run_cost
from podium.multirun.ensemble import ensemble
from podium.reporting import report_after_training
from podium.runs.ensemble import is_ensemble
from podium.runs.run import Run
from podium.tasks.metrics import metric_key

BLEND_S = 8.0  # fitting the blend's weights cross-fitted, blending saved test predictions, its folder
REPORT_S = 10.0  # report.html of the final folder


def score_key(run: Run) -> float:
    """A higher-is-better key of the run's CV score (its metric's direction)."""
    m = run.metrics
    return metric_key(m["metric"], m.get("cv_score"))


def finish(session: Session, runs: list[Run], data_dir: Path, base: PodiumConfig, trainer: Trainer) -> Run:
    """The final run or ensemble folder: the blend when it helps, then pseudo-labels when time remains, then the
    report."""
    if not runs:
        raise PodiumError("No run of the plan could start within the budget; give a larger --budget.")
    final = blend_runs(session, runs, base)
    final = pseudo_run(session, final, runs, data_dir, base, trainer)
    if not is_ensemble(final.path) and session.fits(REPORT_S, reserve=0.0):
        t0 = session.clock.now()
        report_after_training(final, Reporter())
        session.steps.append(Step("report", "report", REPORT_S, session.clock.now() - t0, str(final.path)))
    return final


def blend_runs(session: Session, runs: list[Run], base: PodiumConfig) -> Run:
    """The ensemble of ``runs`` when its honest CV score beats the best run's (it stays on disk either way)."""
    best = max(runs, key=score_key)
    if len(runs) < 2:
        return best
    if not session.fits(BLEND_S * session.ratio, reserve=REPORT_S):
        session.notes.append("no blend: too little time left")
        return best
    t0 = session.clock.now()
    try:
        ens = ensemble([r.path for r in runs], blend="weights", root=base.run.root,
                       name=f"auto-ensemble-{runs[0].data_dir.name}")
    except PodiumError as e:  # refused before its folder exists: the best run stands
        session.notes.append(f"no blend: {e}")
        return best
    m = ens.metrics
    better = score_key(ens) > score_key(best)
    note = (f"honest (cross-fitted) {m['metric']} {m['cv_score']:.4f} against the best run's "
            f"{best.metrics['cv_score']:.4f}: {'kept' if better else 'the best run is kept'}")
    session.steps.append(Step("blend", "blend", BLEND_S * session.ratio, session.clock.now() - t0, str(ens.path),
                              m["cv_score"], note))
    session.say(f"blend of {len(runs)} runs: {note}")
    return ens if better else best


def candidate_of(run: Run) -> Candidate:
    """The backbone and input size a run trained."""
    model = run.config.model
    return Candidate(model.name, int(model.img_size[0]) if model.img_size else 0)


def pseudo_run(session: Session, final: Run, runs: list[Run], data_dir: Path, base: PodiumConfig,
               trainer: Trainer) -> Run:
    """The plan's pseudo-label run, with the best run's candidate and the epochs that fit the time left; the better
    of it and ``final``."""
    plan = session.plan
    if not plan.workload.pseudo or not final.submission_path.is_file():
        return final
    candidate = candidate_of(max(runs, key=score_key))
    timing = plan.timings.get(candidate.name)
    if timing is None:
        return final
    cost = run_cost(timing, plan.workload, plan.folds, plan.workload.n_test, new_size=False)
    left = plan.budget_s * TARGET - session.elapsed - REPORT_S
    epochs = fit_epochs([cost.scaled(session.speed)], left, [MIN_EPOCHS])[0]
    if not epochs or not session.fits(cost.scaled(session.speed).total(epochs), reserve=REPORT_S):
        session.notes.append("no pseudo-label run: too little time left")
        return final
    planned = PlannedRun("pseudo", candidate, epochs, cost, f"pseudo-labels of {final.path.name}, retrained with "
                         f"the best run's candidate", pseudo=True)
    try:
        run = train_one(session, -1, planned, data_dir, base, trainer, pseudo=str(final.path))
    except PodiumError as e:  # refused before its folder exists (a task or source pseudo-labels cannot use)
        session.notes.append(f"no pseudo-label run: {e}")
        return final
    return run if score_key(run) > score_key(final) else final
