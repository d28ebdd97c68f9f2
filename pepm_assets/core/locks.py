"""A lock per partition: two runs that would write the same corpus or dataset x view never interleave.

An flock on <root>/.pepm/locks/<name>.lock, held by the process (the CLI runner holds a partition's
lock for its whole stage, the steps take it again: re-entrant within one process); a second process
waits for it, and says so. The kernel drops the lock when a process dies, so a killed run never
leaves it behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import sys
import threading
from pathlib import Path
from typing import Iterator

_HELD: dict[str, list] = {}  # lock path -> [open file, depth]
_GUARD = threading.Lock()


def lock_path(root: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return Path(root) / ".pepm" / "locks" / f"{safe}.lock"


@contextlib.contextmanager
def partition_lock(root: Path, name: str, wait_message: bool = True) -> Iterator[None]:
    path = str(lock_path(root, name))
    with _GUARD:
        held = _HELD.get(path)
        if held:
            held[1] += 1
    if held:
        try:
            yield
        finally:
            with _GUARD:
                held[1] -= 1
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait_message:
                print(f"pepm: {name} is being written by another run; waiting for it to finish", file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        with _GUARD:
            _HELD[path] = [fh, 1]
        try:
            yield
        finally:
            with _GUARD:
                del _HELD[path]
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()


def corpus_lock(root: Path, corpus_id: str) -> contextlib.AbstractContextManager[None]:
    return partition_lock(root, f"corpus:{corpus_id}")


def view_lock(root: Path, dataset_id: str, view: str) -> contextlib.AbstractContextManager[None]:
    return partition_lock(root, f"view:{dataset_id}|{view}")


@contextlib.contextmanager
def corpora_locks(root: Path, corpus_ids: list[str]) -> Iterator[None]:
    """Every corpus of a dataset, in a fixed order (no two runs can deadlock on them)."""
    with contextlib.ExitStack() as stack:
        for cid in sorted(corpus_ids):
            stack.enter_context(corpus_lock(root, cid))
        yield
