"""Inference forecasts (``podium predict RUN --estimate N``) and the inference budget: the arithmetic on run folders
whose measured timings are scripted, an ensemble (the fresh decode paid once per cache side), the order in which a
budget drops views, folds and members, an older run folder, and the command line on a tiny trained run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import datagen
import podium
from podium.core.errors import PodiumError
from podium.inference.forecast import InferenceChoice, fit_inference_budget, forecast
from podium.runs.run import Run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny 2-fold runs (TTA identity + hflip) on one folder, a mean ensemble of them, a hidden test set."""
    from accelerate.state import AcceleratorState, GradientState

    tmp = tmp_path_factory.mktemp("forecast")
    data = datagen.csv_single(tmp / "comp")
    base = (*datagen.TINY, f"run.root={tmp / 'runs'}", "run.report=false")
    out = {"data": data, "hidden": datagen.hidden_test_set(data, tmp / "hidden", n=30)}
    out["a"] = podium.train(data, overrides=[*base, "run.name=a"]).path
    out["b"] = podium.train(data, overrides=[*base, "run.name=b"]).path
    out["ens"] = podium.ensemble(out["a"], out["b"], blend="mean", name="ens").path
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return out


def script(run: Path, load: tuple[float, float] = (1.0, 1.5), predict: tuple[float, float] = (2.0, 3.0),
           read: tuple[float, float] = (0.1, 0.3), decode: float = 0.01, oof: tuple[float, float] = (3.0, 2.0),
           side: int = 40, images: int = 10, batch: int = 32, first: tuple[float, float] = (0.0, 0.0)) -> None:
    """Replace what ``run`` measured: two fold models over ``images`` images with 2 views (``first``: seconds of
    their first batch of ``batch``), and each fold's OOF pass over 10 images with 2 views (``oof``: seconds with TTA,
    without)."""
    owner = Run(run)
    owner.write_inference({"folds": [{"fold": k, "images": images, "views": 2, "load_s": load[k], "read_s": read[k],
                                      "predict_s": predict[k], "batch": batch, "first_s": first[k]} for k in (0, 1)],
                           "decode_s_per_image": decode, "cached": True, "device": "cpu", "threads": 1,
                           "cache_side": side})
    timings = owner.timings
    timings["folds"] = [{**f, "oof": {"images": 10, "views": 2, "s": oof[0], "plain_s": oof[1]}}
                        for f in timings["folds"]]
    owner.write_timings(timings)


def test_training_records_what_prediction_measured(trained: dict[str, Path]) -> None:
    info = json.loads((trained["a"] / "run.json").read_text())
    folds = info["inference"]["folds"]
    assert [f["fold"] for f in folds] == [0, 1] and all(f["images"] == 12 and f["views"] == 2 for f in folds)
    assert all(f["predict_s"] > 0 and f["load_s"] > 0 for f in folds)
    assert info["inference"]["decode_s_per_image"] > 0 and info["inference"]["cache_side"] > 0
    assert all(f["oof"]["images"] == 24 and f["oof"]["views"] == 2 and f["oof"]["plain_s"] > 0
               for f in info["timings"]["folds"])


def test_forecast_arithmetic_from_scripted_timings(trained: dict[str, Path]) -> None:
    """Per fold model: load median(1, 1.5) = 1.25 s; read min(0.1/10, 0.3/10) = 0.01 s/image; predict median(0.2,
    0.3) = 0.25 s/image at 2 views, split by the OOF passes (3 s with 2 views, 2 s with 1, 10 images: 0.1 s per view,
    0.1 s per image) into 1/3 per image and 1/3 per view; fresh decode 0.01 s/image once."""
    script(trained["a"])
    per_fold = 0.01 + 0.25 / 3 + 2 * 0.25 / 3
    f = forecast(trained["a"], 100)
    assert f.total_s == pytest.approx(2 * 1.25 + 100 * 0.01 + 100 * 2 * per_fold)
    assert f.startup_s == pytest.approx(2.5) and f.decode_s == pytest.approx(1.0) and not f.rough
    (m,) = f.members
    assert m.folds == (0, 1) and m.views == ("identity", "hflip") and m.passes == 2
    assert m.images_per_s == pytest.approx(1 / (2 * per_fold))
    one_view = forecast(trained["a"], 100, InferenceChoice(tta=("identity",)))
    assert one_view.total_s == pytest.approx(2.5 + 1.0 + 100 * 2 * (0.01 + 0.25 / 3 + 0.25 / 3))
    one_fold = forecast(trained["a"], 100, InferenceChoice(folds=(0,)))
    assert one_fold.total_s == pytest.approx(1.25 + 1.0 + 100 * per_fold)
    assert [r["member"] for r in f.rows()] == [trained["a"].name] and f.rows()[0]["minutes"] == pytest.approx(
        100 * 2 * per_fold / 60 + 3.5 / 60)


def test_the_first_batch_is_warm_up_and_the_others_give_the_steady_rate(trained: dict[str, Path]) -> None:
    """40 images in batches of 10, 5 s of which 2 s the first batch: 0.1 s per image steady (3 s / 30 images), so
    1 s of warm-up per fold model, counted like its loading (1.25 s median); split 1/3 per image, 1/3 per view."""
    script(trained["a"], images=40, batch=10, predict=(5.0, 5.0), first=(2.0, 2.0), read=(0.4, 0.4))
    f = forecast(trained["a"], 1000)
    assert f.startup_s == pytest.approx(2 * (1.25 + 1.0)) and f.members[0].source == "prediction"
    assert f.total_s == pytest.approx(2 * 2.25 + 1000 * 0.01 + 1000 * 2 * (0.01 + 0.1))
    assert not any("one batch" in n for n in f.notes)
    script(trained["a"])  # a single batch per fold model: said, since the rate then holds the warm-up
    assert any("one batch per fold model" in n for n in forecast(trained["a"], 1000).notes)


def test_an_ensemble_sums_its_members_and_decodes_once_per_cache_side(trained: dict[str, Path]) -> None:
    script(trained["a"])
    script(trained["b"], predict=(4.0, 4.0))
    ens = forecast(trained["ens"], 100)
    alone = {k: forecast(trained[k], 100).total_s for k in ("a", "b")}
    assert [m.name for m in ens.members] == [trained["a"].name, trained["b"].name]
    assert ens.total_s == pytest.approx(alone["a"] + alone["b"] - 100 * 0.01)  # one decode of the shared store
    assert ens.members[1].decode_s == 0
    script(trained["b"], predict=(4.0, 4.0), side=64)
    assert forecast(trained["ens"], 100).total_s == pytest.approx(alone["a"] + alone["b"])


def test_the_budget_drops_views_then_folds_then_the_weakest_member(trained: dict[str, Path], tmp_path: Path
                                                                   ) -> None:
    script(trained["a"])
    script(trained["b"])
    full = forecast(trained["a"], 1000).total_s
    fit = fit_inference_budget(trained["a"], 1000, full + 1)
    assert fit.fits and fit.dropped == () and fit.choice == InferenceChoice()
    fit = fit_inference_budget(trained["a"], 1000, full - 1)
    assert fit.fits and fit.dropped == ("view hflip",) and fit.choice.predict_kwargs() == {"tta": ("identity",)}
    fit = fit_inference_budget(trained["a"], 1000, fit.forecast.total_s - 1)
    assert fit.fits and fit.dropped == ("view hflip", "fold 1")
    assert fit.choice.cli_args() == "--folds 0 --tta identity"
    assert fit.forecast.total_s == pytest.approx(forecast(trained["a"], 1000, fit.choice).total_s)
    with pytest.raises(PodiumError, match="--folds 0,7: .* has finished folds \\[0, 1\\]"):
        forecast(trained["a"], 1000, InferenceChoice(folds=(0, 7)))
    fit = fit_inference_budget(trained["a"], 1000, 1)
    assert not fit.fits and fit.dropped == ("view hflip", "fold 1")  # a run keeps one fold and one view
    members = json.loads((trained["ens"] / "members.json").read_text())
    ens = tmp_path / trained["ens"].name  # a copy beside nothing: its members are found where they were made
    shutil.copytree(trained["ens"], ens)
    members["members"][0]["weight"], members["members"][1]["weight"] = 0.7, 0.3
    (ens / "members.json").write_text(json.dumps(members))
    fit = fit_inference_budget(ens, 1000, 1)
    assert fit.dropped == ("view hflip", "fold 1", f"member {trained['b'].name}") and not fit.fits
    assert fit.choice.predict_kwargs() == {"members": (trained["a"].name,), "folds": (0,), "tta": ("identity",)}


def test_an_older_run_folder_is_forecast_roughly_or_told_how_to_measure(trained: dict[str, Path], tmp_path: Path
                                                                        ) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained["a"], old)
    owner = Run(old)
    owner.write_inference({})
    timings = {k: v for k, v in owner.timings.items()}
    timings["folds"] = [{k: v for k, v in f.items() if k != "oof"} for f in timings["folds"]]
    timings["test_s"] = 4.8
    owner.write_timings(timings)
    f = forecast(old, 120)
    assert f.rough and "rough" in f.notes[0] and "podium predict RUN" in f.notes[0]
    assert f.total_s == pytest.approx(4.8 * 120 / 12)  # 12 test images, every fold and view included
    owner.write_timings({**timings, "test_s": 0})
    with pytest.raises(PodiumError, match="no measured prediction time.*podium predict .* --images DIR"):
        forecast(old, 120)
    podium.predict(old, images=trained["hidden"] / "test_images")  # measures it
    assert Run(old).inference["folds"] and not forecast(old, 120).rough


def test_a_run_without_a_test_set_is_forecast_from_its_oof_passes(tmp_path: Path) -> None:
    data = datagen.folders(tmp_path / "folders")
    run = podium.train(data, overrides=[*datagen.TINY, f"run.root={tmp_path / 'runs'}", "run.report=false"])
    assert Run(run.path).inference["folds"] == [] and Run(run.path).inference["decode_s_per_image"] > 0
    f = forecast(run.path, 100)
    assert f.members[0].source == "oof" and any("OOF passes" in n for n in f.notes)
    assert f.decode_s > 0 and f.total_s > f.decode_s


def test_predict_takes_the_chosen_folds_and_members(trained: dict[str, Path], tmp_path: Path) -> None:
    sub = podium.predict(trained["ens"], data=trained["hidden"], out=tmp_path / "s.csv", tta=["identity"],
                         folds=[0], members=[trained["a"].name])
    own = podium.predict(trained["a"], data=trained["hidden"], out=tmp_path / "a.csv", tta=["identity"], folds=[0])
    assert sub.equals(own) and len(sub) == 30
    with pytest.raises(PodiumError, match="--folds 5: .* has finished folds \\[0, 1\\]"):
        podium.predict(trained["a"], data=trained["hidden"], out=tmp_path / "t.csv", folds=[5])
    with pytest.raises(PodiumError, match="--members nobody: .* has members"):
        podium.predict(trained["ens"], data=trained["hidden"], out=tmp_path / "t.csv", members=["nobody"])
    assert not (tmp_path / "t.csv").exists()


def test_cli_estimate_prints_the_forecast_and_predicts_nothing(trained: dict[str, Path], tmp_path: Path, cli
                                                               ) -> None:
    from typer.testing import CliRunner

    from podium.cli import app

    run = tmp_path / "run"
    shutil.copytree(trained["a"], run)
    before = sorted(p.name for p in run.iterdir())
    out = CliRunner().invoke(app, ["predict", str(run), "--estimate", "5000"], terminal_width=200)
    assert out.exit_code == 0, out.output
    f = forecast(run, 5000)
    assert "member" in out.output and "images/s" in out.output and run.name in out.output
    assert f"5000 images: {f.total_s / 60:.1f} min" in out.output and "measured on cpu" in out.output
    assert sorted(p.name for p in run.iterdir()) == before
    code, err = cli("predict", str(run), "--estimate", "10", "--folds", "x")
    assert code == 2 and "--folds x: give fold numbers" in err
