"""Benchmark of Dagster instance storages on pepm's own commands, against Dagster's `storage: sqlite:`.

Each other storage is another dagster.yaml; all are measured in the same run, interleaved.

What a user feels is the `pepm` command, so every measurement is the CLI as a subprocess (Python
start-up and imports included), on a new project per variant and repeat (the repo's configs, the
shipped MPT corpus hard-linked, its own DAGSTER_HOME and MLflow SQLite file), in this order:

1. first:  `pepm run --stage pipeline -p ideo_quick -o families=[sklearn] -o models=[tfidf_svm_quick]`
           on the new project (the Dagster instance and the MLflow database are created inside it);
2. noop:   the same command again, `--noop` times (everything fresh: no Dagster run; what a user
           pays to be told so);
3. rerun:  the same with `-o seed=43` (a new split: the view's Dagster run again, on an instance
           that already holds runs and events);
4. status: `pepm status -p ideo_quick` (every output's recorded version read back).

Variants: `dagster` (the repo's dagster.yaml with its `storage` block set to Dagster's own
`sqlite: {base_dir: {env: DAGSTER_HOME}}`: the baseline), `project` (the repo's dagster.yaml as it
is, when its storage is another one), and each `--variant NAME=PATH` (a dagster.yaml to try; a
storage class it names must be importable: PYTHONPATH reaches the subprocesses). A variant's file
is its project's dagster.yaml (pepm copies it into DAGSTER_HOME). Each command runs for every
variant in turn, the order reversed every repeat, so the figures of a pair are measured moments
apart. Reported per workload: CLI wall time (median and minimum), CPU time of the command and its
children (median: less sensitive than wall time to other load on the machine), the stage time
`pepm run` prints ("N Dagster runs in X s"), and each variant / dagster as the ratio of medians and
the median of the per-pair ratios.

A measurement, not a test: exit code 0 whatever the figures.
Usage: python benchmarks/bench_storage.py [--repeats 6] [--noop 3] [--variant name=dagster.yaml] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROFILE = "ideo_quick"
RUN = ["run", "--stage", "pipeline", "-p", PROFILE, "-o", "families=[sklearn]", "-o", "models=[tfidf_svm_quick]"]
STOCK_STORAGE = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
WORKLOADS = ("first", "noop", "rerun", "status")
console = Console(soft_wrap=True)


def with_stock_storage(project_yaml: str) -> str:
    """The project's dagster.yaml with Dagster's own SQLite storage (every other setting kept)."""
    config = yaml.safe_load(project_yaml) or {}
    config["storage"] = STOCK_STORAGE
    return yaml.safe_dump(config, sort_keys=False)


def storage_of(text: str) -> str:
    storage = (yaml.safe_load(text) or {}).get("storage") or {"default": None}
    kind = next(iter(storage))
    detail = storage[kind].get("class", "") if isinstance(storage[kind], dict) else ""
    return f"{kind} {detail}".strip()


def make_project(root: Path, corpus: Path, dagster_yaml: str) -> None:
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(corpus, root / "data" / "raw" / "mpt", copy_function=os.link)
    (root / "dagster.yaml").write_text(dagster_yaml, encoding="utf-8")


def pepm(root: Path, *args: str) -> dict[str, float | None]:
    """`pepm <args>` as a subprocess: wall seconds, CPU seconds (user + system, its children
    included: parse workers) and the stage seconds it printed (None for `status`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PEPM_MLFLOW_URI", "DAGSTER_HOME")}
    env.update(PEPM_ROOT=str(root), DAGSTER_HOME=str(root / ".dagster"), COLUMNS="200")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pepm_assets.cli", *args], cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pepm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stage = re.search(r"(\d+) Dagster runs in ([\d.]+)s", proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "stage": float(stage.group(2)) if stage else None}


def steps(noops: int) -> list[tuple[str, list[str]]]:
    """The commands of one project, in order: (workload, pepm arguments)."""
    return [("first", RUN), *[("noop", RUN)] * noops, ("rerun", [*RUN, "-o", "seed=43"]), ("status", ["status", "-p", PROFILE])]


def report(results: dict, names: list[str], repeats: int) -> Table:
    """The table, and results["summary"]: per workload and measure, each variant's value and its
    ratio to dagster's (ratio of medians, median of per-pair ratios)."""
    others = names[1:]
    table = Table(title=escape(f"bench storage: pepm {' '.join(RUN)} on MPT, {repeats} new projects per variant (seconds)"))
    table.add_column("workload: measure")
    for name in names:
        table.add_column(f"{name}: {results['variants'][name]['storage']}", justify="right")
    for name in others:
        table.add_column(f"{name} / dagster (median of pair ratios)", justify="right")
    measures = (
        ("wall", "CLI wall, median", statistics.median),
        ("wall", "CLI wall, min", min),
        ("cpu", "CPU, median", statistics.median),
        ("stage", "stage as pepm prints it, median", statistics.median),
    )
    summary: dict = {}
    for workload in WORKLOADS:
        for key, label, stat in measures:
            series = {n: [m[key] for m in results["variants"][n][workload]] for n in names}
            if any(not v or None in v for v in series.values()):
                continue
            value = {n: stat(v) for n, v in series.items()}
            ratio = {n: value[n] / value["dagster"] for n in others}
            paired = {n: statistics.median(a / b for a, b in zip(series[n], series["dagster"])) for n in others}
            summary[f"{workload}: {label}"] = {"value": value, "ratio": ratio, "paired_ratio": paired}
            table.add_row(
                f"{workload}: {label}",
                *[f"{value[n]:.2f}" for n in names],
                *[f"{ratio[n]:.3f}" + ("" if stat is min else f" ({paired[n]:.3f})") for n in others],
            )
    results["summary"] = summary
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=6, help="new projects per variant")
    ap.add_argument("--noop", type=int, default=3, help="no-op re-runs per project")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH", help="a dagster.yaml to compare (repeatable)")
    ap.add_argument("--json", type=Path, help="also write every timing to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    ap.add_argument("--corpus", default="mpt", help="only mpt (what `pepm bench storage` passes)")
    args = ap.parse_args()
    if args.corpus != "mpt":
        console.print(f"[red]bench storage supports only --corpus mpt, not {args.corpus!r}[/]")
        return 0

    from pepm_assets.core import dvc

    project_yaml = (REPO / "dagster.yaml").read_text(encoding="utf-8")
    variants = {"dagster": with_stock_storage(project_yaml)}
    if storage_of(project_yaml) != storage_of(variants["dagster"]):
        variants["project"] = project_yaml
    for spec in args.variant:
        name, _, path = spec.partition("=")
        if not path or name in variants:
            ap.error(f"--variant {spec!r}: expected a new NAME=PATH")
        variants[name] = Path(path).read_text(encoding="utf-8")
    names = list(variants)
    if len(names) == 1:
        console.print("the project's dagster.yaml uses Dagster's own storage: timing it alone (add --variant NAME=PATH to compare)")

    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_storage_"))
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", tmp / "corpus", ["mpt"])
    corpus = tmp / "corpus" / "mpt"
    for path in corpus.iterdir():  # the OS file cache, warm for every variant
        path.read_bytes()
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    results: dict = {
        "commit": commit.stdout.strip(),
        "repeats": args.repeats,
        "noop": args.noop,
        "machine_cores": os.cpu_count(),
        "variants": {n: {"storage": storage_of(t), **{w: [] for w in WORKLOADS}} for n, t in variants.items()},
    }
    try:
        for rep in range(args.repeats):
            roots = {name: tmp / f"{name}_{rep}" / "project" for name in names}
            for name, root in roots.items():
                make_project(root, corpus, variants[name])
            for workload, pepm_args in steps(args.noop):
                for name in names if rep % 2 == 0 else names[::-1]:
                    results["variants"][name][workload].append(pepm(roots[name], *pepm_args))
            done = {n: results["variants"][n] for n in names}
            console.log(
                f"repeat {rep + 1}/{args.repeats}: "
                + "; ".join(f"{n}: " + ", ".join(f"{w} {done[n][w][-1]['wall']:.2f}s" for w in WORKLOADS) for n in names)
            )
            if not args.keep:
                for root in roots.values():
                    shutil.rmtree(root.parent, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001  (a measurement: report what was measured, exit 0)
        console.print(f"[bold red]benchmark failed:[/] {escape(str(exc))}")
        results["error"] = str(exc)

    console.print(report(results, names, args.repeats))
    console.print(
        f"first: new project, its instance and MLflow store created inside; noop: the same command again ({args.noop} per "
        "project, nothing to run); rerun: seed=43 (the view's run again); status: pepm status. CPU: the command and its children."
    )
    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    sys.exit(main())
