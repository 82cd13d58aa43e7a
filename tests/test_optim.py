import numpy as np
import pytest
import torch

from podium.config import TrainConfig
from podium.engine.losses import create_loss
from podium.engine.optim import create_optimizer, create_scheduler, warmup_cosine
from podium.tasks.task import get_task


def test_warmup_then_cosine() -> None:
    f = warmup_cosine(10, 110, 0.01)
    values = [f(s) for s in range(110)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] == pytest.approx(0.01, abs=1e-3)


def test_scheduler_steps_per_update() -> None:
    model = torch.nn.Linear(4, 2)
    cfg = TrainConfig(epochs=2, lr=0.1, warmup_epochs=0.5)
    opt = create_optimizer(model, cfg)
    sched = create_scheduler(opt, cfg, updates_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.argmax(lrs) == 4 and lrs[4] == pytest.approx(0.1) and lrs[-1] < 0.01


def test_no_weight_decay_on_biases() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    groups = create_optimizer(model, TrainConfig(weight_decay=0.05)).param_groups
    decays = {g["weight_decay"]: sum(p.numel() for p in g["params"]) for g in groups}
    assert decays == {0.0: 12, 0.05: 16}


def test_losses_smoothing_and_weights() -> None:
    y = np.array([0, 0, 0, 1])
    ce = create_loss("auto", get_task("binary"), 0.0, "balanced", y, 2)
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.5]])
    w = torch.tensor([4 / (2 * 3), 4 / (2 * 1)])
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), weight=w)
    assert ce(logits, torch.tensor([0, 1])).item() == pytest.approx(expected.item())
    bce = create_loss("auto", get_task("multilabel"), 0.2, "none", np.eye(3, dtype=int), 3)
    target = torch.tensor([[1.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(1, 2), torch.tensor([[0.9, 0.1]]))
    assert bce(torch.zeros(1, 2), target).item() == pytest.approx(expected.item())


def test_adamw_is_fused_on_cpu_and_matches_the_reference_loop() -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 3)
    b = torch.nn.Linear(8, 3)
    b.load_state_dict(a.state_dict())
    cfg = TrainConfig(device="cpu", lr=0.01, weight_decay=0.05)
    fused = create_optimizer(a, cfg)
    assert all(g["fused"] for g in fused.param_groups)
    loop = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]}
                              for g in create_optimizer(b, cfg).param_groups], lr=0.01, foreach=False)
    x = torch.randn(16, 8)
    for opt, model in ((fused, a), (loop, b)):
        for _ in range(5):
            model(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
