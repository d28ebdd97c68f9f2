"""pepm's compiled modules (Cython, built by `pip install -e .` through setup.py) and the switch to
their pure-Python references: the TEI column walker, the dedup text keys, the word n-gram counter
(and the frame-stack chunk keeper, whose reference is Python's own allocator). Each reference gives
the same results (the tests compare them) and is used when the module is not built, or when its
setting (core/settings.py) says `python`."""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

from .settings import Setting


def load(name: str, switch: Setting[str], cost: str) -> tuple[ModuleType | None, str]:
    """(the compiled module `name`, or None if it cannot be loaded; "compiled" or "python", the
    latter also when the `switch` setting says so)."""
    try:
        module = importlib.import_module(name)
    except Exception:  # never built (ImportError), or built against other library versions (ValueError: lxml's types)
        module = None
        warnings.warn(f"pepm's compiled module {name} is not built (run `pip install -e .`): {cost}", RuntimeWarning, stacklevel=2)
    return module, "python" if module is None or switch.get() == "python" else "compiled"
