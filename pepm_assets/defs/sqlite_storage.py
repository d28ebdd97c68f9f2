"""Dagster's embedded SQLite storage, with one SQLAlchemy engine per database file instead of one per
write.

Dagster's SQLite storages build a new engine (and, for the event log, re-check the schema of the
run's database) for every connection: a pepm pipeline run stores ~50 events, each touching one to
three databases, and the engines alone cost ~0.3 s of a 3.5 s run on MPT (benchmarks/README.md).
These subclasses keep the same files, schema, locking and connection behaviour (NullPool: a
connection per use, nothing stays open between writes); they only reuse the engine and remember
which databases were initialised. Selected in dagster.yaml (`storage: custom:`); Postgres is
configured there instead and does not come here.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from typing import Iterator

from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

ENGINES_KEPT = 64  # one per run database recently written; the index database is one of them


class EngineCachingEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data=None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            self._engines[shard] = engine
            if len(self._engines) > ENGINES_KEPT:
                self._engines.popitem(last=False)[1].dispose()
        else:
            self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        super().dispose()


class EngineCachingRunStorage(SqliteRunStorage):
    @contextmanager
    def connect(self) -> Iterator[Connection]:
        engine = getattr(self, "_engine", None)
        if engine is None:
            engine = self._engine = create_engine(self._conn_string, poolclass=NullPool)
        with engine.connect() as conn, conn.begin():
            yield conn


class PepmSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite:` of dagster.yaml, with the two storages above (same files under base_dir)."""

    def __init__(self, base_dir: str, inst_data=None) -> None:  # the parent's, with the classes above
        self.base_dir = base_dir
        self._run_storage = EngineCachingRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = EngineCachingEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "PepmSqliteStorage":
        return cls.from_local(inst_data=inst_data, **config_value)
