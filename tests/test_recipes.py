"""The competition recipes: batch augmentation (MixUp/CutMix), GridMask, focal loss, samplers, optimisers and
schedules by name, 8-view and multi-scale TTA; each alone and together in a tiny run."""

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import datagen
from podium.config import AugConfig, PodiumConfig, TrainConfig, merge
from podium.core.errors import PodiumError
from podium.data.training.batch_aug import create_batch_aug
from podium.data.training.dataset import SAMPLERS, EpochShuffleSampler
from podium.engine.losses import create_loss
from podium.engine.optim import OPTIMIZERS, create_optimizer, create_scheduler
from podium.engine.tta import check_views, view_names
from podium.tasks.task import get_task
from podium.validation import validate


@pytest.mark.parametrize("ops", [("mixup",), ("cutmix",), ("mixup", "cutmix")])
def test_batch_augmentation_mixes_images_and_soft_targets(ops: tuple[str, ...]) -> None:
    np.random.seed(0)
    aug = create_batch_aug(AugConfig(batch=ops), get_task("multiclass"), 4)
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 16, 16).clone()
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    mixed, soft = aug(x.clone(), y)
    assert soft.shape == (8, 4) and torch.allclose(soft.sum(1), torch.ones(8))
    assert not torch.equal(mixed, x) and (soft.max(1).values < 1).any()

    multi = create_batch_aug(AugConfig(batch=ops), get_task("multilabel"), 3)
    ym = torch.tensor([[1, 0, 1], [0, 1, 0]] * 4)
    _, soft = multi(x.clone(), ym)
    assert soft.shape == (8, 3) and (soft >= 0).all() and (soft <= 1).all()


def test_soft_targets_and_smoothing_combine_in_every_loss() -> None:
    task, y = get_task("multiclass"), torch.tensor([0, 2, 1])
    logits = torch.randn(3, 3)
    onehot = F.one_hot(y, 3).float()
    for name in ("ce", "focal"):
        loss = create_loss(name, task, 0.1, "none", y.numpy(), 3, gamma=0.0)
        assert torch.allclose(loss(logits, y), loss(logits, onehot), atol=1e-6)  # indices == their one-hot
    ce = create_loss("ce", task, 0.1, "none", y.numpy(), 3)(logits, y)
    focal0 = create_loss("focal", task, 0.1, "none", y.numpy(), 3, gamma=0.0)(logits, y)
    assert torch.allclose(ce, focal0, atol=1e-6)  # gamma 0 is cross-entropy
    focal2 = create_loss("focal", task, 0.1, "none", y.numpy(), 3, gamma=2.0)(logits, y)
    assert focal2 < focal0

    multi, ym = get_task("multilabel"), torch.tensor([[1, 0], [0, 1], [1, 1]])
    bce = create_loss("bce", multi, 0.1, "none", ym.numpy(), 2)(logits[:, :2], ym)
    mfocal = create_loss("focal", multi, 0.1, "none", ym.numpy(), 2, gamma=0.0)(logits[:, :2], ym)
    assert torch.allclose(bce, mfocal, atol=1e-6)


def test_samplers_balance_classes_reproducibly() -> None:
    task, targets = get_task("multiclass"), np.array([0] * 90 + [1] * 10)
    weights = SAMPLERS.get("balanced")(task, targets, 2)
    sampler = EpochShuffleSampler(100, seed=3, weights=weights)
    sampler.set_epoch(2)
    keys = list(sampler)
    rows = np.array(keys) - 200
    assert len(keys) == 100 and 30 <= (targets[rows] == 1).sum() <= 70  # ~50, not ~10
    assert keys == list(sampler)  # the same draw for the same (seed, epoch): exact resume
    sqrt = SAMPLERS.get("sqrt")(task, targets, 2)
    assert sqrt[-1] / sqrt[0] == pytest.approx(3.0)
    assert SAMPLERS.get("shuffle")(task, targets, 2) is None
    with pytest.raises(PodiumError, match="single-label"):
        SAMPLERS.get("balanced")(get_task("multilabel"), np.eye(3, dtype=int), 3)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_and_schedule_steps(name: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    for schedule in ("cosine", "linear", "constant", "onecycle"):
        cfg = TrainConfig(optimizer=name, schedule=schedule, epochs=2, warmup_epochs=0.5, device="cpu")
        opt = create_optimizer(model, cfg)
        sched = create_scheduler(opt, cfg, updates_per_epoch=10)
        lrs = []
        for _ in range(20):
            model(torch.randn(2, 4)).sum().backward()
            opt.step(), opt.zero_grad(), sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert max(lrs) == pytest.approx(cfg.lr, rel=0.11)
        end = {"cosine": cfg.lr * cfg.min_lr_ratio, "constant": cfg.lr, "onecycle": cfg.lr * 1e-4}
        if schedule in end:
            assert lrs[-1] == pytest.approx(end[schedule], rel=0.05)
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


def test_d4_is_the_eight_symmetries_of_a_square() -> None:
    assert len(view_names(["d4"])) == 8 and view_names(["identity", "d4", "hflip"])[:2] == ["identity", "hflip"]
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = [f(x) for f in check_views(["d4"])]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    symmetric = x + x.flip(2) + x.flip(3) + x.flip(2).flip(3)
    symmetric = symmetric + symmetric.transpose(2, 3)
    assert all(torch.equal(f(symmetric), symmetric) for f in check_views(["d4"]))


def test_multi_scale_tta_averages_the_scales() -> None:
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from podium.data.pixels.preprocessing import Preprocessing
    from podium.data.training.dataset import collate
    from podium.engine.loop import predict_logits

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean((1, 2, 3)), x[:, :, :2, :2].mean((1, 2, 3))], 1)

    images = torch.randint(0, 255, (4, 3, 8, 8), dtype=torch.uint8)
    data = [(images[i], torch.tensor(0), i) for i in range(4)]
    loader = DataLoader(data, batch_size=2, collate_fn=collate)
    prep = Preprocessing(8, "squash", "bilinear", (0.5,) * 3, (0.25,) * 3)
    acc = Accelerator(cpu=True)
    one = predict_logits(Mean(), loader, prep, acc, ["identity"], scales=(1.0,))
    two = predict_logits(Mean(), loader, prep, acc, ["identity"], scales=(1.0, 2.0))
    x = prep.normalize(images)
    big = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    expected = (Mean()(x) + Mean()(big)) / 2
    assert np.allclose(two, expected.numpy(), atol=1e-5) and not np.allclose(one, two)


def test_gridmask_drops_a_grid(tmp_path: Path) -> None:
    from podium.data.pixels.preprocessing import Preprocessing
    from podium.data.training.transforms import create_transform, seed_transform

    t = create_transform(Preprocessing(32, "squash", "bilinear", (0.5,) * 3, (0.5,) * 3), AugConfig(ops=("gridmask",)),
                         train=True)
    img = np.full((32, 32, 3), 200, np.uint8)
    dropped = []
    for seed in range(8):
        seed_transform(t, seed)
        dropped.append(float((t(image=img)["image"] == 0).all(axis=2).mean()))
    assert any(d == 0 for d in dropped) and any(0.1 < d < 0.9 for d in dropped)  # p=0.5, about ratio^2 of the area


def test_recipes_train_and_predict_end_to_end(single_dir: Path, multilabel_dir: Path, tiny: tuple[str, ...]) -> None:
    from podium.pipeline import train

    recipe = ("aug.batch=mixup,cutmix", "aug.batch_off_epochs=1", "train.epochs=2", "aug.ops=hflip,gridmask",
              "train.loss=focal", "train.optimizer=sgd", "train.schedule=onecycle", "predict.tta=d4",
              "predict.scales=1.0,1.25")
    run = train(single_dir, merge(PodiumConfig(), [*tiny, *recipe, "train.sampler=sqrt"]))
    assert run.metrics["tta"] == ["d4"] and len(pd.read_csv(run.submission_path)) == 12
    multi = train(multilabel_dir, merge(PodiumConfig(), [*tiny, *recipe]))
    assert (pd.read_csv(multi.submission_path)["labels"].str.len() > 0).all()


def test_recipe_mistakes_stop_at_load_or_plan(multilabel_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    from podium.pipeline import train

    with pytest.raises(PodiumError, match="train.batch_size must be even with aug.batch=mixup"):
        validate(merge(PodiumConfig(), ["aug.batch=mixup", "train.batch_size=15"]))
    with pytest.raises(PodiumError, match="unknown batch augmentation 'mixpu'.*Did you mean 'mixup'"):
        validate(merge(PodiumConfig(), ["aug.batch=mixpu"]))
    with pytest.raises(PodiumError, match="unknown optimizer 'adam'"):
        validate(merge(PodiumConfig(), ["train.optimizer=adam"]))
    with pytest.raises(PodiumError, match="single-label"):
        train(multilabel_dir, merge(PodiumConfig(), [*tiny, "train.sampler=balanced"]))
    assert not (tmp_path / "runs").exists()


def test_a_pipeline_saved_with_albumentations_trains(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    import albumentations as A

    from podium.pipeline import train

    A.save(A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)]), str(tmp_path / "aug.yaml"),
           data_format="yaml")
    run = train(single_dir, merge(PodiumConfig(), [*tiny, f"aug.pipeline={tmp_path / 'aug.yaml'}"]))
    assert run.status == "done"
    A.save(A.Compose([A.Normalize()]), str(tmp_path / "norm.json"))
    (tmp_path / "junk.yaml").write_text("not: [an, albumentations, pipeline")
    for name, match in (("norm.json", "contains Normalize"), ("junk.yaml", "not an albumentations pipeline"),
                        ("missing.yaml", "no such file")):
        with pytest.raises(PodiumError, match=match):
            train(single_dir, merge(PodiumConfig(), [*tiny, f"aug.pipeline={tmp_path / name}"]))
    assert len(list((tmp_path / "runs").iterdir())) == 2  # the first run and its podium.db: the others stopped first


def test_preview_writes_a_grid_with_mixed_labels(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    import cv2

    import podium

    plain = podium.preview(single_dir, overrides=tiny, out=tmp_path / "plain.png")
    mixed = podium.preview(single_dir, overrides=[*tiny, "aug.batch=mixup"], out=tmp_path / "mixed.png")
    a, b = cv2.imread(str(plain)), cv2.imread(str(mixed))
    assert a.shape == b.shape and a.shape[0] == 3 * (128 + 30) and a.shape[1] == 8 * 128  # a row per class
    assert not np.array_equal(a, b)


def test_preview_shows_the_images_after_preprocessing(single_dir: Path, tiny: tuple[str, ...], tmp_path: Path) -> None:
    import cv2

    import podium

    # aug.ops without color: its hue jitter moves a gray pixel's channels apart by a rounding step
    gray = podium.preview(single_dir, overrides=[*tiny, "data.preprocess=gray", "aug.ops=random_resized_crop,affine"],
                          out=tmp_path / "gray.png")
    gray = cv2.imread(str(gray))
    plain = cv2.imread(str(podium.preview(single_dir, overrides=tiny, out=tmp_path / "plain.png")))
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()  # what the model sees
    assert not (plain[..., 0] == plain[..., 2]).all()  # the images themselves are coloured


def test_extra_data_trains_only_and_duplicates_of_the_competition_are_dropped(tmp_path: Path,
                                                                               tiny: tuple[str, ...]) -> None:
    import shutil

    import datagen
    from podium.pipeline import train

    comp = datagen.csv_single(tmp_path / "comp", n=48, n_test=6)
    extra = datagen.folders(tmp_path / "extra2019", per_class=6, classes=("cat", "dog", "wolf"), seed=5)
    # one extra image is a copy of a competition test image, another of a training image: both must go
    shutil.copy(comp / "test_images" / "t000.png", extra / "train" / "cat" / "copy_of_test.png")
    first = sorted((comp / "train_images").iterdir())[0]
    shutil.copy(first, extra / "train" / "dog" / "copy_of_train.png")

    with pytest.raises(PodiumError, match="labels that are not classes of the competition: wolf"):
        train(comp, merge(PodiumConfig(), [*tiny, f"data.extra={extra}"]))
    run = train(comp, merge(PodiumConfig(), [*tiny, f"data.extra={extra}", "data.extra_label_map=wolf=fox"]))
    folds = pd.read_csv(run.folds_path)
    extra_rows = folds[folds["source"] == "extra:extra2019"]
    assert len(extra_rows) == 18 and (extra_rows["fold"] == -1).all()  # 6 x 3 classes; the two copies dropped
    assert not extra_rows["id"].str.contains("copy_of").any()
    assert set(folds.loc[folds["source"] == "train", "fold"]) == {0, 1}
    oof = run.oof
    assert len(oof) == 48 and set(oof["source"]) == {"train"}  # extra rows never in the OOF predictions
    assert "2 data.extra image(s) duplicating competition images dropped" in run.log_path.read_text()


@pytest.mark.parametrize(("name", "outputs"), [("cumulative", 4), ("regression", 1)])
def test_ordinal_losses_take_the_soft_targets_of_batch_augmentation(name: str, outputs: int) -> None:
    task = get_task("ordinal").for_loss(name, 5)
    y = torch.tensor([0, 2, 4, 1])
    loss = create_loss(name, task, 0.1, "balanced", np.array([0, 1, 2, 3, 4, 2, 2]), 5)
    logits = torch.randn(4, outputs)
    assert torch.allclose(loss(logits, y), loss(logits, F.one_hot(y, 5).float()), atol=1e-6)
    mixed = 0.7 * F.one_hot(y, 5).float() + 0.3 * F.one_hot(y.flip(0), 5).float()
    assert torch.isfinite(loss(logits, mixed))


def _non_square(root: Path) -> Path:
    """The folder's images made wide and tall by turns (40x64 and 64x40), so resize methods differ."""
    for i, path in enumerate(sorted(root.glob("*_images/*.png"))):
        img = cv2.imread(str(path))
        cv2.imwrite(str(path), cv2.resize(img, (64, 40) if i % 2 else (40, 64)))
    return root


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
def test_rectangular_sizes_train_and_predict_with_each_resize(tmp_path: Path, tiny: tuple[str, ...],
                                                              resize: str) -> None:
    """Trained at 32x24 (height x width) on non-square images: the checkpoint carries the size and the method, and
    predicting the fold's images from the checkpoint alone reproduces its OOF probabilities."""
    from podium.api import predict
    from podium.engine.accel import make_accelerator
    from podium.inference.checkpoints import predict_checkpoints
    from podium.pipeline import train

    root = _non_square(datagen.csv_single(tmp_path / "single", n=24, n_test=4))
    run = train(root, merge(PodiumConfig(), [*tiny, "model.img_size=32x24", f"model.resize={resize}",
                                             "cv.train_folds=0", "model.pad_fill=0"]))
    ckpt = run.load_best(0)
    assert ckpt.preprocessing.hw == (32, 24) and ckpt.preprocessing.resize == resize
    assert ckpt.config.model.img_size == (32, 24) and run.info["img_size"] == "32x24"
    folds = pd.read_csv(run.path / "folds.csv")
    rows = folds[folds["fold"] == 0]["id"].astype(str).tolist()
    paths = [str(root / "train_images" / f"{i}.png") for i in rows]
    oof = run.oof.set_index(run.oof["id"].astype(str)).loc[rows, list(ckpt.classes)].to_numpy()
    got = predict_checkpoints([ckpt], rows, paths, make_accelerator(ckpt.config.train)).probs
    assert np.allclose(got, oof, atol=1e-5)
    labelled = predict(run, images=root / "test_images")
    assert len(labelled) == 4 and set(labelled["label"]) <= set(ckpt.classes)


def test_quarter_turns_of_a_rectangle_stop_before_the_run(single_dir: Path, tiny: tuple[str, ...],
                                                          tmp_path: Path) -> None:
    from podium.pipeline import train

    with pytest.raises(PodiumError, match="predict.tta view transpose turns a 32x24 .* into 24x32"):
        train(single_dir, merge(PodiumConfig(), [*tiny, "model.img_size=32x24", "predict.tta=d4"]))
    with pytest.raises(PodiumError, match="aug.ops=random_resized_crop,rotate90 gives 24x32 training images"):
        train(single_dir, merge(PodiumConfig(), [*tiny, "model.img_size=32x24",
                                                 "aug.ops=random_resized_crop,rotate90"]))
    assert not (tmp_path / "runs").exists()
    train(single_dir, merge(PodiumConfig(), [*tiny, "model.img_size=32x24", "predict.tta=flips",
                                             "aug.ops=rotate90,random_resized_crop", "cv.train_folds=0"]))
