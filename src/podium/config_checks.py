"""What each config value may be, checked when the config is loaded: types (``check_type``, and ``parse_size`` for
``model.img_size``), registry names, fixed choices, numeric ranges and the few relations between keys that would
otherwise fail in the middle of a run.

A field declares its rules in its metadata (see ``podium.config.opt``):

- ``choices``: a registry named lazily as ``"module:ATTR"`` (imported only when a value is checked or the help is
  shown, because those modules import podium.config), or a literal tuple of names; ``reserved`` adds words such as
  ``auto`` that the code resolves itself;
- ``gt``, ``ge``, ``lt``, ``le``: bounds of a number, and ``also``: values allowed outside them (``img_size=0``).

Tuple fields apply the rules to every item. Every error is a one-line ``PodiumError`` naming the key and the value.
"""

from __future__ import annotations

import difflib
import importlib
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from podium.core.errors import PodiumError

BOUNDS = ("gt", "ge", "lt", "le")


def choice_names(meta: Mapping[str, Any], key: str = "") -> tuple[str, tuple[str, ...]] | None:
    """``(kind, names)`` accepted by a choice field (reserved words first), or None for a free field.

    A registry path is imported here, at call time; ``kind`` is the registry's own (``augmentation``) or, for a fixed
    list, the key's last part (``precision``).
    """
    choices = meta.get("choices")
    if choices is None:
        return None
    if isinstance(choices, str):
        module, _, attr = choices.partition(":")
        registry = getattr(importlib.import_module(module), attr)
        kind, names = str(registry.kind), [str(n) for n in registry.names()]
    else:
        kind, names = key.rsplit(".", 1)[-1].replace("_", " "), [str(n) for n in choices]
    return kind, tuple(dict.fromkeys([*meta.get("reserved", ()), *names]))


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def range_text(meta: Mapping[str, Any]) -> str:
    """The declared range as text: ``> 0``, ``in [0, 1)``, ``0 or in [16, 4096]``; empty when none is declared."""
    lo = ("(", meta["gt"]) if "gt" in meta else ("[", meta["ge"]) if "ge" in meta else None
    hi = (")", meta["lt"]) if "lt" in meta else ("]", meta["le"]) if "le" in meta else None
    if lo and hi:
        text = f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    elif lo:
        text = f"{'>' if lo[0] == '(' else '>='} {_num(lo[1])}"
    elif hi:
        text = f"{'<' if hi[0] == ')' else '<='} {_num(hi[1])}"
    else:
        return ""
    also = meta.get("also", ())
    return f"{' or '.join(_num(a) for a in also)} or {text}" if also else text


def in_range(value: float, meta: Mapping[str, Any]) -> bool:
    """Whether a number satisfies the field's bounds (or is one of its ``also`` values)."""
    if value in meta.get("also", ()):
        return True
    return (("gt" not in meta or value > meta["gt"]) and ("ge" not in meta or value >= meta["ge"])
            and ("lt" not in meta or value < meta["lt"]) and ("le" not in meta or value <= meta["le"]))


def suggest(value: str, names: tuple[str, ...]) -> str:
    """`` Did you mean 'x'?`` for the closest name (case-insensitive first), or an empty string."""
    same = [n for n in names if n.lower() == value.lower()]
    close = same or difflib.get_close_matches(value.lower(), names, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_value(value: Any, meta: Mapping[str, Any], key: str) -> None:
    """Raise a one-line PodiumError when ``value`` (one item of a tuple field) breaks the field's declared rules."""
    if isinstance(value, str):
        allowed = choice_names(meta, key)
        if allowed is not None and value not in allowed[1] and not (meta.get("user") and ":" in value):
            kind, names = allowed
            raise PodiumError(f"Config key {key}: unknown {kind} {value!r}; choose from {', '.join(names)}."
                              f"{suggest(value, names)}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise PodiumError(f"Config key {key} must be a finite number, got {value!r}.")
        if not in_range(value, meta):
            raise PodiumError(f"Config key {key} must be {range_text(meta)}, got {value!r}.")


def check_field(value: Any, meta: Mapping[str, Any], key: str) -> None:
    """Check a typed field value: every item of a tuple (named ``key[i]``), or the value itself."""
    if isinstance(value, tuple):
        for i, item in enumerate(value):
            check_value(item, meta, f"{key}[{i}]")
    else:
        check_value(value, meta, key)


def describe(meta: Mapping[str, Any], key: str) -> str:
    """What a field accepts, for the help text: `` [choices: a, b]`` and/or `` [range: > 0]``."""
    out = ""
    allowed = choice_names(meta, key)
    if allowed is not None:
        out += f" [choices: {', '.join(allowed[1])}]"
    rng = range_text(meta)
    if rng:
        out += f" [range: {rng}]"
    return out


def check_relations(cfg: Any) -> None:
    """Relations between keys of a whole config (a ``PodiumConfig``) that would otherwise fail or mislead mid-run."""
    bad = [f for f in cfg.cv.train_folds if not 0 <= f < cfg.cv.folds]
    if bad:
        raise PodiumError(f"Config key cv.train_folds has folds {bad} outside 0..{cfg.cv.folds - 1} "
                          f"(cv.folds={cfg.cv.folds}).")
    if cfg.aug.batch and cfg.train.batch_size % 2:
        raise PodiumError(f"Config key train.batch_size must be even with aug.batch={','.join(cfg.aug.batch)} (images "
                          f"are mixed in pairs), got {cfg.train.batch_size}.")
    if cfg.cv.metric != "auto":  # a user's module:function is imported now; a metric must fit a named task
        importlib.import_module("podium.tasks.metrics").check_metric(cfg.cv.metric, cfg.data.task)
    if cfg.run.trackers:  # a tracker's package missing here: the pip command now, not at the first fold
        importlib.import_module("podium.engine.trackers").check_trackers(cfg.run)
    ft, epochs = cfg.finetune, cfg.train.epochs
    if cfg.model.pretrained != "none" and ft.freeze_epochs >= epochs:
        raise PodiumError(f"Config key finetune.freeze_epochs must be < train.epochs ({epochs}) with pretrained "
                          f"weights (model.pretrained={cfg.model.pretrained}), got {ft.freeze_epochs}: the backbone "
                          "would never be fine-tuned. Lower it (0: no head-only warm-up) or raise train.epochs.")


def parse_size(value: Any, key: str) -> tuple[int, ...]:
    """An input size as ``()`` (the model's own), ``(n,)`` (n x n) or ``(height, width)``, from ``0``, ``n``,
    ``"HxW"``, ``"H,W"`` or ``[H, W]``; a square written as two equal sides is stored as one."""
    items: Any = value
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            items = [int(p) for p in re.split(r"\s*[x,]\s*", text)] if text else []
        except ValueError:
            items = None
    elif not isinstance(value, (list, tuple)):
        items = [value]
    if items is None or len(items) > 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise PodiumError(f"Config key {key} must be N (square) or HxW (height x width, e.g. 288x224), got {value!r}.")
    if list(items) in ([], [0]):
        return ()
    return (items[0],) if len(items) == 2 and items[0] == items[1] else tuple(items)


def check_type(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the field type ``tp`` (bool, int, float, str or a tuple of one of them), or a one-line error."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str):  # "a,b" from the command line; items read as YAML unless they are strings
            items = [v.strip() for v in value.split(",") if v.strip()]
            value = items if item_tp is str else [yaml.safe_load(v) for v in items]
        if not isinstance(value, (list, tuple)):
            value = [value]  # a single item (cv.train_folds=0) is a one-item list
        return tuple(check_type(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unions are not supported in the config ({key})")
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise PodiumError(f"Config key {key} must be {tp.__name__}, got {value!r} ({type(value).__name__}).")
    return float(value) if tp is float else value
