"""File locks: `exclusive_lock` (one-time set-ups such as creating a store, the index's
read-modify-write) and a lock per partition, so that two runs that would write the same corpus or
dataset x view never interleave.

A partition's lock is an flock on <root>/.pepm/locks/<name>.lock, held by the process (the CLI runner holds a partition's
lock for its whole stage, the steps take it again: re-entrant within one process); a second process
waits for it, and says so. The kernel drops the lock when a process dies, so a killed run never
leaves it behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

_HELD: dict[str, int] = {}  # lock path -> depth, for the partition locks this process holds
_GUARD = threading.Lock()


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], waiting: str = "") -> Iterator[None]:
    """An exclusive flock on `path` (created if missing), held until the block ends; the kernel
    drops it if the holder dies. `waiting`, when set, is printed if another process holds it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:  # closing the file releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(f"pepm: {waiting}", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def lock_path(root: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return Path(root) / ".pepm" / "locks" / f"{safe}.lock"


@contextlib.contextmanager
def partition_lock(root: Path, name: str) -> Iterator[None]:
    """The lock of one partition; taken again by a process that holds it, it does not wait."""
    path = str(lock_path(root, name))
    with _GUARD:
        held = path in _HELD
        _HELD[path] = _HELD.get(path, 0) + 1
    try:
        if held:
            yield
        else:
            with exclusive_lock(path, f"{name} is being written by another run; waiting for it to finish"):
                yield
    finally:
        with _GUARD:
            _HELD[path] -= 1
            if not _HELD[path]:
                del _HELD[path]


def corpus_lock(root: Path, corpus_id: str) -> contextlib.AbstractContextManager[None]:
    return partition_lock(root, f"corpus:{corpus_id}")


def view_lock(root: Path, dataset_id: str, view: str) -> contextlib.AbstractContextManager[None]:
    return partition_lock(root, f"view:{dataset_id}|{view}")


@contextlib.contextmanager
def partition_locks(root: Path, names: list[str]) -> Iterator[None]:
    """Several partitions' locks, in a fixed order (no two runs can deadlock on them)."""
    with contextlib.ExitStack() as stack:
        for name in sorted(set(names)):
            stack.enter_context(partition_lock(root, name))
        yield


def corpora_locks(root: Path, corpus_ids: list[str]) -> contextlib.AbstractContextManager[None]:
    """Every corpus of a dataset."""
    return partition_locks(root, [f"corpus:{cid}" for cid in corpus_ids])


def views_locks(root: Path, partitions: list[tuple[str, str]]) -> contextlib.AbstractContextManager[None]:
    """Several dataset x view partitions (a model's and the one a cross-dataset evaluation scores on)."""
    return partition_locks(root, [f"view:{dataset_id}|{view}" for dataset_id, view in partitions])
