"""What `pepm status` needs of the run storage, read without Dagster: importing it and opening its
storages costs ~1 s, more than the rest of the command.

`pepm status` needs two things of the instance: whether a run is to be recovered (an unfinished run
of this host whose process is gone: recovery.py) and the runs recovery marked failed. With the
embedded SQLite storage (dagster.yaml's default) both are two queries on the run index database,
`<base_dir>/history/runs.db`, opened read-only with sqlite3: its `runs` and `run_tags` tables, the
schema Dagster's SQL run storages share (tested against the instance's own answers). `peek` answers
None where it cannot tell (another storage such as Postgres, a store not created yet, a schema it
does not know), and the command then opens the Dagster instance as before; a run to recover opens
it too, since recovery writes through Dagster. Imports nothing of Dagster, SQLAlchemy or MLflow.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
from pathlib import Path
from typing import NamedTuple

from ..core.atomic import pid_alive, remove_stale_temporary, stale_temporaries, start_time

PID, HOST, PID_START, CRASHED = "pepm/pid", "pepm/host", "pepm/pid_start", "pepm/crashed"
UNFINISHED_STATUSES = ("NOT_STARTED", "STARTING", "STARTED", "CANCELING")  # the values of recovery.UNFINISHED
STORAGE_MODULE = "pepm_assets.defs.sqlite_storage"
OUTPUT_FOLDERS = ("data", "models", "reports")
NOT_WALKED = ("raw", "shipped")  # data/raw, data/shipped: inputs, never written atomically, large


class CrashedRun(NamedTuple):
    run_id: str
    job_name: str
    partition: str
    start_time: float | None  # Unix time, None if it never started
    end_time: float | None  # when recovery marked it failed


class Peek(NamedTuple):
    to_recover: bool  # an unfinished run of this host whose process is gone
    crashed: list[CrashedRun]  # newest first


def _start_time(pid: int) -> str:
    """ "" where there is no /proc (the pid alone is then checked)."""
    return start_time(pid) or ""


def process_dead(tags: dict[str, str]) -> bool | None:
    """True / False for a run of this host carrying recovery.process_tags(); None when it cannot be told here."""
    if tags.get(HOST) != socket.gethostname() or not tags.get(PID, "").isdigit():
        return None
    pid = int(tags[PID])
    if not pid_alive(pid):
        return True
    started = tags.get(PID_START)
    return bool(started) and _start_time(pid) not in (started, "")  # the pid now names another process


def remove_temporaries(root: Path) -> list[str]:
    """Remove the temporaries of atomic writes (core/atomic.py) left under data/, models/, reports/
    by processes of this host that are gone; returns what was done, one line each."""
    return [
        remove_stale_temporary(tmp, target)
        for folder in OUTPUT_FOLDERS
        if (root / folder).is_dir()
        for tmp, target in stale_temporaries(root / folder, NOT_WALKED)
    ]


def run_index(home: Path) -> Path | None:
    """The run index database of the instance configured by <home>/dagster.yaml when its storage is
    the embedded SQLite one (`custom: pepm_assets.defs.sqlite_storage` or `sqlite:`), else None."""
    import yaml

    try:
        config = yaml.safe_load((home / "dagster.yaml").read_text(encoding="utf-8")) or {}
        storage = config["storage"]
        if "custom" in storage:
            if storage["custom"]["module"] != STORAGE_MODULE:
                return None
            base_dir = storage["custom"]["config"]["base_dir"]
        else:
            base_dir = storage["sqlite"]["base_dir"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    if base_dir == {"env": "DAGSTER_HOME"}:  # pepm's dagster.yaml; another variable: Dagster resolves it (None here)
        base_dir = os.environ.get("DAGSTER_HOME")
    if not isinstance(base_dir, str) or not base_dir:
        return None
    return Path(base_dir) / "history" / "runs.db"


def peek(home: Path, limit: int = 10) -> Peek | None:
    """Whether a run is to be recovered, and the last `limit` runs recovery marked failed (as
    recovery.crashed_runs lists them); None when this cannot be read without Dagster."""
    index = run_index(home)
    if index is None or not index.is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, timeout=10)) as db:
            marks = ",".join("?" * len(UNFINISHED_STATUSES))
            tags: dict[str, dict[str, str]] = {}
            query = (
                f"SELECT r.run_id, t.key, t.value FROM runs r LEFT JOIN run_tags t ON t.run_id = r.run_id AND t.key IN (?, ?, ?) "
                f"WHERE r.status IN ({marks})"
            )
            for run_id, key, value in db.execute(query, (PID, HOST, PID_START, *UNFINISHED_STATUSES)):
                tags.setdefault(run_id, {})
                if key is not None:
                    tags[run_id][key] = value
            rows = db.execute(
                "SELECT r.run_id, r.pipeline_name, p.value, r.start_time, r.end_time FROM runs r "
                "JOIN run_tags c ON c.run_id = r.run_id AND c.key = ? AND c.value = 'true' "
                "LEFT JOIN run_tags p ON p.run_id = r.run_id AND p.key = 'dagster/partition' "
                "ORDER BY r.id DESC LIMIT ?",
                (CRASHED, limit),
            ).fetchall()
    except sqlite3.Error:
        return None
    crashed = [CrashedRun(run_id, job, partition or "", start, end) for run_id, job, partition, start, end in rows]
    return Peek(any(process_dead(t) for t in tags.values()), crashed)
