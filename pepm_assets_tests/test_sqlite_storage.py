"""The engine-caching SQLite event log: run databases made from the template are Dagster's own."""
from __future__ import annotations

import os
import stat
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
