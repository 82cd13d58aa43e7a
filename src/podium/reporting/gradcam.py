"""Grad-CAM heatmaps with the ``grad-cam`` package (pytorch-grad-cam) on a fold's trained model.

The target layer comes from the timm architecture's ``feature_info`` (the stages timm itself exposes as features):
the last stage for a CNN (a feature map N x C x H x W); for a transformer, whose last stage gives tokens
(N x L x C), the input of the last block (its output's patch tokens do not reach a class-token head), turned
back into a map by ``token_reshape`` (prefix tokens dropped, the patch grid restored). An architecture without
``feature_info``, or whose stage output is neither, is reported as unsupported in one clear line.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from podium.data.pixels.preprocessing import Preprocessing
from podium.data.training.transforms import create_transform
from podium.tasks.task import Task


class Unsupported(Exception):
    """Grad-CAM cannot be computed for this architecture (the message says why)."""


@dataclass(frozen=True)
class CamTarget:
    """The layer Grad-CAM reads, and how its output becomes a feature map."""

    layer: torch.nn.Module
    name: str
    reshape: Callable[[torch.Tensor], torch.Tensor] | None


def _stage_output(model: torch.nn.Module, layer: torch.nn.Module, hw: tuple[int, int]) -> torch.Tensor:
    """The output of ``layer`` on a dummy image (to tell a feature map from tokens)."""
    seen: list[torch.Tensor] = []
    handle, training = layer.register_forward_hook(lambda _m, _i, out: seen.append(out)), model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *hw))
    finally:
        handle.remove()
        model.train(training)
    out = seen[-1]
    return out[0] if isinstance(out, (tuple, list)) else out


def token_reshape(prefix: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Tokens (N, prefix + H*W, C) -> map (N, C, H, W) for a square patch grid."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)

    return reshape


def cam_target(model: torch.nn.Module, hw: tuple[int, int]) -> CamTarget:
    """The Grad-CAM target layer of a timm ``model`` at input ``hw`` (height, width), or ``Unsupported`` saying
    why."""
    info = getattr(model, "feature_info", None)
    modules = [f.get("module") for f in info] if isinstance(info, list) else []
    modules = [m for m in modules if m]
    if not modules:
        raise Unsupported(f"{type(model).__name__} exposes no feature stages (timm feature_info)")
    last = model.get_submodule(modules[-1])
    out = _stage_output(model, last, hw)
    if out.ndim == 4:
        return CamTarget(last, modules[-1], None)
    if out.ndim == 3 and len(modules) > 1:
        prefix = int(getattr(model, "num_prefix_tokens", 0))
        if math.isqrt(out.shape[1] - prefix) ** 2 == out.shape[1] - prefix:
            return CamTarget(model.get_submodule(modules[-2]), modules[-2], token_reshape(prefix))
    raise Unsupported(f"{type(model).__name__}'s last stage {modules[-1]} gives a {tuple(out.shape)} output, "
                      "neither a feature map nor a square grid of tokens")


def model_input(images: Sequence[np.ndarray], prep: Preprocessing) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Evaluation-resized images as the normalised batch the model sees, and the same images (uint8 RGB) to draw
    the heatmaps on."""
    tf = create_transform(prep)
    shown = [tf(image=img)["image"] for img in images]
    x = torch.from_numpy(np.stack(shown)).permute(0, 3, 1, 2).contiguous()
    return prep.normalize(x, channels_last=False), shown


def grad_cam(model: torch.nn.Module, prep: Preprocessing, images: Sequence[np.ndarray], classes: Sequence[int],
             batch: int = 8, task: Task | None = None, num_classes: int = 0) -> list[np.ndarray]:
    """Grad-CAM of class ``classes[i]`` on ``images[i]`` (HxWx3 uint8 RGB), overlaid on the resized image.

    ``task`` (as trained, ``Checkpoint.resolved_task``) says what is explained for a class (``Task.evidence``: the
    class's logit, or for ordinal codings the outputs that separate the grade from its neighbours) over
    ``num_classes`` classes; without it, the class's logit."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def explain(c: int) -> Callable[[torch.Tensor], torch.Tensor]:
        if task is None:
            return ClassifierOutputTarget(c)
        return lambda out: task.evidence(out, c, num_classes)

    model = model.float().eval()
    target = cam_target(model, prep.hw)
    out: list[np.ndarray] = []
    with GradCAM(model=model, target_layers=[target.layer], reshape_transform=target.reshape) as cam:
        for start in range(0, len(images), batch):
            x, shown = model_input(images[start:start + batch], prep)
            maps = cam(input_tensor=x, targets=[explain(int(c)) for c in classes[start:start + batch]])
            out += [show_cam_on_image(img.astype(np.float32) / 255.0, m, use_rgb=True) for img, m in zip(shown, maps)]
    return out
