"""A tiny named registry, the one extension mechanism of pepm (dialects, balance strategies, model
families, model formats).

An entry is added in one of three ways, one line each:

- `@REGISTRY.register("name")` on the object, in a module its package imports;
- a `builtin` target "module:attribute", imported at the first `get` (listing names imports nothing:
  model families stay light to list and validate);
- an entry point of the registry's `group` in an installed distribution (a package of your own:
  `[project.entry-points."<group>"]` in its pyproject.toml), read anew at each lookup, so a package
  installed (or put on sys.path) after pepm was imported is seen without a restart.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


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
        for ep in entry_points(group=self.group) if self.group else ():
            if found.setdefault(ep.name, ep.value) != ep.value:
                raise ValueError(f"{self.kind} {ep.name!r} is registered twice (also the entry point {ep.value!r} of {self.group})")
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
