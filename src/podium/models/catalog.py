"""``podium models``: timm architectures with where their weights would come from on this machine and the input
size and normalisation of their ``pretrained_cfg``, read from timm's registry without instantiating any model."""

from __future__ import annotations

from typing import Any

import timm
from timm.models import get_pretrained_cfg

from podium.models.weights import PACKAGED, cached_architectures, hub_cache_tags, hub_reachable, packaged_file


def weight_catalog(pattern: str = "", offline_only: bool = False) -> list[dict[str, Any]]:
    """One row per architecture matching ``pattern`` (fnmatch, e.g. ``*efficientnet*``; empty: all).

    ``source`` is where ``model.pretrained=auto`` would take the weights from, in its order: ``hub (cached)``,
    ``hub`` (reachable now), ``cache`` (podium's weights folder), ``packaged (pip package)``, or ``none``.
    ``offline_only`` keeps the architectures usable without the hub.
    """
    online = hub_reachable()
    hub_cached = {t.split(".")[0] for t in hub_cache_tags()}
    cached = cached_architectures()
    rows = []
    for arch in timm.list_models(pattern or "*"):
        pcfg = get_pretrained_cfg(arch)
        has_hub = pcfg is not None and bool(pcfg.hf_hub_id or pcfg.url)
        if has_hub and arch in hub_cached:
            source = "hub (cached)"
        elif has_hub and online:
            source = "hub"
        elif arch in cached:
            source = "cache"
        elif arch in PACKAGED and packaged_file(arch):
            source = f"packaged ({PACKAGED[arch][0]})"
        else:
            source = "none"
        if offline_only and source in ("hub", "none"):
            continue
        rows.append({"arch": arch, "source": source,
                     "input_size": int(getattr(pcfg, "input_size", (3, 224, 224))[-1]),
                     "mean": tuple(getattr(pcfg, "mean", ())), "std": tuple(getattr(pcfg, "std", ()))})
    return rows
