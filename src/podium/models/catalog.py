"""``podium models``: timm architectures with where their weights would come from on this machine and the input
size and normalisation of their ``pretrained_cfg``, read from timm's registry without instantiating any model."""

from __future__ import annotations

from typing import Any

import timm
from timm.models import get_pretrained_cfg

from podium.models.weights import weight_origins


def weight_catalog(pattern: str = "", offline_only: bool = False) -> list[dict[str, Any]]:
    """One row per architecture matching ``pattern`` (fnmatch, e.g. ``*efficientnet*``; empty: all).

    ``source`` is where ``model.pretrained=auto`` would take the weights from: the origin named by the first weight
    source of ``AUTO_ORDER`` with weights for it here (``hub (cached)``, ``hub`` when the hub answers, ``cache``,
    ``packaged (pip package)``), or ``none``. ``offline_only`` keeps the architectures usable without the hub.
    """
    archs = timm.list_models(pattern or "*")
    origins = weight_origins(archs, offline=offline_only)
    rows = []
    for arch in archs:
        if offline_only and arch not in origins:
            continue
        pcfg = get_pretrained_cfg(arch)
        rows.append({"arch": arch, "source": origins.get(arch, "none"),
                     "input_size": int(getattr(pcfg, "input_size", (3, 224, 224))[-1]),
                     "mean": tuple(getattr(pcfg, "mean", ())), "std": tuple(getattr(pcfg, "std", ()))})
    return rows
