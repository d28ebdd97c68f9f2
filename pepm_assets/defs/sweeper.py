"""`pepm sweep`: an experiment's planned runs through Dagster's run queue, followed to the end.

1. The plan (core/sweep/plan.py) is built and every run resolved before anything runs: a broken
   experiment fails here. plan.tsv is written; `--dry-run` stops there.
2. The corpora the plan reads are parsed (once, whatever the number of runs; skipped when fresh).
3. Each run to execute becomes a dynamic `sweep_run` partition and a Dagster run submitted to the
   instance's queue, tagged with its experiment, run id, attempt, resource class and axis values.
   The QueuedRunCoordinator launches them with the run launcher that dagster.yaml names, within
   `max_concurrent_runs` (scheduler.parallel) and per resource-class `tag_concurrency_limits`
   (weights, max_weight, approx_ram_per_class, max_ram_gb): the soft RAM budget only holds runs
   back. A daemon must dequeue: the one already serving the instance (`pepm dev`), else Dagster's
   run-queue daemon run in a thread of `pepm sweep` with the sweep's limits (on an instance folder
   under superior/<exp_id>/ whose dagster.yaml is the project's, same storage, with this run
   queue), stopped at the end.
4. The runs are followed in Dagster's run storage until each planned run is final: runs.tsv is
   rewritten on every change, oom_policy and early_stop are applied as results arrive (cancelling
   queued runs, or submitting a backoff attempt), then the analysis hooks run.

`--resume` keeps the runs whose row says success with the parameters planned now, adopts the runs
still queued or running in Dagster, and runs everything else again; a run whose worker died
(SIGKILL, machine down) is marked failed by `recover` first and executed again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from ..core.atomic import write_json, write_text
from ..core.config import ConfigError, resolve_on_dataset
from ..core.paths import ProjectPaths
from ..core.selection import LAUNCHED_BY_TAG
from ..core.sweep import policy, session
from ..core.sweep.execute import load_summary, resolve_run, summary_path
from ..core.sweep.ledger import Ledger
from ..core.sweep.plan import queue_limits, queue_warnings
from ..core.sweep.spec import (
    CANCELED,
    FAILED,
    FINAL,
    OOM,
    PLANNED,
    PRUNED,
    QUEUED,
    RUNNING,
    SUCCESS,
    RunSpec,
    partition_key,
    run_dir,
)
from . import dagster_internals as internals
from .sweep import (
    ATTEMPT,
    AXIS,
    CLASS,
    DEFERRED,
    EXP,
    EXTRA,
    FIGURES,
    HARD_LIMIT,
    MLFLOW,
    PARTITIONS,
    RUN,
    SWEEP_JOB,
    deferred_outputs,
    journal_path,
    outcome_path,
)

MAX_BACKOFFS = 3
NOT_LOGGED = "MLflow not logged yet"  # a runs.tsv note, until a later pepm sweep logs the run's journal
DAEMON_RECORD = "pepm-sweep-daemon.json"
_STATUS = {
    dg.DagsterRunStatus.QUEUED: QUEUED,
    dg.DagsterRunStatus.NOT_STARTED: QUEUED,
    dg.DagsterRunStatus.STARTING: RUNNING,
    dg.DagsterRunStatus.STARTED: RUNNING,
    dg.DagsterRunStatus.CANCELING: RUNNING,
    dg.DagsterRunStatus.SUCCESS: SUCCESS,
    dg.DagsterRunStatus.FAILURE: FAILED,
    dg.DagsterRunStatus.CANCELED: CANCELED,
}


@dataclass
class SweepReport:
    exp_id: str
    exp_root: Path
    plan: list[RunSpec]
    ledger: Ledger | None = None
    kept: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    daemon: str = ""
    seconds: float = 0.0
    hooks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def run_sweep(
    root: Path,
    exp_config: Path,
    parallel: int | None = None,
    max_ram_gb: float | None = None,
    max_runs: int | None = None,
    resume: bool = False,
    dry_run: bool = False,
    on_change: Callable[[Ledger], None] | None = None,
    poll_seconds: float = 0.5,
    sweep: session.Sweep | None = None,
) -> SweepReport:
    started = time.perf_counter()
    root = Path(root).resolve()
    sweep = sweep or session.open_sweep(root, exp_config, parallel, max_ram_gb, max_runs)
    cfg, plan, exp_root = sweep.cfg, sweep.plan, sweep.exp_root
    report = SweepReport(cfg.exp_id, exp_root, plan)
    if dry_run:
        report.seconds = time.perf_counter() - started
        return report

    from .instance import get_instance
    from .recovery import recover

    instance = get_instance(root)
    recover(instance, root)  # runs of this sweep whose worker died: FAILED, so they run again
    ledger = Ledger.load(exp_root / "runs.tsv")
    _log_pending(root, instance, cfg, ledger)  # journals an interrupted pepm sweep left unlogged
    follower = _Follower(root, cfg, plan, ledger, instance, on_change)
    if resume:
        follower.settle()
    report.kept = session.kept(plan, ledger) if resume else []
    ledger.plan(plan, set(report.kept))
    adopted = _adopt(instance, cfg.exp_id, plan, ledger, daemon_alive=bool(_live_daemon(instance, _home()))) if resume else {}
    if not resume:
        _cancel_unfinished(instance, cfg.exp_id)
    ledger.save()
    todo = [s for s in plan if s.run_id not in report.kept and s.run_id not in adopted]
    if todo:
        _parse_corpora(root, instance, todo)
    classes = sorted({s.resource_class for s in plan})
    limits, report.warnings = queue_limits(cfg.scheduler, classes), queue_warnings(cfg.scheduler, classes)
    queue = _run_queue(instance, root, exp_root, limits) if todo or adopted else contextlib.nullcontext(_Queue(""))
    with queue as q:
        report.daemon = q.description
        follower.submit = lambda spec, extra, attempt: q.submit(_tags(cfg, spec, extra, attempt))
        if todo:
            instance.add_dynamic_partitions(PARTITIONS.name, [partition_key(cfg.exp_id, s.run_id) for s in todo])
            for spec in todo:
                follower.launch(spec, [])
            report.submitted = [s.run_id for s in todo]
        q.start()
        if todo or adopted:
            follower.wait(poll_seconds)
        q.stop()
        _log_pending(root, instance, cfg, ledger)
        report.ledger = ledger
        report.hooks = session.finish(sweep, root)
    report.seconds = time.perf_counter() - started
    return report


def _tags(cfg, spec: RunSpec, extra: list[str], attempt: int) -> dict[str, str]:
    return {
        "dagster/partition": partition_key(cfg.exp_id, spec.run_id),
        EXP: cfg.exp_id,
        RUN: spec.run_id,
        ATTEMPT: str(attempt),
        CLASS: spec.resource_class,
        MLFLOW: DEFERRED,
        LAUNCHED_BY_TAG: "sweep",
        FIGURES: str(cfg.run.figures).lower(),
        **({EXTRA: json.dumps(extra)} if extra else {}),
        **({HARD_LIMIT: str(cfg.safety.hard_limit_mb)} if cfg.safety.enable_hard_ram_limit else {}),
        **{f"{AXIS}{k}": v for k, v in spec.axis_values.items()},
    }


def _sweep_runs(instance: dg.DagsterInstance, exp_id: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={EXP: exp_id})))


def _adopt(instance: dg.DagsterInstance, exp_id: str, plan: list[RunSpec], ledger: Ledger, daemon_alive: bool) -> dict[str, str]:
    """Runs of this sweep still queued or running in Dagster (a resume while they go on): followed,
    not submitted again. {run_id: dagster run id}. A run caught between launch and its first step
    (STARTING: no worker pid recorded yet) when no daemon is alive was launched by a daemon that
    died with the sweep: it is marked failed (its worker, if it comes up, does not execute a failed
    run) and runs again."""
    planned = {s.run_id for s in plan}
    adopted = {}
    for run in _sweep_runs(instance, exp_id):  # newest first
        run_id = run.tags.get(RUN, "")
        if not daemon_alive and run.status in (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED):
            instance.report_run_failed(run, "pepm sweep: launched by a daemon that died before the run's worker started; run again")
            continue
        if run_id in planned and run_id not in adopted and not run.is_finished and ledger.rows[run_id]["status"] == PLANNED:
            adopted[run_id] = run.run_id
            ledger.update(run_id, status=_STATUS[run.status], dagster_run_id=run.run_id, attempt=run.tags.get(ATTEMPT, "1"))
    return adopted


def _log_pending(root: Path, instance: dg.DagsterInstance, cfg, ledger: Ledger) -> None:
    """The deferred outputs (sweep.deferred_outputs) of finished Dagster runs whose MLflow journal
    is not logged yet (a run withdrawn while it ran, or a pepm sweep stopped before it logged one):
    done now; a parent never ended ends KILLED."""
    changed = False
    for run_id, row in ledger.rows.items():
        if not journal_path(root, cfg.exp_id, run_id).is_file():
            continue
        run = instance.get_run_by_id(row["dagster_run_id"]) if row["dagster_run_id"] else None
        if run is None or not run.is_finished:
            continue
        parent, error = _deferred(root, cfg.exp_id, run_id, cfg.run.figures, unfinished="KILLED")
        if parent and not row["mlflow_run_id"]:
            changed |= ledger.update(run_id, mlflow_run_id=parent, note=row["note"].partition(NOT_LOGGED)[0].rstrip("; "))
        elif error and error not in row["note"]:
            changed |= ledger.update(run_id, note="; ".join(filter(None, [row["note"], error])))
    if changed:
        ledger.save()


def _deferred(root: Path, exp_id: str, run_id: str, figures: bool, unfinished: str = "FAILED") -> tuple[str | None, str]:
    """sweep.deferred_outputs, and what went wrong: an MLflow store out of reach does not stop the
    sweep nor change the run's result; its journal stays, logged by the next `pepm sweep`."""
    try:
        return deferred_outputs(root, exp_id, run_id, unfinished=unfinished, figures=figures), ""
    except Exception as exc:  # noqa: BLE001  (whatever the store raises: the journal waits)
        return None, f"{NOT_LOGGED} ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})"


def _cancel_unfinished(instance: dg.DagsterInstance, exp_id: str) -> None:
    """A sweep started anew (no --resume) first withdraws its earlier runs still in the queue."""
    for run in _sweep_runs(instance, exp_id):
        if run.status == dg.DagsterRunStatus.QUEUED:
            instance.run_coordinator.cancel_run(run.run_id)


def _parse_corpora(root: Path, instance: dg.DagsterInstance, plan: list[RunSpec]) -> None:
    """Every corpus the runs read, parsed once for the whole sweep (the runner skips fresh ones)."""
    from ..core.config import resolve_profile
    from . import runner

    seen: dict[str, Any] = {}
    for spec in {s.combo: s for s in plan}.values():  # repeats differ by their seed only, not by their data
        params = resolve_profile(root, spec.profile, spec.override_list)
        for part in (params, *([resolve_on_dataset(root, params, params.eval_dataset_id)] if params.eval_dataset_id else [])):
            seen.setdefault(part.dataset_id, part)
    runner.parse_corpora(root, instance, list(seen.values()), launched_by="sweep")


class _Follower:
    """Follows the sweep's Dagster runs into runs.tsv and applies the policies as results arrive."""

    def __init__(self, root: Path, cfg, plan: list[RunSpec], ledger: Ledger, instance: dg.DagsterInstance, on_change) -> None:
        self.root, self.cfg, self.ledger, self.instance = root, cfg, ledger, instance
        self.plan = {s.run_id: s for s in plan}
        self.order = plan
        self.on_change = on_change or (lambda _ledger: None)
        self.submit: Callable[[RunSpec, list[str], int], str] | None = None
        self.extra: dict[str, list[str]] = {}

    def launch(self, spec: RunSpec, extra: list[str]) -> None:
        attempt = int(self.ledger.rows[spec.run_id]["attempt"] or 0) + 1
        self.extra[spec.run_id] = extra
        outcome_path(self.root, spec.exp_id, spec.run_id).unlink(missing_ok=True)
        dagster_run_id = self.submit(spec, extra, attempt)
        self.ledger.update(spec.run_id, status=QUEUED, attempt=attempt, dagster_run_id=dagster_run_id, start="", end="", note="")
        self.ledger.save()
        self.on_change(self.ledger)

    def settle(self) -> None:
        """Rows that a stopped (killed) pepm sweep left queued or running, whose Dagster run has
        succeeded since: recorded from their outcome now, so that a resume keeps them."""
        for run_id, row in list(self.ledger.rows.items()):
            if row["status"] in (QUEUED, RUNNING) and row["dagster_run_id"] and run_id in self.plan:
                run = self.instance.get_run_by_id(row["dagster_run_id"])
                if run is not None and run.status == dg.DagsterRunStatus.SUCCESS:
                    self._finished(self.plan[run_id], run, SUCCESS)
        self.ledger.save()

    def wait(self, poll_seconds: float) -> None:
        while any(r["status"] not in FINAL for r in self.ledger.rows.values()):
            if self._poll():
                self.ledger.save()
                self.on_change(self.ledger)
            time.sleep(poll_seconds)

    def _poll(self) -> bool:
        changed = False
        by_id = {r.run_id: r for r in _sweep_runs(self.instance, self.cfg.exp_id)}
        for run_id, row in list(self.ledger.rows.items()):
            if row["status"] in FINAL or not row["dagster_run_id"]:
                continue
            run = by_id.get(row["dagster_run_id"])
            if run is None:
                continue
            status = _STATUS[run.status]
            if status in (QUEUED, RUNNING):
                changed |= self.ledger.update(run_id, status=status)
                continue
            changed = True
            self._finished(self.plan[run_id], run, status)
        return changed

    def _finished(self, spec: RunSpec, run: dg.DagsterRun, status: str) -> None:
        outcome = _read_outcome(self.root, spec, run.run_id)
        if status == FAILED and outcome.get("status") == OOM:
            status = OOM
        if run.tags.get(MLFLOW) == DEFERRED:  # this process is the sweep's MLflow writer
            parent, error = _deferred(self.root, spec.exp_id, spec.run_id, self.cfg.run.figures)
            outcome["mlflow_run_id"] = parent or outcome.get("mlflow_run_id", "")
            if error:
                outcome["note"] = "; ".join(filter(None, [outcome.get("note", ""), error]))
        fields = {
            "status": status,
            "start": outcome.get("start", ""),
            "end": outcome.get("end", ""),
            "duration_s": outcome.get("duration_s", ""),
            "max_rss_mb": outcome.get("max_rss_mb", ""),
            "mlflow_run_id": outcome.get("mlflow_run_id", ""),
            "note": outcome.get("note", "") or ("" if status == SUCCESS else f"Dagster run {run.status.value}; see the run in the UI"),
        }
        summary = load_summary(self.root, spec) if status == SUCCESS else None
        if summary is not None:
            ok, flags = policy.judge_early_stop(self.cfg.early_stop, summary["models"])
            fields.update(
                metrics_path=summary_path(self.root, spec.exp_id, spec.run_id),
                quality_ok=str(ok).lower(),
                quality_flags=",".join(flags),
                train_caps_json=json.dumps(summary.get("train_caps", {}), sort_keys=True),
            )
        self.ledger.update(spec.run_id, **fields)
        if summary is not None and fields["quality_ok"] == "false":
            self._early_stop(spec, fields["quality_flags"].split(","))
        if status == OOM:
            self._oom(spec)

    def _early_stop(self, spec: RunSpec, flags: list[str]) -> None:
        log = self.ledger.path.parent / "logs" / "early_stop.log"
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {spec.run_id} [{spec.combo}] seed {spec.seed}: {','.join(flags)}"
        pruned = policy.to_prune(self.order, self.ledger.rows, spec.run_id, self.cfg.early_stop)
        for run_id in pruned:
            self._withdraw(run_id, PRUNED, f"early_stop: {spec.run_id} of the same combination flagged {','.join(flags)}")
        if pruned:
            line += f"; pruned {', '.join(pruned)}"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def _oom(self, spec: RunSpec) -> None:
        oom = self.cfg.oom_policy
        if oom.on_oom == "backoff":
            attempts = int(self.ledger.rows[spec.run_id]["attempt"] or 1)
            extra = self._backoff(spec) if attempts <= MAX_BACKOFFS else None
            if extra is not None:
                caps = {o.split("=")[0].rsplit(".", 1)[1]: int(o.split("=")[1]) for o in extra}
                note = f"oom at attempt {attempts}; backoff: {' '.join(extra)}"
                self.ledger.update(spec.run_id, note=note, train_caps_json=json.dumps(caps, sort_keys=True))
                self.launch(spec, extra)
                return
        for run_id, status, note in policy.after_oom(oom, self.order, self.ledger.rows, spec.run_id):
            self._withdraw(run_id, status, note)

    def _backoff(self, spec: RunSpec) -> list[str] | None:
        current = self.extra.get(spec.run_id, [])
        try:
            params = resolve_run(self.root, spec, current or None)
        except (ConfigError, RuntimeError):
            return None
        families = sorted({params.model_specs[m].family for m in params.models})
        caps = {f: params.hardware.cap(f) for f in families}
        meta = ProjectPaths(run_dir(self.root, spec.exp_id, spec.run_id)).view_dir(params.dataset_id, params.view) / "meta_view.json"
        try:
            n_train = int(json.loads(meta.read_text(encoding="utf-8"))["split"]["n_train"])
        except (OSError, ValueError, KeyError, TypeError):
            n_train = None
        return policy.backoff_overrides(caps, families, n_train, self.cfg.oom_policy.backoff_factor)

    def _withdraw(self, run_id: str, status: str, note: str) -> None:
        """A policy's decision on a run not final yet: its Dagster run is cancelled (dequeued, or
        terminated if it already started: the policy says it must not count)."""
        row = self.ledger.rows[run_id]
        if row["status"] in FINAL:
            return
        if row["dagster_run_id"]:
            run = self.instance.get_run_by_id(row["dagster_run_id"])
            if run is not None and not run.is_finished:
                self.instance.run_coordinator.cancel_run(run.run_id)
        self.ledger.update(run_id, status=status, note=note)


def _read_outcome(root: Path, spec: RunSpec, dagster_run_id: str) -> dict[str, Any]:
    """The run's outcome.json, if this Dagster run wrote it (an older attempt's is ignored)."""
    try:
        data = json.loads(outcome_path(root, spec.exp_id, spec.run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if data.get("dagster_run_id") == dagster_run_id else {}


# ---------------------------------------------------------------- the daemon that dequeues
def instance_yaml(root: Path, home: Path, limits: dict[str, Any]) -> str:
    """The project's dagster.yaml for a daemon with the sweep's run queue: the same storage
    (DAGSTER_HOME references made explicit), compute logs and artifacts in the project's instance
    folder, and `run_queue` = the sweep's limits (dequeued every second, launched in parallel)."""
    source = root / "dagster.yaml"
    config = yaml.safe_load(source.read_text(encoding="utf-8")) if source.is_file() else {}
    config = _explicit_home(config or {}, str(home))
    config.setdefault("storage", {"sqlite": {"base_dir": str(home)}})
    logs = config.setdefault(
        "compute_logs", {"module": "dagster._core.storage.local_compute_log_manager", "class": "LocalComputeLogManager"}
    )
    if isinstance(logs, dict) and logs.get("class") in ("LocalComputeLogManager", "ThreadMirroredComputeLogManager"):
        # explicit: the daemon's instance lives in the sweep's folder, its logs in the project's instance folder
        logs["config"] = {"base_dir": str(home / "storage"), **(logs.get("config") or {})}
    config.setdefault(
        "local_artifact_storage",
        {"module": "dagster._core.storage.root", "class": "LocalArtifactStorage", "config": {"base_dir": str(home)}},
    )
    # launched in threads: one launch at a time would start parallel runs a launch apart (~1.3 s each)
    queue = {
        **limits,
        "dequeue_interval_seconds": 1,
        "dequeue_use_threads": True,
        "dequeue_num_workers": max(1, limits["max_concurrent_runs"]),
    }
    if isinstance(config.get("run_coordinator"), dict):  # the long form (QueuedRunCoordinator named with its config)
        config["run_coordinator"]["config"] = {**(config["run_coordinator"].get("config") or {}), **queue}
    else:
        config["run_queue"] = queue
    return "# written by `pepm sweep` for its run-queue daemon: the project's dagster.yaml, this sweep's run queue\n" + yaml.safe_dump(
        config, sort_keys=False
    )


def _explicit_home(node: Any, home: str) -> Any:
    if isinstance(node, dict):
        if node == {"env": "DAGSTER_HOME"}:
            return home
        return {k: _explicit_home(v, home) for k, v in node.items()}
    if isinstance(node, list):
        return [_explicit_home(v, home) for v in node]
    return node


def _live_daemon(instance: dg.DagsterInstance, home: Path) -> str:
    """A description of the daemon already dequeuing this instance's runs, or "" when there is none.
    Heartbeats outlive their daemon for a while, so the ids of the daemons sweeps started are kept
    (<DAGSTER_HOME>/pepm-sweep-daemon.json): a fresh heartbeat of one of them counts only while
    its process lives."""
    beat = instance.get_daemon_heartbeats().get(internals.QUEUED_RUN_COORDINATOR)
    if beat is None or time.time() - beat.timestamp > 60:
        return ""
    record = _record(home)
    if beat.daemon_id not in record["ours"]:
        return f"the Dagster daemon already running on this instance (last heartbeat {time.time() - beat.timestamp:.0f} s ago)"
    from ..core.atomic import pid_alive

    current = record.get("current") or {}
    alive = current.get("daemon_id") == beat.daemon_id and pid_alive(int(current.get("pid", 0)))
    return f"the daemon of sweep {current.get('exp_id')} (pid {current['pid']})" if alive else ""


def _record(home: Path) -> dict[str, Any]:
    try:
        return json.loads((home / DAEMON_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"ours": []}


def _home() -> Path:
    return Path(os.environ["DAGSTER_HOME"])  # set by get_instance (defs/instance.py)


class _Queue:
    """The sweep's side of the run queue: `submit(tags)` puts a `sweep` run on it (-> its Dagster run
    id); `description` names who dequeues; `start()` starts the sweep's own dequeuer, if it has one
    (once the runs are submitted: its first pass then launches them, not a pass a second later), and
    `stop()` ends it."""

    def __init__(
        self,
        description: str,
        submit: Callable[[dict[str, str]], str] | None = None,
        dequeuer: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> None:
        self.description = description
        self.submit = submit or _no_submission
        self.start, self.stop = dequeuer or (_nothing, _nothing)


def _nothing() -> None:
    return None


def _no_submission(tags: dict[str, str]) -> str:
    raise RuntimeError("this sweep has no run queue open")


@contextlib.contextmanager
def _run_queue(instance: dg.DagsterInstance, root: Path, exp_root: Path, limits: dict[str, Any]) -> Iterator[_Queue]:
    """One workspace for the whole sweep, in this process (one code server: it launches the run
    workers), that submits the runs as `dagster job launch` does; and, unless a daemon already
    serves the instance (`pepm dev`), Dagster's own run-queue daemon (QueuedRunCoordinatorDaemon)
    looping in a thread of this process on an instance whose run queue has the sweep's limits: what
    `dagster-daemon run` would run for the queue, without a second process and code server of its
    own competing with the runs for the cores."""
    from dagster import __version__

    project_home = _home()
    log = exp_root / "logs" / "dagster.log"  # the run-queue daemon's log, the code server's and run workers' output
    live = _live_daemon(instance, project_home)
    if live:
        queue_instance, description = instance, f"{live}: its run_queue limits (dagster.yaml) apply"
    else:
        home = exp_root / "dagster_instance"
        home.mkdir(parents=True, exist_ok=True)
        write_text(home / "dagster.yaml", instance_yaml(root, project_home, limits))
        queue_instance = dg.DagsterInstance.from_config(str(home))
        description = (
            f"a daemon started for this sweep (pid {os.getpid()}; its instance: {home.relative_to(root)}, log: {log.relative_to(root)})"
        )
    target = internals.WorkspaceFileTarget(paths=[str(root / "workspace.yaml")])
    with contextlib.ExitStack() as stack:
        if queue_instance is not instance:
            stack.enter_context(queue_instance)
        with _output_to(log):  # the code server, and the run workers it spawns, write there, not over the progress
            context = stack.enter_context(
                internals.WorkspaceProcessContext(
                    queue_instance, target, version=__version__, read_only=False, code_server_log_level="warning"
                )
            )
        workspace = context.create_request_context()
        location = internals.get_code_location_from_workspace(workspace, "pepm_assets")
        repo = internals.get_remote_repository_from_code_location(location, None)
        job = internals.get_remote_job_from_remote_repo(repo, SWEEP_JOB)

        def submit(tags: dict[str, str]) -> str:
            run = internals.create_remote_run(
                instance=queue_instance,
                code_location=location,
                remote_repo=repo,
                remote_job=job,
                run_config={},
                tags=tags,
                op_selection=None,
                run_id=None,
            )
            return queue_instance.submit_run(run.run_id, workspace).run_id

        if live:
            yield _Queue(description, submit)
            return
        with _dequeuing(context, project_home, exp_root, log) as dequeuer:
            yield _Queue(description, submit, dequeuer)


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """This process's stdout and stderr (file descriptors 1 and 2, which a child inherits when it is
    spawned) appended to `log` for the block."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with log.open("ab") as out:
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def _dequeuing(context, project_home: Path, exp_root: Path, log: Path) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    """(start, stop): Dagster's run-queue daemon in a thread from start() to stop() (or the end of the block): its heartbeats
    in the instance, as from `dagster-daemon run`, under an id recorded in DAEMON_RECORD as current
    with this process's pid until it stops (another sweep counts on it only while it is current and
    this process lives); its log in `log`."""
    daemon_id = str(uuid.uuid4())
    record = _record(project_home)
    current = {"pid": os.getpid(), "daemon_id": daemon_id, "exp_id": exp_root.name, "home": str(context.instance.root_directory)}
    write_json(project_home / DAEMON_RECORD, {"ours": [*record["ours"][-50:], daemon_id], "current": current})
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("dagster.daemon")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    shutdown = threading.Event()
    daemon = internals.create_daemon_of_type(internals.QUEUED_RUN_COORDINATOR, context.instance)
    thread = threading.Thread(
        target=daemon.run_daemon_loop,
        args=(context, daemon_id, shutdown, internals.DEFAULT_HEARTBEAT_INTERVAL_SECONDS, internals.DEFAULT_DAEMON_ERROR_INTERVAL_SECONDS),
        name="pepm-sweep-run-queue",
        daemon=True,
    )

    def start() -> None:
        if not thread.is_alive() and not shutdown.is_set():
            thread.start()

    def stop() -> None:
        if not shutdown.is_set():
            shutdown.set()
            if thread.ident is not None:
                thread.join()
            ended = _record(project_home)
            if (ended.get("current") or {}).get("daemon_id") == daemon_id:  # no longer alive, though this process lives on
                write_json(project_home / DAEMON_RECORD, {"ours": ended["ours"], "current": {}})

    with daemon:
        try:
            yield start, stop
        finally:
            stop()
            logger.removeHandler(handler)
            logger.setLevel(level)
            handler.close()
