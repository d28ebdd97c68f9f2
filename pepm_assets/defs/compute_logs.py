"""Dagster's local compute logs (each step's stdout and stderr, which the UI shows), mirrored to the
terminal by a thread of the captured process rather than by four processes per capture.

Dagster's LocalComputeLogManager points file descriptors 1 and 2 at the log files during a
capture, and copies each file back to the original stream with a `tail -F` process, watched by a
Python process that kills the tail if the captured process dies
(dagster/_core/execution/compute_logs.py). That is four processes started, then terminated and
waited for, around every capture: each run that `pepm` executes in process, and each step of a
run launched from the UI. Here a thread copies what each file gained to the original descriptor
every POLL_S, and once more as the capture ends; it dies with its process, so nothing can be
orphaned. The files, their folder (Dagster's default, <DAGSTER_HOME>/storage), the completion
marker and how the UI reads them are LocalComputeLogManager's own: only the capture differs.
benchmarks/bench_pipeline.py measures the pipeline with it (dagster.yaml names it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import dagster as dg

from .dagster_internals import IO_TYPE_EXTENSION, CapturedLogContext, ComputeIOType, LocalComputeLogManager, compute_logs_directory

POLL_S = 0.1  # seconds between two copies to the terminal (`tail -F` follows a file by inotify, or every second)


class ThreadMirroredComputeLogManager(LocalComputeLogManager):
    """LocalComputeLogManager whose captures mirror to the terminal in a thread. Config: that of
    LocalComputeLogManager, `base_dir` optional (default: Dagster's, <DAGSTER_HOME>/storage)."""

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False), "polling_timeout": dg.Field(dg.Float, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value: dict[str, Any]) -> ThreadMirroredComputeLogManager:
        config = dict(config_value)
        if not config.get("base_dir"):
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise dg.DagsterInvariantViolationError(
                    "dagster.yaml compute_logs.config.base_dir: not set, and no DAGSTER_HOME to put the logs under (DAGSTER_HOME/storage)"
                )
            config["base_dir"] = compute_logs_directory(home)
        return cls(inst_data=inst_data, **config)

    @contextlib.contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Iterator[CapturedLogContext]:
        out = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        err = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with mirrored(sys.stdout, out), mirrored(sys.stderr, err):
            yield CapturedLogContext(log_key)
        Path(self.complete_artifact_path(log_key)).touch()  # the UI's sign that the capture ended


@contextlib.contextmanager
def mirrored(stream: IO, path: str) -> Iterator[None]:
    """Within the block, what is written to `stream`'s file descriptor (by Python, C code or a
    child process) goes to the file at `path`, and from there to where the descriptor pointed
    before. A stream without a descriptor (a test's captured stream), or Windows' console streams,
    are left as they are, as Dagster leaves them; the file is created either way."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab", buffering=0) as log, open(path, "rb") as reader:
        fd = _fileno(stream)
        if fd is None or os.name == "nt":
            yield
            return
        reader.seek(0, os.SEEK_END)  # what this capture adds (a new file: all of it)
        stream.flush()
        original = os.dup(fd)
        stop = threading.Event()
        copier = threading.Thread(target=_copy, args=(reader, original, stop), name=f"pepm compute log {fd}", daemon=True)
        copier.start()
        try:
            os.dup2(log.fileno(), fd)
            yield
        finally:
            with contextlib.suppress(ValueError, OSError):  # a stream closed within the block
                stream.flush()
            os.dup2(original, fd)
            stop.set()
            copier.join()
            os.close(original)


def _copy(reader: IO[bytes], target: int, stop: threading.Event) -> None:
    """Copy what `reader`'s file gains to `target` until `stop`, then what is left. A terminal
    that is gone (EPIPE) ends the mirroring, not the capture."""
    mirroring = True
    while True:
        ending = stop.wait(POLL_S)
        while chunk := reader.read(1 << 16):
            if mirroring:
                try:
                    _write_all(target, chunk)
                except OSError:
                    mirroring = False
        if ending:
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fileno(stream: IO) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None
