"""Python's frame stack without a system call pair each time a call crosses a chunk's edge.

CPython (3.11 on) keeps the frames of running functions in 16 KiB chunks taken from its arena
allocator (mmap) and gives a chunk back (munmap) as soon as the last frame in it returns (CPython
gh-142183: the 3.13 and 3.14 releases since March 2026 cache one chunk per thread, which ends the
thrash there and leaves this module little to keep; 3.11 and 3.12 do not). Code
whose call depth goes back and forth across a chunk's edge, a loop calling a function there, pays
an mmap, a munmap and fresh zeroed pages (page faults) on every call. Which loops do depends on how
deep they run, so it moves with any change of the call stack above them. strace of a 1x `pepm run`
(bench_pipeline's project, 2 cores, 2026-12-04) counted 30,392 munmap of 16 KiB chunks (about
21,000 in the main process, the rest in the side worker), and 220,000 page faults in the command's
processes; with the kept chunks (`_frame_chunks.pyx`): 490 munmap of any size, 187,000 page faults,
0.35 s less system time and 0.35 s less wall time (medians of 6 alternating pairs).

`kept()` keeps freed chunks for reuse within a block (a stage run in process: the caller's
allocator is put back at its end, with the chunks kept); `keep_for_process()` for a process pepm
owns (the CLI, a sweep's run worker, the side worker: core/collector.tune_process). Not where the
GIL is disabled (the allocator's list of kept blocks relies on it), and not when PEPM_FRAME_CHUNKS
is `python` or the module is not built: Python's own allocation then, with the same results.
"""

from __future__ import annotations

import contextlib
import sysconfig
import threading
from collections.abc import Iterator

from . import compiled, settings

_chunks, IMPLEMENTATION = compiled.load(f"{__package__}._frame_chunks", settings.FRAME_CHUNKS, "frame-stack chunks mapped afresh")
_LOCK = threading.Lock()
_HOLDERS = 0  # kept() blocks open (nested, or in several threads), plus one for keep_for_process()
_FOR_PROCESS = False


def applies() -> bool:
    return IMPLEMENTATION == "compiled" and not sysconfig.get_config_var("Py_GIL_DISABLED")


@contextlib.contextmanager
def kept() -> Iterator[None]:
    """Within the block, freed frame-stack chunks are kept for the next calls; the allocator found
    before is back when the last block (or thread) leaves, unless the process keeps them for good."""
    global _HOLDERS
    if not applies():
        yield
        return
    with _LOCK:
        _HOLDERS += 1
        if _HOLDERS == 1:
            _chunks.install()
    try:
        yield
    finally:
        with _LOCK:
            _HOLDERS -= 1
            if _HOLDERS == 0:
                _chunks.uninstall()


def keep_for_process() -> None:
    """Keep freed chunks until the process ends (a process pepm owns)."""
    global _HOLDERS, _FOR_PROCESS
    if not applies():
        return
    with _LOCK:
        if not _FOR_PROCESS:
            _FOR_PROCESS = True
            _HOLDERS += 1
            if _HOLDERS == 1:
                _chunks.install()


def stats() -> dict[str, int | bool]:
    """installed now; blocks reused and requests passed on since the module was loaded; kept now."""
    return _chunks.stats() if _chunks is not None else {"installed": False, "reused": 0, "passed": 0, "kept": 0}
