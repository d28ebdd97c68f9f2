"""Benchmark of pepm's whole pipeline (prepare -> train -> evaluate, tfidf_svm_quick on MPT left/right)
against the same job written as a plain scikit-learn script (benchmarks/plain_tfidf_svm.py), on the
same corpus, in the same run, at 1x and Nx (the MPT files replicated N times).

1. Time. pepm = `runner.run_stage(root, "pipeline", "bench_svm", [], instance, defs)`: every
   Dagster run of the stage (observe sources, parse the corpus, build the view, train + evaluate,
   leaderboard), MLflow logging included, executed in process on a fresh temporary DagsterInstance
   (SQLite) with a fresh temporary MLflow SQLite backend. Not timed: `build_definitions(root)`, the
   creation of the two databases (timed separately, info) and the imports. plain = `full_pipeline`
   of plain_tfidf_svm.py (lxml iterparse -> pandas -> train_test_split -> TF-IDF + LinearSVC ->
   metrics.json), called in this same process, its imports done. Both sides run with their imports
   done, so pepm / plain is the cost of pepm's pipeline itself. Targets: <= 1.3 at 1x, <= 0.7 at Nx.
   Importing pepm's modules is not enough for that: its steps import what they use on first use
   (MLflow's SQL store and SQLAlchemy's ORM, GitPython through MLflow, Dagster's file IO: ~280
   modules, 0.6-0.8 s of a process's first pipeline), where the plain script imports everything at
   its own import. So both sides first run once on the 1x corpus, untimed (`--warmup`, default 1;
   `--warmup 0`: the first repeat pays pepm's first-use imports). The CLI rows pay every import.
   A ratio is the median over the repeats of pepm / plain *of the same repeat* (the two run one
   after the other, so a slow or a fast phase of the machine, which moves single timings 20-40 %,
   counts on both sides); the ratio of the two medians is printed beside it (info).
   Both are also run end to end as subprocesses (`python -m pepm_assets.cli run --stage pipeline
   -p bench_svm`, `python plain_tfidf_svm.py full ...`: Python start-up + imports included), the
   way a user runs them. Target at 1x: pepm's CLI <= 1.8 x the plain script's subprocess (Nx: info).
2. Where pepm's time goes: every Dagster run of the in-process pipeline (from the instance's run and
   step statistics), the time between runs (the runner's own work: config resolution, staleness,
   job resolution, run creation), and the core work each step reports (parse, view, fit, predict).
3. Same model, same score. `score_on_split` (plain) fitted on pepm's train.tsv and scored on its
   job.tsv of the 1x run must give pepm's macro-F1 (reports/.../metrics.json): |diff| <= 0.005.

The Nx corpus: every MPT XML file written N times (`r<k>_<name>.xml`, metadata.csv extended with
the replica ids) with each replica's texts made distinct, else pepm's dedup (rightly) removes the
copies: every `<p>` that ends with text gets "-<k>" glued to its last word (k one base-36 digit
per character, separated by "-"). That keeps the number of whitespace tokens of every text, and
scikit-learn's default tokenizer ignores one-character tokens, so the replicas have exactly the
features of the original while being distinct texts for the dedup of both sides.

A measurement, not a test: exit code 0 even when a target is missed (FAIL is printed).
Usage: python benchmarks/bench_pipeline.py --replicas 10 [--repeats 1] [--warmup 1] [--json out.json] [--keep] [--dagster-yaml PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
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
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
import yaml
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import plain_tfidf_svm as plain  # noqa: E402  (no pepm import in there)

RATIO_TARGETS = {"1x": 1.3, "Nx": 0.7}  # pepm / plain, in process, at most
CLI_TARGETS = {"1x": 1.8}  # pepm's CLI / the plain script, both as subprocesses, at most (other cases: info)
SCORE_TARGET = 0.005  # |macro-F1 plain on pepm's split - pepm's macro-F1|, at most
PROFILE = "bench_svm"
MODEL = "tfidf_svm_quick"
DATASET, VIEW, FAMILY = "mpt", "left_right", "sklearn"
console = Console(soft_wrap=True)


# ---------------------------------------------------------------- corpora and projects
def marker(k: int) -> bytes:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = digits[k % 36]
    while k >= 36:
        k //= 36
        out = digits[k % 36] + "-" + out
    return ("-" + out).encode()


# the last text character of a <p>, before optional spaces and empty elements (<stage .../>) and </p>
_P_END = re.compile(rb"([^\s>])(\s*(?:<[^<>]*/>\s*)*)</p>")


def replicate(src: Path, dest: Path, factor: int) -> dict:
    """Write `factor` distinct replicas of every XML file of src into dest; side files once."""
    dest.mkdir(parents=True)
    marked = 0
    xml = sorted(src.glob("*.xml"))
    for path in xml:
        data = path.read_bytes()
        for k in range(factor):
            mark = marker(k)
            out, n = _P_END.subn(lambda m, mark=mark: m.group(1) + mark + m.group(2) + b"</p>", data)
            marked += n
            (dest / f"r{k:02d}_{path.name}").write_bytes(out)
    for path in src.iterdir():
        if path.is_file() and path.suffix != ".xml":
            shutil.copyfile(path, dest / path.name)
    sittings = src / "metadata.csv"
    if sittings.is_file():  # one row per replica file, so each replica keeps its sitting date
        with open(sittings, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows, fields = list(reader), reader.fieldnames
        with open(dest / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, quoting=csv.QUOTE_ALL)
            writer.writeheader()
            for k in range(factor):
                writer.writerows({**row, "id": f"r{k:02d}_{row['id']}"} for row in rows)
    return {"files": len(xml) * factor, "paragraphs_marked": marked}


def make_project(root: Path, corpus: Path) -> list[str]:
    """A pepm project: the repo's configs + the bench profile; data/raw/mpt = hard links to `corpus`.
    Returns the models.yml entries removed because their family is not registered (see README)."""

    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(corpus, root / "data" / "raw" / "mpt", copy_function=os.link)
    profile = yaml.safe_load((root / "configs" / "profiles" / "ideo_quick.yml").read_text(encoding="utf-8"))
    profile.update(
        profile=PROFILE, description="bench_pipeline.py: ideo_quick with tfidf_svm_quick only", families=[FAMILY], models=[MODEL]
    )
    # one split, as the plain script fits once (ideo_quick itself repeats its split: split.repeats)
    profile["split"] = {**(profile.get("split") or {}), "repeats": 1}
    (root / "configs" / "profiles" / f"{PROFILE}.yml").write_text(
        yaml.safe_dump(profile, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    unknown = bench_common.drop_unregistered_models(root)
    return unknown


@contextlib.contextmanager
def environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_stores(base: Path, dagster_yaml: Path) -> tuple[dict[str, str], dict[str, float]]:
    """A fresh Dagster home (configured by `dagster_yaml`: the repo's by default) and MLflow SQLite
    file, both created (schemas written) here, outside the timed region; returns the env vars and
    the seconds each took."""
    import dagster as dg
    import mlflow

    home = base / "dagster_home"
    home.mkdir(parents=True)
    shutil.copyfile(dagster_yaml, home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "PEPM_MLFLOW_URI": f"sqlite:///{base / 'mlflow.db'}"}
    with environ(**env):
        started = time.perf_counter()
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
        dagster_s = time.perf_counter() - started
        started = time.perf_counter()
        mlflow.MlflowClient(env["PEPM_MLFLOW_URI"]).search_experiments()  # not the process-wide URI: the CLI row's env
        mlflow_s = time.perf_counter() - started
    return env, {"dagster_instance": dagster_s, "mlflow_db": mlflow_s}


# ---------------------------------------------------------------- the measured things
def run_plain(corpus: Path, out: Path, seed: int) -> tuple[float, dict]:
    gc.collect()
    started = time.perf_counter()
    result = plain.full_pipeline(corpus, seed, out)
    return time.perf_counter() - started, result


def run_plain_subprocess(corpus: Path, out: Path, seed: int) -> float:
    cmd = [sys.executable, str(HERE / "plain_tfidf_svm.py"), "full", str(corpus), "--seed", str(seed), "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def run_pepm(base: Path, corpus: Path, dagster_yaml: Path, on_step) -> dict:
    """The pipeline stage in process; returns wall time, the per-run breakdown and the project root."""
    import dagster as dg

    from pepm_assets.definitions import build_definitions
    from pepm_assets.defs import runner

    root = base / "project"
    removed = make_project(root, corpus)
    env, stores = make_stores(base, dagster_yaml)
    started = time.perf_counter()
    defs = build_definitions(root)
    defs_s = time.perf_counter() - started
    with environ(**env), dg.DagsterInstance.get() as instance:
        gc.collect()
        t0 = time.time()
        started = time.perf_counter()
        report = runner.run_stage(root, "pipeline", PROFILE, [], instance, defs, on_step=on_step)
        wall = time.perf_counter() - started
        t1 = time.time()
        runs = breakdown(instance, report.runs, t0, t1)
    return {
        "seconds": wall,
        "root": root,
        "runs": runs,
        "checks": report.checks,
        "skipped": report.skipped,
        "build_definitions_s": defs_s,
        "stores_s": stores,
        "models_removed": removed,
        "core": core_seconds(root),
    }


def run_pepm_cli(base: Path, corpus: Path, dagster_yaml: Path, env: dict[str, str] | None = None) -> dict:
    """The pipeline through the CLI on a fresh project and stores (`env`: more variables): wall
    time, the stage time the CLI prints, and the CPU time and page faults of its whole process
    tree (the resource usage of the waited-for children, before and after)."""
    import resource

    root = base / "project"
    make_project(root, corpus)
    stores, _ = make_stores(base, dagster_yaml)
    cmd = [sys.executable, "-m", "pepm_assets.cli", "run", "--stage", "pipeline", "-p", PROFILE]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=root,
        env={**os.environ, **stores, "PEPM_ROOT": str(root), "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pepm CLI exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    inner = re.search(r"(\d+) Dagster runs in ([\d.]+)s", proc.stdout)
    return {
        "seconds": wall,
        "stage_s": float(inner.group(2)) if inner else None,
        "n_runs": int(inner.group(1)) if inner else None,
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "page_faults": after.ru_minflt - before.ru_minflt,
    }


def breakdown(instance, runs: list[tuple[str, str, str]], t0: float, t1: float) -> list[dict]:
    """Per Dagster run: time since the previous run ended (runner work), the run's own span, and
    each step's span (from the instance's run and step statistics)."""
    out, previous_end = [], t0
    for job, partition, run_id in runs:
        stats = instance.get_run_stats(run_id)
        steps = [
            {"step": s.step_key, "seconds": (s.end_time or 0) - (s.start_time or 0), "start": s.start_time, "end": s.end_time}
            for s in instance.get_run_step_stats(run_id)
            if s.start_time
        ]
        start, end = stats.start_time or previous_end, stats.end_time or previous_end
        out.append(
            {
                "job": job,
                "partition": partition,
                "run_id": run_id,
                "before_s": start - previous_end,
                "run_s": end - start,
                "steps": steps,
                "steps_s": sum(s["seconds"] for s in steps),
            }
        )
        previous_end = end
    out.append(
        {
            "job": "(after the last run)",
            "partition": "",
            "run_id": "",
            "before_s": t1 - previous_end,
            "run_s": 0.0,
            "steps": [],
            "steps_s": 0.0,
        }
    )
    return out


def core_seconds(root: Path) -> dict:
    """What each step's core function reports it took (pepm's own meta files)."""
    from pepm_assets.core import asset_names as names
    from pepm_assets.core.paths import ProjectPaths

    paths = ProjectPaths(root)
    read = lambda p: json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}  # noqa: E731
    parse = read(paths.corpus_dir(DATASET) / "parse_stats.json")
    view = read(paths.view_dir(DATASET, VIEW) / "meta_view.json")
    model = read(paths.model_dir(DATASET, VIEW, FAMILY, MODEL) / "meta_model.json")
    evaluation = read(paths.report_dir(DATASET, VIEW, FAMILY, MODEL) / "meta_eval.json")
    return {
        "corpus_docs": {"extract_corpus": parse.get("seconds")},
        "view_split": {"build_view": view.get("seconds")},
        names.step_key(names.model_asset(MODEL)): {"fit + dump": model.get("train_seconds")},  # keyed as the steps are
        names.step_key(names.evaluation_asset(MODEL)): {"predict": evaluation.get("predict_seconds")},
        "docs": {
            "parsed": parse.get("n_docs"),
            "labelled": view.get("n_docs_labelled"),
            "train": view.get("split", {}).get("n_train"),
            "job": view.get("split", {}).get("n_job"),
        },
    }


def score_check(root: Path, seed: int) -> dict:
    from pepm_assets.core.paths import ProjectPaths

    paths = ProjectPaths(root)
    metrics = json.loads((paths.report_dir(DATASET, VIEW, FAMILY, MODEL) / "metrics.json").read_text(encoding="utf-8"))
    view = paths.view_dir(DATASET, VIEW)
    mine = plain.score_on_split(view / "train.tsv", view / "job.tsv", plain.model_params()["C"], seed)
    return {
        "pepm_macro_f1": metrics["macro_f1"],
        "pepm_macro_f1_ci95": metrics["ci95"]["macro_f1"],
        "pepm_accuracy": metrics["accuracy"],
        "pepm_accuracy_ci95": metrics["ci95"]["accuracy"],
        "plain_on_pepm_split": mine,
        "diff": mine["macro_f1"] - metrics["macro_f1"],
    }


# ---------------------------------------------------------------- report
def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def med(values: list[float]) -> float:
    return statistics.median(values)


def record_ratio(res: dict, key: str, pepm: list[float], plain: list[float], target: float | None) -> tuple[float, str]:
    """res[key]: the median of the per-repeat ratios (each repeat's pepm over its own plain run),
    with `<key>_per_repeat`, `<key>_of_medians` and, under a target, `<key>_target` / `<key>_pass`.
    Returns the ratio and its text for the table."""
    pairs = [a / b for a, b in zip(pepm, plain)]
    ratio, of_medians = med(pairs), med(pepm) / med(plain)
    res.update({key: ratio, f"{key}_per_repeat": pairs, f"{key}_of_medians": of_medians})
    if target is not None:
        res.update({f"{key}_target": target, f"{key}_pass": ratio <= target})
    if len(pairs) == 1:
        return ratio, f"{ratio:.2f}"
    return ratio, f"{ratio:.2f} (per repeat {', '.join(f'{r:.2f}' for r in pairs)}; ratio of the medians {of_medians:.2f})"


def print_breakdown(label: str, pepm: dict, where: str = "in process", which: str = "median run") -> None:
    table = Table(title=f"pepm {where}, {label}: where the {pepm['seconds']:.1f} s go ({which}; seconds)")
    for col in ("Dagster run / step", "before run", "run", "steps", "in run, outside steps", "core work inside the step"):
        table.add_column(col, justify="left" if col.startswith(("Dagster", "core")) else "right")
    core = pepm["core"]
    for r in pepm["runs"]:
        if not r["run_id"]:
            table.add_row(r["job"], f"{r['before_s']:.2f}", "", "", "", "")
            continue
        table.add_row(
            f"[bold]{r['job']}[/] {r['partition']}".strip(),
            f"{r['before_s']:.2f}",
            f"{r['run_s']:.2f}",
            f"{r['steps_s']:.2f}",
            f"{r['run_s'] - r['steps_s']:.2f}",
            "",
        )
        for s in r["steps"]:
            work = ", ".join(f"{k} {v:.2f}" for k, v in core.get(s["step"], {}).items() if v is not None)
            if s.get("peak_rss_mib"):  # bench_scale: the process tree's peak during the step
                work = f"{work}; peak tree RSS {s['peak_rss_mib']:,.0f} MiB".lstrip("; ")
            table.add_row(f"  {s['step']}", "", "", f"{s['seconds']:.2f}", "", work)
    runs = [r for r in pepm["runs"] if r["run_id"]]
    table.add_row(
        f"[bold]total: {len(runs)} runs[/]",
        f"{sum(r['before_s'] for r in pepm['runs']):.2f}",
        f"{sum(r['run_s'] for r in runs):.2f}",
        f"{sum(r['steps_s'] for r in runs):.2f}",
        f"{sum(r['run_s'] - r['steps_s'] for r in runs):.2f}",
        f"wall {pepm['seconds']:.2f}",
    )
    console.print(table)
    console.print(
        "before run: from the end of the previous run (or the call) to this run's start: the runner's own work and "
        "Dagster's run creation and teardown. in run, outside steps: run start/end events, resources, plan."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=10, help="replication factor of the large case")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs of each measurement (medians)")
    ap.add_argument("--seed", type=int, default=42, help="seed of the plain script (the profile's is 42)")
    ap.add_argument(
        "--warmup", type=int, default=1, help="untimed in-process runs of both sides on the 1x corpus before the repeats (0: none)"
    )
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed) for inspection")
    ap.add_argument("--corpus", default="mpt", help="only mpt (the plain script reads the MPT dialect)")
    ap.add_argument(
        "--dagster-yaml",
        type=Path,
        default=REPO / "dagster.yaml",
        help="the Dagster instance's settings (default: the repo's dagster.yaml)",
    )
    args = ap.parse_args()
    if args.corpus != "mpt":
        console.print(f"[red]bench pipeline supports only --corpus mpt, not {args.corpus!r}[/]")
        return 0

    # imports outside every timed region, on both sides (the subprocess rows include them)
    import dagster as dg  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import mlflow  # noqa: F401

    from pepm_assets.core import dvc
    from pepm_assets.definitions import build_definitions  # noqa: F401
    from pepm_assets.defs import runner  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_pipeline_"))
    factors = {"1x": 1, "Nx": args.replicas}
    names = {"1x": "1x", "Nx": f"{args.replicas}x"}
    results: dict = {
        "replicas": args.replicas,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "dagster_yaml": str(args.dagster_yaml),
        "tmp": str(tmp) if args.keep else None,
        "machine_cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "cases": {},
    }
    error = None
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True, auto_refresh=False
        ) as progress:
            task = progress.add_task("unpacking MPT", total=None)
            progress.refresh()
            dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", tmp / "corpus_1x", ["mpt"])
            corpora = {"1x": tmp / "corpus_1x" / "mpt"}
            if args.replicas > 1:  # --replicas 1: the 1x case only (an "Nx" copy of it would be judged by the Nx target)
                progress.update(task, description=f"writing {args.replicas} distinct replicas")
                progress.refresh()
                replica_info = replicate(corpora["1x"], tmp / "corpus_Nx", args.replicas)
                corpora["Nx"] = tmp / "corpus_Nx"
                results["replica_files"] = replica_info

            for i in range(args.warmup):  # untimed: the imports each side makes on first use (see the docstring)
                progress.update(task, description=f"warm-up {i + 1}/{args.warmup} (untimed): plain, then pepm in process, 1x")
                progress.refresh()
                run_plain(corpora["1x"], tmp / f"warmup{i}_plain_metrics.json", args.seed)
                run_pepm(tmp / f"warmup{i}", corpora["1x"], args.dagster_yaml, lambda name: None)
                shutil.rmtree(tmp / f"warmup{i}", ignore_errors=True)
            for case, corpus in corpora.items():
                files = sorted(corpus.glob("*.xml"))
                for path in files:  # warm the OS file cache
                    path.read_bytes()
                res = results["cases"][case] = {
                    "factor": factors[case],
                    "files": len(files),
                    "mb": sum(p.stat().st_size for p in files) / 1e6,
                    "plain_s": [],
                    "pepm_s": [],
                    "pepm_cli_s": [],
                    "pepm_cli_stage_s": [],
                    "plain_subprocess_s": [],
                }
                for rep in range(args.repeats):
                    label = f"{names[case]} ({rep + 1}/{args.repeats})"
                    base = tmp / f"{case}_r{rep}"
                    progress.update(task, description=f"{label}: plain full_pipeline (in process)")
                    progress.refresh()
                    seconds, plain_result = run_plain(corpus, base.with_name(base.name + "_plain_metrics.json"), args.seed)
                    res["plain_s"].append(seconds)
                    res["plain"] = plain_result
                    console.log(f"{label}: plain in process {seconds:.1f}s (macro-F1 {plain_result['macro_f1']:.4f})")

                    def on_step(name: str, label=label) -> None:
                        progress.update(task, description=f"{label}: pepm in process: {name}")
                        progress.refresh()

                    pepm = run_pepm(base / "pepm", corpus, args.dagster_yaml, on_step)
                    res["pepm_s"].append(pepm["seconds"])
                    console.log(f"{label}: pepm in process {pepm['seconds']:.1f}s ({len(pepm['runs']) - 1} Dagster runs)")
                    res.setdefault("pepm_repeats", []).append({k: v for k, v in pepm.items() if k != "root"})
                    if rep == 0:
                        if pepm["models_removed"]:
                            console.log(f"models.yml of the temp project: removed {pepm['models_removed']} (family not registered)")
                        if case == "1x":
                            progress.update(task, description=f"{label}: score_on_split on pepm's split")
                            progress.refresh()
                            results["score"] = score_check(pepm["root"], 42)

                    progress.update(task, description=f"{label}: pepm CLI (subprocess)")
                    progress.refresh()
                    cli = run_pepm_cli(base / "cli", corpus, args.dagster_yaml)
                    res["pepm_cli_s"].append(cli["seconds"])
                    res["pepm_cli_stage_s"].append(cli["stage_s"])
                    console.log(f"{label}: pepm CLI {cli['seconds']:.1f}s (stage {cli['stage_s']}s as the CLI reports it)")

                    progress.update(task, description=f"{label}: plain script (subprocess)")
                    progress.refresh()
                    seconds = run_plain_subprocess(corpus, base.with_name(base.name + "_plain_sub_metrics.json"), args.seed)
                    res["plain_subprocess_s"].append(seconds)
                    console.log(f"{label}: plain subprocess {seconds:.1f}s")
                    if not args.keep:
                        shutil.rmtree(base, ignore_errors=True)
                # the breakdown shown is the one of the median pepm run
                res["pepm"] = sorted(res["pepm_repeats"], key=lambda r: r["seconds"])[(len(res["pepm_repeats"]) - 1) // 2]
    except Exception:  # noqa: BLE001  (a measurement: report, keep what was measured, exit 0)
        error = traceback.format_exc()
        console.print("[bold red]benchmark failed:[/]")
        console.print(error, markup=False, highlight=False)
        results["error"] = error

    # ------------------------------------------------------------ tables
    table = Table(title=f"bench pipeline: {PROFILE} ({MODEL} on {DATASET}/{VIEW}), medians of {args.repeats} run(s)")
    for col in ("measure", "value", "target", "result"):
        table.add_column(col)
    for case, res in results["cases"].items():
        if not res["pepm_s"] or not res["plain_s"]:
            continue
        n = names[case]
        docs = res.get("pepm", {}).get("core", {}).get("docs", {})
        table.add_row(
            f"corpus {n}",
            f"{res['files']} files, {res['mb']:.1f} MB; pepm: {docs.get('parsed')} docs parsed, "
            f"{docs.get('labelled')} labelled, {docs.get('train')} train / {docs.get('job')} job; "
            f"plain: {res['plain']['n_kept']} kept, {res['plain']['n_train']} / {res['plain']['n_job']}",
            "",
            "",
        )
        plain_s, pepm_s = med(res["plain_s"]), med(res["pepm_s"])
        target = RATIO_TARGETS[case]
        res.update(plain_median_s=plain_s, pepm_median_s=pepm_s)
        ratio, ratio_shown = record_ratio(res, "ratio", res["pepm_s"], res["plain_s"], target)
        pl = res["plain"]
        table.add_row(
            f"{n} plain full_pipeline, in process",
            f"{plain_s:.2f} s (read {pl['seconds_read']:.2f}, filter + split "
            f"{pl['seconds_filter_split']:.2f}, fit + predict + scores {pl['seconds'] - pl['seconds_read'] - pl['seconds_filter_split']:.2f})",
            "",
            "",
        )
        table.add_row(f"{n} pepm run_stage pipeline, in process", f"{pepm_s:.2f} s", "", "")
        table.add_row(f"{n} ratio pepm / plain", ratio_shown, f"<= {target}", verdict(ratio <= target))
        if res["pepm_cli_s"] and res["plain_subprocess_s"]:
            cli_s, sub_s = med(res["pepm_cli_s"]), med(res["plain_subprocess_s"])
            stage = [s for s in res["pepm_cli_stage_s"] if s is not None]
            cli_target = CLI_TARGETS.get(case)
            res.update(pepm_cli_median_s=cli_s, plain_subprocess_median_s=sub_s)
            sub_ratio, sub_shown = record_ratio(res, "ratio_subprocess", res["pepm_cli_s"], res["plain_subprocess_s"], cli_target)
            table.add_row(
                f"{n} pepm CLI, subprocess (start-up + imports)",
                f"{cli_s:.2f} s" + (f" (stage {med(stage):.1f} s as the CLI reports it)" if stage else ""),
                "",
                "info",
            )
            table.add_row(f"{n} plain script, subprocess", f"{sub_s:.2f} s", "", "info")
            table.add_row(
                f"{n} ratio, subprocesses",
                sub_shown,
                f"<= {cli_target}" if cli_target is not None else "",
                verdict(sub_ratio <= cli_target) if cli_target is not None else "info",
            )
        checks = res.get("pepm", {}).get("checks", {})
        if checks:
            failed = [k for k, ok in checks.items() if not ok]
            warned = [k for k in failed if k.endswith(".label_validity")]  # WARN severity: a finding about the label, not a broken output
            note = f" ({len(warned)} warning: label validity)" if warned else ""
            table.add_row(f"{n} pepm asset checks passed", f"{sum(checks.values())}/{len(checks)}{note}", "", verdict(failed == warned))
        stores = res.get("pepm", {}).get("stores_s")
        if stores:
            table.add_row(
                f"{n} not timed: build_definitions / new Dagster instance / new MLflow DB",
                f"{res['pepm']['build_definitions_s']:.2f} / {stores['dagster_instance']:.2f} / {stores['mlflow_db']:.2f} s",
                "",
                "info",
            )
    score = results.get("score")
    if score:
        ok = abs(score["diff"]) <= SCORE_TARGET
        score.update(target=SCORE_TARGET, passed=ok)
        lo, hi = score["pepm_macro_f1_ci95"]
        table.add_row("1x pepm macro-F1 (metrics.json) [95% CI]", f"{score['pepm_macro_f1']:.4f} [{lo:.4f}, {hi:.4f}]", "", "info")
        table.add_row(
            "1x plain model on pepm's train/job: macro-F1",
            f"{score['plain_on_pepm_split']['macro_f1']:.4f} "
            f"(accuracy {score['plain_on_pepm_split']['accuracy']:.4f} vs pepm {score['pepm_accuracy']:.4f})",
            "",
            "",
        )
        table.add_row("1x |diff| macro-F1", f"{abs(score['diff']):.4f}", f"<= {SCORE_TARGET}", verdict(ok))
    for case, res in results["cases"].items():
        if "plain" in res:
            note = "" if case == "1x" else "; replicas are one text for the model, so copies sit in train and job: inflated"
            table.add_row(
                f"{names[case]} plain full_pipeline macro-F1 (its own split)",
                f"{res['plain']['macro_f1']:.4f} (accuracy {res['plain']['accuracy']:.4f}{note})",
                "",
                "info",
            )
    if error:
        table.add_row("error", "see the traceback above", "", verdict(False))
    console.print(table)
    for case, res in results["cases"].items():
        if "pepm" in res:
            print_breakdown(names[case], res["pepm"])

    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    sys.exit(main())
