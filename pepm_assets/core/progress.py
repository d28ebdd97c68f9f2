"""Progress inside a long step (a model's epochs and steps), for whoever shows it: the CLI's bar,
when pepm runs the step in its own process (`pepm run`: Dagster in process). Without a listener
`note` does nothing; Dagster's UI shows the step's log lines instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_listeners: list[Callable[[str], None]] = []


@contextmanager
def listening(fn: Callable[[str], None]) -> Iterator[None]:
    """`fn(text)` for every note made while the block runs (in any thread of this process)."""
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


def note(text: str) -> None:
    """Where a long step is now, e.g. "epoch 2/3, step 40/125"."""
    for fn in list(_listeners):
        fn(text)
