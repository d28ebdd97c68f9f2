"""The Dagster instance of a project: DAGSTER_HOME defaults to <root>/.dagster, configured by the
committed <root>/dagster.yaml (local SQLite by default; point it at Postgres to share runs).

First use is serialised: Dagster's SQLite storages create their tables and stamp their Alembic
revision when they open a store that does not exist yet, with no lock between processes, so two
commands started together on a fresh project could stamp two revisions ("alembic_version has more
than one head present", for every later command) or fail with "table runs already exists"
(dagster-io/dagster#27390). `get_instance` opens the instance under an flock on
<DAGSTER_HOME>/.pepm-init.lock; once the store exists, taking the free lock costs microseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.atomic import atomic_path
from ..core.locks import exclusive_lock

LOCK_NAME = ".pepm-init.lock"


def ensure_dagster_home(root: Path) -> Path:
    """Set DAGSTER_HOME (unless already set) and keep its dagster.yaml in sync with the project's.
    The copy is atomic and made under the lock: another process never reads half a dagster.yaml
    (an empty one would silently select Dagster's default storage)."""
    home = Path(os.environ.get("DAGSTER_HOME") or root / ".dagster")
    home.mkdir(parents=True, exist_ok=True)
    source = root / "dagster.yaml"
    target = home / "dagster.yaml"
    wanted = source.read_bytes() if source.is_file() else None
    if (wanted is not None and (not target.is_file() or target.read_bytes() != wanted)) or (wanted is None and not target.exists()):
        with exclusive_lock(home / LOCK_NAME), atomic_path(target) as tmp:
            tmp.write_bytes(wanted or b"")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(root: Path):
    """The project's DagsterInstance, its storages opened (created, on first use) under the lock."""
    import dagster as dg

    home = ensure_dagster_home(root)
    with exclusive_lock(home / LOCK_NAME):
        return dg.DagsterInstance.get()
