"""TTA views: pure functions on a batch (N, C, H, W), registered by name; their logits are averaged."""

from __future__ import annotations

from collections.abc import Callable

import torch

from podium.core.errors import PodiumError
from podium.core.registry import Registry

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


@VIEWS.register("rot90")
def rot90(x: torch.Tensor) -> torch.Tensor:
    """A quarter turn counter-clockwise."""
    return x.rot90(1, (2, 3))


@VIEWS.register("rot270")
def rot270(x: torch.Tensor) -> torch.Tensor:
    """A quarter turn clockwise."""
    return x.rot90(3, (2, 3))


@VIEWS.register("antitranspose")
def antitranspose(x: torch.Tensor) -> torch.Tensor:
    """Mirrored about the anti-diagonal (square inputs only)."""
    return x.rot90(1, (2, 3)).flip(3)


# Named sets of views, usable wherever a view name is (predict.tta=d4): the full dihedral group is the 8 symmetries
# of a square, the classic 8x TTA of top Kaggle solutions for images without a canonical orientation.
VIEWS.register("flips")(("identity", "hflip", "vflip", "hvflip"))
VIEWS.register("rot4")(("identity", "rot90", "hvflip", "rot270"))
VIEWS.register("d4")(("identity", "hflip", "vflip", "hvflip", "transpose", "antitranspose", "rot90", "rot270"))


# The views of a prediction without TTA, and the scales it runs at.
PLAIN: tuple[str, ...] = ("identity",)
PLAIN_SCALES: tuple[float, ...] = (1.0,)


def is_plain(views: tuple[str, ...] | list[str], scales: tuple[float, ...] | list[float]) -> bool:
    """Whether ``views`` at ``scales`` are a prediction without TTA (the identity view at scale 1)."""
    return view_names(views) == list(PLAIN) and tuple(scales) == PLAIN_SCALES


def view_names(names: tuple[str, ...] | list[str]) -> list[str]:
    """The single views that ``names`` stand for, sets expanded, each once, in order (raises for an unknown name)."""
    out: list[str] = []
    for name in names:
        item = VIEWS.get(name)
        for single in item if isinstance(item, tuple) else (name,):
            if single not in out:
                out.append(single)
    return out


def check_shape_kept(names: tuple[str, ...] | list[str], hw: tuple[int, int]) -> None:
    """Every view of ``names`` must keep an input of ``hw`` (height, width) that shape: the views of a batch share one
    forward pass, and a quarter turn of a rectangle would not fit beside the others. Judged on the views themselves,
    so a newly registered view is checked too."""
    x = torch.zeros(1, 1, *hw)
    for name in view_names(names):
        out = VIEWS.get(name)(x).shape[2:]
        if tuple(out) != tuple(hw):
            raise PodiumError(f"predict.tta view {name} turns a {hw[0]}x{hw[1]} (height x width) input into "
                              f"{out[0]}x{out[1]}; with a rectangular model.img_size use views that keep the shape "
                              "(identity, hflip, vflip, hvflip, flips), or a square size.")


def check_views(names: tuple[str, ...] | list[str]) -> list[View]:
    """The view functions for ``names``, sets expanded (raises for an unknown name)."""
    return [VIEWS.get(n) for n in view_names(names)]
