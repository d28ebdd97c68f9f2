"""Benchmark of corpus extraction (TEI -> documents), against a plain baseline measured in the same run.

1. Throughput. The baseline is the idiomatic plain streaming loop over the same files:

       for _, elem in lxml.etree.iterparse(path, events=("end",)):
           elem.clear()

   It parses every byte with the same C parser and touches every element from Python, but extracts
   nothing: it is what "just reading the XML" costs, so pepm / baseline says how much pepm's safety
   checks and extraction logic cost on top of parsing. Target: ratio >= 0.8. Runs are interleaved
   (baseline, pepm, baseline, ...) after warming the OS file cache, and medians are compared.
   The full `extract_corpus` (parse + Parquet write) is reported too, relative to the same baseline.

2. Memory. Peak RSS of `extract_corpus` on the corpus replicated 1x and Nx (files copied under
   distinct names in a temporary folder), each in a fresh subprocess so the figure is its own.
   Streaming means memory must not grow with the corpus. Target: RSS(Nx) / RSS(1x) <= 1.5.

A measurement, not a test: exit code 0 even when a target is missed (FAIL is printed).
Usage: python benchmarks/bench_extract.py --corpus mpt --replicas 20 [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pepm_assets.core.config import load_common, project_root
from pepm_assets.core.corpus import corpus_files, extract_corpus, iter_batches, resolve_workers
from pepm_assets.core.tei.dialects import build

THROUGHPUT_TARGET = 0.8  # pepm / baseline, at least
RSS_TARGET = 1.5  # RSS(Nx) / RSS(1x), at most
MiB = 1024 * 1024
console = Console()


def plain_baseline(files: list[Path]) -> int:
    n = 0
    for path in files:
        for _, elem in etree.iterparse(str(path), events=("end",)):
            elem.clear()
            n += 1
    return n


def pepm_documents(dialect, files: list[Path], workers: int = 1) -> int:
    return sum(batch.docs.num_rows + len(batch.rejects) for batch in iter_batches(dialect, files, workers))


def timed(fn, *args) -> tuple[float, int]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def replicate(corpus_dir: Path, files: list[Path], factor: int, dest: Path) -> None:
    """Copy each corpus file `factor` times as r<k>_<name>; side files (metadata.csv...) once."""
    corpus = set(files)
    for path in sorted(corpus_dir.iterdir()):
        if path in corpus:
            for k in range(factor):
                shutil.copyfile(path, dest / f"r{k:02d}_{path.name}")
        elif path.is_file():
            shutil.copyfile(path, dest / path.name)


def child(corpus_id: str, corpus_dir: str, out_dir: str) -> None:
    """Subprocess: extract the replicated corpus and report its own peak RSS as JSON on stdout."""
    root = project_root(Path(__file__).resolve().parent)
    # one process: the memory claim is per process (each parse worker is bounded the same way, and
    # summing forked processes' RSS would count the pages they share with the parent twice)
    cfg = load_common(root).corpora[corpus_id].model_copy(update={"path": corpus_dir, "parse_workers": 1})
    _, stats = extract_corpus(corpus_id, cfg, root, Path(out_dir))  # root / absolute = absolute
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"rss_mib": rss, "docs": stats.n_docs, "rejects": stats.n_rejects, "files": stats.n_files, "seconds": stats.seconds}))


def peak_rss(corpus_id: str, corpus_dir: Path, files: list[Path], factor: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pepm_bench_") as tmp:
        src, out = Path(tmp, "corpus"), Path(tmp, "out")
        src.mkdir()
        replicate(corpus_dir, files, factor, src)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", corpus_id, str(src), str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return {"factor": factor, **json.loads(proc.stdout.strip().splitlines()[-1])}


def verdict(ok: bool) -> str:
    return "[bold green]PASS[/]" if ok else "[bold red]FAIL[/]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="mpt")
    ap.add_argument("--replicas", type=int, default=20, help="largest replication factor (memory)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each throughput measurement")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--_child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        return child(*args._child)

    root = project_root(Path(__file__).resolve().parent)
    cfg = load_common(root).corpora[args.corpus]
    corpus_dir = root / cfg.path
    files = corpus_files(corpus_dir, cfg.glob) if corpus_dir.is_dir() else []
    if not files:
        sys.exit(f"corpus {args.corpus!r}: no {cfg.glob} file in {cfg.path} (run `pepm data import` or `dvc pull` first)")
    dialect = build(args.corpus, corpus_dir, cfg.dialect, cfg.dialect_options)
    total_bytes = sum(p.stat().st_size for p in files)
    for path in files:  # warm the OS file cache
        path.read_bytes()
    plain_baseline(files)  # one untimed run of each: lazy imports (pyarrow imports pandas) are not throughput
    pepm_documents(dialect, files, 1)

    workers = resolve_workers(cfg.parse_workers)
    base_s, pepm_s, pepm1_s, ext_s = [], [], [], []
    n_elems = n_docs = 0
    with Progress(console=console, transient=True, auto_refresh=False) as progress:  # no refresh thread competing for the GIL
        task = progress.add_task(f"throughput ({args.corpus})", total=args.repeats * 4)
        for _ in range(args.repeats):
            seconds, n_elems = timed(plain_baseline, files)
            base_s.append(seconds)
            progress.advance(task)
            progress.refresh()
            seconds, n_docs = timed(pepm_documents, dialect, files, workers)
            pepm_s.append(seconds)
            progress.advance(task)
            progress.refresh()
            pepm1_s.append(timed(pepm_documents, dialect, files, 1)[0])
            progress.advance(task)
            progress.refresh()
            with tempfile.TemporaryDirectory(prefix="pepm_bench_out_") as out:
                seconds, _ = timed(extract_corpus, args.corpus, cfg, root, Path(out))
            ext_s.append(seconds)
            progress.advance(task)
            progress.refresh()

        mem = []
        task = progress.add_task(f"peak RSS (1x, {args.replicas}x)", total=2)
        for factor in (1, args.replicas):
            progress.update(task, description=f"peak RSS: extracting {factor}x in a subprocess")
            mem.append(peak_rss(args.corpus, corpus_dir, files, factor))
            progress.advance(task)
            progress.refresh()

    mb = total_bytes / 1e6
    base_tp, pepm_tp, pepm1_tp, ext_tp = (mb / statistics.median(s) for s in (base_s, pepm_s, pepm1_s, ext_s))
    ratio, ratio1, ext_ratio = pepm_tp / base_tp, pepm1_tp / base_tp, ext_tp / base_tp
    rss_ratio = mem[1]["rss_mib"] / mem[0]["rss_mib"]
    docs_ok = mem[1]["docs"] == args.replicas * mem[0]["docs"]

    table = Table(title=f"bench extract (medians of {args.repeats} runs)")
    for col in ("measure", "value", "target", "result"):
        table.add_column(col)
    table.add_row("corpus", f"{args.corpus}: {len(files)} files, {mb:.2f} MB", "", "")
    table.add_row("docs (+ rejects) / elements", f"{n_docs} / {n_elems}", "", "")
    table.add_row("baseline: plain iterparse", f"{base_tp:.1f} MB/s", "", "")
    table.add_row(f"pepm: iter_batches, {workers} workers (default)", f"{pepm_tp:.1f} MB/s", "", "")
    table.add_row("ratio pepm / baseline", f"{ratio:.2f}", f">= {THROUGHPUT_TARGET}", verdict(ratio >= THROUGHPUT_TARGET))
    table.add_row("pepm: iter_batches, 1 process", f"{pepm1_tp:.1f} MB/s ({ratio1:.2f} x baseline)", "", "info")
    table.add_row("extract_corpus (+ Parquet)", f"{ext_tp:.1f} MB/s ({ext_ratio:.2f} x baseline)", "", "info")
    for m in mem:
        table.add_row(f"peak RSS {m['factor']}x (extract_corpus, 1 process)", f"{m['rss_mib']:.1f} MiB ({m['docs']} docs)", "", "")
    growth = mem[1]["rss_mib"] - mem[0]["rss_mib"]
    table.add_row(
        f"ratio RSS {args.replicas}x / 1x", f"{rss_ratio:.2f} ({growth:+.1f} MiB)", f"<= {RSS_TARGET}", verdict(rss_ratio <= RSS_TARGET)
    )
    table.add_row(f"docs {args.replicas}x = {args.replicas} * docs 1x", str(docs_ok), "", verdict(docs_ok))
    console.print(table)

    if args.json:
        results = {
            "corpus": args.corpus,
            "files": len(files),
            "bytes": total_bytes,
            "elements": n_elems,
            "docs_and_rejects": n_docs,
            "repeats": args.repeats,
            "workers": workers,
            "seconds": {"baseline": base_s, "pepm": pepm_s, "pepm_1_process": pepm1_s, "extract_corpus": ext_s},
            "mb_per_s": {"baseline": base_tp, "pepm": pepm_tp, "pepm_1_process": pepm1_tp, "extract_corpus": ext_tp},
            "throughput_ratio_1_process": ratio1,
            "throughput_ratio": ratio,
            "throughput_target": THROUGHPUT_TARGET,
            "throughput_pass": ratio >= THROUGHPUT_TARGET,
            "extract_ratio": ext_ratio,
            "memory": mem,
            "replicas": args.replicas,
            "rss_ratio": rss_ratio,
            "rss_target": RSS_TARGET,
            "rss_pass": rss_ratio <= RSS_TARGET,
            "docs_scale_ok": docs_ok,
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
