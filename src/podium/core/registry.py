"""Named registries: every variant (layout, task, augmentation, loss, metric, TTA view, weight source, submission
format) is a function or object registered under a name and chosen from the config by that name."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from podium.core.errors import PodiumError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> item mapping filled by the ``register`` decorator at import time."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator that registers ``item`` under ``name`` (default: its ``__name__``)."""

        def wrap(item: T) -> T:
            key = name or item.__name__
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = item
            return item

        return wrap

    def unregister(self, name: str) -> T:
        """Remove and return the item registered as ``name`` (e.g. a variant a test registered for a while)."""
        return self._items.pop(name)

    def get(self, name: str) -> T:
        """Return the item registered as ``name``, or raise a PodiumError listing the choices."""
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise PodiumError(f"Unknown {self.kind} {name!r}; choose from: {', '.join(self._items)}.{hint}")
        return self._items[name]

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
