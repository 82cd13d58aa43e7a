import albumentations as A
import cv2
import numpy as np
import pytest

from podium.config import AugConfig
from podium.data.transforms import AUGMENTATIONS, ColorJitter, ShiftScaleRotate, color_matrix, create_transform
from podium.errors import PodiumError
from podium.models.preprocessing import Preprocessing

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


def test_shift_scale_rotate_identity_and_shape() -> None:
    img = photo()
    t = ShiftScaleRotate(0.1, 0.06, 15, cv2.INTER_LINEAR, p=1.0)
    np.testing.assert_array_equal(t.apply(img, angle=0, scale=1, dx=0, dy=0), img)
    out = t(image=img)["image"]
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    flipped = t.apply(img, angle=180, scale=1, dx=0, dy=0)
    np.testing.assert_array_equal(flipped, img[::-1, ::-1])


def test_seeded_pipeline_is_reproducible() -> None:
    img = photo()
    a = A.Compose([ShiftScaleRotate(0.1, 0.06, 15, cv2.INTER_LINEAR, p=1), ColorJitter(0.2, 0.05, p=1)], seed=3)
    b = A.Compose([ShiftScaleRotate(0.1, 0.06, 15, cv2.INTER_LINEAR, p=1), ColorJitter(0.2, 0.05, p=1)], seed=3)
    np.testing.assert_array_equal(a(image=img)["image"], b(image=img)["image"])


@pytest.mark.parametrize("train", [True, False])
def test_pipelines_end_at_model_size_uint8(train: bool) -> None:
    t = create_transform(PREP, AugConfig(), train=train)
    for seed in range(5):
        out = t(image=photo(seed))["image"]
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8


PREP24 = Preprocessing(24, "squash", "bicubic", (0.5,) * 3, (0.2,) * 3)


@pytest.mark.parametrize("resize", ["squash", "crop"])
def test_eval_transform_gives_model_size_uint8(resize: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    prep = Preprocessing(24, resize, "bicubic", (0.5,) * 3, (0.2,) * 3)
    out = create_transform(prep)(image=img)["image"]
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8


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
