"""How pepm's embedded SQLite stores (Dagster's run and event databases, MLflow's backend) commit.

SQLite's default `synchronous=FULL` waits for the disk at every commit, and Dagster commits once
per event (about 70 for one pipeline run on MPT): measured, 0.2-0.3 s of a 2.8 s pipeline
(benchmarks/README.md). Write-ahead logging with `synchronous=NORMAL` is SQLite's documented
setting for this case (https://www.sqlite.org/wal.html, "synchronous"): no crash, of the process or
of the OS, can corrupt a database; a power cut can lose the last commits, never consistency.
Dagster already puts its SQLite files in WAL mode; MLflow's file is switched to it here (when it
can be: a read-only or busy file keeps its journal). WAL needs every process on one machine's file
system: for a team sharing runs across machines, use Postgres for both stores.

`PEPM_SQLITE_SYNCHRONOUS=FULL` (or EXTRA) restores the strict behaviour. Only SQLite connections
are touched: a Postgres store never comes here.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")
ENV = "PEPM_SQLITE_SYNCHRONOUS"


def synchronous_level() -> str:
    level = os.environ.get(ENV, "NORMAL").strip().upper()
    if level not in LEVELS:
        raise ValueError(f"{ENV}={level!r}: expected one of {', '.join(LEVELS)}")
    return level


def configure_connection(dbapi_connection: Any, _record: Any = None) -> None:
    """SQLAlchemy `connect` listener: WAL journal and the chosen synchronous level, SQLite only."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode not in ("wal", "memory"):  # switched once, the mode is kept in the file
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:  # read-only file, or another process mid-transaction:
                pass  # it stays in its journal mode, and the next connection tries again
        cursor.execute(f"PRAGMA synchronous={synchronous_level()}")
    finally:
        cursor.close()


def install() -> None:
    """Apply `configure_connection` to every SQLAlchemy engine of this process (Dagster's storages
    and MLflow's tracking store create theirs internally). Idempotent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    synchronous_level()  # a bad value fails here, before any database is opened
    if not event.contains(Engine, "connect", configure_connection):
        event.listen(Engine, "connect", configure_connection)
