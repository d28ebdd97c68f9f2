"""The engine-caching SQLite event log: run databases made from the template are Dagster's own."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from pepm_assets.defs import sqlite_storage
from pepm_assets.defs.sqlite_storage import EngineCachingEventLogStorage


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _count_events(storage: EngineCachingEventLogStorage, run_id: str) -> int:
    with storage.run_connection(run_id) as conn:
        return conn.execute(text("select count(*) from event_logs")).scalar_one()


def test_new_run_database_is_complete_with_sqlites_mode(tmp_path: Path) -> None:
    storage = EngineCachingEventLogStorage(str(tmp_path))
    assert _count_events(storage, "run_a") == 0
    index, run = tmp_path / "index.db", tmp_path / "run_a.db"
    assert _mode(run) == _mode(index) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["index.db", "run_a.db"]
    assert storage.get_all_run_ids() == ["run_a"]
    storage.dispose()


def test_a_database_created_meanwhile_by_someone_else_gets_dagsters_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process (a stock Dagster storage, say) created the file between our check and our
    link, still empty: Dagster's own _initdb must complete it rather than trust it."""
    storage = EngineCachingEventLogStorage(str(tmp_path))
    real_link = os.link

    def raced(src: str, dst: Path) -> None:
        Path(dst).write_bytes(b"")
        real_link(src, dst)  # raises FileExistsError, as in the race

    monkeypatch.setattr(sqlite_storage.os, "link", raced)
    assert _count_events(storage, "run_b") == 0  # tables exist: no "no such table: event_logs"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    storage.dispose()


def test_an_existing_database_is_initialised_by_dagster_only_without_its_alembic_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stamped database (the index, an old run's) is opened as it is, by every new storage; one
    without a stamp (an empty file someone left) still gets Dagster's own _initdb, tables included."""
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    first = EngineCachingEventLogStorage(str(tmp_path))
    assert _count_events(first, "run_a") == 0
    first.dispose()
    (tmp_path / "run_b.db").write_bytes(b"")
    dagster_inits: list[str] = []
    real = SqliteEventLogStorage._initdb

    def spy(self, engine, for_index_shard=False):
        dagster_inits.append(Path(engine.url.database).name)
        return real(self, engine, for_index_shard=for_index_shard)

    monkeypatch.setattr(SqliteEventLogStorage, "_initdb", spy)
    second = EngineCachingEventLogStorage(str(tmp_path))
    assert _count_events(second, "run_a") == 0 and second.get_all_run_ids()  # the index and run_a: stamped, opened as they are
    assert dagster_inits == []
    assert _count_events(second, "run_b") == 0  # no "no such table": Dagster made the tables
    assert dagster_inits == ["run_b.db"]
    second.dispose()


def _pragma(conn, name: str):
    return conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()


def test_sqlite_connections_use_wal_and_the_configured_synchronous_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from pepm_assets.core import sqlite_settings

    sqlite_settings.install()
    engine = create_engine(f"sqlite:///{tmp_path / 'any.db'}", poolclass=NullPool)  # e.g. MLflow's store
    with engine.connect() as conn:
        assert _pragma(conn, "journal_mode") == "wal" and _pragma(conn, "synchronous") == 1  # NORMAL
    monkeypatch.setenv(sqlite_settings.ENV, "full")
    with engine.connect() as conn:
        assert _pragma(conn, "synchronous") == 2  # FULL
    monkeypatch.setenv(sqlite_settings.ENV, "fast")
    with pytest.raises(ValueError, match=sqlite_settings.ENV):
        sqlite_settings.install()
    engine.dispose()
    monkeypatch.setenv(sqlite_settings.ENV, "normal")
    # a database opened read-only keeps its journal mode (switching would need a write) and opens
    import sqlite3

    legacy = tmp_path / "legacy.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute("create table t (a)")
    read_only = create_engine(f"sqlite:///file:{legacy}?mode=ro&uri=true", poolclass=NullPool)
    with read_only.connect() as conn:
        assert _pragma(conn, "journal_mode") == "delete" and conn.exec_driver_sql("select count(*) from t").scalar_one() == 0
    read_only.dispose()


def test_a_database_keeps_one_open_connection_which_forked_children_never_use(tmp_path: Path) -> None:
    storage = EngineCachingEventLogStorage(str(tmp_path))
    assert _count_events(storage, "run_a") == 0
    engine = storage._engine("run_a")
    assert engine.pool.checkedin() == 1  # kept open: no log checkpoint and disk sync per write
    # a bare fork, not a multiprocessing Pool: the pool's own threads and locks, forked from a busy
    # test process, could hang its child; this child only reads the count and exits
    pid = os.fork()
    if pid == 0:
        os._exit(engine.pool.checkedin())
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child did not exit within 60 s")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(done[1]) == 0, "the forked child inherited an idle connection it could use"
    assert engine.pool.checkedin() == 1 and _count_events(storage, "run_a") == 0  # the parent's still works
    pool = engine.pool  # dispose() replaces engine.pool: look at the one that held the connection
    storage.dispose()
    assert pool.checkedin() == 0  # disposing the storage closes what it kept open


def test_the_run_storage_keeps_one_connection_until_disposed(tmp_path: Path) -> None:
    storage = sqlite_storage.PepmSqliteStorage(str(tmp_path))
    runs = storage.run_storage
    assert runs.get_runs() == [] and runs._engine.pool.checkedin() == 1
    pool = runs._engine.pool
    runs.dispose()
    assert pool.checkedin() == 0
    storage.event_log_storage.dispose()


def _store_events(storage: EngineCachingEventLogStorage, run_id: str, n: int) -> None:
    from dagster._core.events.log import EventLogEntry

    for i in range(n):
        storage.store_event(
            EventLogEntry(
                error_info=None,
                level=20,
                user_message=f"message {i}",
                run_id=run_id,
                timestamp=1.0 + i,
                step_key=None,
                job_name="job",
                dagster_event=None,
            )
        )


def test_watching_a_run_sees_events_written_by_another_storage(tmp_path: Path) -> None:
    """The UI's live run log: events that another process (here another storage object, with its
    own kept connection) writes reach the watcher, though the run's .db file does not change."""
    import threading

    reader, writer = EngineCachingEventLogStorage(str(tmp_path)), EngineCachingEventLogStorage(str(tmp_path))
    _store_events(writer, "run_a", 1)
    seen: list[str] = []
    done = threading.Event()

    def callback(entry, cursor) -> None:
        seen.append(entry.user_message)
        if len(seen) == 4:
            done.set()

    reader.watch("run_a", None, callback)
    _store_events(writer, "run_a", 3)
    assert done.wait(10), f"watcher saw only {seen}"
    assert seen == ["message 0", "message 0", "message 1", "message 2"]
    reader.end_watch("run_a", callback)
    reader.dispose()
    writer.dispose()


def test_wipe_leaves_no_event_behind(tmp_path: Path) -> None:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    storage = EngineCachingEventLogStorage(str(tmp_path))
    _store_events(storage, "run_a", 2)
    storage.wipe()
    _store_events(storage, "run_a", 1)
    assert _count_events(storage, "run_a") == 1
    stock = SqliteEventLogStorage(str(tmp_path))  # the files, as anyone else reads them
    assert len(stock.get_logs_for_run("run_a")) == 1
    storage.dispose()
    stock.dispose()
