"""Soft labels, pseudo-labels and distillation (podium.inference.teachers): joined by id, checked against the
folds, never in OOF or validation, and trained for every task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import datagen
import podium
from podium.config import PodiumConfig, merge
from podium.core.errors import PodiumError
from podium.data.integrity import prepare
from podium.engine.fold import trains_in
from podium.inference.pseudo import PSEUDO, with_pseudo
from podium.inference.teachers import with_soft_labels
from podium.runs.run import Run


def _source(data: Path, tiny: tuple[str, ...], *extra: str) -> Run:
    return podium.train(data, overrides=[*tiny, "run.name=source", *extra])


def test_soft_targets_are_joined_by_id_whatever_the_row_order(single_dir: Path, tiny: tuple[str, ...]) -> None:
    src = _source(single_dir, tiny)
    oof = src.oof
    src.write_oof(oof.sample(frac=1.0, random_state=3))  # the source's rows in another order
    cfg = merge(PodiumConfig(), [*tiny, f"data.soft_labels={src.path}", "data.soft_alpha=0.4"])
    comp, _ = prepare(single_dir, cfg.data)
    folds = src.folds_table.set_index("id").loc[comp.train["id"], "fold"].to_numpy()
    soft, info = with_soft_labels(comp, folds, cfg)
    classes = list(comp.classes)
    by_id = oof.set_index("id")[classes]
    onehot = comp.task.onehot(comp.targets, len(classes))
    expected = 0.6 * onehot + 0.4 * by_id.loc[comp.train["id"]].to_numpy()
    assert np.allclose(soft.train_targets, expected, atol=1e-6)
    assert info["path"] == str(src.path) and info["alpha"] == 0.4
    assert np.array_equal(soft.targets, comp.targets)  # validation and metrics keep the hard labels


def test_a_source_on_other_folds_or_rows_is_refused_before_any_folder(single_dir: Path, tiny: tuple[str, ...],
                                                                       tmp_path: Path) -> None:
    src = _source(single_dir, tiny, "cv.seed=7")
    before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    with pytest.raises(PodiumError, match=r"data.soft_labels=.* was trained on other folds .* cv.folds_file="):
        podium.train(single_dir, overrides=[*tiny, f"data.soft_labels={src.path}"])
    with pytest.raises(PodiumError, match=r"train.teacher=.* was trained on other folds"):
        podium.train(single_dir, overrides=[*tiny, f"train.teacher={src.path}"])
    partial = _source(single_dir, tiny, "cv.train_folds=0", "run.name=partial")
    with pytest.raises(PodiumError, match=r"training id\(s\) have no out-of-fold prediction"):
        podium.train(single_dir, overrides=[*tiny, f"data.soft_labels={partial.path}"])
    other = _source(datagen.csv_single(tmp_path / "other", classes=("a", "b", "c")), tiny, "run.name=other")
    with pytest.raises(PodiumError, match=r"predicts classes .* this data has"):
        podium.train(single_dir, overrides=[*tiny, f"data.soft_labels={other.path}"])
    after = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert [n for n in after if n not in before and not n.startswith(("partial-", "other-"))] == []


def test_soft_labels_train_and_record_their_source(single_dir: Path, tiny: tuple[str, ...]) -> None:
    src = _source(single_dir, tiny)
    run = podium.train(single_dir, overrides=[*tiny, f"data.soft_labels={src.path}", "aug.batch=mixup",
                                              "run.name=student"])
    assert run.status == "done" and run.info["sources"]["soft_labels"]["path"] == str(src.path)
    assert run.oof["label"].tolist() == src.oof.sort_values("id")["label"].tolist()  # hard labels in the OOF
    numbers = dict((k, (a, b)) for k, a, b in podium.compare(src, run)["numbers"])
    assert numbers["soft labels from"] == (None, src.path.name)


@pytest.mark.parametrize(("share", "mode"), [("all", "matched"), ("fold", "matched"), ("all", "averaged")])
def test_pseudo_rows_train_but_never_validate(single_dir: Path, tiny: tuple[str, ...], share: str, mode: str) -> None:
    src = _source(single_dir, tiny)
    run = podium.train(single_dir, overrides=[*tiny, f"data.pseudo={src.path}", f"data.pseudo_share={share}",
                                              f"data.pseudo_folds={mode}", "run.name=pseudo"])
    folds = run.folds_table
    pseudo = folds[folds["source"] == PSEUDO]
    copies = 2 if (share, mode) == ("all", "matched") else 1  # matched, every fold: one row per image and fold
    assert len(pseudo) == 12 * copies and (pseudo["fold"] == -1).all()
    assert not run.oof["id"].str.startswith(PSEUDO + "/").any() and len(run.oof) == 48
    assert run.info["sources"]["pseudo"]["images"] == 12 and run.info["sources"]["pseudo"]["rows"] == 12 * copies
    cfg = merge(run.config, [])
    comp, integ = prepare(single_dir, cfg.data)
    comp, integ, _ = with_pseudo(comp, integ, cfg)
    fold_of = folds.set_index("id").loc[comp.train["id"], "fold"].to_numpy()
    rows = [set(np.flatnonzero(trains_in(comp, fold_of, k) & (fold_of == -1))) for k in range(2)]
    images = [set(comp.train["pseudo_id"].iloc[sorted(r)]) for r in rows]
    if (share, mode) == ("all", "averaged"):
        assert rows[0] == rows[1] and len(rows[0]) == 12
    elif share == "all":  # each fold its own copies of all 12 images
        assert not rows[0] & rows[1] and images[0] == images[1] and len(images[0]) == 12
    else:
        assert not rows[0] & rows[1] and len(rows[0] | rows[1]) == 12 and not images[0] & images[1]


def test_matched_pseudo_labels_come_from_the_fold_model_that_never_saw_the_fold(single_dir: Path,
                                                                               tiny: tuple[str, ...]) -> None:
    src = _source(single_dir, tiny)
    classes = ["cat", "dog", "fox"]
    by_fold = src.fold_predictions()
    assert sorted(by_fold["fold"].unique()) == [0, 1]  # each fold model's test probabilities, kept by predict
    mean = by_fold.groupby("id")[classes].mean().loc[src.test_predictions["id"]]
    assert np.allclose(mean.to_numpy(), src.test_predictions[classes].to_numpy(), atol=1e-6)
    cfg = merge(PodiumConfig(), [*tiny, f"data.pseudo={src.path}"])
    comp, integ = prepare(single_dir, cfg.data)
    comp, _, info = with_pseudo(comp, integ, cfg)
    pseudo = (comp.train["source"] == PSEUDO).to_numpy()
    want = by_fold.set_index(["fold", "id"])[classes]
    keys = list(zip(comp.train["part"][pseudo], comp.train["pseudo_id"][pseudo]))
    assert np.allclose(comp.train_targets[pseudo], want.loc[keys].to_numpy(), atol=1e-6)
    assert info["folds"] == "matched" and info["unlabelled"] == "test set"
    averaged = merge(cfg, ["data.pseudo_folds=averaged"])
    comp2, _, _ = with_pseudo(*prepare(single_dir, averaged.data), averaged)
    flat = (comp2.train["source"] == PSEUDO).to_numpy()
    assert np.allclose(comp2.train_targets[flat], mean.loc[comp2.train["pseudo_id"][flat]].to_numpy(), atol=1e-6)


def test_matched_pseudo_labels_need_per_fold_predictions_and_the_same_folds(single_dir: Path,
                                                                            tiny: tuple[str, ...]) -> None:
    src = _source(single_dir, tiny)
    src.predictions_path(folds=True).unlink()  # a source predicted before per-fold files existed
    with pytest.raises(PodiumError, match=r"no predictions of its fold 0, 1 model.*podium predict .*pseudo_folds="):
        podium.train(single_dir, overrides=[*tiny, f"data.pseudo={src.path}", "run.name=student"])
    run = podium.train(single_dir, overrides=[*tiny, f"data.pseudo={src.path}", "data.pseudo_folds=averaged",
                                              "run.name=averaged"])
    assert run.status == "done" and run.info["sources"]["pseudo"]["folds"] == "averaged"
    other = _source(single_dir, tiny, "cv.seed=7", "run.name=other")
    with pytest.raises(PodiumError, match=r"data.pseudo=.* was trained on other folds.*pseudo_folds=averaged"):
        podium.train(single_dir, overrides=[*tiny, f"data.pseudo={other.path}", "run.name=student"])
    assert not [p for p in (Path(run.path).parent).iterdir() if p.name.startswith("student-")]


def test_pseudo_labels_from_an_unlabelled_folder_skip_duplicates_of_train(single_dir: Path, tiny: tuple[str, ...],
                                                                          tmp_path: Path) -> None:
    import shutil

    pool = tmp_path / "unlabelled"
    datagen.csv_single(tmp_path / "pool_src", n=3, n_test=6, seed=9)
    shutil.copytree(tmp_path / "pool_src" / "test_images", pool)
    shutil.copyfile(single_dir / "train_images" / "img000.png", pool / "copy_of_train.png")  # must be left out
    src = _source(single_dir, tiny)
    with pytest.raises(PodiumError, match=r"No predictions .*podium predict .* --images .*unlabelled`"):
        podium.train(single_dir, overrides=[*tiny, f"data.pseudo={src.path}", f"data.pseudo_images={pool}"])
    table = podium.predict(src, images=pool)
    assert len(table) == 7 and src.predictions_path("unlabelled", folds=True).is_file()
    run = podium.train(single_dir, overrides=[*tiny, f"data.pseudo={src.path}", f"data.pseudo_images={pool}",
                                              "data.pseudo_share=fold", "run.name=pool"])
    info = run.info["sources"]["pseudo"]
    assert info["unlabelled"] == "folder unlabelled" and info["images"] == 6 and info["dropped_duplicates"] == 1
    assert len(run.oof) == 48
    with pytest.raises(PodiumError, match=r"data.pseudo_images needs data.pseudo"):
        podium.train(single_dir, overrides=[*tiny, f"data.pseudo_images={pool}"])


def test_an_ensemble_keeps_each_folds_blend_for_pseudo_labels(single_dir: Path, tiny: tuple[str, ...],
                                                              tmp_path: Path) -> None:
    a, b = _source(single_dir, tiny), _source(single_dir, tiny, "train.seed=1", "run.name=b")
    ens = podium.ensemble(a.path, b.path, blend="mean")
    classes = ["cat", "dog", "fox"]
    mine = ens.fold_predictions().set_index(["fold", "id"])[classes].sort_index()
    members = pd.concat([a.fold_predictions(), b.fold_predictions()]).groupby(["fold", "id"])[classes].mean()
    assert np.allclose(mine.to_numpy(), members.sort_index().to_numpy(), atol=1e-6)
    run = podium.train(single_dir, overrides=[*tiny, f"data.pseudo={ens.path}", "run.name=from-ensemble"])
    assert run.info["sources"]["pseudo"]["rows"] == 24
    pool = datagen.csv_single(tmp_path / "pool_src", n=3, n_test=4, seed=9) / "test_images"
    assert len(podium.predict(ens, images=pool)) == 4 and ens.predictions_path("test_images", folds=True).is_file()


def test_pseudo_threshold_keeps_only_sure_rows_as_hard_labels(single_dir: Path, tiny: tuple[str, ...]) -> None:
    src = _source(single_dir, tiny)
    probs = src.fold_predictions()[["cat", "dog", "fox"]].to_numpy().max(axis=1)  # each (fold model, image)
    cut = float(np.median(probs))
    cfg = merge(PodiumConfig(), [*tiny, f"data.pseudo={src.path}", f"data.pseudo_threshold={cut}"])
    comp, integ = prepare(single_dir, cfg.data)
    comp, integ, info = with_pseudo(comp, integ, cfg)
    kept = comp.train["source"] == PSEUDO
    assert info["rows"] == int((probs >= cut).sum()) == int(kept.sum()) and not info["soft"]
    assert set(np.unique(comp.train_targets[kept.to_numpy()])) <= {0.0, 1.0} and len(integ.groups) == len(comp.train)


def _ordinal(root: Path) -> Path:
    return datagen.folders(root, per_class=8, classes=("0", "1", "2", "3", "4"), test=5)


@pytest.mark.parametrize(("make", "extra"), [
    (lambda p: datagen.csv_single(p), ()),
    (lambda p: datagen.csv_single(p, classes=("neg", "pos")), ()),
    (lambda p: datagen.csv_multilabel(p), ()),
    (_ordinal, ("data.task=ordinal",)),
    (_ordinal, ("data.task=ordinal", "train.loss=regression")),
])
def test_distillation_trains_for_every_task(tmp_path: Path, tiny: tuple[str, ...], make, extra: tuple) -> None:
    data = make(tmp_path / "data")
    teacher = _source(data, tiny, *extra)
    student = podium.train(data, overrides=[*tiny, *extra, f"train.teacher={teacher.path}", "train.distill_alpha=0.7",
                                            "train.distill_temperature=3", "run.name=student"])
    assert student.status == "done" and np.isfinite(student.metrics["cv_score"])
    assert student.info["sources"]["teacher"]["temperature"] == 3.0
    assert len(student.oof) == len(teacher.oof)


def test_distillation_loss_is_the_truth_loss_at_alpha_zero_limit() -> None:
    import torch

    from podium.engine.losses import create_loss, distillation
    from podium.tasks.task import TASKS

    task = TASKS.get("multiclass")
    base = create_loss("auto", task, 0.0, "none", np.array([0, 1, 2]), 3)
    logits = torch.randn(4, 3)
    truth = torch.eye(3)[torch.tensor([0, 1, 2, 0])]
    teacher = torch.softmax(torch.randn(4, 3), dim=1)
    packed = torch.cat([truth, teacher], dim=1)
    kd = distillation(base, base, 3, 0.25, 2.0)
    expected = 0.75 * base(logits, truth) + 0.25 * 4.0 * base(logits / 2.0, teacher)
    assert torch.allclose(kd(logits, packed), expected)
    assert torch.allclose(kd(logits, torch.tensor([0, 1, 2, 0])), base(logits, torch.tensor([0, 1, 2, 0])))
    assert pd.isna(np.nan)  # the module's NaN handling relies on numpy's NaN
