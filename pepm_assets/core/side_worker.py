"""A command's second process: MLflow logging and the report figures, on the core the command leaves idle.

Importing MLflow and opening its store costs ~3 CPU-s, more than a 1x pipeline's model step, and
matplotlib with a model's figures ~1 s more. `pepm run` starts this worker (`start`) as soon as its
configuration is valid, before it imports Dagster: the imports then run on the other core while the
main process imports Dagster, parses and splits (at nice 10: the command's own processes get the
cores first). The steps' `Tracker` calls are forwarded to the worker (`tracker`), which logs them
with a real `Tracker` and returns the same run ids, in the same order, as logging in process would;
the report figures are drawn there (`call(draw, ...)`: the same functions writing the same files),
and a small view's label-validity diagnostics computed beside the fit (core/diagnostics.py), while
the caller goes on, and the caller waits for them before it uses them. It is not started
where MLflow is already imported (a long-lived process, a test session: logging and drawing in
process is then the cheaper way). If the worker cannot start or dies, the work is done in process,
so a broken store still fails with MLflow's own error. The worker's output goes to
<root>/mlruns/side_worker.log (in process, MLflow's warnings go to the step's compute log; here they
would cut across the progress bar). Every call is waited for by its caller, so at the command's end
the worker has nothing left to do: it exits without the interpreter's teardown of MLflow and
SQLAlchemy (`_exit_at_once`), which the command would otherwise wait ~1 s for.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Generic, TypeVar

from . import collector
from .tracking import EXPERIMENT, Tracker, default_uri

LOG = "side_worker.log"
T = TypeVar("T")
_POOLS: dict[tuple[str, str], ProcessPoolExecutor] = {}  # (project root, tracking URI) -> the worker (main process)
_TRACKERS: dict[tuple[str, str, str], Tracker] = {}  # (root, URI, experiment) -> its Tracker (where `_call` runs)


def _key(root: Path, uri: str | None) -> tuple[str, str]:
    return str(Path(root).resolve()), uri or default_uri(Path(root))


def start(root: Path, uri: str | None = None) -> bool:
    """Start (or keep) the worker for this project and store; False where MLflow is already
    imported in this process, or PEPM_SIDE_WORKER=off."""
    from . import settings

    if "mlflow" in sys.modules or settings.SIDE_WORKER.get() == "off":
        return False
    key = _key(root, uri)
    if key not in _POOLS:
        import multiprocessing

        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm, initargs=key)
        pool.submit(os.getpid)  # the executor spawns at the first submission: now, not at the first log
        _POOLS[key] = pool
    return True


class Pending(Generic[T]):
    """The result of `call`: `result()` waits for it (computed here at that point if the worker died)."""

    def __init__(self, future: Future | None, fn: Callable[..., T], args: tuple) -> None:
        self._future, self._fn, self._args = future, fn, args

    def result(self) -> T:
        if self._future is not None:
            try:
                return self._future.result()
            except BrokenProcessPool:
                pass
        return self._fn(*self._args)


def call(fn: Callable[..., T], *args: Any) -> Pending[T]:
    """`fn(*args)` (a module-level function; plain-data arguments) in the worker when this process
    started one, else here, when its `result()` is asked for."""
    return _submit(next(iter(_POOLS.values()), None), fn, args)


def _submit(pool: ProcessPoolExecutor | None, fn: Callable[..., T], args: tuple) -> Pending[T]:
    future = None
    if pool is not None:
        with contextlib.suppress(BrokenProcessPool, RuntimeError):  # a dead worker, a pool shut down
            future = pool.submit(fn, *args)
    return Pending(future, fn, args)


def stop() -> None:
    """Wait for the workers' last calls and end them (a command's end)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True)


def running() -> bool:
    return bool(_POOLS)


def tracker(root: Path, uri: str | None = None, experiment: str = EXPERIMENT) -> Tracker | _Forwarded:
    """The worker's stand-in for `Tracker(root, uri, experiment)` when one runs for this project and
    store, else that Tracker."""
    key = _key(root, uri)
    pool = _POOLS.get(key)
    return _Forwarded(pool, Path(root), key[1], experiment) if pool is not None else Tracker(Path(root), uri, experiment)


class _Forwarded:
    """Tracker's public methods, called in the worker (arguments and results are plain data)."""

    def __init__(self, pool: ProcessPoolExecutor, root: Path, uri: str, experiment: str) -> None:
        self._pool, self.root, self.uri, self.experiment = pool, root, uri, experiment

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not callable(getattr(Tracker, name, None)):
            raise AttributeError(name)
        key = (str(self.root), self.uri, self.experiment)
        # a worker that could not start (or died) leaves the call here, with MLflow's own errors
        return lambda *args, **kwargs: _submit(self._pool, _call, (key, name, args, kwargs)).result()


# ---------------------------------------------------------------- in the worker process
def _warm(root: str, uri: str) -> None:
    # needed after the first fit: at a lower priority, the imports (~4 CPU-s: MLflow, its store,
    # matplotlib) take the CPU that the command's parse and split leave, rather than half of it
    os.nice(10)
    log = Path(root) / "mlruns" / LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    collector.tune_process()
    # what the warm-up builds (MLflow, SQLAlchemy, matplotlib) lives as long as the worker: not
    # collected while built, then frozen, so that no full collection walks it during a figure
    with collector.long_lived():
        _tracker((root, uri, EXPERIMENT))._mlflow()  # the import, the store's tables, the experiment
        from mlflow.tracking.context import registry

        registry.resolve_tags({})  # a run's first tags import GitPython (0.15 s): here, not in the first training's logging
        from . import plotting, reports, training  # noqa: F401  (the figures' modules: `call` sends their functions by name)

        plotting.warm()  # matplotlib's import and first drawing, before a figure is asked for
    from multiprocessing import util

    util.Finalize(None, _exit_at_once, exitpriority=-1_000)  # the last finalizer run as the worker process ends


def _exit_at_once() -> None:
    """The worker's end, once the executor told it to stop: each call has returned after MLflow wrote
    it (SQLite committed), so nothing is lost by skipping the interpreter's teardown. The exit code
    is 0 however the worker ended: a call's error has already reached its caller (the future), and
    a worker that dies mid-call breaks the pool, whose calls are then logged in process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _tracker(key: tuple[str, str, str]) -> Tracker:
    if key not in _TRACKERS:
        _TRACKERS[key] = Tracker(Path(key[0]), key[1], key[2])
    return _TRACKERS[key]


def _call(key: tuple[str, str, str], name: str, args: tuple, kwargs: dict) -> Any:
    return getattr(_tracker(key), name)(*args, **kwargs)
