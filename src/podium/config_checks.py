"""What each config value may be, checked when the config is loaded: the YAML reader (``read_yaml``), types
(``check_type``, and ``parse_size`` for ``model.img_size``), fixed choices and numeric ranges. Registry names use the
same ``check_field`` with the registry's names, from podium.validation; this module imports nothing above it.

A field declares its rules in its metadata (see ``podium.config.opt``):

- ``choices``: a literal tuple of names; ``reserved`` adds words such as ``auto`` that the code resolves itself;
- ``gt``, ``ge``, ``lt``, ``le``: bounds of a number, and ``also``: values allowed outside them (``img_size=0``);
- ``min_items``: the fewest items of a tuple field (``predict.tta`` needs a view).

Tuple fields apply the rules to every item. Every error is a one-line ``PodiumError`` naming the key and the value.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from collections.abc import Mapping
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
