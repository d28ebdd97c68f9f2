"""Crash recovery: what a killed pepm run leaves behind is cleaned up by the next command.

A run executed in process (the runner's `execute_in_process`) that is SIGKILLed, or whose machine
goes down, never writes its end: Dagster shows it STARTED for ever (and the UI's queue counts it
against `max_concurrent_runs`), MLflow shows its training RUNNING, and the temporary siblings of
its atomic writes stay under data/, models/, reports/. Dagster's run monitoring does not see it:
such a run has no run worker to ask about.

So every pepm run carries `process_tags()`: the pid of the process executing it, its host, and the
process's start time (a pid is reused; pid + start time is not). `recover`, called by every
command right after it opens the instance, marks FAILED each unfinished run of this host whose
process is gone, sets FAILED its MLflow runs still RUNNING, and removes the temporaries left by
dead processes. A run without these tags (launched by the UI or the daemon) is left to Dagster's
run monitoring (dagster.yaml), as is a run of another host (its process cannot be checked here).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

from ..core import tracking

# the tag names, the process check and the temporaries' cleanup are in run_peek.py (no Dagster import), for `pepm status`
from .run_peek import CRASHED, HOST, PID, PID_START, CrashedRun, _start_time, process_dead, remove_temporaries  # noqa: F401

UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """Tags for every run this process executes in process: who runs it, to tell later whether it died."""
    return {PID: str(os.getpid()), HOST: socket.gethostname(), PID_START: _start_time(os.getpid())}


def recover(instance: dg.DagsterInstance, root: Path) -> list[str]:
    """Clean up after killed runs (see the module's docstring); returns what was done, one line each.
    The Dagster run is marked failed last, so an interrupted recovery is redone by the next command."""
    done: list[str] = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        if not process_dead(run.tags):
            continue
        message = (
            f"pepm: the process running this run (pid {run.tags[PID]} on {run.tags[HOST]}) died before it ended; marked failed by `recover`"
        )
        try:
            mlflow_runs = tracking.fail_running_runs(Path(root), run.run_id, message)
        except Exception as exc:  # noqa: BLE001  (MLflow unreachable: retried by the next command)
            done.append(f"Dagster run {run.run_id}: its process died, left as is for now: MLflow: {exc}")
            continue
        done += [f"MLflow run {m} (of Dagster run {run.run_id}): RUNNING -> FAILED" for m in mlflow_runs]
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.is_finished:  # it ended meanwhile (exited just after writing its end)
            continue
        instance.add_run_tags(run.run_id, {CRASHED: "true"})
        instance.report_run_failed(current, message)
        done.append(f"Dagster run {run.run_id} ({run.job_name}): {run.status.value} -> FAILURE (its process died)")
    return done + remove_temporaries(Path(root))


def crashed_runs(instance: dg.DagsterInstance, limit: int = 10) -> list[CrashedRun]:
    """The runs `recover` marked failed because their process died, newest first (for `pepm status`)."""
    records = instance.get_run_records(filters=dg.RunsFilter(tags={CRASHED: "true"}), limit=limit)
    return [
        CrashedRun(r.dagster_run.run_id, r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition", ""), r.start_time, r.end_time)
        for r in records
    ]
