"""Ordinal grades: codings, cut points fitted for QWK, and runs that train, save and predict with them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import datagen
from podium.config import PodiumConfig, PredictConfig, merge
from podium.core.errors import PodiumError
from podium.engine.losses import LOSSES
from podium.inference.run import predict_run
from podium.pipeline import train
from podium.tasks.ordinal import ORDINAL_LOSSES, expected_grade, fit_cut_points, grades, qwk
from podium.tasks.task import get_task

GRADES = ("0", "1", "2", "3", "4")


@pytest.mark.parametrize("name", ORDINAL_LOSSES.names())
def test_codings_keep_probabilities_and_the_expected_grade(name: str) -> None:
    coding = ORDINAL_LOSSES.get(name)
    logits = np.random.default_rng(0).normal(size=(50, coding.outputs(5))) * 3
    p = coding.probabilities(logits, 5)
    assert p.shape == (50, 5) and (p >= -1e-12).all() and np.allclose(p.sum(axis=1), 1)
    score = expected_grade(p)
    assert (score >= 0).all() and (score <= 4).all()


def test_coding_scores_follow_the_logits() -> None:
    """cumulative: the score is the sum of the (monotone) P(grade > k); regression: the clipped output itself."""
    cum = ORDINAL_LOSSES.get("cumulative")
    assert np.allclose(expected_grade(cum.probabilities(np.array([[9.0, 9.0, -9.0, -9.0]]), 5)), 2, atol=1e-3)
    reg = ORDINAL_LOSSES.get("regression")
    assert np.allclose(expected_grade(reg.probabilities(np.array([[2.3], [-1.0], [7.0]]), 5)), [2.3, 0, 4])
    assert reg.probabilities(np.array([[2.3]]), 5).argmax() == 2  # argmax is rounding


@pytest.mark.parametrize("name", ["cumulative", "regression"])
def test_ordinal_losses_learn_the_grades_direction(name: str) -> None:
    """A few steps on a linear model: the loss falls and the scores rank the grades."""
    torch.manual_seed(0)
    y = torch.randint(0, 5, (64,))
    x = torch.nn.functional.one_hot(y, 5).float() + 0.1 * torch.randn(64, 5)
    model = torch.nn.Linear(5, ORDINAL_LOSSES.get(name).outputs(5))
    loss_fn = LOSSES.get(name)(0.0, None)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = loss_fn(model(x), y).item()
    for _ in range(150):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < first / 3
    score = expected_grade(ORDINAL_LOSSES.get(name).probabilities(model(x).detach().numpy(), 5))
    assert np.corrcoef(score, y.numpy())[0, 1] > 0.9


def test_cut_points_are_monotone_and_improve_oof_qwk() -> None:
    """Scores that are a squashed, shifted version of the grades: rounding at k + 0.5 is poor, fitted cuts fix it."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 5, 600)
    score = np.clip(0.6 * y + 0.9 + rng.normal(0, 0.25, 600), 0, 4)
    p = np.eye(5)[np.clip(np.round(score), 0, 4).astype(int)]
    cuts = fit_cut_points(y, score, 5)
    assert len(cuts) == 4 and cuts == sorted(cuts)
    plain = qwk(y, grades(score, np.arange(4) + 0.5), 5)
    fitted = qwk(y, grades(score, cuts), 5)
    assert fitted > plain + 0.02, (plain, fitted)
    task = get_task("ordinal").for_loss("regression", 5)
    decisions = task.fit_decisions(y, p, PredictConfig())
    assert decisions["cut_points"] == sorted(decisions["cut_points"])
    report = task.decision_report(y, p, decisions)
    assert report["qwk_cut_points"] >= report["qwk_rounded"]


def test_predict_uses_the_saved_cut_points() -> None:
    task = get_task("ordinal").for_loss("regression", 5)
    p = ORDINAL_LOSSES.get("regression").probabilities(np.array([[0.2], [1.2], [2.2], [3.2]]), 5)
    assert task.decode(p, {}, GRADES) == ["0", "1", "2", "3"]
    assert task.decode(p, {"cut_points": [0.1, 1.1, 2.1, 3.1]}, GRADES) == ["1", "2", "3", "4"]


def test_losses_that_code_grades_need_an_ordinal_task() -> None:
    with pytest.raises(PodiumError, match="needs data.task=ordinal"):
        get_task("multiclass").for_loss("cumulative", 3)
    with pytest.raises(PodiumError, match="does not fit the ordinal task"):
        get_task("ordinal").for_loss("bce", 5)
    assert get_task("ordinal").for_loss("auto", 5).outputs(5) == get_task("ordinal").outputs(5)


def _grades_dir(root: Path) -> Path:
    return datagen.folders(root, per_class=8, classes=GRADES, test=5)


@pytest.mark.parametrize("loss", ORDINAL_LOSSES.names())
def test_each_ordinal_loss_trains_and_predicts_end_to_end(tmp_path: Path, tiny: tuple[str, ...], loss: str) -> None:
    run = train(_grades_dir(tmp_path / "grades"), merge(PodiumConfig(), [*tiny, "data.task=ordinal",
                                                                         f"train.loss={loss}"]))
    ckpt = run.load_best(0)
    assert ckpt.resolved_task().loss == loss
    assert ckpt.build_model()(torch.zeros(1, 3, 32, 32)).shape[1] == ORDINAL_LOSSES.get(loss).outputs(5)
    cuts = run.decisions["cut_points"]
    assert len(cuts) == 4 and cuts == sorted(cuts) and ckpt.decisions == run.decisions
    assert set(run.metrics["decision_scores"]) >= {"qwk_argmax", "qwk_cut_points"}
    oof = run.oof
    assert "score" in oof.columns and np.allclose(oof["score"], expected_grade(oof[list(GRADES)].to_numpy()))
    preds = pd.read_csv(run.test_predictions_path)
    sub = pd.read_csv(run.submission_path)
    # the submission's grades are the cut points applied to the fold-averaged score, not an argmax
    expected = [str(g) for g in grades(preds["score"].to_numpy(), cuts)]
    assert sub["label"].astype(str).tolist() == expected


def test_podium_predict_applies_the_checkpoints_cut_points(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    run = train(_grades_dir(tmp_path / "grades"), merge(PodiumConfig(), [*tiny, "data.task=ordinal",
                                                                         "cv.train_folds=0"]))
    out = predict_run(run, images=tmp_path / "grades" / "test", out=tmp_path / "p.csv")
    df = pd.read_csv(out)
    cuts = run.load_best(0).decisions["cut_points"]
    assert df["label"].astype(str).tolist() == [str(g) for g in grades(df["score"].to_numpy(), cuts)]


def test_the_cv_score_is_the_cross_fitted_qwk_of_the_submitted_cut_points(tmp_path: Path,
                                                                         tiny: tuple[str, ...]) -> None:
    """Recomputed from oof.csv by hand: cut points fitted on the other fold's rows, applied to this fold's scores,
    QWK of the assembled grades (sklearn); the plain (argmax) and in-sample (every row's cut points) scores beside."""
    from sklearn.metrics import cohen_kappa_score

    run = train(_grades_dir(tmp_path / "grades"), merge(PodiumConfig(), [*tiny, "data.task=ordinal"]))
    oof = pd.read_csv(run.path / "oof.csv", dtype={"label": str}, float_precision="round_trip")
    y = oof["label"].map(GRADES.index).to_numpy()
    p = oof[list(GRADES)].to_numpy()
    score, folds = p @ np.arange(5), oof["fold"].to_numpy()
    pred = np.zeros(len(y), dtype=int)
    for f in np.unique(folds):
        out = folds == f
        pred[out] = np.searchsorted(np.sort(fit_cut_points(y[~out], score[~out], 5)), score[out], side="right")

    def kappa(pred: np.ndarray) -> float:
        return float(cohen_kappa_score(y, pred, weights="quadratic", labels=np.arange(5)))

    m = run.metrics
    assert m["cv_score"] == pytest.approx(kappa(pred), abs=1e-9)
    assert m["cv_score_plain"] == pytest.approx(kappa(p.argmax(axis=1)), abs=1e-9)
    cuts = np.sort(run.decisions["cut_points"])
    assert m["cv_score_in_sample"] == pytest.approx(kappa(np.searchsorted(cuts, score, side="right")), abs=1e-9)
    assert m["cross_fit"]["decisions"] == ["cut_points"] and m["cross_fit"]["on"] == "2 folds"
    assert "cut points cross-fitted on 2 folds; in-sample" in run.log_path.read_text()
    from podium.runs.run import experiment_log

    row = next(r for r in experiment_log(run.runs_root) if r["run_dir"] == str(run.path))
    assert row["cv_score"] == m["cv_score"]  # what podium runs, sweeps, search and ensemble --top rank by
