"""The Dagster instance of a project: DAGSTER_HOME defaults to <root>/.dagster, configured by the
committed <root>/dagster.yaml (local SQLite by default; point it at Postgres to share runs)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def ensure_dagster_home(root: Path) -> Path:
    """Set DAGSTER_HOME (unless already set) and keep its dagster.yaml in sync with the project's."""
    home = Path(os.environ.get("DAGSTER_HOME") or root / ".dagster")
    home.mkdir(parents=True, exist_ok=True)
    source = root / "dagster.yaml"
    target = home / "dagster.yaml"
    if source.is_file() and (not target.is_file() or target.read_bytes() != source.read_bytes()):
        shutil.copyfile(source, target)
    elif not target.exists():
        target.write_text("")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
