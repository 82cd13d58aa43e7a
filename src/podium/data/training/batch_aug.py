"""Batch augmentations that mix pairs of images and their labels: MixUp and CutMix, registered by name.

The mixing itself (Beta-distributed weights, CutMix boxes with the area-corrected weight, switching between the two,
the per-batch probability) is timm's ``Mixup``. timm builds one-hot targets from class indices only; podium's tasks
include multilabel 0/1 matrices, so ``SoftTargetMixup`` mixes the task's own one-hot/multi-hot targets instead and
leaves label smoothing to the loss (cross-entropy, BCE and focal all accept soft targets).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from timm.data import Mixup

from podium.config import AugConfig
from podium.core.registry import Registry
from podium.tasks.task import Task

BatchAug = Callable[[AugConfig], dict[str, Any]]
BATCH_AUGS: Registry[BatchAug] = Registry("batch augmentation")


@BATCH_AUGS.register("mixup")
def mixup(aug: AugConfig) -> dict[str, Any]:
    """Blend two images with weight lam ~ Beta(aug.mixup_alpha, aug.mixup_alpha), and their labels alike."""
    return {"mixup_alpha": aug.mixup_alpha}


@BATCH_AUGS.register("cutmix")
def cutmix(aug: AugConfig) -> dict[str, Any]:
    """Paste a box of another image (area ~ Beta(aug.cutmix_alpha, aug.cutmix_alpha)); labels mixed by area."""
    return {"cutmix_alpha": aug.cutmix_alpha}


class SoftTargetMixup(Mixup):
    """timm's batch Mixup/CutMix on any task's targets: returns the mixed images and soft targets (N, C)."""

    def __init__(self, task: Task, num_classes: int, **kwargs: Any) -> None:
        super().__init__(num_classes=num_classes, label_smoothing=0.0, mode="batch", **kwargs)
        self.task = task

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch in place with its reverse (timm's pairing) and mix the targets with the same weight."""
        lam = self._mix_batch(x)  # timm's own sampling and mixing of the images
        if y.is_floating_point():  # soft labels, pseudo-labels or [truth, teacher] rows: mixed as they are
            soft = y.float()
        else:
            soft = torch.as_tensor(self.task.onehot(y.cpu().numpy(), self.num_classes), dtype=torch.float32,
                                   device=x.device)
        return x, soft * lam + soft.flip(0) * (1.0 - lam)


def create_batch_aug(aug: AugConfig, task: Task, num_classes: int) -> SoftTargetMixup | None:
    """The configured batch augmentation (None when ``aug.batch`` is empty)."""
    if not aug.batch:
        return None
    kwargs: dict[str, Any] = {"mixup_alpha": 0.0, "cutmix_alpha": 0.0}
    for name in aug.batch:
        kwargs.update(BATCH_AUGS.get(name)(aug))
    return SoftTargetMixup(task, num_classes, prob=aug.batch_prob, switch_prob=aug.switch_prob, **kwargs)
