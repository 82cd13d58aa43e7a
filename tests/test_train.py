"""Library-level training runs on generated data: every layout, the multilabel threshold, and resuming."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import datagen
from podium.config import PodiumConfig, merge
from podium.pipeline import train
from podium.runs.run import Run


def _cfg(tiny: tuple[str, ...], *extra: str) -> PodiumConfig:
    return merge(PodiumConfig(), [*tiny, *extra])


def test_multilabel_run_fits_threshold_and_writes_labels(multilabel_dir: Path, tiny: tuple[str, ...]) -> None:
    # the sample's space-separated labels imply f1_samples (tests/test_replicas.py); named here, mean_auc
    run = train(multilabel_dir, _cfg(tiny, "train.epochs=2", "cv.metric=mean_auc"))
    threshold = run.decisions["threshold"]
    assert run.metrics["metric"] == "mean_auc" and 0.05 <= threshold <= 0.95
    assert run.metrics["decisions"] == run.decisions == json.loads((run.path / "decisions.json").read_text())
    sub = pd.read_csv(run.submission_path)
    assert list(sub.columns) == ["image", "labels"] and (sub["labels"].str.len() > 0).all()
    ckpt = run.load_best(1)  # the decisions are embedded in every fold's checkpoint, through checkpoint.py
    assert ckpt.decisions == {"threshold": threshold} and ckpt.task == "multilabel"
    assert ckpt.preprocessing.size == 32 and len(ckpt.preprocessing.mean) == 3


def test_onehot_run_writes_probability_columns(onehot_dir: Path, tiny: tuple[str, ...]) -> None:
    run = train(onehot_dir, _cfg(tiny))
    sub = pd.read_csv(run.submission_path)
    assert list(sub.columns) == ["image_id", "healthy", "rust", "scab", "spot"]
    assert ((sub.iloc[:, 1:] >= 0) & (sub.iloc[:, 1:] <= 1)).all().all()


def test_folder_layout_with_accumulation_and_no_ema(folders_dir: Path, tiny: tuple[str, ...]) -> None:
    run = train(folders_dir, _cfg(tiny, "train.accum_steps=2", "train.ema=false", "train.batch_size=8",
                                  "train.class_weights=balanced"))
    sub = pd.read_csv(run.submission_path)
    assert list(sub.columns) == ["id", "label"] and len(sub) == 5
    assert set(sub["label"]) <= {"early", "healthy", "late"}


def test_learns_the_generated_classes(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    root = datagen.csv_single(tmp_path / "big", n=150, n_test=3)
    run = train(root, _cfg(tiny, "train.epochs=6", "train.lr=0.003", "train.batch_size=8", "aug.ops=hflip"))
    assert run.metrics["cv_score"] >= 0.9, run.metrics["overall"]


def test_interrupted_run_resumes(single_dir: Path, tiny: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    import podium.engine.fold as fold_module
    from podium.core.errors import Interrupted

    real, calls = fold_module.train_one_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # fold 0 epochs 1-2, fold 1 epoch 1, then Ctrl-C during fold 1 epoch 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fold_module, "train_one_epoch", interrupted)
    cfg = _cfg(tiny, "train.epochs=2", "run.name=resume")
    with pytest.raises(Interrupted, match="podium resume"):
        train(single_dir, cfg)
    (run_dir,) = Path(cfg.run.root).glob("resume-*")
    assert (run_dir / "fold0" / "done.json").is_file() and not (run_dir / "fold1" / "done.json").exists()
    assert torch.load(run_dir / "fold1" / "last.pt", weights_only=True)["epoch"] == 1
    assert Run.open(run_dir).status == "interrupted" and Run.open(run_dir).info["reason"] == "SIGINT"
    fold0 = Run.open(run_dir).load_best(0).state_dict
    fold0_log = (run_dir / "fold0" / "log.csv").read_text()
    folds = pd.read_csv(run_dir / "folds.csv")

    monkeypatch.setattr(fold_module, "train_one_epoch", real)
    run = train(None, resume=run_dir)
    assert all(torch.equal(v, run.load_best(0).state_dict[k]) for k, v in fold0.items())  # fold 0 was not retrained
    assert (run_dir / "fold0" / "log.csv").read_text() == fold0_log
    assert pd.read_csv(run_dir / "folds.csv").equals(folds)
    assert len(pd.read_csv(run_dir / "fold1" / "log.csv")) == 2 and not (run_dir / "fold1" / "last.pt").exists()
    log = (run_dir / "train.log").read_text()
    assert "fold 0: already trained" in log and "fold 1: resuming after epoch 1" in log
    assert run.metrics["oof_rows"] == 48 and run.submission_path.is_file()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done" and run.status == "done"


def test_selected_folds_only(single_dir: Path, tiny: tuple[str, ...]) -> None:
    run = train(single_dir, _cfg(tiny, "cv.folds=3", "cv.train_folds=[1]"))
    assert not (run.path / "fold0").exists() and (run.path / "fold1" / "best.pt").is_file()
    assert run.metrics["oof_rows"] == 16 and len(run.oof) == 16


def test_folds_file_is_reused(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    ids = pd.read_csv(single_dir / "train.csv")["image_id"]
    folds = pd.DataFrame({"id": ids, "fold": np.arange(len(ids)) % 2})
    folds.to_csv(tmp_path / "myfolds.csv", index=False)
    run = train(single_dir, _cfg(tiny, f"cv.folds_file={tmp_path / 'myfolds.csv'}"))
    saved = pd.read_csv(run.folds_path)
    assert (saved["fold"].to_numpy() == folds["fold"].to_numpy()).all()


@pytest.mark.slow
def test_demo_reaches_095(tmp_path: Path) -> None:
    from podium.demo import run_demo

    run = run_demo(tmp_path)
    assert run.metrics["cv_score"] >= 0.95


def test_training_is_reproducible(single_dir: Path, tiny: tuple[str, ...]) -> None:
    """Same config, same data: the same OOF predictions (augmentations are seeded per sample and epoch)."""
    cfg = _cfg(tiny, "train.epochs=2", "aug.ops=random_resized_crop,hflip,affine,color")
    a = train(single_dir, cfg).oof  # two runs in one process: Accelerate's state is reused, not reset
    b = train(single_dir, cfg).oof
    assert np.allclose(a.iloc[:, 3:].to_numpy(), b.iloc[:, 3:].to_numpy(), atol=1e-5)


def test_a_loss_that_does_not_fit_the_task_stops_before_a_run_folder(single_dir: Path, multilabel_dir: Path,
                                                                    tiny: tuple[str, ...], tmp_path: Path) -> None:
    from podium.core.errors import PodiumError

    with pytest.raises(PodiumError, match="train.loss=bce does not fit the multiclass task"):
        train(single_dir, _cfg(tiny, "train.loss=bce"))
    with pytest.raises(PodiumError, match="train.loss=ce does not fit the multilabel task"):
        train(multilabel_dir, _cfg(tiny, "train.loss=ce"))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("tta", ["identity", "identity,hflip"])
def test_the_cv_score_without_tta_is_pooled_like_the_cv_score(multilabel_dir: Path, tiny: tuple[str, ...],
                                                              tta: str) -> None:
    """Without TTA the two scores are the same number; with TTA the plain one is the pooled score of the plain OOF
    probabilities kept per fold (a mean of per-fold AUCs would be neither)."""
    from podium.tasks.metrics import score
    from podium.tasks.task import get_task

    run = train(multilabel_dir, _cfg(tiny, f"predict.tta={tta}", "cv.metric=mean_auc"))  # an AUC, named
    m = run.metrics
    if tta == "identity":
        assert m["cv_score_no_tta"] == m["cv_score"] and not (run.path / "fold0" / "oof_plain.csv").exists()
        return
    plain = pd.concat([pd.read_csv(run.path / f"fold{k}" / "oof_plain.csv") for k in (0, 1)])
    oof = run.oof.set_index("id").loc[plain["id"]]
    classes = [c for c in plain.columns if c != "id"]
    y = np.array([[c in str(labels).split() for c in classes] for labels in oof["label"]], dtype=np.int64)
    expected = score(get_task("multilabel"), y, plain[classes].to_numpy(), decisions=run.decisions)["mean_auc"]
    assert m["cv_score_no_tta"] == pytest.approx(expected, abs=1e-9)
    assert m["cv_score_no_tta"] != pytest.approx(np.mean([f["score"] for f in m["per_fold"]]), abs=1e-6)


def test_first_run_decodes_each_image_once_and_keeps_its_time_breakdown(
        single_dir: Path, tiny: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import podium.data.pixels.cache as cache

    monkeypatch.setenv("PODIUM_CACHE", str(tmp_path / "cache"))
    decodes: list[str] = []
    real = cache._decode_into
    monkeypatch.setattr(cache, "_decode_into", lambda filler, path: decodes.append(path) or real(filler, path))
    run = train(single_dir, _cfg(tiny, "data.cache_format=jpeg"))
    assert decodes == []  # the check pass filled the cache the folds and the test prediction read
    assert len(list((tmp_path / "cache" / "images").glob("*-40-area-jpeg"))) == 2  # train and test folders, 40 px
    t = run.timings
    assert t["prepare_s"] > 0 and t["test_s"] > 0 and t["images"] > 0
    assert [f["fold"] for f in t["folds"]] == [0, 1] and all(len(f["epochs_s"]) == 1 for f in t["folds"])
    assert "time: checks, hashes and cache" in run.log_path.read_text()


def test_patience_stops_a_fold_keeps_its_best_epoch_and_records_the_stop(single_dir: Path, tiny: tuple[str, ...]
                                                                          ) -> None:
    """A model that cannot learn (a learning rate of 1e-12) gains nothing after its first epoch: with
    train.patience=2 each fold stops after epoch 3 of 6 and keeps epoch 1."""
    import json

    import podium
    from podium.engine.fold import Progress, out_of_patience

    assert not out_of_patience(Progress(epoch=3, best_epoch=1), 0)
    assert not out_of_patience(Progress(epoch=2, best_epoch=1), 2) and out_of_patience(Progress(3, 0.5, 1), 2)
    run = podium.train(single_dir, overrides=[*tiny, "train.epochs=6", "train.patience=2", "train.lr=1e-12",
                                              "train.ema=false", "finetune.freeze_epochs=0"])
    info = json.loads((run.path / "run.json").read_text())
    for fold in (0, 1):
        summary = run.fold_summary(fold)
        assert summary["stopped_early"] and summary["epochs"] - summary["best_epoch"] == 2
        assert len(run.fold_log(fold)) == summary["epochs"] < 6
        assert info["stopped_early"][str(fold)] == summary["epochs"]
    log = run.log_path.read_text()
    assert "stopped after epoch" in log and "(train.patience)" in log


def test_an_epoch_hook_that_returns_true_ends_the_fold_there(single_dir: Path, tiny: tuple[str, ...]) -> None:
    """``podium auto``'s hard limit: the hook says stop after epoch 2 of fold 0; the fold ends like early stopping
    (summary, log, run.json), and fold 1 trains all its epochs."""
    seen: list[tuple[int, int]] = []

    def hook(fold: int, row: dict) -> bool:
        seen.append((fold, int(row["epoch"])))
        return fold == 0 and row["epoch"] >= 2

    cfg = merge(PodiumConfig(), [*tiny, "train.epochs=4"])
    run = train(single_dir, cfg, on_epoch=hook)
    assert seen == [(0, 1), (0, 2), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert run.fold_summary(0)["stopped_early"] and run.fold_summary(0)["epochs"] == 2
    assert not run.fold_summary(1)["stopped_early"] and len(run.fold_log(1)) == 4
    assert json.loads((run.path / "run.json").read_text())["stopped_early"] == {"0": 2}
    assert "fold 0: stopped after epoch 2 of 4 by the time budget" in run.log_path.read_text()
