import random

import albumentations as A
import cv2
import numpy as np
import pytest

from podium.config import AugConfig
from podium.core.errors import PodiumError
from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.transforms import (
    AUGMENTATIONS,
    ColorJitter,
    Flip,
    FusedWarp,
    RandomResizedCrop,
    Rotate90,
    ShiftScaleRotate,
    color_matrix,
    create_transform,
    seed_transform,
    warp,
)

PREP = Preprocessing(32, "squash", "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8), (5, 5), 0)


def test_color_matrix_identity_and_limits() -> None:
    img = photo()
    mean = float(np.dot(cv2.mean(img)[:3], [0.299, 0.587, 0.114]))
    np.testing.assert_array_equal(cv2.transform(img, color_matrix(1, 1, 1, 0, mean)), img)
    gray = cv2.transform(img, color_matrix(1, 1, 0, 0, mean)).astype(int)  # no saturation: R == G == B
    assert np.abs(gray - gray[..., :1]).max() <= 1
    flat = cv2.transform(img, color_matrix(1, 0, 1, 0, mean))  # no contrast: the mean gray everywhere
    assert np.abs(flat.astype(int) - round(mean)).max() <= 1
    brighter = cv2.transform(img, color_matrix(1.2, 1, 1, 0, mean)).astype(int)
    np.testing.assert_allclose(brighter, np.clip(np.round(img * 1.2), 0, 255), atol=1)
    grays = np.repeat(np.arange(0, 256, 5, dtype=np.uint8)[None, :, None], 3, axis=2)
    rotated = cv2.transform(grays, color_matrix(1, 1, 1, 0.3, 128.0))  # hue turns leave grays gray
    assert np.abs(rotated.astype(int) - grays).max() <= 1


def test_color_hue_changes_colours() -> None:
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    out = cv2.transform(red, color_matrix(1, 1, 1, 0.25, 60.0))
    assert out[0, 0, 0] < 150 and out[0, 0].max() > 0


def test_flips_and_quarter_turns_are_exact() -> None:
    img = photo()
    h, w = img.shape[:2]
    for op, want in ((Flip(horizontal=True), img[:, ::-1]), (Flip(horizontal=False), img[::-1])):
        m, oh, ow = op.sample(random.Random(0), h, w)
        np.testing.assert_array_equal(warp(img, m, (oh, ow), cv2.INTER_LINEAR), want)
    turns = set()
    for seed in range(12):
        k = random.Random(seed).randint(0, 3)
        m, oh, ow = Rotate90().sample(random.Random(seed), h, w)
        np.testing.assert_array_equal(warp(img, m, (oh, ow), cv2.INTER_LINEAR), np.rot90(img, k))
        turns.add(k)
    assert turns == {0, 1, 2, 3}


def test_random_resized_crop_matches_crop_then_resize() -> None:
    img = photo()
    op = RandomResizedCrop((32, 32), (0.3, 1.0))
    for seed in range(8):
        x0, y0, cw, ch = op.crop(random.Random(seed), *img.shape[:2])
        assert 0 <= x0 and x0 + cw <= img.shape[1] and 0 <= y0 and y0 + ch <= img.shape[0]
        m, oh, ow = op.sample(random.Random(seed), *img.shape[:2])
        got = warp(img, m, (oh, ow), cv2.INTER_LINEAR).astype(int)
        want = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (32, 32), interpolation=cv2.INTER_LINEAR).astype(int)
        assert got.shape == want.shape == (32, 32, 3)
        assert np.abs(got - want)[2:-2, 2:-2].max() <= 2 and np.abs(got - want).mean() < 1


def test_shift_scale_rotate_identity_and_half_turn() -> None:
    img = photo()
    h, w = img.shape[:2]
    np.testing.assert_allclose(ShiftScaleRotate.matrix(h, w, 0, 1, 0, 0), np.eye(3), atol=1e-12)
    flipped = warp(img, ShiftScaleRotate.matrix(h, w, 180, 1, 0, 0), (h, w), cv2.INTER_LINEAR)
    np.testing.assert_array_equal(flipped, img[::-1, ::-1])


def test_fused_warp_equals_the_ops_one_after_the_other() -> None:
    img = photo()
    ops = [RandomResizedCrop((32, 32), (0.5, 1.0)), Flip(True, p=1.0), ShiftScaleRotate(0.1, 0.06, 15, p=1.0)]
    for seed in range(5):
        rng, seq, (h, w) = random.Random(seed), img, img.shape[:2]
        for op in ops:
            m, h, w = op.sample(rng, h, w)
            seq = warp(seq, m, (h, w), cv2.INTER_LINEAR)
        fused = FusedWarp(ops, cv2.INTER_LINEAR)
        fused.py_random = random.Random(seed)
        params = fused.get_params_dependent_on_data({"shape": img.shape}, {})
        one = fused.apply(img, **params)
        assert one.shape == seq.shape == (32, 32, 3)
        assert np.abs(one.astype(int) - seq.astype(int))[4:-4, 4:-4].mean() < 3  # one interpolation instead of three


def test_large_shrinks_are_anti_aliased() -> None:
    board = ((np.indices((256, 256)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, axis=2)
    m, h, w = RandomResizedCrop((32, 32), (1.0, 1.0), (1.0, 1.0)).sample(random.Random(0), 256, 256)
    out = warp(board, m, (h, w), cv2.INTER_LINEAR)
    assert np.abs(out.astype(int) - 127.5).max() <= 2  # sampling without averaging would give 0s and 255s


def test_seeded_pipeline_is_reproducible() -> None:
    img = photo()

    def pipeline(seed: int) -> A.Compose:
        warps = [RandomResizedCrop((32, 32), (0.5, 1)), Flip(True), ShiftScaleRotate(0.1, 0.06, 15)]
        return A.Compose([FusedWarp(warps, cv2.INTER_LINEAR), ColorJitter(0.2, 0.05, p=1)], seed=seed)

    np.testing.assert_array_equal(pipeline(3)(image=img)["image"], pipeline(3)(image=img)["image"])
    assert not np.array_equal(pipeline(3)(image=img)["image"], pipeline(4)(image=img)["image"])


def test_seed_transform_gives_each_op_its_own_stream() -> None:
    t = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)])
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    seen = set()
    for seed in range(64):
        seed_transform(t, seed)
        out = t(image=img)["image"]
        seen.add((bool(out[0, 0, 0] in (3, 15)), bool(out[0, 0, 0] in (12, 15))))  # (flipped lr, flipped ud)
    assert seen == {(False, False), (True, False), (False, True), (True, True)}  # set_random_seed gives 2 of these
    seed_transform(t, 5)
    a = t(image=img)["image"]
    seed_transform(t, 5)
    np.testing.assert_array_equal(t(image=img)["image"], a)


def test_consecutive_geometric_ops_are_fused() -> None:
    t = create_transform(PREP, AugConfig(), train=True)
    kinds = [type(op).__name__ for op in t.transforms]
    assert kinds == ["FusedWarp", "ColorJitter"]
    assert len(t.transforms[0].ops) == 4


@pytest.mark.parametrize("train", [True, False])
def test_pipelines_end_at_model_size_uint8(train: bool) -> None:
    t = create_transform(PREP, AugConfig(), train=train)
    for seed in range(5):
        out = t(image=photo(seed))["image"]
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


PREP24 = Preprocessing(24, "squash", "bicubic", (0.5,) * 3, (0.2,) * 3)


@pytest.mark.parametrize("resize", ["squash", "squish", "crop", "pad"])
def test_eval_transform_gives_model_size_uint8(resize: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    prep = Preprocessing(24, resize, "bicubic", (0.5,) * 3, (0.2,) * 3)
    out = create_transform(prep)(image=img)["image"]
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8


def test_pad_keeps_the_whole_image_and_pads_with_the_mean_colour() -> None:
    img = np.full((20, 40, 3), 255, np.uint8)  # wide white image
    prep = Preprocessing(24, "pad", "bilinear", (0.5, 0.25, 0.0), (0.2,) * 3)
    out = create_transform(prep)(image=img)["image"]
    assert out.shape == (24, 24, 3)
    assert (out[12] == 255).all()  # the middle rows: the image, full width
    assert tuple(out[0, 0]) == (128, 64, 0)  # the padding: the model's mean colour, 0 after normalisation


@pytest.mark.parametrize("resize", ["squash", "crop", "pad"])
@pytest.mark.parametrize("shape", [(40, 60, 3), (70, 30, 3), (16, 16, 3)])
def test_rectangular_inputs_are_height_by_width_for_every_resize(resize: str, shape: tuple[int, int, int]) -> None:
    img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    prep = Preprocessing(28, resize, "bilinear", (0.5,) * 3, (0.2,) * 3, 0.875, width=20)
    assert prep.hw == (28, 20) and prep.size_label == "28x20"
    assert create_transform(prep)(image=img)["image"].shape == (28, 20, 3)
    train = create_transform(prep, AugConfig(), train=True)
    for seed in range(4):
        seed_transform(train, seed)
        assert train(image=img)["image"].shape == (28, 20, 3)


def test_pad_fills_a_rectangle_with_the_chosen_gray() -> None:
    img = np.full((20, 20, 3), 255, np.uint8)  # a white square into a 24 wide, 12 high input: bars left and right
    out = create_transform(Preprocessing(12, "pad", "bilinear", (0.5,) * 3, (0.2,) * 3, width=24, pad_fill=7))(
        image=img)["image"]
    assert out.shape == (12, 24, 3) and (out[:, 6:18] == 255).all() and (out[:, :6] == 7).all()


def test_crop_of_a_rectangle_keeps_the_centre_at_the_evaluation_crop() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 50:] = 255  # left half black, right half white
    prep = Preprocessing(40, "crop", "bilinear", (0.5,) * 3, (0.2,) * 3, crop_pct=0.8, width=20)
    out = create_transform(prep)(image=img)["image"]
    assert out.shape == (40, 20, 3) and (out[:, :9] == 0).all() and (out[:, 11:] == 255).all()


def test_every_augmentation_keeps_shape_and_dtype() -> None:
    img = np.random.default_rng(0).integers(0, 255, (30, 30, 3), dtype=np.uint8)
    for name in AUGMENTATIONS:
        t = create_transform(PREP24, AugConfig(ops=(name,)), train=True)
        out = t(image=img)["image"]
        assert out.shape == (24, 24, 3) and out.dtype == np.uint8, name


def test_unknown_names() -> None:
    with pytest.raises(PodiumError, match="Unknown augmentation 'hlfip'.*'hflip'"):
        create_transform(PREP24, AugConfig(ops=("hlfip",)), train=True)
    with pytest.raises(PodiumError, match="Unknown resize method"):
        create_transform(Preprocessing(8, "stretch", "bilinear", (0,) * 3, (1,) * 3))


@pytest.mark.parametrize("resize", ["pad", "squash", "crop"])
def test_presize_makes_training_honour_the_resize_method(resize: str) -> None:
    from podium.data.training.transforms import create_transform, seed_transform

    prep = Preprocessing(32, resize, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.875, pad_fill=0)
    wide = np.full((40, 80, 3), 200, np.uint8)  # a wide white-ish image: pad letterboxes it with black bars
    whole = AugConfig(ops=("random_resized_crop",), scale_min=1.0)  # the crop keeps all of a square input
    presized = create_transform(prep, AugConfig(ops=whole.ops, scale_min=1.0, presize=1.0), train=True)
    plain = create_transform(prep, whole, train=True)
    seed_transform(presized, 0)
    seed_transform(plain, 0)
    evaluated = create_transform(prep)(image=wide)["image"]
    trained = presized(image=wide)["image"]
    assert trained.shape == evaluated.shape == (32, 32, 3)
    assert np.abs(trained.astype(int) - evaluated).max() <= 1  # training sees what evaluation sees, then augments
    if resize == "pad":  # without presizing the random crop never shows the letterbox bars
        assert trained[0].max() == 0 and plain(image=wide)["image"][0].min() > 0
