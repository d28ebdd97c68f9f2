"""Dagster's embedded SQLite storage, with one SQLAlchemy engine per database file instead of one per
write, and one connection kept open per database.

Dagster's SQLite storages build a new engine and open a new connection for every write, and the
event log creates each run's database by creating its tables and stamping its Alembic revision
(which reads every migration script). A pepm pipeline run on MPT stores ~70 events, each touching
one to three databases; each time the last connection to a database closes, SQLite checkpoints its
write-ahead log and syncs the disk. These subclasses keep the same files, schema and locking (a
stock `storage: sqlite:` instance reads them: tested); they reuse one engine per database with a
small pool (one idle connection kept, so the log is checkpointed by SQLite's own schedule), create
a new run database as a copy of one made the standard way once per process, and commit with
`synchronous=NORMAL` (core/sqlite_settings.py). Together: 0.5 s less per pipeline on MPT
(benchmarks/README.md). Selected in dagster.yaml (`storage: custom:`); Postgres is configured
there instead and does not come here.
"""

from __future__ import annotations

import os
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

from ..core import sqlite_settings
from ..core.atomic import new_sibling_file
from .dagster_internals import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    DagsterSqliteStorage,
    DagsterStorage,
    SqliteEventLogStorage,
    SqliteRunStorage,
    SqliteScheduleStorage,
    SqlPollingEventWatcher,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

ENGINES_KEPT = 16  # one per run database recently written; the index database is one of them
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _pooled_engine(url: str) -> Engine:
    """One open connection kept per database (SQLite closes the write-ahead log, with a checkpoint
    and a disk sync, each time the last connection to a database closes); more are opened when
    threads write at once, and closed after use."""
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=8,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    _ENGINES.add(engine)
    return engine


def _forget_connections_in_child() -> None:
    """A forked process (parse workers, n-gram counting) must never use its parent's SQLite
    connections: its pools start empty, the parent's connections stay open for the parent."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections_in_child)


def _stamped(engine: Engine) -> bool:
    """Whether the database has an Alembic revision (Dagster stamps it when it creates the tables)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() is not None


class EngineCachingEventLogStorage(SqliteEventLogStorage):
    """Watching a run (the UI's live log) polls the run's database, as Dagster's MySQL storage does:
    Dagster's SQLite storage waits for the run's `.db` file to change, which a kept connection
    delays until the write-ahead log is checkpointed (the new events sit in `.db-wal`)."""

    _template_bytes: bytes | None = None  # an empty run database, made once per process

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._poller: SqlPollingEventWatcher | None = None
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = _pooled_engine(self.conn_string_for_shard(shard))
            self._engines[shard] = engine
            if len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """A database that does not exist yet is created from the template, atomically (linked into
        place complete, with the mode SQLite would give it). One that exists with an Alembic
        revision stamped is left as it is: Dagster's own _initdb does nothing else with it, after
        loading Alembic's revision scripts to find the head revision it then does not use (0.025 s
        at each new instance's first use of the index database, and at each old run's database
        read). In every other case (no stamp, another process created it first, the file system
        has no hard links) Dagster's own _initdb runs, which creates what is missing."""
        target = Path(engine.url.database or "")
        if for_index_shard or not target.name or target.exists():
            if for_index_shard or not target.name or not _stamped(engine):
                super()._initdb(engine, for_index_shard=for_index_shard)
            return  # stamped: what Dagster's _initdb concludes too, without loading Alembic's scripts
        tmp = new_sibling_file(target)  # the mode SQLite would give the database
        try:
            with open(tmp, "wb") as fh:
                fh.write(self._template())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, target)  # never replaces a database someone else created meanwhile
        except OSError:  # FileExistsError (a race), or no hard links here
            super()._initdb(engine)
        finally:
            os.unlink(tmp)

    def _template(self) -> bytes:
        """The bytes of an empty run database made by Dagster's own _initdb (tables, WAL mode,
        Alembic stamp), checkpointed so that the main file alone is the whole database."""
        if EngineCachingEventLogStorage._template_bytes is None:
            with tempfile.TemporaryDirectory(prefix="pepm_dagster_template_") as tmp:
                path = Path(tmp) / "template.db"
                engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
                super()._initdb(engine)
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                engine.dispose()
                EngineCachingEventLogStorage._template_bytes = path.read_bytes()
        return EngineCachingEventLogStorage._template_bytes

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def watch(self, run_id: str, cursor: str | None, callback) -> None:
        if self._poller is None:
            self._poller = SqlPollingEventWatcher(self)
        self._poller.watch_run(run_id, cursor, callback)

    def end_watch(self, run_id: str, handler) -> None:
        if self._poller is not None:
            self._poller.unwatch_run(run_id, handler)

    def _close_connections(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._close_connections()  # else the kept connections would go on writing the deleted files
        super().wipe()

    def dispose(self) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self._close_connections()
        super().dispose()


class EngineCachingRunStorage(SqliteRunStorage):
    def __init__(self, conn_string: str, inst_data=None) -> None:
        super().__init__(conn_string, inst_data)
        self._engine = _pooled_engine(conn_string)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        self._engine.dispose()
        super().dispose()


class PepmSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite:` of dagster.yaml, with the two storages above (same files under base_dir)."""

    def __init__(self, base_dir: str, inst_data=None) -> None:  # the parent's, with the classes above
        sqlite_settings.install()  # WAL + synchronous=NORMAL (see core/sqlite_settings.py)
        self.base_dir = base_dir
        self._run_storage = EngineCachingRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = EngineCachingEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PepmSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
