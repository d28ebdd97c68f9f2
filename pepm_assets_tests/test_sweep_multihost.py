"""The multi-host path of a sweep, on real services: the Dagster instance on a local PostgreSQL
(dagster-postgres), MLflow on PostgreSQL too, and each sweep run's step executed by a Celery
worker (dagster-celery, Redis broker) instead of the run's own process — by configuration only
(dagster.yaml + PEPM_SWEEP_EXECUTOR). Skipped, saying why, only where the services or packages
cannot be installed (pepm_assets_tests/install_engine.sh; CI runs it)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .engine import EngineUnavailable, celery_config_module, celery_worker, engine_dagster_yaml, local_postgres, local_redis, sqlalchemy_url
from .fixtures import REPO, make_project

EXPERIMENT = """exp_id: engine
base:
  profile: tiny_an
  make_vars: {HARDWARE_PRESET: small}
  overrides: {families: [sklearn], models: [tfidf_svm_quick]}
run: {repeats: 4, seed_strategy: per_run, base_seed: 1}
scheduler: {parallel: 2}
"""


def test_a_sweep_runs_on_celery_workers_with_the_instance_on_postgres(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", n_per_speaker=8)
    shutil.copy(REPO / "workspace.yaml", project / "workspace.yaml")
    (project / "configs" / "superior").mkdir()
    exp = project / "configs" / "superior" / "engine.yml"
    exp.write_text(EXPERIMENT, encoding="utf-8")
    try:
        with local_postgres(tmp_path / "pg", extra_dbs=["mlflow"]) as pg, local_redis(tmp_path / "redis") as redis:
            (project / "dagster.yaml").write_text(engine_dagster_yaml(pg), encoding="utf-8")
            celery_cfg = tmp_path / "celery"
            celery_config_module(celery_cfg, f"{redis}/0", f"{redis}/1")
            env = {
                **os.environ,
                "DAGSTER_HOME": str(project / ".dagster"),
                "PEPM_ROOT": str(project),
                "PEPM_SWEEP_EXECUTOR": "celery",
                "PEPM_CELERY_BROKER": f"{redis}/0",
                "PEPM_CELERY_BACKEND": f"{redis}/1",
                "PEPM_MLFLOW_URI": sqlalchemy_url(pg.rsplit("/", 1)[0] + "/mlflow"),
                "PYTHONPATH": os.pathsep.join([str(celery_cfg), str(REPO)]),
                "COLUMNS": "200",
            }
            with celery_worker(env, project, tmp_path / "worker.log", concurrency=2) as worker:
                pepm = str(Path(sys.executable).with_name("pepm"))
                result = subprocess.run(
                    [pepm, "sweep", "--exp-config", str(exp)], cwd=project, env=env, capture_output=True, text=True, timeout=600
                )
                worker_pid = worker.pid
    except EngineUnavailable as exc:
        pytest.skip(f"engine unavailable: {exc}")
    assert result.returncode == 0, result.stdout + result.stderr
    with (project / "superior" / "engine" / "runs.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [(r["run_id"], r["status"]) for r in rows] == [(f"run_000{i}", "success") for i in range(1, 5)]
    # each step ran in a Celery worker process (a child of the worker started above), not in the run's process
    log = (tmp_path / "worker.log").read_text(encoding="utf-8")
    assert "sweep_run" in log or "succeeded" in log
    for row in rows:
        outcome = json.loads((project / "superior" / "engine" / "runs" / row["run_id"] / "outcome.json").read_text(encoding="utf-8"))
        assert outcome["executor"] == "celery" and outcome["worker_ppid"] == worker_pid, outcome
    assert not (project / ".dagster" / "history").exists(), "the instance wrote SQLite run storage: not on PostgreSQL"
    # MLflow: each run's journal logged by pepm sweep into the PostgreSQL store, none into SQLite
    assert len({r["mlflow_run_id"] for r in rows if r["mlflow_run_id"]}) == 4, rows
    assert not list((project / "superior" / "engine" / "runs").glob("*/mlflow_journal.jsonl")), "a journal was left unlogged"
    assert not (project / "mlruns" / "mlflow.db").exists()
