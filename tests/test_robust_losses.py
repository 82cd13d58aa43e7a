"""The noise-robust losses: each matches its formula on a few values, bounds a wrong label's pull, and trains every
task it declares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from podium.engine import losses as rl
from podium.engine.losses import LOSSES
from podium.tasks.ordinal import ORDINAL_LOSSES
from podium.tasks.task import TASKS, get_task

ROBUST = ["bitempered", "taylor", "sce", "gce"]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]])
LABELS = np.array([0, 2, 0])


def _value(name: str, **options: float) -> float:
    fn = LOSSES.get(name)(0.0, None, task=get_task("multiclass"), **options)
    return float(fn(torch.tensor(LOGITS), torch.tensor(LABELS)))


def test_taylor_is_its_series() -> None:
    p = _softmax(LOGITS)[np.arange(3), LABELS]
    assert _value("taylor") == pytest.approx(np.mean((1 - p) + (1 - p) ** 2 / 2), rel=1e-6)
    assert _value("taylor", order=1) == pytest.approx(np.mean(1 - p), rel=1e-6)  # order 1 is MAE on p


def test_gce_is_box_cox() -> None:
    p = _softmax(LOGITS)[np.arange(3), LABELS]
    assert _value("gce") == pytest.approx(np.mean((1 - p ** 0.7) / 0.7), rel=1e-6)


def test_sce_is_forward_plus_reverse() -> None:
    p = _softmax(LOGITS)[np.arange(3), LABELS]
    expected = 0.1 * -np.log(p) + 1.0 * -np.log(1e-4) * (1 - p)  # one-hot targets: log 0 clipped to log 1e-4
    assert _value("sce") == pytest.approx(np.mean(expected), rel=1e-5)


def _tempered_softmax_bisect(a: np.ndarray, t: float) -> np.ndarray:
    """An independent tempered softmax: the normaliser found by bisection, not the paper's fixed point."""
    def exp_t(u: np.ndarray) -> np.ndarray:
        return np.maximum(1 + (1 - t) * u, 0) ** (1 / (1 - t))
    lo, hi = a.max() - 50.0, a.max() + 50.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if exp_t(a - mid).sum() > 1 else (lo, mid)
    return exp_t(a - (lo + hi) / 2)


def test_bitempered_matches_the_paper() -> None:
    t1, t2 = 0.8, 1.2
    p = np.stack([_tempered_softmax_bisect(row, t2) for row in LOGITS])
    assert p.sum(axis=1) == pytest.approx(np.ones(3), abs=1e-6)
    torch_p = rl.tempered_softmax(torch.tensor(LOGITS), t2, iterations=30).numpy()
    assert torch_p == pytest.approx(p, abs=1e-4)

    def log_t(u: np.ndarray) -> np.ndarray:
        return (u ** (1 - t1) - 1) / (1 - t1)
    y = np.eye(3)[LABELS]
    per = (y * log_t(y + 1e-10) - y * log_t(p) - y ** (2 - t1) / (2 - t1) + p ** (2 - t1) / (2 - t1)).sum(axis=1)
    assert _value("bitempered") == pytest.approx(per.mean(), rel=1e-3)
    # t1 = t2 = 1 is plain cross-entropy
    ce = -np.log(_softmax(LOGITS)[np.arange(3), LABELS]).mean()
    assert _value("bitempered", t1=1.0, t2=1.0) == pytest.approx(ce, rel=1e-6)


def test_multilabel_is_one_two_class_problem_per_class() -> None:
    z = torch.tensor([[1.5, -0.5], [0.2, 2.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    multi = get_task("multilabel")
    for name in ROBUST:
        got = float(LOSSES.get(name)(0.0, None, task=multi)(z, y))
        pairs = torch.stack([z, torch.zeros_like(z)], -1).reshape(-1, 2)
        cls = (1 - y).long().reshape(-1)  # column 0 is "present"
        single = float(LOSSES.get(name)(0.0, None, task=get_task("multiclass"))(pairs, cls))
        assert got == pytest.approx(single, rel=1e-5), name


@pytest.mark.parametrize("name", ROBUST)
def test_a_wrong_label_pulls_less_than_with_cross_entropy(name: str) -> None:
    """The gradient of a confidently contradicted label is bounded: smaller than cross-entropy's."""
    def pull(loss_name: str) -> float:
        z = torch.tensor([[6.0, 0.0, 0.0]], requires_grad=True)
        LOSSES.get(loss_name)(0.0, None, task=get_task("multiclass"))(z, torch.tensor([1])).backward()
        return float(z.grad.norm())
    assert pull(name) < pull("ce")


def _learnable(task_name: str, n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Features that a linear model separates, with targets of the task's kind."""
    rng = np.random.default_rng(seed)
    k = 2 if task_name == "binary" else 4
    cls = rng.integers(0, k, n)
    if task_name == "multilabel":  # one or two labels per image, each lighting its own feature
        y = np.eye(k)[cls]
        y[np.arange(n) % 2 == 0, rng.integers(0, k, n)[np.arange(n) % 2 == 0]] = 1.0
        x = rng.normal(0, 0.3, (n, 8)) + np.pad(y, ((0, 0), (0, 8 - k))) * 2.0
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32), k
    x = rng.normal(0, 0.3, (n, 8)) + np.eye(8)[cls] * 2.0
    return torch.tensor(x, dtype=torch.float32), torch.tensor(cls), k


@pytest.mark.parametrize("name", ROBUST)
def test_each_loss_trains_every_task_it_declares(name: str) -> None:
    builder = LOSSES.get(name)
    declared = [t for t in TASKS if set(TASKS.get(t).shapes) & set(builder.shapes)]
    declared += ["ordinal"] if name in ORDINAL_LOSSES else []
    assert sorted(set(declared)) == ["binary", "multiclass", "multilabel", "ordinal"]
    for task_name in sorted(set(declared)):
        task = get_task(task_name)
        x, y, k = _learnable(task_name)
        if task_name == "ordinal":
            task = task.for_loss(name, k)  # trained as a softmax over grades (the coding of the same name)
        torch.manual_seed(0)
        model = torch.nn.Linear(8, task.outputs(k))
        loss_fn = builder(0.1, None, task=task)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        first = loss_fn(model(x), y).item()
        for _ in range(150):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
        assert loss.item() < first, (name, task_name)
        probs = task.probabilities(model(x).detach().numpy())
        pred = (probs > 0.5).astype(int) if task.multilabel else probs.argmax(1)
        truth = y.numpy()
        assert (pred == truth).mean() > 0.9, (name, task_name)


@pytest.mark.parametrize("name", ROBUST)
def test_soft_targets_of_one_class_equal_class_indices_and_mixup_mixes(name: str) -> None:
    """MixUp/CutMix and soft labels hand the losses (N, C) rows: a one-hot row is its class index; Taylor and
    generalized CE are linear in the target, so a mixed row's loss mixes its two classes' losses (the reverse term of
    sce and the tempered log of bi-tempered read the target non-linearly: there the mixed target must count)."""
    fn = LOSSES.get(name)(0.1, None, task=get_task("multiclass"))
    z = torch.tensor(LOGITS, dtype=torch.float32)
    onehot = torch.eye(3)[LABELS]
    assert float(fn(z, onehot)) == pytest.approx(float(fn(z, torch.tensor(LABELS))), rel=1e-5)
    other = torch.eye(3)[(LABELS + 1) % 3]
    mixed = float(fn(z, 0.3 * onehot + 0.7 * other))
    if name in ("taylor", "gce"):
        assert mixed == pytest.approx(0.3 * float(fn(z, onehot)) + 0.7 * float(fn(z, other)), rel=1e-5)
    else:
        assert np.isfinite(mixed) and mixed not in (float(fn(z, onehot)), float(fn(z, other)))
