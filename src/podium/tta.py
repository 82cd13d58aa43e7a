"""TTA views: pure functions on a batch (N, C, H, W), registered by name; their logits are averaged."""

from __future__ import annotations

from collections.abc import Callable

import torch

from podium.registry import Registry

View = Callable[[torch.Tensor], torch.Tensor]
VIEWS: Registry[View] = Registry("TTA view")


@VIEWS.register("identity")
def identity(x: torch.Tensor) -> torch.Tensor:
    """The image as it is."""
    return x


@VIEWS.register("hflip")
def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirrored left-right."""
    return x.flip(3)


@VIEWS.register("vflip")
def vflip(x: torch.Tensor) -> torch.Tensor:
    """Mirrored top-bottom."""
    return x.flip(2)


@VIEWS.register("hvflip")
def hvflip(x: torch.Tensor) -> torch.Tensor:
    """Mirrored both ways (a 180 degree rotation)."""
    return x.flip(2).flip(3)


@VIEWS.register("transpose")
def transpose(x: torch.Tensor) -> torch.Tensor:
    """Rows and columns swapped (square inputs only)."""
    return x.transpose(2, 3)


def check_views(names: tuple[str, ...] | list[str]) -> list[View]:
    """The view functions for ``names`` (raises for an unknown name)."""
    return [VIEWS.get(n) for n in names]
