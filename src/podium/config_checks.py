"""The config machinery under podium.config's options: how a field is declared (``opt``), how a tree of frozen
dataclasses is read (a YAML file, ``section.key=value`` overrides, ``from_dict``/``to_dict``) and what each value may
be, checked when the config is loaded: the YAML reader (``read_yaml``), types (``check_type``, and ``parse_size`` for
``model.img_size``), fixed choices and numeric ranges. Registry names use the same ``check_field`` with the
registry's names, from podium.validation; this module imports nothing above it.

A field declares its rules in its metadata (see ``opt``):

- ``choices``: a literal tuple of names; ``reserved`` adds words such as ``auto`` that the code resolves itself;
- ``gt``, ``ge``, ``lt``, ``le``: bounds of a number, and ``also``: values allowed outside them (``img_size=0``);
- ``min_items``: the fewest items of a tuple field (``predict.tta`` needs a view).

Tuple fields apply the rules to every item. Every error is a one-line ``PodiumError`` naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import field, fields
from pathlib import Path
from typing import Any

import yaml

from podium.core.errors import PodiumError

BOUNDS = ("gt", "ge", "lt", "le")


# YAML 1.2's JSON schema: only these plain scalars are typed, everything else is text. PyYAML speaks YAML 1.1, where
# 0x10 is 16, 1:30 is 90 (base 60), 2_0 is 20 and no/yes/on/off are booleans: values that change without a word.
_TYPED = {
    "tag:yaml.org,2002:bool": (r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    "tag:yaml.org,2002:int": (r"^[-+]?[0-9]+$", "-+0123456789"),
    "tag:yaml.org,2002:float": (r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
                                r"|^\.(?:nan|NaN|NAN)$", "-+0123456789."),
}


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's JSON-schema scalars (decimal numbers, true/false, null)."""


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _TYPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, (_rx, _first) in _TYPED.items():
    StrictLoader.add_implicit_resolver(_tag, re.compile(_rx), list(_first))


def opt(default: Any, help: str, *, choices: tuple[str, ...] | None = None,  # noqa: A002 - argparse's word
        reserved: tuple[str, ...] = (), also: tuple[float, ...] = (), gt: float | None = None, ge: float | None = None,
        lt: float | None = None, le: float | None = None, parse: Any = None, min_items: int = 0, user: bool = False,
        **words: Any) -> Any:
    """A config field with a default, the help text shown by ``podium train --help`` and what values it accepts.

    ``choices`` lists fixed names; a key whose values are registered names (augmentations, losses, ...) is mapped to
    its registry in podium.validation, which checks it after loading, so the config imports nothing above it.
    ``reserved`` adds words resolved by the code (``auto``). ``gt``/``ge``/``lt``/``le`` bound a number and ``also``
    lists values allowed outside the bounds. Tuple fields apply both to every item (see ``check_field``) and
    hold at least ``min_items``. ``words`` maps reserved words to the value stored for them, e.g. ``auto=0`` lets
    ``train.batch_size=auto`` be written for an int field (which then holds 0). ``parse(value, key)`` reads a value
    of its own syntax instead of the type check (``model.img_size=288x224``); ``user`` lets a choice field also take
    a user's ``module:function`` (``cv.metric``).
    """
    bounds = {k: v for k, v in {"gt": gt, "ge": ge, "lt": lt, "le": le}.items() if v is not None}
    meta = {"help": help, "words": words, "choices": choices, "reserved": reserved, "also": also,
            "min_items": min_items, **bounds}
    if parse is not None:
        meta["parse"] = parse
    if user:  # a choice field that also takes a user's module:function
        meta["user"] = True
    return field(default=default, metadata=meta)


def read_yaml(text: str, what: str, lenient: bool = False) -> Any:
    """``text`` read as YAML with ``StrictLoader``; a syntax error is one line naming ``what``, the line and the column
    (``lenient``: the text itself instead, for an override value such as ``a:b`` that is no YAML)."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        if lenient:
            return text
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PodiumError(f"{what} is not valid YAML{where}: {problem}.") from None


def choice_names(meta: Mapping[str, Any], key: str = "", registry: Any = None) -> tuple[str, tuple[str, ...]] | None:
    """``(kind, names)`` accepted by a choice field (reserved words first), or None for a free field.

    ``registry`` (passed by podium.validation for keys of registered names) gives its own kind (``augmentation``) and
    names; a fixed list's kind is the key's last part (``precision``).
    """
    if registry is not None:
        kind, names = str(registry.kind), [str(n) for n in registry.names()]
    elif meta.get("choices") is not None:
        kind, names = key.rsplit(".", 1)[-1].replace("_", " "), [str(n) for n in meta["choices"]]
    else:
        return None
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


def check_value(value: Any, meta: Mapping[str, Any], key: str, registry: Any = None) -> None:
    """Raise a one-line PodiumError when ``value`` (one item of a tuple field) breaks the field's declared rules (and
    is not a name of ``registry``, when one is given)."""
    if isinstance(value, str):
        allowed = choice_names(meta, key, registry)
        if allowed is not None and value not in allowed[1] and not (meta.get("user") and ":" in value):
            kind, names = allowed
            raise PodiumError(f"Config key {key}: unknown {kind} {value!r}; choose from {', '.join(names)}."
                              f"{suggest(value, names)}")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise PodiumError(f"Config key {key} must be a finite number, got {value!r}.")
        if not in_range(value, meta):
            raise PodiumError(f"Config key {key} must be {range_text(meta)}, got {value!r}.")


def check_field(value: Any, meta: Mapping[str, Any], key: str, registry: Any = None) -> None:
    """Check a typed field value: every item of a tuple (named ``key[i]``) and their count, or the value itself."""
    if isinstance(value, tuple):
        if len(value) < meta.get("min_items", 0):
            raise PodiumError(f"Config key {key} needs at least {meta['min_items']} item(s), got none.")
        for i, item in enumerate(value):
            check_value(item, meta, f"{key}[{i}]", registry)
    else:
        check_value(value, meta, key, registry)


def describe(meta: Mapping[str, Any], key: str, registry: Any = None) -> str:
    """What a field accepts, for the help text: `` [choices: a, b]`` and/or `` [range: > 0]``."""
    out = ""
    allowed = choice_names(meta, key, registry)
    if allowed is not None:
        out += f" [choices: {', '.join(allowed[1])}]"
    rng = range_text(meta)
    if rng:
        out += f" [range: {rng}]"
    return out


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
            value = items if item_tp is str else [read_yaml(v, key, lenient=True) for v in items]
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


# --------------------------------------------------------------------------------------------- building a tree


def from_dict(raw: dict[str, Any], cls: type, prefix: str = "") -> Any:
    """Build the config dataclass ``cls`` from a nested dict, rejecting unknown keys, values of the wrong type and
    numbers out of range (each field's declared rules); ``prefix`` is the section's dotted path, for the errors."""
    if not isinstance(raw, dict):
        raise PodiumError(f"Config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f" Did you mean {prefix}{close[0]}?" if close else f" Valid keys: {', '.join(names)}."
        raise PodiumError(f"Unknown config key {prefix}{key}.{hint}")
    values = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            values[f.name] = from_dict(raw[f.name] or {}, tp, f"{prefix}{f.name}.")
            continue
        if isinstance(raw[f.name], str) and raw[f.name] in f.metadata.get("words", {}):
            values[f.name] = f.metadata["words"][raw[f.name]]
        elif "parse" in f.metadata:
            values[f.name] = f.metadata["parse"](raw[f.name], f"{prefix}{f.name}")
        else:
            values[f.name] = check_type(raw[f.name], tp, f"{prefix}{f.name}")
        check_field(values[f.name], f.metadata, f"{prefix}{f.name}")
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain nested dict (tuples as lists), ready for YAML, JSON or a checkpoint."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a YAML config file, read with ``read_yaml``; a missing file or one that is no mapping is a
    one-line error."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise PodiumError(f"Config file {p} is a folder; name the YAML file itself.")
    if not p.is_file():
        raise PodiumError(f"Config file {p} does not exist.")
    raw = read_yaml(p.read_text(encoding="utf-8"), f"Config file {p}") or {}
    if not isinstance(raw, dict):
        raise PodiumError(f"Config file {p} must hold a mapping of sections (data:, model:, train: ...).")
    return raw


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into its key path and its value's text."""
    if "=" not in item:
        raise PodiumError(f"Override {item!r} must look like section.key=value (e.g. train.epochs=5).")
    key, value = item.split("=", 1)
    path = key.strip().split(".")
    if len(path) != 2 or not all(path):
        raise PodiumError(f"Override key {key!r} must be section.key, e.g. train.epochs.")
    return path, value


def field_type(root: type, path: list[str]) -> Any:
    """The type of the field at ``path`` below the dataclass ``root``; an unknown key is a one-line error."""
    cls: Any = root
    for part in path:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            names = list(hints)
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" Did you mean {close[0]}?" if close else f" Valid keys: {', '.join(names)}."
            raise PodiumError(f"Unknown config key {'.'.join(path)}.{hint}")
        cls = hints[part]
    return cls


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...], root: type) -> dict[str, Any]:
    """``raw`` (a dict of the tree ``root``) with each ``section.key=value`` set. The value is the text itself for a
    string field; otherwise it is read by YAML 1.2's JSON rules (``read_yaml``): only decimal numbers, true/false and
    null are typed, so ``0x10``, ``1:30`` and ``2_0`` stay text and fail the key's type check instead of becoming 16,
    90 and 20 as YAML 1.1 would read them, and ``[no, yes]`` is two words."""
    for item in overrides:
        path, text = parse_override(item)
        tp = field_type(root, path)
        if tp is str:
            value: Any = text
        else:
            value = read_yaml(text, f"Override {'.'.join(path)}", lenient=True) if text.strip() else ""
        section = raw.get(path[0]) or {}
        raw[path[0]] = section
        if not isinstance(section, dict):
            raise PodiumError(f"Config section {path[0]} must be a mapping, got {section!r}.")
        section[path[1]] = value
    return raw
