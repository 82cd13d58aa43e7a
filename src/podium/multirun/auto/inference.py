"""The inference side of ``podium auto``: what predicting the hidden test set will cost, and the models it can afford.

Kaggle reruns a code competition's notebook on a hidden test set, often ten times the public one, within the same
time limit. After the final folder is chosen, ``inference_step`` forecasts ``podium predict --data`` on
``--hidden-images`` fresh images (default: as many as the public test set) from the throughput each run measured
(``podium.inference.forecast``). With ``--inference-budget`` it drops TTA views, then folds, then the weakest members
until the forecast fits, re-predicts the public test set with that choice (when the training budget has room for
it) so that the auto folder's submission.csv is what the notebook will submit, and says the command to run there.
Dropping folds leaves the OOF CV score as it is (each fold's model scored its own rows); dropping members changes
the blend, whose CV is then not re-scored: the summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.core.errors import PodiumError
from podium.inference.forecast import InferenceChoice, fit_inference_budget, forecast
from podium.inference.predict import predict_saved
from podium.multirun.auto.clock import minutes, parse_budget
from podium.multirun.auto.execute import Session, Step
from podium.runs.auto import AutoFolder
from podium.runs.run import Run


@dataclass(frozen=True)
class InferenceLimit:
    """``--inference-budget`` in seconds (None: forecast only) and ``--hidden-images`` (0: the public test set's
    count)."""

    budget_s: float | None = None
    hidden_images: int = 0

    @classmethod
    def parse(cls, budget: str | float | None, hidden_images: int | None) -> InferenceLimit:
        """From the command line's values; a bad budget or a negative count is one line."""
        if hidden_images is not None and hidden_images < 1:
            raise PodiumError(f"--hidden-images {hidden_images}: give the hidden test set's image count (1 or more).")
        seconds = None if budget in (None, "") else parse_budget(budget, option="--inference-budget")
        return cls(seconds, hidden_images or 0)


def inference_step(session: Session, final: Run, data_dir: Path, limit: InferenceLimit,
                   folder: AutoFolder) -> dict[str, Any] | None:
    """The forecast for the hidden test set (summary.json's ``inference``), and with a budget the models that fit
    it, the public submission re-predicted with them when time allows; None when there is nothing to forecast."""
    n = limit.hidden_images or session.plan.workload.n_test
    if n < 1:
        return None
    try:
        full = forecast(final.path, n)
    except PodiumError as e:  # a folder that measured nothing usable: the run stands, the summary says why
        session.notes.append(f"no inference forecast: {e}")
        return {"hidden_images": n, "error": str(e)}
    out: dict[str, Any] = {"hidden_images": n, "forecast_s": round(full.total_s, 1), "line": full.line()}
    session.say(f"inference forecast: {full.line()}")
    if limit.budget_s is None:
        return out
    fit = fit_inference_budget(final.path, n, limit.budget_s)
    command = f"podium predict {final.path} --data DATA --out submission.csv {fit.choice.cli_args()}".strip()
    out.update(inference_budget_s=limit.budget_s, fitted_s=round(fit.forecast.total_s, 1), fits=fit.fits,
               dropped=list(fit.dropped), choice=fit.choice.predict_kwargs(), command=command)
    if not fit.fits:
        session.notes.append(f"inference: even one view of one fold of one model is forecast at "
                             f"{minutes(fit.forecast.total_s)} min for {n} images, over the "
                             f"{minutes(limit.budget_s)} min inference budget")
    if fit.dropped:
        session.notes.append(f"inference budget {minutes(limit.budget_s)} min for {n} images: dropped "
                             f"{', '.join(fit.dropped)}; in the notebook: {command}")
        out["submission"] = repredict(session, final, data_dir, fit.choice, folder)
    return out


def repredict(session: Session, final: Run, data_dir: Path, choice: InferenceChoice, folder: AutoFolder) -> str:
    """The public test set predicted with ``choice`` into the auto folder's submission.csv, when the forecast fits
    what is left of the budget; says which models the submission there comes from."""
    n_test = session.plan.workload.n_test
    predicted = forecast(final.path, n_test, choice).total_s * max(1.0, session.ratio)
    if not session.fits(predicted, reserve=0.0):
        session.notes.append(f"inference: no time left to re-predict the test set with the reduced models "
                             f"({minutes(predicted)} min); submission.csv here uses every model")
        return "every model"
    t0 = session.clock.now()
    predict_saved(final.path, data=data_dir, out=folder.submission_path, **choice.predict_kwargs())
    session.steps.append(Step("inference", "predict", predicted, session.clock.now() - t0, str(folder.path),
                              note=f"test set re-predicted with {choice.cli_args()}"))
    return choice.cli_args()
