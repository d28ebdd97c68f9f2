"""Python's cyclic garbage collector, tuned for processes that import Dagster, pandas and scikit-learn.

Such a process holds a few hundred thousand to a few million objects that live until it ends
(modules, definitions, the instance); Python's collector walks all of them at each full collection
and once more at exit. Measured on a 1x `pepm run` (2 cores, bench_pipeline's project):
- at exit, the interpreter's last collections took 1.3 s of a 9-12 s command; with `gc.freeze` as
  the last thing the process does, 0.1 s. Nothing waits on them: every output is written and
  closed, every store committed, before a command returns or a run worker reports its run's end;
  the atexit handlers registered later (logging, multiprocessing, Dagster) still run, first;
- a young-generation threshold of 10,000 allocations (Python's default: 700): 0.70 -> 0.35 s of
  collections during the run (1,212 young and 7 full collections -> 137 and none);
- while the CLI imports Dagster and opens its instance, no collection (`long_lived`): 140 -> 106
  collections in the command, 0.38 -> 0.17 s;
- during a stage, the objects alive before it are left out of full collections (`gc.freeze`, then
  `gc.unfreeze` at its end: a long-lived caller gets its collector back as it was): in process,
  0.38 -> 0.13 s of collections at 1x.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import threading
from collections.abc import Iterator

from . import frame_chunks

YOUNG_THRESHOLD = 10_000  # allocations between two young collections (Python's default: 700)
_TUNED = False
_FROZEN = 0  # older_objects_left_alone blocks open (nested, or in several threads)
_LOCK = threading.Lock()


def tune_process() -> None:
    """For a process that pepm owns and that ends with its work (the CLI, a sweep's run worker):
    fewer young collections, and none at exit (the operating system frees the memory); freed
    frame-stack chunks kept for reuse (core/frame_chunks.py)."""
    global _TUNED
    if _TUNED:
        return
    _TUNED = True
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    atexit.register(gc.freeze)
    frame_chunks.keep_for_process()


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """No collection within the block, and what it built frozen at its end: for the imports and
    set-up of a process pepm owns (Dagster, its instance), whose objects live as long as the
    process. Collecting while Dagster, SQLAlchemy and alembic are imported walks their young
    objects again and again for no garbage: 0.2 s of a 1x `pepm run`."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextlib.contextmanager
def older_objects_left_alone() -> Iterator[None]:
    """Within the block, full collections skip the objects alive when it starts (they outlive it).
    The young generations are collected first (recent garbage is not kept for the block); nested
    blocks and threads share one freeze, lifted when the last block ends."""
    global _FROZEN
    with _LOCK:
        _FROZEN += 1
        if _FROZEN == 1:
            gc.collect(1)
            gc.freeze()
    try:
        yield
    finally:
        with _LOCK:
            _FROZEN -= 1
            if _FROZEN == 0:
                gc.unfreeze()
