"""Same-run benchmark of core/frame_chunks.py: pepm's 1x pipeline (bench_pipeline's project: MPT,
tfidf_svm_quick on left_right) with Python's frame-stack chunks kept for reuse
(PEPM_FRAME_CHUNKS=compiled, the default) and mapped afresh by Python's own allocator (=python).

Two measurements, each in alternating pairs (compiled, python, compiled, python, ...) on a fresh
project and fresh stores each time, so that the machine's slow and fast phases count on both sides:
1. `pepm run --stage pipeline` as a subprocess (what a user runs): wall time, and the CPU time and
   page faults of its whole process tree (the side worker and Dagster's log tails included: the
   resource usage of the waited-for children, before and after).
2. `runner.run_stage(..., "pipeline", ...)` in a fresh Python process, imports done, timed around
   the call (bench_pipeline's in-process measure): the first pipeline of a process.
Reported: medians per variant and the median of the per-pair ratios compiled / python.

A measurement, not a test: exit code 0 whatever the figures.
Usage: python benchmarks/bench_frame_chunks.py [--pairs 6] [--json out.json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_pipeline as bp  # noqa: E402

VARIANTS = ("compiled", "python")
console = Console(soft_wrap=True)

IN_PROCESS = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {here!r})
import bench_pipeline as bp
import dagster, mlflow, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
import sklearn.feature_extraction.text, sklearn.svm
result = bp.run_pepm(Path(sys.argv[1]), Path(sys.argv[2]), bp.REPO / "dagster.yaml", lambda step: None)
json.dump({{"seconds": result["seconds"]}}, open(sys.argv[3], "w"))
"""


def run_cli(base: Path, corpus: Path, variant: str) -> dict:
    """bench_pipeline's CLI measure: wall, CPU and page faults of the command's process tree."""
    got = bp.run_pepm_cli(base, corpus, bp.REPO / "dagster.yaml", env={"PEPM_FRAME_CHUNKS": variant})
    return {"wall_s": got["seconds"], **{k: got[k] for k in ("user_s", "sys_s", "page_faults")}}


def run_in_process(base: Path, corpus: Path, variant: str) -> dict:
    """run_stage timed inside a fresh Python process (its imports done first)."""
    out = base / "in_process.json"
    env = {**os.environ, "PEPM_FRAME_CHUNKS": variant}
    subprocess.run(
        [sys.executable, "-c", IN_PROCESS.format(here=str(HERE)), str(base / "pepm"), str(corpus), str(out)],
        check=True,
        capture_output=True,
        env=env,
    )
    return {"wall_s": json.loads(out.read_text(encoding="utf-8"))["seconds"]}


def summary(rows: list[dict]) -> dict:
    """Medians per variant and of the per-pair ratios compiled / python, for every measured key."""
    out: dict = {}
    for key in rows[0]["compiled"]:
        per = {v: [r[v][key] for r in rows] for v in VARIANTS}
        out[key] = {
            **{v: statistics.median(per[v]) for v in VARIANTS},
            "ratio": statistics.median(c / p for c, p in zip(per["compiled"], per["python"]) if p),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=6, help="alternating pairs of each measurement")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = ap.parse_args()

    from pepm_assets.core import dvc, frame_chunks

    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_frame_chunks_"))
    results: dict = {"pairs": args.pairs, "implementation": frame_chunks.IMPLEMENTATION, "python": sys.version.split()[0]}
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", tmp / "corpus", ["mpt"])
    corpus = tmp / "corpus" / "mpt"
    for path in corpus.glob("*.xml"):  # warm the OS file cache
        path.read_bytes()
    for name, measure in (("cli", run_cli), ("in_process", run_in_process)):
        rows = []
        for i in range(args.pairs):
            row = {}
            for variant in VARIANTS:
                row[variant] = measure(tmp / f"{name}_{i}_{variant}", corpus, variant)
                console.log(f"{name} pair {i + 1}/{args.pairs} {variant}: " + ", ".join(f"{k} {v:,.2f}" for k, v in row[variant].items()))
            rows.append(row)
        results[name] = {"pairs": rows, "median": summary(rows)}

    table = Table(title=f"frame-stack chunks kept (compiled) vs Python's own allocator (python): 1x pipeline, {args.pairs} pairs")
    for column in ("measure", "kept (compiled)", "python", "per-pair ratio"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    for name in ("cli", "in_process"):
        for key, values in results[name]["median"].items():
            table.add_row(f"{name} {key}", f"{values['compiled']:,.2f}", f"{values['python']:,.2f}", f"{values['ratio']:.3f}")
    console.print(table)
    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    raise SystemExit(main())
