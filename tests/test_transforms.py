import numpy as np
import pytest

from podium.config import AugConfig
from podium.data.transforms import AUGMENTATIONS, create_transform
from podium.errors import PodiumError
from podium.models.preprocessing import Preprocessing

PREP = Preprocessing(24, "squash", "bicubic", (0.5,) * 3, (0.2,) * 3)


@pytest.mark.parametrize("resize", ["squash", "crop"])
def test_eval_transform_gives_model_size_uint8(resize: str) -> None:
    img = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    prep = Preprocessing(24, resize, "bicubic", (0.5,) * 3, (0.2,) * 3)
    out = create_transform(prep)(image=img)["image"]
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8


def test_every_augmentation_keeps_shape_and_dtype() -> None:
    img = np.random.default_rng(0).integers(0, 255, (30, 30, 3), dtype=np.uint8)
    for name in AUGMENTATIONS:
        t = create_transform(PREP, AugConfig(ops=(name,)), train=True)
        out = t(image=img)["image"]
        assert out.shape == (24, 24, 3) and out.dtype == np.uint8, name


def test_unknown_names() -> None:
    with pytest.raises(PodiumError, match="Unknown augmentation 'hlfip'.*'hflip'"):
        create_transform(PREP, AugConfig(ops=("hlfip",)), train=True)
    with pytest.raises(PodiumError, match="Unknown resize method"):
        create_transform(Preprocessing(8, "stretch", "bilinear", (0,) * 3, (1,) * 3))
