"""A tiny named registry, the one extension mechanism of pepm (dialects, balance strategies, model
families, model formats).

An entry is added in one of three ways, one line each:

- `@REGISTRY.register("name")` on the object, in a module its package imports;
- a `builtin` target "module:attribute", imported at the first `get` (listing names imports nothing:
  model families stay light to list and validate);
- an entry point of the registry's `group` in an installed distribution (a package of your own:
  `[project.entry-points."<group>"]` in its pyproject.toml), read again whenever sys.path or one of
  its folders changed, so a package installed (or put on sys.path) after pepm was imported is seen
  without a restart. Reading them costs ~10 ms (every installed distribution's metadata), and
  `pepm status` looks entries up dozens of times.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")
_ENTRY_POINTS: dict[str, tuple[tuple, list[tuple[str, str]]]] = {}  # group -> (sys.path state, [(name, value)])


def _path_state() -> tuple:
    """sys.path and the modification time of each of its folders: installing or removing a
    distribution adds or removes a folder (its .dist-info) in one of them."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def group_entry_points(group: str) -> list[tuple[str, str]]:
    """(name, "module:attribute") of the group's entry points, read again when `_path_state` changed."""
    state = _path_state()
    cached = _ENTRY_POINTS.get(group)
    if cached is None or cached[0] != state:
        cached = _ENTRY_POINTS[group] = (state, [(ep.name, ep.value) for ep in entry_points(group=group)])
    return cached[1]


class Registry(Generic[T]):
    def __init__(self, kind: str, builtin: Mapping[str, str] | None = None, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T | str] = dict(builtin or {})

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _all(self) -> dict[str, T | str]:
        """Registered and built-in entries, then the group's entry points."""
        found = dict(self._entries)
        for name, value in group_entry_points(self.group) if self.group else ():
            if found.setdefault(name, value) != value:
                raise ValueError(f"{self.kind} {name!r} is registered twice (also the entry point {value!r} of {self.group})")
        return found

    def get(self, name: str) -> T:
        target = self._entries[name] if name in self._entries else self._all().get(name)
        if target is None:
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})")
        if not isinstance(target, str):
            return target
        module, _, attribute = target.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in filter(None, attribute.split(".")):  # no attribute: the module itself
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ImportError(f"{self.kind} {name!r}: cannot load {target!r} ({exc})") from exc
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        return sorted(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
