import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from podium.config import TrainConfig
from podium.data.pixels.preprocessing import Preprocessing
from podium.engine.accel import make_accelerator
from podium.engine.loop import predict_logits


class Pixels(Dataset):
    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.x[i], torch.tensor(-1), i


class Flaky(torch.nn.Module):
    """A model that runs out of CUDA memory above ``limit`` rows and counts its forward passes."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5))
        self.limit, self.calls = limit, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        self.calls.append(len(x))
        return self.net(x)


PREP = Preprocessing(8, "squash", "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
VIEWS = ("identity", "hflip", "vflip", "hvflip")


def run(model: torch.nn.Module, views_together: bool | None = True) -> np.ndarray:
    """Views stacked into one forward pass as on a GPU (None: the device's default, one view per pass on CPU)."""
    acc = make_accelerator(TrainConfig(device="cpu", precision="no", threads=1))
    loader = DataLoader(Pixels(10), batch_size=4)
    return predict_logits(model, loader, PREP, acc, VIEWS, views_together=views_together)


def test_tta_views_go_through_the_model_together() -> None:
    model = Flaky(limit=10_000)
    out = run(model)
    assert out.shape == (10, 5)
    assert model.calls == [16, 16, 8]  # one forward per batch: 4 views x 4 images, then 4 x 2


def test_tta_on_cpu_runs_one_view_per_pass_with_the_same_result() -> None:
    model = Flaky(limit=10_000)
    out = run(model, views_together=None)
    assert model.calls == [4] * 8 + [2] * 4  # the batch is loaded once; each view is its own forward pass
    np.testing.assert_allclose(out, run(Flaky(limit=10_000)), rtol=1e-5, atol=1e-6)


def test_tta_splits_views_into_passes_on_out_of_memory() -> None:
    whole = run(Flaky(limit=10_000))
    model = Flaky(limit=5)
    out = run(model)
    assert max(model.calls) <= 5
    np.testing.assert_allclose(out, whole, rtol=1e-5, atol=1e-6)
    assert model.calls[:4] == [4, 4, 4, 4]  # the first batch needed 4 passes; later batches start there


def test_tta_mean_is_the_mean_of_views() -> None:
    model = Flaky(limit=10_000)
    acc = make_accelerator(TrainConfig(device="cpu", precision="no", threads=1))
    x = Pixels(10).x
    expected = []
    with torch.no_grad():
        for view in (lambda t: t, lambda t: t.flip(3), lambda t: t.flip(2), lambda t: t.flip(2).flip(3)):
            expected.append(model(view(PREP.normalize(x, True))))
    out = predict_logits(model, DataLoader(Pixels(10), batch_size=4), PREP, acc, VIEWS)
    np.testing.assert_allclose(out, torch.stack(expected).mean(0).numpy(), rtol=1e-5, atol=1e-5)
