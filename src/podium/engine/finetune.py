"""Fine-tuning a pretrained backbone: which parameters are the head, head-only warm-up epochs with the backbone
frozen, and the BatchNorm mode (see FinetuneConfig). The optimiser side (discriminative learning rates, per-group
schedules) lives in podium.engine.optim."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch.utils.hooks import RemovableHandle

from podium.config import FinetuneConfig
from podium.core.registry import Registry
from podium.models.weights import WEIGHT_SOURCES

BnPolicy = Callable[[int, FinetuneConfig], bool]
BN_MODES: Registry[BnPolicy] = Registry("BatchNorm mode")


@BN_MODES.register("train")
def bn_train(epoch: int, ft: FinetuneConfig) -> bool:
    """BatchNorm layers normalise with batch statistics and update their running statistics (plain training)."""
    return False


@BN_MODES.register("frozen_eval")
def bn_frozen_eval(epoch: int, ft: FinetuneConfig) -> bool:
    """The backbone's BatchNorm layers use the pretrained statistics while the backbone is frozen."""
    return epoch < ft.freeze_epochs


@BN_MODES.register("eval")
def bn_eval(epoch: int, ft: FinetuneConfig) -> bool:
    """The backbone's BatchNorm layers always use (and keep) the pretrained statistics."""
    return True


def head_parameter_names(model: torch.nn.Module) -> set[str]:
    """Names of the classifier's parameters (what timm's ``get_classifier`` returns); the rest is the backbone."""
    get = getattr(model, "get_classifier", None)
    head = get() if get is not None else None
    if not isinstance(head, torch.nn.Module):
        return set()
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def is_frozen(epoch: int, ft: FinetuneConfig) -> bool:
    """Whether the backbone is frozen during (0-based) ``epoch``."""
    return epoch < ft.freeze_epochs


def set_backbone_trainable(model: torch.nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze every parameter outside the classifier (frozen ones get no gradient and no update)."""
    head = head_parameter_names(model)
    for name, p in model.named_parameters():
        if name not in head:
            p.requires_grad_(trainable)


def keep_bn_eval(model: torch.nn.Module) -> list[RemovableHandle]:
    """Make the backbone's BatchNorm layers run in eval mode even while the model is in train mode.

    The training loop calls ``model.train()`` every epoch, so the mode is forced just before each BatchNorm forward
    by a hook; remove the returned handles to go back to plain train mode.
    """

    def force_eval(module: torch.nn.Module, args: tuple) -> None:
        module.training = False

    head = head_parameter_names(model)
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and f"{name}.weight" not in head:
            handles.append(module.register_forward_pre_hook(force_eval))
    return handles


def prepare_epoch(model: torch.nn.Module, epoch: int, ft: FinetuneConfig,
                  handles: list[RemovableHandle]) -> list[RemovableHandle]:
    """Set the backbone's trainability and BatchNorm mode for ``epoch``; returns the BatchNorm hooks now active."""
    set_backbone_trainable(model, not is_frozen(epoch, ft))
    want_eval = BN_MODES.get(ft.bn)(epoch, ft)
    if want_eval and not handles:
        return keep_bn_eval(model)
    if not want_eval and handles:
        for h in handles:
            h.remove()
        for m in model.modules():  # hooks left BatchNorm flags at False: restore the model's own mode
            m.training = model.training
        return []
    return handles


def effective_finetune(ft: FinetuneConfig, pretrained: str) -> FinetuneConfig:
    """The recipe that applies: a randomly initialised backbone (``model.pretrained=none``) has nothing to preserve,
    so it is neither frozen nor given a smaller learning rate, and its BatchNorm layers train normally."""
    if WEIGHT_SOURCES.get(pretrained).pretrained:
        return ft
    return replace(ft, freeze_epochs=0, backbone_lr=1.0, layer_decay=0.0, bn="train")
