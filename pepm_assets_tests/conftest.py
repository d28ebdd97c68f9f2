from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fixtures import REPO, make_project

os.environ["PEPM_LAUNCHED_BY"] = "test"  # the pepm/launched_by tag of the runs the tests launch (`make test` exports make)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@contextlib.contextmanager
def temporary_instance(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """A real Dagster instance on SQLite in a temp DAGSTER_HOME (not an ephemeral in-memory one)."""
    import dagster as dg

    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture()
def dagster_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with temporary_instance(tmp_path / "dagster_home", monkeypatch) as instance:
        yield instance


@pytest.fixture(scope="session")
def shipped_corpora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three shipped corpora unpacked once (raw/<corpus_id>), for tests that only read them."""
    from pepm_assets.core import dvc

    raw = tmp_path_factory.mktemp("shipped_raw")
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", raw, ["mpt", "an_debats", "an_amendements"])
    return raw


@pytest.fixture(autouse=True)
def _dvc_executable(monkeypatch: pytest.MonkeyPatch) -> None:
    candidate = REPO / ".venv-dvc" / "bin" / "dvc"
    if "PEPM_DVC" not in os.environ and candidate.is_file():
        monkeypatch.setenv("PEPM_DVC", str(candidate))
