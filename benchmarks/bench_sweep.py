"""Benchmark of `pepm sweep` (pepm_assets/defs/sweeper.py): parallel speed-up, the cost of one sweep
run against the plain scikit-learn script of benchmarks/, and a no-op `--resume`, in one run.

Everything happens in a temporary project (the repo's configs, dagster.yaml and workspace.yaml; MPT
hard-linked from data/raw/mpt, or unpacked from data/shipped/corpora.tar.xz) with its own Dagster
home and MLflow SQLite file: PEPM_ROOT, DAGSTER_HOME and PEPM_MLFLOW_URI are set in this process
before anything starts, and the code server each sweep starts and the run workers inherit them. `--cpus N` (default 2) pins this process, and so every child, to N cores with
os.sched_setaffinity before anything starts; the machine's core count and its load are printed.

0. Not timed: the imports, then a warm-up 1-run sweep that parses MPT once (every later sweep
   finds the parsed corpus fresh) and warms the OS file cache.
1. Parallel speed-up. An experiment of 8 light runs (ideo_quick on MPT, FAMILY sklearn, MODELS
   tfidf_svm_quick, HARDWARE_PRESET small, split.repeats 1 (ideo_quick's own is 5: one split and one fit
   per run here, as in the plain script); TRAIN_PROP 0.3/0.5/0.7/0.9 x 2 repeats, per_run seeds;
   the curves + report_markdown hooks of configs/superior/learning_curve.yml), run in process by
   `sweeper.run_sweep` once at parallel 1 and once at parallel 2 under different exp_ids (nothing
   reused). Reported: run_sweep's wall time (target: parallel 1 / parallel 2 >= 1.7), the sum of
   the runs' own durations (runs.tsv duration_s), the makespan (first run's start to last run's
   end: runs.tsv, 1 s resolution, and Dagster's event log, worker start-up included), and where
   the rest goes: run_sweep's phases (timed by wrapping sweeper's helpers in this process, pepm's
   code unchanged: the run queue's workspace and daemon thread, submission, following, the daemon's
   stop, hooks) and per Dagster run (event log: in the queue ENQUEUED -> STARTING,
   worker start-up STARTING -> START split at its "Started process" event (spawn + Dagster
   imports, then pepm's code), the step, the step outside run_one (step - duration_s), the end).
2. One sweep run against the plain script. A 1-run sweep of tfidf_svm_quick on MPT (the profile's
   80/20 split, seed 42: bench_pipeline.py's model) as a fresh `python -m pepm_assets.cli sweep`
   subprocess, against `python benchmarks/plain_tfidf_svm.py full <MPT folder>` as a fresh
   subprocess (timed from its start to its end: interpreter, imports, parse, split, fit, scores).
   The sweep run is measured three ways: the whole command, its Dagster run from launch to end
   (STARTING -> RUN_SUCCESS: the run worker's process start and imports included, as the plain
   script's are), and the step's own duration_s. The 1.5x target is checked on the Dagster run:
   the CLI's start-up, the daemon's start-up and the hooks are paid once per sweep, not per run, so
   they say nothing of what a run costs in a sweep of many (they are shown, as info). Note that the
   plain script parses the XML (about 0.3 s) while a sweep run reads the corpus parsed once per sweep.
3. Resume. The parallel-2 sweep again with resume=True (in process, all 8 runs kept): its wall time
   / the first run's <= 0.05. `pepm sweep --resume` as a subprocess is shown as info.
4. Info: where a run worker's start-up goes: fresh interpreters importing nothing, dagster,
   pepm_assets.definitions (what each run worker imports), mlflow (which run workers no longer
   import: pepm sweep logs their MLflow journals), the plain script's imports, and opening + ending
   an MLflow parent run (import included).

A measurement, not a test: exit code 0 even when a target is missed (FAIL is printed).
On a shared machine, `--wait-quiet S` waits (at most S seconds) before each timed part until the
cores are under 20 % busy; the load during every measurement is reported either way.

Usage: python benchmarks/bench_sweep.py [--cpus 2] [--repeats 1] [--wait-quiet 0] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SPEEDUP_TARGET = 1.7  # run_sweep wall, parallel 1 / parallel 2, at least
ONE_RUN_TARGET = 1.5  # one sweep run's Dagster run (launch -> end) / the plain script subprocess, at most
RESUME_TARGET = 0.05  # resume of a finished sweep / its first run, at most
N_RUNS = 8
console = Console(soft_wrap=True)

BASE = """exp_id: {exp_id}
description: "bench_sweep.py: {what}"
base:
  profile: ideo_quick
  stage: pipeline
  make_vars:
    DATASET_ID: mpt
    FAMILY: sklearn
    MODELS: tfidf_svm_quick
    HARDWARE_PRESET: small
  overrides:
    split.repeats: 1  # one split, one fit per run: the light run of the issue, and the plain script's work
"""
EIGHT = """axes:
  - name: train_prop
    type: choice
    values:
      - {label: p030, make_vars: {TRAIN_PROP: 0.3}}
      - {label: p050, make_vars: {TRAIN_PROP: 0.5}}
      - {label: p070, make_vars: {TRAIN_PROP: 0.7}}
      - {label: p090, make_vars: {TRAIN_PROP: 0.9}}
run: {repeats: 2, seed_strategy: per_run, base_seed: 42}
scheduler:
  parallel: 1
  max_ram_gb: 8
  approx_ram_per_class: {light: 2.0, medium: 4.0, heavy: 8.0}
oom_policy: {on_oom: stop}
analysis_hooks:
  after_experiment:
    - {type: curves, metrics: [accuracy, macro_f1], x_axis: TRAIN_PROP, group_by: [model_id]}
    - {type: report_markdown}
"""
ONE = """run: {repeats: 1, seed_strategy: fixed, base_seed: 42}
scheduler: {parallel: 1}
"""


# ---------------------------------------------------------------- machine
def pin_cpus(n: int) -> dict:
    """Pin this process (and every child started later) to the first n cores it may use."""
    allowed = sorted(os.sched_getaffinity(0))
    if n and n < len(allowed):
        os.sched_setaffinity(0, allowed[:n])
    return {"machine_cores": os.cpu_count(), "allowed_before": len(allowed), "cores_used": len(os.sched_getaffinity(0))}


def cpu_times() -> tuple[float, float]:
    """Machine-wide (busy, total) CPU seconds since boot, every core (/proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - values[3] - values[4]) / tick, sum(values) / tick


def foreign_processes() -> list[str]:
    """pepm / Dagster processes on the machine that are not this benchmark's (another sweep, say)."""
    me, parents, cmds = os.getpid(), {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmds[int(d.name)] = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue

    def ours(pid: int) -> bool:
        for _ in range(64):
            if pid == me:
                return True
            if pid <= 1:
                return False
            pid = parents.get(pid, 0)
        return False

    marks = ("pepm", "dagster", "spawn_main", "pytest")
    return [cmd[:160] for pid, cmd in sorted(cmds.items()) if cmd and any(m in cmd for m in marks) and not ours(pid)]


def busy_share(seconds: float) -> float:
    busy0, total0 = cpu_times()
    time.sleep(seconds)
    busy1, total1 = cpu_times()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def wait_quiet(max_s: float, progress, task) -> float:
    """Wait (at most max_s) until the machine's cores are less than 20 % busy over 5 s (idle
    processes, a `pepm dev` left open, do not count; the other processes are listed in the JSON);
    returns the seconds waited."""
    started = time.perf_counter()
    while max_s > 0 and time.perf_counter() - started < max_s:
        if busy_share(5.0) < 0.2:
            break
        progress.update(task, description=f"waiting for the machine to be quiet ({time.perf_counter() - started:.0f} s)")
        progress.refresh()
        time.sleep(2)
    return time.perf_counter() - started


@contextlib.contextmanager
def measured(rec: dict):
    """Wall time of the block, this process's CPU time, and the machine's load while it ran (everyone's, not only ours)."""
    rec["load1_start"] = os.getloadavg()[0]
    rec["foreign"] = foreign_processes()
    busy0, total0 = cpu_times()
    started, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield rec
    finally:
        rec["wall_s"] = time.perf_counter() - started
        rec["own_cpu_s"] = time.process_time() - cpu0  # this process, every thread (the sweep's own work when run in process)
        busy1, total1 = cpu_times()
        rec["machine_busy"] = (busy1 - busy0) / (total1 - total0) if total1 > total0 else None
        rec["load1_end"] = os.getloadavg()[0]


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO).returncode != 0
    except OSError:
        return "?"
    return commit + (" (+ uncommitted changes)" if dirty else "")


# ---------------------------------------------------------------- the project
def make_project(root: Path) -> dict:
    """The repo's configs, dagster.yaml, workspace.yaml; data/raw/mpt from the repo (hard links when
    it can) or the shipped archive. Models whose family is not registered are dropped (as in
    bench_pipeline.py)."""
    from pepm_assets.core import dvc

    shutil.copytree(REPO / "configs", root / "configs")
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copyfile(REPO / name, root / name)
    raw = REPO / "data" / "raw" / "mpt"
    target = root / "data" / "raw" / "mpt"
    if any(raw.glob("*.xml")):
        try:
            shutil.copytree(raw, target, copy_function=os.link)
            source = f"{raw} (hard links)"
        except OSError:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(raw, target)
            source = f"{raw} (copied)"
    else:
        dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", root / "data" / "raw", ["mpt"])
        source = "data/shipped/corpora.tar.xz"
    unknown = bench_common.drop_unregistered_models(root)
    files = sorted(target.glob("*.xml"))
    return {
        "corpus": str(target),
        "corpus_source": source,
        "files": len(files),
        "mb": sum(p.stat().st_size for p in files) / 1e6,
        "models_removed": unknown,
    }


def experiment(root: Path, exp_id: str, body: str, what: str) -> Path:
    path = root / "configs" / "superior" / f"{exp_id}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BASE.format(exp_id=exp_id, what=what) + body, encoding="utf-8")
    return path


# ---------------------------------------------------------------- run_sweep's phases
class Phases:
    """Seconds spent in sweeper's helpers during one run_sweep call, by wrapping them in this process
    (the code is pepm's, unchanged; the wrappers only read the clock)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def call(self, name: str, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return wrapper

    def context(self, name: str, cm):
        @contextlib.contextmanager
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            with cm(*args, **kwargs) as value:
                self.add(f"{name} (enter)", time.perf_counter() - started)
                try:
                    yield value
                finally:
                    leaving = time.perf_counter()
            self.add(f"{name} (exit)", time.perf_counter() - leaving)

        return wrapper

    @contextlib.contextmanager
    def installed(self):
        from pepm_assets.core.sweep import hooks
        from pepm_assets.defs import instance, recovery, sweeper

        patches = [
            (instance, "get_instance", self.call, "open the instance"),
            (recovery, "recover", self.call, "recover"),
            (sweeper, "_parse_corpora", self.call, "corpora (fresh: checked)"),
            (sweeper, "_run_queue", self.context, "run queue"),
            (getattr(sweeper, "_Queue", None), "stop", self.call, "run queue: stop its daemon thread"),
            (sweeper, "_log_pending", self.call, "deferred outputs left (PNGs, MLflow journals)"),
            (getattr(sweeper, "_Follower", None), "launch", self.call, "submit runs"),
            (getattr(sweeper, "_Follower", None), "wait", self.call, "follow the runs"),
            (hooks, "run_hooks", self.call, "hooks"),
        ]  # a helper that pepm no longer has is left out (its time falls into "rest")
        patches = [(owner, name, wrap(label, getattr(owner, name))) for owner, name, wrap, label in patches if hasattr(owner, name)]
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        try:
            for owner, name, new in patches:
                setattr(owner, name, new)
            yield self
        finally:
            for owner, name, old in saved:
                setattr(owner, name, old)


# ---------------------------------------------------------------- Dagster's event log
ENDS = ("RUN_SUCCESS", "RUN_FAILURE", "RUN_CANCELED")
KEEP = ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "WORKER_UP", "RUN_START", "STEP_START", "STEP_SUCCESS", "STEP_FAILURE", *ENDS)


def run_events(instance, run_id: str) -> dict[str, float]:
    """The first timestamp of each event of interest of a Dagster run; RUN_END = its final event."""
    out: dict[str, float] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        name = event.event_type.name
        if name == "ENGINE_EVENT" and (event.message or "").startswith("Started process for run"):
            name = "WORKER_UP"  # the run worker's process is up (dagster imported), before it loads pepm's code
        if name in KEEP and name not in out:
            out[name] = entry.timestamp
    ends = [out[e] for e in ENDS if e in out]
    if ends:
        out["RUN_END"] = min(ends)
    out["STEP_END"] = out.get("STEP_SUCCESS", out.get("STEP_FAILURE", 0.0)) or None
    return out


SPANS = [  # (label, from event, to event)
    ("in the queue (ENQUEUED -> STARTING)", "RUN_ENQUEUED", "RUN_STARTING"),
    ("worker start-up (STARTING -> START)", "RUN_STARTING", "RUN_START"),
    ("  process spawn + dagster imports (-> 'Started process')", "RUN_STARTING", "WORKER_UP"),
    ("  load pepm's code + run set-up ('Started process' -> START)", "WORKER_UP", "RUN_START"),
    ("run start -> step start", "RUN_START", "STEP_START"),
    ("step (STEP_START -> STEP_SUCCESS)", "STEP_START", "STEP_END"),
    ("step end -> run end", "STEP_END", "RUN_END"),
    ("Dagster run, launch to end (STARTING -> end)", "RUN_STARTING", "RUN_END"),
    ("Dagster run record, start to end (START -> end)", "RUN_START", "RUN_END"),
]


STEP_OUTSIDE = "  step outside run_one (step - duration_s: plan, tags, MLflow journal, outcome)"
SPAN_ORDER = [label for label, _, _ in SPANS]
SPAN_ORDER.insert(SPAN_ORDER.index("step end -> run end"), STEP_OUTSIDE)


def span(events: dict, a: str, b: str) -> float | None:
    return events[b] - events[a] if events.get(a) and events.get(b) else None


def read_runs_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def sweep_figures(root: Path, exp_id: str, epoch0: float, epoch1: float) -> dict:
    """From runs.tsv and Dagster's event log: per run, its spans; for the sweep, the makespans,
    the sums, the time before the first run and after the last."""
    from pepm_assets.defs.instance import get_instance

    rows = read_runs_tsv(root / "superior" / exp_id / "runs.tsv")
    instance = get_instance(root)
    runs = []
    for row in rows:
        events = run_events(instance, row["dagster_run_id"]) if row["dagster_run_id"] else {}
        runs.append(
            {
                "run_id": row["run_id"],
                "status": row["status"],
                "start": row["start"],
                "end": row["end"],
                "duration_s": float(row["duration_s"]) if row["duration_s"] else None,
                "dagster_run_id": row["dagster_run_id"],
                "events": {k: v - epoch0 for k, v in events.items() if v},
                "spans": {label: span(events, a, b) for label, a, b in SPANS},
            }
        )
        step, work = runs[-1]["spans"]["step (STEP_START -> STEP_SUCCESS)"], runs[-1]["duration_s"]
        runs[-1]["spans"][STEP_OUTSIDE] = step - work if step is not None and work is not None else None
    starts = [datetime.fromisoformat(r["start"]) for r in runs if r["start"]]
    ends = [datetime.fromisoformat(r["end"]) for r in runs if r["end"]]
    ev = [r["events"] for r in runs]
    launched = [e["RUN_STARTING"] for e in ev if "RUN_STARTING" in e]
    finished = [e["RUN_END"] for e in ev if "RUN_END" in e]
    enqueued = [e["RUN_ENQUEUED"] for e in ev if "RUN_ENQUEUED" in e]
    by_launch = sorted((e for e in ev if "RUN_STARTING" in e and "RUN_END" in e), key=lambda e: e["RUN_STARTING"])
    idle = [b["RUN_STARTING"] - a["RUN_END"] for a, b in itertools.pairwise(by_launch) if b["RUN_STARTING"] >= a["RUN_END"]]
    return {
        "runs": runs,
        "statuses": {s: sum(1 for r in runs if r["status"] == s) for s in sorted({r["status"] for r in runs})},
        "sum_duration_s": sum(r["duration_s"] or 0.0 for r in runs),
        "sum_dagster_run_s": sum(r["spans"]["Dagster run, launch to end (STARTING -> end)"] or 0.0 for r in runs),
        "makespan_tsv_s": (max(ends) - min(starts)).total_seconds() if starts and ends else None,
        "makespan_dagster_s": max(finished) - min(launched) if launched and finished else None,
        "runs_in_flight": (
            sum(r["spans"]["Dagster run, launch to end (STARTING -> end)"] or 0.0 for r in runs) / (max(finished) - min(launched))
            if launched and finished and max(finished) > min(launched)
            else None
        ),
        "before_first_enqueue_s": min(enqueued) if enqueued else None,
        "first_enqueue_to_first_launch_s": min(launched) - min(enqueued) if launched and enqueued else None,
        "after_last_run_s": (epoch1 - epoch0) - max(finished) if finished else None,
        "idle_between_runs_s": idle,  # a run's end -> the next launch, when the queue was waiting on it
    }


def median_span(runs: list[dict], label: str) -> float | None:
    values = [r["spans"][label] for r in runs if r["spans"].get(label) is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- the measured things
def sweep_in_process(root: Path, path: Path, parallel: int, resume: bool, progress, task, label: str, figures: bool = True) -> dict:
    from pepm_assets.defs import sweeper

    def on_change(ledger) -> None:
        counts = {}
        for row in ledger.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        progress.update(task, description=f"{label}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        progress.refresh()

    phases = Phases()
    rec: dict = {"label": label, "parallel": parallel, "resume": resume}
    epoch0 = time.time()
    with phases.installed(), measured(rec):
        report = sweeper.run_sweep(root, path, parallel=parallel, resume=resume, on_change=on_change)
    epoch1 = time.time()
    rec.update(
        exp_id=report.exp_id,
        run_sweep_s=report.seconds,
        submitted=len(report.submitted),
        kept=len(report.kept),
        daemon=report.daemon,
        phases=phases.seconds,
        hooks_errors=(report.hooks or {}).get("errors"),
    )
    if figures:
        rec.update(sweep_figures(root, report.exp_id, epoch0, epoch1))
    else:  # a resume: the runs kept are the first run's, their times are not this call's
        rows = read_runs_tsv(report.exp_root / "runs.tsv")
        rec["statuses"] = {s: sum(1 for r in rows if r["status"] == s) for s in sorted({r["status"] for r in rows})}
    return rec


def run_cli(root: Path, args: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-m", "pepm_assets.cli", *args]
    rec: dict = {"cmd": " ".join(["pepm", *args])}
    epoch0 = time.time()
    with measured(rec):
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    rec["epoch0"], rec["epoch1"] = epoch0, time.time()
    rec["returncode"] = proc.returncode
    inner = re.search(r"in ([\d.]+)s", proc.stdout)
    rec["run_sweep_s"] = float(inner.group(1)) if inner else None
    if proc.returncode != 0:
        rec["output"] = (proc.stdout[-3000:] + "\n" + proc.stderr[-3000:]).strip()
    return rec


def run_plain(corpus: Path, out: Path, env: dict) -> dict:
    cmd = [sys.executable, str(HERE / "plain_tfidf_svm.py"), "full", str(corpus), "--seed", "42", "--out", str(out)]
    rec: dict = {}
    with measured(rec):
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.read_text(encoding="utf-8"))
    rec.update(work_s=result["seconds"], macro_f1=result["macro_f1"], n_train=result["n_train"], n_job=result["n_job"])
    return rec


def one_run_sweep(root: Path, exp_id: str, env: dict) -> dict:
    path = experiment(root, exp_id, ONE, "one run of tfidf_svm_quick (ideo_quick: 80/20, seed 42)")
    rec = run_cli(root, ["sweep", "--exp-config", str(path.relative_to(root))], env)
    if rec["returncode"] != 0:
        return rec
    rec.update(sweep_figures(root, exp_id, rec["epoch0"], rec["epoch1"]))
    run = rec["runs"][0]
    summary = root / "superior" / exp_id / "runs" / run["run_id"] / "summary.json"
    with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
        rec["macro_f1"] = json.loads(summary.read_text(encoding="utf-8"))["models"][0]["metrics"]["macro_f1"]
    return rec


def import_probes(env: dict, repeats: int) -> dict:
    """Fresh interpreters: how much of a run worker's start-up is Python, dagster, pepm."""
    probes = {
        "python -c pass": "pass",
        "import dagster": "import dagster",
        "import pepm_assets.definitions (what a run worker loads)": "import pepm_assets.definitions",
        "import mlflow": "import mlflow",
        "import plain_tfidf_svm (the plain script's imports)": f"import sys; sys.path.insert(0, {str(HERE)!r}); import plain_tfidf_svm",
        "an MLflow parent run opened and ended (import included: what pepm sweep's logging of a journal pays once)": (
            "from pathlib import Path; from pepm_assets.core.tracking import Tracker; "
            f"t = Tracker(Path({str(env['PEPM_ROOT'])!r}), experiment='bench_probe'); "
            "t.end_parent(t.start_parent('probe', {'sweep': 'probe'}, {'seed': 1}), 'FINISHED', {'m': 1.0}, {'status': 'success'})"
        ),
    }
    out = {}
    for label, code in probes.items():
        times = []
        for _ in range(max(1, repeats)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - started)
        out[label] = min(times)
    return out


# ---------------------------------------------------------------- report
def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def f(value, digits: int = 2, unit: str = " s") -> str:
    return "" if value is None else f"{value:.{digits}f}{unit}"


def load_text(rec: dict) -> str:
    busy = rec.get("machine_busy")
    return f"load {rec['load1_start']:.1f} -> {rec['load1_end']:.1f}" + (f", machine CPU busy {busy:.0%}" if busy is not None else "")


def print_sweep_breakdown(sweeps: list[dict]) -> None:
    table = Table(title="Where each sweep's time goes (seconds)")
    table.add_column("measure")
    for s in sweeps:
        table.add_column(s["label"], justify="right")
    names = []
    for s in sweeps:
        names += [n for n in s["phases"] if n not in names]

    def row(label: str, values: list) -> None:
        table.add_row(label, *values)

    row("run_sweep wall", [f(s["run_sweep_s"]) for s in sweeps])
    for name in names:
        row(f"  {name}", [f(s["phases"].get(name)) for s in sweeps])
    row("  rest (plan, ledger, partitions)", [f(s["run_sweep_s"] - sum(s["phases"].values())) if s["phases"] else "" for s in sweeps])
    row("whole command (CLI subprocess)", [f(s["wall_s"]) if "cmd" in s else "" for s in sweeps])
    row("runs: submitted / kept", [f"{s['submitted']} / {s['kept']}" for s in sweeps])
    row("sweep start -> first run enqueued", [f(s.get("before_first_enqueue_s")) for s in sweeps])
    row("first enqueued -> first launched", [f(s.get("first_enqueue_to_first_launch_s")) for s in sweeps])
    row("makespan, Dagster (first launch -> last end)", [f(s.get("makespan_dagster_s")) for s in sweeps])
    row("makespan, runs.tsv (first start -> last end, 1 s res.)", [f(s.get("makespan_tsv_s"), 0) for s in sweeps])
    row("last run's end -> run_sweep returns", [f(s.get("after_last_run_s")) for s in sweeps])
    row("sum of Dagster runs (launch -> end)", [f(s.get("sum_dagster_run_s")) for s in sweeps])
    row("sum of runs' duration_s (the steps' work)", [f(s.get("sum_duration_s")) for s in sweeps])
    row(
        "idle between runs (a run's end -> next launch), median",
        [f(statistics.median(s["idle_between_runs_s"])) if s.get("idle_between_runs_s") else "" for s in sweeps],
    )
    row("mean runs in flight (sum of Dagster runs / makespan)", [f(s.get("runs_in_flight"), 2, "") for s in sweeps])
    for label in SPAN_ORDER:
        row(f"per run, median: {label}", [f(median_span(s.get("runs", []), label)) for s in sweeps])
    row("machine", [load_text(s) for s in sweeps])
    row("other pepm / Dagster processes at start", [str(len(s.get("foreign", []))) for s in sweeps])
    console.print(table)
    console.print(
        "Phases: sweeper's helpers timed in this process. 'run queue (enter)': the workspace the sweep submits through "
        "(its code server's start) and the start of the run-queue daemon's thread; '(exit)': the code server's shutdown, "
        "after the hooks. 'follow the runs': from the first submission's return to the last run final (the runs' own time). "
        "Per-run spans from Dagster's event log; 'worker start-up' is the run worker's process start and its imports "
        "(pepm_assets.definitions), before Dagster's RUN_START."
    )


def print_report(results: dict, cpu: dict, error: str | None) -> None:
    """The summary table with the targets, then the breakdown of every sweep."""
    table = Table(title=f"bench sweep: {N_RUNS} light runs (tfidf_svm_quick on mpt/left_right), one run vs plain, resume")
    for col in ("measure", "value", "target", "result"):
        table.add_column(col)
    table.add_row(
        "date, commit, cores",
        f"{results['date']}, {results['commit']}, {cpu['cores_used']} of the machine's {cpu['machine_cores']} cores "
        f"(load average {results['load_avg_start'][0]:.2f} at start, {results['load_avg_end'][0]:.2f} at end)",
        "",
        "",
    )
    busy = [m["machine_busy"] for m in [*results["sweeps"], *[o["plain"] for o in results["one_run"]]] if m.get("machine_busy") is not None]
    foreign = max([len(results.get("foreign_at_start", []))] + [len(s.get("foreign", [])) for s in results["sweeps"]])
    table.add_row(
        "machine load during the measurements",
        f"CPU busy {min(busy):.0%}-{max(busy):.0%} of all cores (everyone's); up to {foreign} other pepm / Dagster processes"
        if busy
        else "",
        "",
        "",
    )
    if "project" in results:
        pr = results["project"]
        table.add_row("corpus", f"mpt: {pr['files']} files, {pr['mb']:.1f} MB, from {pr['corpus_source']}", "", "")
    by_p = {p: [s for s in results["sweeps"] if s["parallel"] == p] for p in (1, 2)}
    if by_p[1] and by_p[2]:
        w1 = statistics.median(s["run_sweep_s"] for s in by_p[1])
        w2 = statistics.median(s["run_sweep_s"] for s in by_p[2])
        ok = all(s["statuses"] == {"success": N_RUNS} for s in results["sweeps"])
        bad = "; ".join(f"{s['label']}: {s['statuses']}" for s in results["sweeps"] if s["statuses"] != {"success": N_RUNS})
        table.add_row(f"every run successful ({len(results['sweeps'])} sweeps of {N_RUNS} runs)", bad or "yes", "", verdict(ok))
        table.add_row("run_sweep wall, parallel 1 / parallel 2", f"{w1:.1f} s / {w2:.1f} s", "", "")
        results["speedup"] = w1 / w2
        table.add_row("[bold]speed-up (run_sweep wall)[/]", f"{w1 / w2:.2f}x", f">= {SPEEDUP_TARGET}", verdict(w1 / w2 >= SPEEDUP_TARGET))
        pairs = {}
        for s in results["sweeps"]:
            pairs.setdefault(s.get("repeat", 0), {})[s["parallel"]] = s["run_sweep_s"]
        paired = [v[1] / v[2] for v in pairs.values() if 1 in v and 2 in v]
        if len(paired) > 1:
            results["speedup_paired"] = paired
            table.add_row("  speed-up per repeat (same repeat's pair)", ", ".join(f"{x:.2f}x" for x in paired), "", "info")
        m1 = statistics.median(s["makespan_dagster_s"] for s in by_p[1])
        m2 = statistics.median(s["makespan_dagster_s"] for s in by_p[2])
        results["speedup_makespan"] = m1 / m2
        table.add_row("makespan (Dagster), parallel 1 / 2: speed-up", f"{m1:.1f} s / {m2:.1f} s: {m1 / m2:.2f}x", "", "info")
        d1 = statistics.median(s["sum_duration_s"] for s in by_p[1])
        d2 = statistics.median(s["sum_duration_s"] for s in by_p[2])
        table.add_row(
            "sum of runs' duration_s, parallel 1 / 2",
            f"{d1:.1f} s / {d2:.1f} s (x{d2 / d1:.2f} at parallel 2: how much two runs at once on {cpu['cores_used']} cores slow each other)",
            "",
            "info",
        )
        fixed = [s["run_sweep_s"] - s["makespan_dagster_s"] for s in results["sweeps"]]
        table.add_row("fixed cost per sweep (run_sweep wall - makespan), median", f"{statistics.median(fixed):.1f} s", "", "info")
    res = results.get("resume")
    if res and by_p[2]:
        first = by_p[2][0]["run_sweep_s"]
        ratio = res["run_sweep_s"] / first
        results["resume_ratio"] = ratio
        table.add_row(
            "[bold]resume of the finished parallel-2 sweep / its first run[/]",
            f"{res['run_sweep_s']:.2f} s / {first:.1f} s = {ratio:.3f} ({res['kept']} kept, {res['submitted']} submitted)",
            f"<= {RESUME_TARGET}",
            verdict(ratio <= RESUME_TARGET and res["submitted"] == 0),
        )
        top = sorted(res["phases"].items(), key=lambda kv: -kv[1])[:3]
        table.add_row("  resume's largest phases", ", ".join(f"{k} {v:.2f} s" for k, v in top), "", "info")
        if results.get("resume_cli"):
            cli = results["resume_cli"]
            table.add_row(
                "  `pepm sweep --resume` (CLI subprocess)",
                f"{cli['wall_s']:.2f} s" + (f" (run_sweep {cli['run_sweep_s']} s)" if cli.get("run_sweep_s") else ""),
                "",
                "info",
            )
    pairs = [o for o in results["one_run"] if o["sweep"].get("runs")]
    if pairs:
        plain_s = statistics.median(o["plain"]["wall_s"] for o in pairs)
        work_s = statistics.median(o["plain"]["work_s"] for o in pairs)
        runs = [o["sweep"]["runs"][0] for o in pairs]
        dag = statistics.median(r["spans"]["Dagster run, launch to end (STARTING -> end)"] for r in runs)
        record = statistics.median(r["spans"]["Dagster run record, start to end (START -> end)"] for r in runs)
        step = statistics.median(r["spans"]["step (STEP_START -> STEP_SUCCESS)"] for r in runs)
        dur = statistics.median(r["duration_s"] for r in runs)
        cmd = statistics.median(o["sweep"]["wall_s"] for o in pairs)
        inner = [o["sweep"]["run_sweep_s"] for o in pairs if o["sweep"].get("run_sweep_s") is not None]
        results["one_run_ratio"] = dag / plain_s
        table.add_row(
            "plain_tfidf_svm.py full, subprocess",
            f"{plain_s:.2f} s (its own work after imports: {work_s:.2f} s; macro-F1 {pairs[0]['plain']['macro_f1']:.4f}, its split)",
            "",
            "",
        )
        table.add_row(
            "[bold]one sweep run: Dagster run, launch to end / plain[/]",
            f"{dag:.2f} s / {plain_s:.2f} s = {dag / plain_s:.2f}",
            f"<= {ONE_RUN_TARGET}",
            verdict(dag / plain_s <= ONE_RUN_TARGET),
        )
        table.add_row("  Dagster run record, START -> end / plain", f"{record:.2f} s: {record / plain_s:.2f}", "", "info")
        table.add_row("  the step (STEP_START -> SUCCESS) / plain", f"{step:.2f} s: {step / plain_s:.2f}", "", "info")
        table.add_row("  the step's own duration_s / plain", f"{dur:.2f} s: {dur / plain_s:.2f}", "", "info")
        table.add_row(
            "  whole `pepm sweep` command (1 run) / plain",
            f"{cmd:.2f} s: {cmd / plain_s:.2f}" + (f" (run_sweep inside: {statistics.median(inner):.1f} s)" if inner else ""),
            "",
            "info",
        )
        if pairs[0]["sweep"].get("macro_f1") is not None:
            table.add_row("  sweep run macro-F1 (pepm's split)", f"{pairs[0]['sweep']['macro_f1']:.4f}", "", "info")
    if results.get("imports"):
        table.add_row(
            "fresh interpreter + imports (min of 3)", "; ".join(f"{k}: {v:.2f} s" for k, v in results["imports"].items()), "", "info"
        )
    if error:
        table.add_row("error", "see the traceback above", "", verdict(False))
    console.print(table)
    shown = list(results["sweeps"]) + ([results["resume"]] if results.get("resume") else [])
    one = [{**o["sweep"], "label": f"1 run (CLI) {i + 1}", "phases": {}, "submitted": 1, "kept": 0} for i, o in enumerate(pairs)]
    for o in one:
        o["run_sweep_s"] = o.get("run_sweep_s") or o["wall_s"]
    if shown or one:
        print_sweep_breakdown(shown + one)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpus", type=int, default=2, help="pin the benchmark and its children to N cores (0: no pinning)")
    ap.add_argument("--repeats", type=int, default=1, help="pairs of 8-run sweeps (order alternated) and 1-run comparisons")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="before each timed part, wait up to S seconds for the machine to be quiet (cores < 20 %% busy over 5 s)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (printed) for inspection")
    ap.add_argument("--corpus", default="mpt", help="only mpt (the plain script reads the MPT dialect)")
    ap.add_argument("--replicas", type=int, default=None, help="not used (accepted for `pepm bench`)")
    args = ap.parse_args()
    if args.corpus != "mpt":
        console.print(f"[red]bench sweep supports only --corpus mpt, not {args.corpus!r}[/]")
        return 0

    cpu = pin_cpus(args.cpus)  # before any import that starts threads, before any child
    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_sweep_"))
    root = tmp / "project"
    root.mkdir()
    env = {
        "PEPM_ROOT": str(root),
        "DAGSTER_HOME": str(root / ".dagster"),
        "PEPM_MLFLOW_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "COLUMNS": "200",
    }
    os.environ.update(env)
    for name in ("PEPM_SWEEP_EXECUTOR",):  # the default in-process executor
        os.environ.pop(name, None)
    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": git_commit(),
        **cpu,
        "load_avg_start": os.getloadavg(),
        "foreign_at_start": foreign_processes(),
        "python": sys.version.split()[0],
        "tmp": str(tmp) if args.keep else None,
        "targets": {"speedup": SPEEDUP_TARGET, "one_run_ratio": ONE_RUN_TARGET, "resume_ratio": RESUME_TARGET},
        "sweeps": [],
        "one_run": [],
    }
    console.print(
        f"bench sweep: {results['date']}, commit {results['commit']}; machine {cpu['machine_cores']} cores, "
        f"this benchmark pinned to {cpu['cores_used']}; load average {' / '.join(f'{x:.2f}' for x in results['load_avg_start'])}; "
        f"{len(results['foreign_at_start'])} other pepm / Dagster processes running"
    )
    error = None
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True, auto_refresh=False
        ) as progress:
            task = progress.add_task("imports", total=None)
            progress.refresh()
            import dagster  # noqa: F401
            import matplotlib

            matplotlib.use("Agg")
            import mlflow  # noqa: F401

            from pepm_assets.defs import sweeper  # noqa: F401

            progress.update(task, description="temporary project")
            progress.refresh()
            results["project"] = make_project(root)
            from pepm_assets.defs.instance import ensure_dagster_home

            ensure_dagster_home(root)
            if results["project"]["models_removed"]:
                console.log(f"models.yml of the temp project: removed {results['project']['models_removed']} (family not registered)")

            # 0. warm-up: parse MPT once (untimed), imports, file cache
            warm = sweep_in_process(
                root, experiment(root, "bench_warmup", ONE, "warm-up (parses MPT)"), 1, False, progress, task, "warm-up (untimed)"
            )
            results["warmup"] = {k: warm[k] for k in ("run_sweep_s", "statuses", "phases")}
            console.log(f"warm-up 1-run sweep (parse included): {warm['run_sweep_s']:.1f}s, {warm['statuses']}")

            # 1. 8 runs at parallel 1 and 2
            paths = {p: experiment(root, f"bench_p{p}_r0", EIGHT, f"{N_RUNS} light runs, parallel {p}") for p in (1, 2)}
            for rep in range(args.repeats):
                for p in (1, 2) if rep % 2 == 0 else (2, 1):
                    exp_id = f"bench_p{p}_r{rep}"
                    path = paths[p] if rep == 0 else experiment(root, exp_id, EIGHT, f"{N_RUNS} light runs, parallel {p}")
                    waited = wait_quiet(args.wait_quiet, progress, task)
                    rec = sweep_in_process(root, path, p, False, progress, task, f"parallel {p} ({rep + 1}/{args.repeats})")
                    rec.update(repeat=rep, waited_quiet_s=waited)
                    results["sweeps"].append(rec)
                    console.log(
                        f"{rec['label']}: run_sweep {rec['run_sweep_s']:.1f}s, makespan {f(rec['makespan_dagster_s'])}, "
                        f"sum of durations {rec['sum_duration_s']:.1f}s, {rec['statuses']}; {load_text(rec)}"
                    )

            # 3. resume the first parallel-2 sweep (finished): in process, then as the CLI (info)
            rec = sweep_in_process(root, paths[2], 2, True, progress, task, "parallel 2, --resume", figures=False)
            results["resume"] = rec
            console.log(f"resume: run_sweep {rec['run_sweep_s']:.2f}s, {rec['kept']} kept, {rec['submitted']} submitted; {load_text(rec)}")
            progress.update(task, description="pepm sweep --resume (CLI)")
            progress.refresh()
            cli = run_cli(root, ["sweep", "--exp-config", str(paths[2].relative_to(root)), "--parallel", "2", "--resume"], {**os.environ})
            results["resume_cli"] = {k: v for k, v in cli.items() if k not in ("epoch0", "epoch1")}
            console.log(f"pepm sweep --resume (CLI): {cli['wall_s']:.2f}s, exit code {cli['returncode']}; {load_text(cli)}")

            # 2. one sweep run against the plain script, both fresh subprocesses
            for rep in range(args.repeats):
                wait_quiet(args.wait_quiet, progress, task)
                progress.update(task, description=f"plain script ({rep + 1}/{args.repeats})")
                progress.refresh()
                plain = run_plain(root / "data" / "raw" / "mpt", tmp / f"plain_{rep}.json", {**os.environ})
                progress.update(task, description=f"pepm sweep, 1 run ({rep + 1}/{args.repeats})")
                progress.refresh()
                one = one_run_sweep(root, f"bench_one_r{rep}", {**os.environ})
                one = {k: v for k, v in one.items() if k not in ("epoch0", "epoch1")}
                results["one_run"].append({"plain": plain, "sweep": one})
                if one["returncode"] != 0:
                    raise RuntimeError(f"pepm sweep exited {one['returncode']}:\n{one.get('output')}")
                run = one["runs"][0]
                console.log(
                    f"one run ({rep + 1}/{args.repeats}): plain {plain['wall_s']:.2f}s; pepm sweep {one['wall_s']:.2f}s, "
                    f"Dagster run {f(run['spans']['Dagster run, launch to end (STARTING -> end)'])}, duration_s {run['duration_s']}"
                )

            # 4. where a worker's start-up goes
            progress.update(task, description="import probes")
            progress.refresh()
            results["imports"] = import_probes({**os.environ}, 3)
    except Exception:  # noqa: BLE001  (a measurement: report, keep what was measured, exit 0)
        error = traceback.format_exc()
        console.print("[bold red]benchmark failed:[/]")
        console.print(error, markup=False, highlight=False)
        results["error"] = error
    results["load_avg_end"] = os.getloadavg()

    try:
        print_report(results, cpu, error)
    except Exception:  # noqa: BLE001  (the figures are still written)
        console.print(traceback.format_exc(), markup=False, highlight=False)

    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    sys.exit(main())
