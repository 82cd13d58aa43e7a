"""``podium auto``'s inference step: the hidden test set's forecast in the summary, and ``--inference-budget``
dropping views and folds until it fits, the public submission re-predicted with what is left and the notebook's
command named; on one tiny trained run and a fake clock."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import datagen
import podium
from podium.core.errors import PodiumError
from podium.inference.forecast import InferenceChoice, forecast
from podium.multirun.auto.execute import Session
from podium.multirun.auto.inference import InferenceLimit, inference_step
from podium.multirun.auto.plan import AutoPlan, Workload
from podium.runs.auto import AutoFolder


class FakeClock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny 2-fold run with TTA identity + hflip, and its data folder."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("auto-inference")
    data = datagen.csv_single(tmp / "comp")
    run = podium.train(data, overrides=[*datagen.TINY, f"run.root={tmp / 'runs'}", "run.report=false",
                                        "predict.tta=[identity,hflip]"])
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return run.path, data


def session_for(n_test: int, budget_s: float = 600.0) -> Session:
    plan = AutoPlan(budget_s, 0.0, 2, (), "cpu", "cpu", Workload(48, n_test, 2, True))
    return Session(plan, FakeClock(), 0.0, say=lambda _: None)


def test_the_summary_forecasts_the_hidden_set_without_a_budget(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    session = session_for(12)
    out = inference_step(session, podium.load(run), data, InferenceLimit(hidden_images=500), AutoFolder(tmp_path))
    assert out["hidden_images"] == 500 and out["line"].startswith("500 images:")
    assert out["forecast_s"] == pytest.approx(forecast(run, 500).total_s, abs=0.1) and "dropped" not in out
    default = inference_step(session, podium.load(run), data, InferenceLimit(), AutoFolder(tmp_path))
    assert default["hidden_images"] == 12  # the public test set's count
    assert inference_step(session_for(0), podium.load(run), data, InferenceLimit(), AutoFolder(tmp_path)) is None


def test_an_inference_budget_drops_views_then_folds_and_repredicts_the_submission(trained: tuple[Path, Path],
                                                                                  tmp_path: Path) -> None:
    run, data = trained
    folder = AutoFolder(tmp_path / "auto")
    folder.path.mkdir()
    full = forecast(run, 10_000).total_s
    one_view = forecast(run, 10_000, InferenceChoice(tta=("identity",))).total_s
    budget = (full + one_view) / 2  # room for every fold with one view, not for two views
    session = session_for(12)
    out = inference_step(session, podium.load(run), data, InferenceLimit(budget, 10_000), folder)
    assert out["fits"] and out["dropped"] == ["view hflip"] and out["choice"] == {"tta": ("identity",)}
    assert out["command"].endswith("--tta identity") and out["fitted_s"] <= budget
    assert any("dropped view hflip" in n for n in session.notes)
    submitted = pd.read_csv(folder.submission_path)
    podium.predict(run, data=data, out=tmp_path / "expected.csv", tta=("identity",))
    expected = pd.read_csv(tmp_path / "expected.csv")
    pd.testing.assert_frame_equal(submitted, expected)
    assert session.steps[-1].name == "inference"


def test_no_time_left_keeps_every_model_and_says_so(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = trained
    session = session_for(12, budget_s=1.0)
    session.clock.t = 1.0  # the training budget is spent
    out = inference_step(session, podium.load(run), data, InferenceLimit(1.0, 10_000), AutoFolder(tmp_path))
    assert not out["fits"] and out["submission"] == "every model"
    assert any("no time left to re-predict" in n for n in session.notes)
    assert any("over the" in n for n in session.notes) and not (tmp_path / "submission.csv").exists()


def test_bad_limits_are_one_line() -> None:
    with pytest.raises(PodiumError, match="--inference-budget '9x' is not a duration"):
        InferenceLimit.parse("9x", None)
    with pytest.raises(PodiumError, match="--hidden-images 0"):
        InferenceLimit.parse("9h", 0)
    assert InferenceLimit.parse("9h", 1000) == InferenceLimit(9 * 3600.0, 1000)
    assert InferenceLimit.parse("", None) == InferenceLimit()
