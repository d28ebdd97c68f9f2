"""Benchmark of pepm at scale: `pepm run` against the plain scikit-learn script on the MPT corpus
replicated N times (40 by default: ~428k labelled documents), both as the commands a user runs, in
the same run, one after the other: wall time and peak memory of the whole process tree (children
included), and where pepm's time goes.

1. plain: `python benchmarks/plain_tfidf_svm.py full <corpus>` (lxml -> pandas -> train_test_split
   -> TF-IDF + LinearSVC -> metrics), a subprocess.
2. pepm: `python -m pepm_assets.cli run --stage pipeline -p ideo_quick -o models=[tfidf_svm_quick]`
   (plus any --override) in a new project (the repo's configs, the replicated corpus hard-linked),
   a new Dagster home and MLflow file (bench_pipeline.make_project / make_stores), a subprocess.
3. pepm + spaCy: the same command with `models=[tfidf_svm_quick,<--spacy-model>]` on the project
   of 2 (the split is already prepared: the spaCy format is written, the spaCy model trained under
   the profile's `small` preset, capped at its `max_train_docs`, and scored on the job set).

Peak tree memory: a thread polls /proc every `--poll` seconds (0.1) for the command's process and
all its descendants and sums their RSS (target), and their PSS (information: forked processes share
pages that RSS counts once per process). Per-step times: every Dagster run of each pepm command and
its steps' spans, from the instance's run and step statistics (bench_pipeline.breakdown). The
spaCy target is the `model_formats` step of 3, which writes the spaCy format.

The Nx corpus is bench_pipeline's (`replicate`: distinct replicas, else both sides' dedup drops
them). Targets: pepm / plain wall <= 0.8 and peak tree RSS <= 1.0; spaCy format <= 10 s.
A measurement, not a test: exit code 0 even when a target is missed (FAIL is printed).
Usage: python benchmarks/bench_scale.py --replicas 40 [--json out.json] [--keep] [--override KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
import bench_pipeline as bp
from rich.markup import escape
from rich.table import Table

HERE, REPO, console = bp.HERE, bp.REPO, bp.console
PROFILE, MODEL = "ideo_quick", bp.MODEL
TARGETS = {"wall": 0.8, "rss": 1.0, "spacy_format_s": 10.0}
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- process tree memory
def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants now."""
    children, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) once it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            rss = int(fh.read().split()[1]) * PAGE
        pss = 0
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1]) * 1024
                    break
        return rss, pss
    except (OSError, ValueError, IndexError):
        return 0, 0


class TreePeak(threading.Thread):
    """Polls the process tree of `pid` every `interval` s until stopped: the peak of the summed RSS
    (and PSS), the most processes seen at once, and the RSS timeline (to find each step's peak)."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.done = pid, interval, threading.Event()
        self.rss = self.pss = self.procs = self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (epoch seconds, tree RSS bytes)

    def run(self) -> None:
        while not self.done.is_set():
            pids = tree(self.pid)
            mems = [memory(p) for p in pids]
            self.rss = max(self.rss, sum(m[0] for m in mems))
            self.timeline.append((time.time(), sum(m[0] for m in mems)))
            self.pss = max(self.pss, sum(m[1] for m in mems))
            self.procs = max(self.procs, sum(1 for m in mems if m[0]))
            self.samples += 1
            self.done.wait(self.interval)


def measured(cmd: list[str], cwd: Path, env: dict[str, str], interval: float) -> dict:
    """Run `cmd`; wall time, peak tree RSS / PSS (MiB), CPU seconds of the tree, its output."""
    usage = os.times()
    t0, started = time.time(), time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = TreePeak(proc.pid, interval)
    peak.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - started
    peak.done.set()
    peak.join()
    after = os.times()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-4000:]}")
    return {
        "seconds": wall,
        "t0": t0,
        "t1": time.time(),
        "peak_rss_mib": peak.rss / 2**20,
        "peak_pss_mib": peak.pss / 2**20,
        "max_processes": peak.procs,
        "samples": peak.samples,
        "timeline": peak.timeline,
        "cpu_s": (after.children_user - usage.children_user) + (after.children_system - usage.children_system),
        "output": output,
    }


# ---------------------------------------------------------------- the commands
ONE_SPLIT = "split.repeats=1"  # the plain script fits and scores one split; ideo_quick repeats its split 5 times


def pepm_command(models: list[str], overrides: list[str]) -> list[str]:
    """`pepm run` on one split, the plain script's work (an --override split.repeats=N replaces it)."""
    cmd = [sys.executable, "-m", "pepm_assets.cli", "run", "--stage", "pipeline", "-p", PROFILE, "-o", f"models=[{','.join(models)}]"]
    if not any(o.startswith("split.repeats=") for o in overrides):
        cmd += ["-o", ONE_SPLIT]
    for override in overrides:
        cmd += ["-o", override]
    return cmd


def run_pepm(root: Path, env: dict[str, str], models: list[str], overrides: list[str], interval: float) -> dict:
    """One `pepm run` on the project `root`, measured, with the breakdown of its Dagster runs."""
    import dagster as dg

    env = {
        **os.environ,
        **env,
        "PEPM_ROOT": str(root),
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    with bp.environ(DAGSTER_HOME=env["DAGSTER_HOME"]), dg.DagsterInstance.get() as instance:
        seen = {r.dagster_run.run_id for r in instance.get_run_records()}
    res = measured(pepm_command(models, overrides), root, env, interval)
    inner = re.search(r"(\d+) Dagster runs in ([\d.]+)s", res["output"])
    res["stage_s"] = float(inner.group(2)) if inner else None
    with bp.environ(DAGSTER_HOME=env["DAGSTER_HOME"]), dg.DagsterInstance.get() as instance:
        records = sorted((r for r in instance.get_run_records() if r.dagster_run.run_id not in seen), key=lambda r: r.create_timestamp)
        runs = [(r.dagster_run.job_name, r.dagster_run.tags.get("dagster/partition", ""), r.dagster_run.run_id) for r in records]
        res["runs"] = bp.breakdown(instance, runs, res["t0"], res["t1"])
    step_peaks(res)
    res["core"] = bp.core_seconds(root)
    written = {name: e["seconds"] for name, e in spacy_format_held(root)["formats"].items() if e.get("seconds") and e["seconds"] >= 0.01}
    res["core"]["model_formats"] = {f"{name} writer": s for name, s in written.items()}
    return res


def step_peaks(res: dict) -> None:
    """Each step's peak tree RSS (MiB), from the memory timeline and the step's span (event log):
    which step sets the command's peak, and so whether it is one that may scale with the corpus."""
    timeline = res.pop("timeline")
    for run in res["runs"]:
        for step in run["steps"]:
            inside = [rss for t, rss in timeline if step.get("start") and step["start"] <= t <= (step.get("end") or t)]
            step["peak_rss_mib"] = round(max(inside) / 2**20, 1) if inside else None
    res["peak_step"] = max(
        ((s["step"], s["peak_rss_mib"]) for r in res["runs"] for s in r["steps"] if s.get("peak_rss_mib")), key=lambda x: x[1], default=None
    )


def step_seconds(pepm: dict, step: str) -> float | None:
    spans = [s["seconds"] for r in pepm["runs"] for s in r["steps"] if s["step"] == step]
    return sum(spans) if spans else None


def spacy_format_held(root: Path) -> dict:
    """What the spaCy format holds, its shards, its writer's seconds; and every format's entry."""
    from pepm_assets.core.paths import ProjectPaths

    meta = ProjectPaths(root).processed_dir(bp.DATASET, bp.VIEW) / "meta_formats.json"
    formats = json.loads(meta.read_text(encoding="utf-8"))["formats"]
    entry = formats.get("spacy_docbin", {})
    return {
        "holds": entry.get("holds", {}),
        "train_shards": len(entry.get("train") or []),
        "valid_shards": len(entry.get("valid") or []),
        "writer_s": entry.get("seconds"),
        "load_s": entry.get("seconds_load"),
        "formats": formats,
    }


# ---------------------------------------------------------------- report
def report(results: dict) -> None:
    table = Table(
        title=f"bench scale: {PROFILE} at {results['replicas']}x, commands as subprocesses (wall, peak memory of the process tree)"
    )
    for col in ("measure", "value", "target", "result"):
        table.add_column(col)
    plain, pepm, spacy = results.get("plain"), results.get("pepm"), results.get("pepm_spacy")
    if pepm:
        docs = pepm["core"]["docs"]
        table.add_row(
            "corpus",
            f"{results['files']} files, {results['mb']:.0f} MB; pepm: {docs.get('parsed')} docs parsed, {docs.get('labelled')} labelled, "
            f"{docs.get('train')} train / {docs.get('job')} job" + (f"; plain: {plain['result']['n_kept']} kept" if plain else ""),
            "",
            "",
        )
    for name, res in (("plain", plain), ("pepm", pepm), ("pepm + spaCy", spacy)):
        if res:
            table.add_row(
                f"{name}: {escape(res['command'])}",
                f"{res['seconds']:.1f} s wall, {res['cpu_s']:.1f} CPU-s; peak RSS {res['peak_rss_mib']:,.0f} MiB "
                f"(PSS {res['peak_pss_mib']:,.0f}), {res['max_processes']} processes at most",
                "",
                "",
            )
    if plain and pepm:
        wall, rss = pepm["seconds"] / plain["seconds"], pepm["peak_rss_mib"] / plain["peak_rss_mib"]
        results.update(wall_ratio=wall, rss_ratio=rss, pss_ratio=pepm["peak_pss_mib"] / plain["peak_pss_mib"])
        table.add_row("wall pepm / plain", f"{wall:.2f}", f"<= {TARGETS['wall']}", bp.verdict(wall <= TARGETS["wall"]))
        table.add_row("peak tree RSS pepm / plain", f"{rss:.2f}", f"<= {TARGETS['rss']}", bp.verdict(rss <= TARGETS["rss"]))
        table.add_row("peak tree PSS pepm / plain", f"{results['pss_ratio']:.2f}", "", "info")
        pl = plain["result"]
        table.add_row(
            "plain's own timings",
            f"read {pl['seconds_read']:.1f}, filter + split {pl['seconds_filter_split']:.1f}, "
            f"fit + predict + scores {pl['seconds'] - pl['seconds_read'] - pl['seconds_filter_split']:.1f} s "
            f"(start-up and imports: {plain['seconds'] - pl['seconds']:.1f} s)",
            "",
            "",
        )
    if spacy:
        fmt = results.get("spacy_format_s")
        held = results.get("spacy_format", {}).get("holds", {})
        table.add_row(
            "spaCy format: model_formats step of pepm + spaCy",
            "not found"
            if fmt is None
            else f"{fmt:.2f} s, of which the writer {results['spacy_format'].get('writer_s')} s, of which importing spaCy and "
            f"building the blank pipeline {results['spacy_format'].get('load_s')} s (once per process: the spaCy model's steps "
            f"would pay it otherwise; regex cache {results.get('regex_cache')}); {held.get('n_train')} train docs, "
            f"max_train_docs {held.get('max_train_docs')}",
            f"<= {TARGETS['spacy_format_s']:g} s",
            bp.verdict(fmt is not None and fmt <= TARGETS["spacy_format_s"]),
        )
    if results.get("error"):
        table.add_row("error", "see the traceback above", "", bp.verdict(False))
    console.print(table)
    for name, key in (("pepm", "pepm"), ("pepm + spaCy", "pepm_spacy")):
        if results.get(key):
            bp.print_breakdown(
                f"{results['replicas']}x, {name}",
                results[key],
                where="CLI (subprocess)",
                which="one command; the first 'before run' holds its start-up",
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=40, help="replication factor of the MPT corpus")
    ap.add_argument("--override", action="append", default=[], help="extra pepm override KEY=VALUE, both pepm runs (repeatable)")
    ap.add_argument("--spacy-model", default="spacy_bow", help="the spaCy model of the third command (models.yml id; '' skips it)")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between two polls of the process tree's memory")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed) for inspection")
    ap.add_argument("--corpus", default="mpt", help="only mpt (the plain script reads the MPT dialect)")
    ap.add_argument("--dagster-yaml", type=Path, default=REPO / "dagster.yaml", help="pepm's Dagster instance settings")
    args = ap.parse_args()
    if args.corpus != "mpt":
        console.print(f"[red]bench scale supports only --corpus mpt, not {args.corpus!r}[/]")
        return 0

    from pepm_assets.core import dvc, regex_cache

    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_scale_"))
    results: dict = {"replicas": args.replicas, "overrides": args.override, "machine_cores": os.cpu_count(), "tmp": str(tmp)}
    cache = regex_cache.folder()  # cold: the spaCy format's writer compiles the French tokenizer's regex (~3.5 s, once per machine)
    results["regex_cache"] = "off" if cache is None else "warm" if any(cache.glob("*.json")) else "cold"
    try:
        console.log(f"unpacking MPT, writing {args.replicas} distinct replicas")
        dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", tmp / "corpus_1x", ["mpt"])
        corpus = tmp / "corpus"
        results["replica_files"] = bp.replicate(tmp / "corpus_1x" / "mpt", corpus, args.replicas)
        files = sorted(corpus.glob("*.xml"))
        for path in files:  # warm the OS file cache
            path.read_bytes()
        results.update(files=len(files), mb=sum(p.stat().st_size for p in files) / 1e6)

        cmd = [sys.executable, str(HERE / "plain_tfidf_svm.py"), "full", str(corpus), "--out", str(tmp / "plain_metrics.json")]
        console.log("plain script ...")
        plain = results["plain"] = measured(cmd, tmp, dict(os.environ), args.poll)
        plain.pop("timeline")
        plain.update(command="plain_tfidf_svm.py full", result=json.loads(plain.pop("output").strip().splitlines()[-1]))
        console.log(f"plain {plain['seconds']:.1f}s, peak tree RSS {plain['peak_rss_mib']:,.0f} MiB")

        root = tmp / "project"
        results["models_removed"] = bp.make_project(root, corpus)
        env, _ = bp.make_stores(tmp, args.dagster_yaml)
        runs = [("pepm", [MODEL])] + ([("pepm_spacy", [MODEL, args.spacy_model])] if args.spacy_model else [])
        for key, models in runs:
            console.log(f"pepm run, models {models} ...")
            res = results[key] = run_pepm(root, env, models, args.override, args.poll)
            res["command"] = "pepm " + " ".join(pepm_command(models, args.override)[3:])
            console.log(f"{key} {res['seconds']:.1f}s (stage {res['stage_s']}s), peak tree RSS {res['peak_rss_mib']:,.0f} MiB")
            res["output"] = res["output"][-3000:]
        if args.spacy_model:
            results["spacy_format_s"] = step_seconds(results["pepm_spacy"], "model_formats")
            results["spacy_format"] = spacy_format_held(root)
    except Exception:  # noqa: BLE001  (a measurement: report, keep what was measured, exit 0)
        results["error"] = traceback.format_exc()
        console.print("[bold red]benchmark failed:[/]")
        console.print(results["error"], markup=False, highlight=False)
    report(results)
    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    sys.exit(main())
