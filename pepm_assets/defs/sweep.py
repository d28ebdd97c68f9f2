"""Sweep runs as Dagster runs: the `sweep_run` asset, one dynamic partition per planned run
(`<exp_id>.<run_id>`), and the job `pepm sweep` submits to the instance's run queue.

A run's step executes core/sweep/execute.run_one in the run's own folder (in this process, or,
under a hard RAM limit, in a watched child process: `python -m pepm_assets.core.sweep.run_single`),
and writes outcome.json (status, note, peak RSS) whatever happens: `pepm sweep` reads it to fill
runs.tsv. MLflow: one parent run per run (experiment = exp_id; trainings and evaluations nested),
recorded in the run's mlflow_journal.jsonl (core/tracking.Journal) and logged from it by
`pepm sweep` when the run ends (runs it submits carry pepm/mlflow=deferred: the worker never
imports MLflow), or by the step itself at its end (a run launched another way, from the UI). It
depends on every parsed corpus: the lineage shows what a sweep read.
"""

import json
import logging
import multiprocessing
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import dagster as dg

from ..core import collector, settings, training
from ..core.atomic import write_json
from ..core.sweep import execute, memory
from ..core.sweep.plan import read_plan
from ..core.sweep.spec import FAILED, OOM, SUCCESS, exp_dir, run_dir
from ..core.tracking import Journal, Tracker, replay
from .assets.train import MlflowTracking
from .recovery import process_tags
from .resources import PepmProject

SWEEP_JOB = "sweep"
PARTITIONS = dg.DynamicPartitionsDefinition(name="sweep_run")
# run tags
EXP, RUN, ATTEMPT, CLASS, EXTRA, HARD_LIMIT, MLFLOW, FIGURES = (
    "pepm/sweep",
    "pepm/sweep_run",
    "pepm/attempt",
    "pepm/resource_class",
    "pepm/extra_overrides",
    "pepm/hard_limit_mb",
    "pepm/mlflow",
    "pepm/figures",  # "false": the run's report PNGs are not drawn (run.figures); absent: drawn
)
DEFERRED = "deferred"  # MLFLOW's value: `pepm sweep` logs the run's journal
AXIS = "pepm/axis."  # one namespace per tag key: Dagster deprecates "pepm/axis/<name>"
OUTCOME = "outcome.json"
JOURNAL = "mlflow_journal.jsonl"


def outcome_path(root: Path, exp_id: str, run_id: str) -> Path:
    return run_dir(root, exp_id, run_id) / OUTCOME


def journal_path(root: Path, exp_id: str, run_id: str) -> Path:
    return run_dir(root, exp_id, run_id) / JOURNAL


def log_path(root: Path, exp_id: str, run_id: str) -> Path:
    return exp_dir(root, exp_id) / "logs" / f"run_{run_id.removeprefix('run_')}.log"


@dg.asset(
    partitions_def=PARTITIONS,
    group_name="sweep",
    deps=[dg.AssetDep("corpus_docs", partition_mapping=dg.AllPartitionMapping())],
    kinds={"python"},
    description="One planned run of an experiment sweep (configs/superior/*.yml): split, formats, models and evaluations under `superior/<exp_id>/runs/<run_id>/`, summary.json; one MLflow parent run (experiment = exp_id). Submitted by `pepm sweep`; its axis values are the run's pepm/axis.* tags.",
)
def sweep_run(context: dg.AssetExecutionContext, project: PepmProject, mlflow: MlflowTracking) -> dg.MaterializeResult:
    tags = context.run.tags
    exp_id, run_id = tags[EXP], tags[RUN]
    root = project.path
    context.instance.add_run_tags(context.run_id, process_tags())  # `recover` can tell when this worker died
    if multiprocessing.parent_process() is not None:  # a run worker of its own, which ends with the run
        collector.tune_process()  # fewer garbage collections, none at its exit (core/collector.py)
    spec = next((s for s in read_plan(exp_dir(root, exp_id) / "plan.tsv") if s.run_id == run_id), None)
    if spec is None:
        raise dg.Failure(f"{run_id} is not in superior/{exp_id}/plan.tsv (re-planned since it was submitted)", allow_retries=False)
    extra = json.loads(tags.get(EXTRA, "[]"))
    limit = float(tags[HARD_LIMIT]) if tags.get(HARD_LIMIT) else None
    journal = Journal(journal_path(root, exp_id, run_id), fresh=True) if mlflow.enabled else None
    parent = None
    outcome: dict[str, Any] = {"dagster_run_id": context.run_id, "attempt": tags.get(ATTEMPT, "1"), "mlflow_run_id": ""}
    outcome.update(executor=settings.SWEEP_EXECUTOR.get(), host=socket.gethostname(), pid=os.getpid(), worker_ppid=os.getppid())
    outcome["start"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    started = time.perf_counter()
    log = log_path(root, exp_id, run_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        parent = _start_parent(journal, context, spec, extra)
        if limit is not None:
            summary = _run_watched(root, spec, extra, journal, limit, log, outcome)
        else:
            with _log_to(log):
                summary = execute.run_one(root, spec, journal, extra, _child_tags(context, parent), on_step=_step_logger(context))
            outcome["max_rss_mb"] = round(memory.peak_rss_mb_self(), 1)
        outcome.update(status=SUCCESS, note="")
    except BaseException as exc:
        if outcome.get("status") != OOM:
            outcome.update(status=FAILED, note=_first_line(exc))
            with log.open("a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        raise
    finally:
        outcome.update(end=time.strftime("%Y-%m-%dT%H:%M:%S"), duration_s=round(time.perf_counter() - started, 3))
        try:
            if journal and parent:
                scores = _best_scores(summary) if outcome.get("status") == SUCCESS else {}
                journal.end_parent(
                    parent, "FINISHED" if outcome.get("status") == SUCCESS else "FAILED", scores, {"status": outcome["status"]}
                )
            if tags.get(MLFLOW) != DEFERRED:
                outcome["mlflow_run_id"] = (
                    deferred_outputs(root, exp_id, run_id, mlflow.tracking_uri or None, figures=tags.get(FIGURES) != "false") or ""
                )
        finally:
            write_json(outcome_path(root, exp_id, run_id), outcome)
    return dg.MaterializeResult(
        metadata={
            "exp_id": exp_id,
            "run_id": run_id,
            "combo": spec.combo,
            "seed": spec.seed,
            "run_dir": dg.MetadataValue.path(str(run_dir(root, exp_id, run_id).relative_to(root))),
            "duration_s": outcome["duration_s"],
            "max_rss_mb": outcome.get("max_rss_mb", 0.0),
            **({"mlflow_run_id": outcome["mlflow_run_id"]} if outcome["mlflow_run_id"] else {}),
            **{
                f"{m['model_id']}@{m['eval_dataset_id']}.macro_f1": float(m["metrics"]["macro_f1"])
                for m in summary["models"]
                if "macro_f1" in m["metrics"]
            },
        }
    )


def deferred_outputs(
    root: Path, exp_id: str, run_id: str, uri: str | None = None, unfinished: str = "FAILED", figures: bool = True
) -> str | None:
    """What a run's step leaves to the process that follows it: the report PNGs of its reports (when
    `figures`: the sweep's run.figures), then its MLflow journal logged (and renamed *.logged: logged
    once, PNGs included in the artifacts). The parent run's MLflow id; None when there is no journal
    left to log."""
    reports = run_dir(root, exp_id, run_id) / "reports"
    if figures and reports.is_dir():
        training.draw_confusions(reports)
    path = journal_path(root, exp_id, run_id)
    if not path.is_file():
        return None
    parent = replay(path, Tracker(root, uri, experiment=exp_id), unfinished)
    path.replace(path.with_suffix(".logged.jsonl"))
    return parent


def _start_parent(tracker: Journal | None, context, spec, extra: list[str]) -> str | None:
    if tracker is None:
        return None
    tags = {
        "dagster_run_id": context.run_id,
        "sweep": spec.exp_id,
        "sweep_run": spec.run_id,
        "combo": spec.combo,
        "seed": str(spec.seed),
        "attempt": context.run.tags.get(ATTEMPT, "1"),
    }
    params = {
        "seed": spec.seed,
        "repeat_index": spec.repeat_index,
        "profile": spec.profile,
        "stage": spec.stage,
        **{f"axis.{k}": v for k, v in spec.axis_values.items()},
        **{f"make.{k}": v for k, v in spec.make_vars.items()},
        **({"extra_overrides": " ".join(extra)} if extra else {}),
    }
    return tracker.start_parent(f"{spec.exp_id}/{spec.run_id}", tags, params)


def _child_tags(context, parent: str | None) -> dict[str, str]:
    return {"dagster_run_id": context.run_id, **({"mlflow.parentRunId": parent} if parent else {})}


def _run_watched(root: Path, spec, extra: list[str], journal: Journal | None, limit: float, log: Path, outcome: dict) -> dict[str, Any]:
    """The run in a child process whose tree RSS is watched: over `limit` MB it is stopped (oom)."""
    cmd = [sys.executable, "-m", "pepm_assets.core.sweep.run_single", "--root", str(root), "--exp-id", spec.exp_id, "--run-id", spec.run_id]
    cmd += [f"--extra-override={o}" for o in extra] + ([f"--journal={journal.path}"] if journal else ["--no-mlflow"])
    result = memory.run_watched(cmd, limit, log, cwd=str(root))
    outcome["max_rss_mb"] = round(result.peak_mb, 1)
    if result.oom:
        outcome.update(status=OOM, note=f"hard RAM limit: process tree RSS {result.rss_at_kill_mb:.0f} MB > {limit:.0f} MB")
        raise dg.Failure(f"oom: {outcome['note']}", allow_retries=False)
    if result.returncode != 0:
        raise dg.Failure(f"the run's process exited with code {result.returncode}; see {log}", allow_retries=False)
    summary = execute.load_summary(root, spec)
    if summary is None:
        raise dg.Failure(f"the run's process ended without a summary.json; see {log}", allow_retries=False)
    return summary


class _log_to:
    """pepm's log lines of the run (steps, warnings) also go to logs/run_<n>.log."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def __enter__(self):
        logging.getLogger("pepm_assets").addHandler(self.handler)
        logging.getLogger("pepm_assets").setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        logging.getLogger("pepm_assets").removeHandler(self.handler)
        self.handler.close()


def _step_logger(context):
    logger = logging.getLogger("pepm_assets.sweep")

    def step(name: str) -> None:
        context.log.info(name)
        logger.info(name)

    return step


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _best_scores(summary: dict[str, Any]) -> dict[str, float]:
    """The parent MLflow run's metrics: each model's accuracy and macro-F1 (`<model>@<eval>.<metric>`)."""
    out = {}
    for m in summary["models"]:
        for key in ("accuracy", "macro_f1"):
            if key in m["metrics"]:
                out[f"{m['model_id']}.{m['eval_dataset_id']}.{key}"] = float(m["metrics"][key])
    return out


def sweep_executor():
    """in_process (default): the step runs in the run worker's process (a one-step run gains
    nothing from a process per step). celery (PEPM_SWEEP_EXECUTOR): the step becomes a Celery task
    on a worker, on any host that shares the project folder (docs/multihost.md); broker URLs stay in
    the environment, out of the run config."""
    if settings.SWEEP_EXECUTOR.get() != "celery":
        return dg.in_process_executor
    try:
        from dagster_celery import celery_executor
    except ImportError as exc:
        raise settings.SettingError("PEPM_SWEEP_EXECUTOR=celery needs dagster-celery[redis]==0.29.27 (pip install -e '.[engine]')") from exc
    if not settings.CELERY_BROKER.get():
        raise settings.SettingError("PEPM_SWEEP_EXECUTOR=celery needs PEPM_CELERY_BROKER")
    backend = settings.CELERY_BACKEND if settings.CELERY_BACKEND.get() else settings.CELERY_BROKER
    return celery_executor.configured(
        {
            "broker": {"env": settings.CELERY_BROKER.name},
            "backend": {"env": backend.name},
            "config_source": {"worker_prefetch_multiplier": 1, "broker_transport_options": {"visibility_timeout": 43200}},
        },
        name="pepm_celery",
    )


def sweep_job():
    """The job `pepm sweep` submits (see sweep_executor)."""
    return dg.define_asset_job(
        SWEEP_JOB,
        selection=dg.AssetSelection.assets("sweep_run"),
        executor_def=sweep_executor(),
        description="One planned run of an experiment sweep (submitted by `pepm sweep`, queued by the instance's run coordinator).",
    )
