import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from podium.data.pixels.preprocessing import Preprocessing
from podium.engine.loop import predict_logits
from podium.engine.tta import VIEWS

PREP = Preprocessing(8, "squash", "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_views_are_pure_and_invertible() -> None:
    x = torch.arange(2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    before = x.clone()
    singles = [n for n in VIEWS if callable(VIEWS.get(n))]  # the rest are named sets of them (d4, flips, ...)
    assert len(singles) == 8
    for name in singles:
        y = VIEWS.get(name)(x)
        assert y.shape == x.shape and torch.equal(x, before)
        # the views form a group: every view's inverse is registered too (flips are their own, rot90 <-> rot270)
        assert any(torch.equal(VIEWS.get(other)(y), x) for other in singles)
    assert torch.equal(VIEWS.get("hflip")(x)[..., 0], x[..., -1])
    assert torch.equal(VIEWS.get("vflip")(x)[..., 0, :], x[..., -1, :])


def _loader(n: int = 10) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return DataLoader(TensorDataset(x, torch.zeros(n), torch.arange(n)), batch_size=4)


def test_batched_tta_equals_the_mean_of_separate_views() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    acc = Accelerator(cpu=True)
    loader = _loader()
    both = predict_logits(model, loader, PREP, acc, ("identity", "hflip", "vflip"), channels_last=False)
    separate = [predict_logits(model, loader, PREP, acc, (v,), channels_last=False)
                for v in ("identity", "hflip", "vflip")]
    assert both.shape == (10, 3)
    assert np.allclose(both, np.mean(separate, axis=0), atol=1e-5)
    assert not np.allclose(separate[0], separate[1])


def test_normalisation_on_device_matches_reference() -> None:
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    ref = (x.float() / 255 - 0.5) / 0.25
    assert torch.allclose(PREP.normalize(x), ref, atol=1e-5)
    assert PREP.normalize(x).is_contiguous(memory_format=torch.channels_last)


def test_plain_prediction_is_the_identity_view_at_scale_one() -> None:
    from podium.engine.tta import PLAIN, is_plain

    assert is_plain(PLAIN, (1.0,)) and is_plain(["identity", "identity"], [1.0])
    assert not is_plain(("identity", "hflip"), (1.0,)) and not is_plain(PLAIN, (1.0, 1.25))
    assert not is_plain(("flips",), (1.0,))
