"""Image preprocessing ops: what each does, that they key the cache, and that a checkpoint applies them at predict."""

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import datagen
from podium.config import DataConfig, PodiumConfig, load_config, merge
from podium.core.errors import PodiumError
from podium.data.pixels.cache import build_cache, decoded_images, store_dir
from podium.data.pixels.image_ops import IMAGE_OPS, ImageOps, image_ops, ops_of
from podium.engine.accel import make_accelerator
from podium.inference.checkpoints import predict_checkpoints
from podium.pipeline import train
from podium.validation import validate


def _ops(*names: str, **values: float) -> ImageOps:
    return image_ops(DataConfig(preprocess=names, **values))


def retina(h: int = 120, w: int = 160, center: tuple[int, int] = (90, 60), radius: int = 40,
           gradient: bool = False) -> np.ndarray:
    """A bright disc on black (RGB); with ``gradient`` the disc's lighting falls off from left to right."""
    img = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, center, radius, 1, thickness=-1)
    light = np.linspace(230, 90, w)[None, :] if gradient else np.full((1, w), 180.0)
    disc = (np.broadcast_to(light, (h, w))[:, :, None] * np.array([1.0, 0.6, 0.4])).astype(np.uint8)
    img[mask > 0] = disc[mask > 0]
    return img


def test_crop_black_crops_to_the_disc() -> None:
    out = _ops("crop_black").apply(retina())
    assert out.shape[:2] == (81, 81)  # the disc's bounding box (radius 40)
    assert out[40, 40].max() > 100 and out[0, 0].max() == 0  # centre bright, corners (outside the disc) dark
    dark = np.full((20, 30, 3), 5, np.uint8)
    assert _ops("crop_black").apply(dark).shape == dark.shape  # all below the tolerance: kept whole
    assert _ops("crop_black", black_tolerance=0).apply(dark).shape == dark.shape  # 5 > 0: nothing to crop


def test_ben_graham_removes_lighting_and_keeps_edges() -> None:
    """4 x (image - blur) + 128: smooth lighting inside the disc goes to ~128, the rim stands out."""
    img = _ops("crop_black").apply(retina(gradient=True))
    out = _ops("ben_graham").apply(img)
    assert out.shape == img.shape and out.dtype == np.uint8
    inner = np.zeros(img.shape[:2], bool)
    cv2.circle(inner.view(np.uint8), (40, 40), 25, 1, thickness=-1)
    assert img[inner].std() > 20 and out[inner].std() < img[inner].std() / 3  # lighting gone
    assert abs(float(np.median(out[inner])) - 128) < 12
    rim = np.abs(out.astype(int) - 128).max(axis=2)
    assert rim.max() > 100  # the disc's border is strong local contrast
    wider = _ops("ben_graham", ben_graham_sigma=0.2).apply(img)
    assert not np.array_equal(wider, out)  # sigma is a parameter


def test_circle_gray_and_clahe() -> None:
    img = np.full((50, 70, 3), 200, np.uint8)
    out = _ops("circle").apply(img)
    assert out[0, 0].max() == 0 and out[25, 35].min() == 200
    colour = np.dstack([np.full((8, 8), 200), np.full((8, 8), 50), np.full((8, 8), 10)]).astype(np.uint8)
    g = _ops("gray").apply(colour)
    assert g.shape == (8, 8, 3) and (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    flat = (100 + np.random.default_rng(0).integers(0, 12, (64, 64))).astype(np.uint8)
    xray = np.repeat(flat[:, :, None], 3, axis=2)
    eq = _ops("clahe").apply(xray)
    assert eq.std() > 2 * xray.std()  # contrast stretched
    assert np.abs(eq[..., 0].astype(int) - eq[..., 2]).max() <= 2  # a gray scan stays gray


def test_unknown_op_and_bad_parameters_fail_at_load() -> None:
    with pytest.raises(PodiumError, match="unknown preprocessing op 'ben_grahm'"):
        validate(load_config(None, ["data.preprocess=crop_black,ben_grahm"]))
    with pytest.raises(PodiumError, match="data.ben_graham_sigma"):
        load_config(None, ["data.ben_graham_sigma=0"])
    assert set(IMAGE_OPS.names()) >= {"ben_graham", "crop_black", "circle", "clahe", "gray"}


def test_the_cache_key_changes_with_the_list(tmp_path: Path) -> None:
    root = str(tmp_path / "cache")
    folder = tmp_path / "imgs"
    datagen.write_image(folder / "a.png", cv2.cvtColor(retina(), cv2.COLOR_RGB2BGR))
    keys = {store_dir(str(folder), 64, root, ops) for ops in (_ops(), _ops("crop_black"), _ops("ben_graham"),
                                                             _ops("crop_black", "ben_graham"),
                                                             _ops("ben_graham", "crop_black"),
                                                             _ops("crop_black", black_tolerance=30))}
    assert len(keys) == 6
    assert store_dir(str(folder), 64, root) == store_dir(str(folder), 64, root, _ops())  # no ops: the old store
    path = [str(folder / "a.png")]
    plain = build_cache(path, 200, root)[0]
    cropped = build_cache(path, 200, root, ops=_ops("crop_black"))[0]
    assert plain.shape[:2] == (120, 160) and cropped.shape[:2] == (81, 81)  # each list its own pixels
    again = decoded_images(path, 200, DataConfig(cache_dir=root), _ops("crop_black"))
    assert np.array_equal(again[0], cropped)


def test_a_checkpoint_predicts_what_training_evaluated(tmp_path: Path, tiny: tuple[str, ...]) -> None:
    """Trained with a preprocessing list: the checkpoint alone (cached or not) reproduces the OOF probabilities on
    the fold's images; without its ops it would not."""
    root = datagen.csv_single(tmp_path / "single", n=24, n_test=2)
    ops = ("data.preprocess=crop_black,ben_graham,clahe", "data.black_tolerance=45")
    run = train(root, merge(PodiumConfig(), [*tiny, *ops, "cv.train_folds=0"]))
    ckpt = run.load_best(0)
    assert ckpt.preprocessing.ops == ("crop_black", "ben_graham", "clahe")
    assert dict(ckpt.preprocessing.op_params)["black_tolerance"] == 45
    oof = run.oof
    classes = list(ckpt.classes)
    folds = pd.read_csv(run.path / "folds.csv")
    rows = folds[folds["fold"] == 0]["id"].astype(str).tolist()
    id_to_path = {str(i): str(p) for i, p in zip(*_paths(root))}
    paths = [id_to_path[i] for i in rows]
    expected = oof.set_index(oof["id"].astype(str)).loc[rows, classes].to_numpy()
    accelerator = make_accelerator(ckpt.config.train)
    for cache in (True, False):
        c = replace(ckpt, config=merge(ckpt.config, [f"data.cache={str(cache).lower()}"]))
        got = predict_checkpoints([c], rows, paths, accelerator).probs
        assert np.allclose(got, expected, atol=1e-5), cache
    bare = replace(ckpt, preprocessing=replace(ckpt.preprocessing, ops=(), op_params=()))
    assert ops_of(bare.preprocessing).names == ()
    assert not np.allclose(predict_checkpoints([bare], rows, paths, accelerator).probs, expected, atol=1e-3)


def _paths(root: Path) -> tuple[list[str], list[str]]:
    from podium.data.folders.ingest import load_competition

    comp = load_competition(root, DataConfig(), check=False)
    return comp.train["id"].astype(str).tolist(), comp.train["path"].tolist()


def test_the_contact_sheet_shows_images_after_preprocessing(tmp_path: Path) -> None:
    from podium.data.folders.ingest import load_competition
    from podium.data.inspection import THUMB, contact_sheet

    comp = load_competition(datagen.folders(tmp_path / "f", per_class=2), DataConfig(), check=False)
    sheets = {}
    for name, ops in (("plain", _ops()), ("gray", _ops("gray"))):
        sheets[name] = cv2.imread(str(contact_sheet(comp, tmp_path / f"{name}.png", ops=ops))).astype(int)
    thumbs = {k: v[2:THUMB - 2, 160 + 2:160 + THUMB - 2] for k, v in sheets.items()}  # first image of first class
    assert np.abs(thumbs["plain"][..., 0] - thumbs["plain"][..., 2]).max() > 50  # coloured stripes
    assert np.abs(thumbs["gray"][..., 0] - thumbs["gray"][..., 2]).max() <= 1
