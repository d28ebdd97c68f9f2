"""Corpus extraction: every TEI file of a corpus -> one Parquet table of documents, one of rejects,
and parse statistics.

Documents travel as Arrow tables of about BATCH_ROWS rows or BATCH_TEXT_BYTES of text at most
(consecutive small files share one), so memory is
bounded by a batch and a file, never by the corpus. Files are independent, so they are parsed by a
pool of forked worker processes (`parse_workers` in corpora.yml, default one per core, max 4);
each worker hands back Arrow tables, which cross the process boundary almost for free.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json
from .config import CorpusConfig
from .tei import TeiFileError
from .tei.dialects import Chunk, Dialect, build, schema

BATCH_ROWS = 4096
BATCH_TEXT_BYTES = 1_000_000  # and at most about this much text: long speeches fill a batch before 4096 rows
PARALLEL_MIN_BYTES = 8 * 1024 * 1024  # below this, starting worker processes costs more than it saves
TASK_MAX_BYTES = 2 * 1024 * 1024  # a worker task (a few files) is handed back whole: this bounds memory
REJECT_FIELDS = ("corpus_id", "source_file", "source_line", "reason", "detail", "doc_id")


@dataclass
class ParseStats:
    corpus_id: str
    n_files: int = 0
    n_files_failed: int = 0
    n_docs: int = 0
    n_rejects: int = 0
    n_tokens: int = 0
    rejects_by_reason: Counter = field(default_factory=Counter)
    groups: Counter = field(default_factory=Counter)
    roles: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def reject_rate(self) -> float:
        total = self.n_docs + self.n_rejects
        return self.n_rejects / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "corpus_id": self.corpus_id,
            "n_files": self.n_files,
            "n_files_failed": self.n_files_failed,
            "n_docs": self.n_docs,
            "n_rejects": self.n_rejects,
            "reject_rate": round(self.reject_rate, 6),
            "n_tokens": self.n_tokens,
            "rejects_by_reason": dict(self.rejects_by_reason.most_common()),
            "groups": dict(self.groups.most_common()),
            "roles": dict(self.roles.most_common()),
            "seconds": round(self.seconds, 3),
        }


def corpus_files(corpus_dir: Path, pattern: str) -> list[Path]:
    return sorted(p for p in corpus_dir.glob(pattern) if p.is_file())


@dataclass
class Batch:
    """Documents from one file or several consecutive small ones (about BATCH_ROWS rows or
    BATCH_TEXT_BYTES of text at most, unless one chunk of a file is bigger), and the rejects met
    while reading them."""

    docs: pa.Table
    rejects: list[dict[str, Any]]


def _to_table(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> pa.Table:
    return pa.table({name: [row[name] for row in rows] for name in fields}, schema=schema(fields))


def read_batches(dialect: Dialect, paths: list[Path]) -> Iterator[Batch]:
    """The files' documents in order; an unreadable file adds one Reject naming it (and the line).
    Small files share a batch: one table per file would cost more than parsing a small file, and
    would make the Parquet row groups tiny."""
    chunks: list[Chunk] = []
    rejects: list[dict[str, Any]] = []
    rows = size = 0
    for path in paths:
        try:
            for chunk in dialect.iter_file(path):
                rejects.extend(chunk.rejects)
                chunks.append(chunk)
                rows += chunk.n
                size += chunk.text_bytes
                if rows >= BATCH_ROWS or size >= BATCH_TEXT_BYTES:
                    yield Batch(dialect.table(chunks), rejects)
                    chunks, rejects, rows, size = [], [], 0, 0
        except TeiFileError as exc:
            rejects.append(dialect.reject(path, exc.line, exc.reason, exc.message))
    if chunks or rejects:
        yield Batch(dialect.table(chunks), rejects)


_WORKER_DIALECT: Dialect | None = None


def _read_files(paths: list[Path]) -> list[Batch]:
    assert _WORKER_DIALECT is not None, "worker started without a dialect"
    return list(read_batches(_WORKER_DIALECT, paths))


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else max(1, min(4, os.cpu_count() or 1))


def _tasks(files: list[Path], target_bytes: int) -> list[list[Path]]:
    """Consecutive files grouped into tasks of about `target_bytes` (small files cost one round trip each)."""
    tasks: list[list[Path]] = [[]]
    size = 0
    for path in files:
        if tasks[-1] and size >= target_bytes:
            tasks.append([])
            size = 0
        tasks[-1].append(path)
        size += path.stat().st_size
    return tasks


def iter_batches(dialect: Dialect, files: list[Path], workers: int = 1) -> Iterator[Batch]:
    """Batches of every file, in file order; a broken file never stops the others."""
    workers = resolve_workers(workers)
    total = sum(p.stat().st_size for p in files)
    if workers == 1 or len(files) < 2 or total < PARALLEL_MIN_BYTES or "fork" not in mp.get_all_start_methods():
        yield from read_batches(dialect, files)
        return
    global _WORKER_DIALECT
    _WORKER_DIALECT = dialect  # inherited by the forked workers
    tasks = _tasks(files, min(TASK_MAX_BYTES, total // (16 * workers)))  # small tasks: no worker idles long at the end
    # an executor, not multiprocessing.Pool: a worker that dies (killed, out of memory) breaks it
    # with an error, where Pool would replace the worker and wait forever for the lost task
    pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("fork"), initializer=_reset_signals)
    try:
        results = pool.map(_read_files, tasks)
        for task in tasks:
            try:
                batches = next(results)
            except BrokenProcessPool as exc:
                raise RuntimeError(f"a parse worker died (killed or crashed) before {', '.join(p.name for p in task)} "
                                   "was read (that task or one running beside it): set parse_workers: 1 in corpora.yml "
                                   "to read in one process") from exc
            yield from batches
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _reset_signals() -> None:
    """Forked workers must not inherit the parent's handlers (Dagster turns SIGTERM/SIGINT into
    DagsterExecutionInterruptedError tracebacks when the pool shuts down)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass(frozen=True)
class CorpusOutputs:
    docs: Path
    rejects: Path
    stats: Path


def corpus_outputs(out_dir: Path) -> CorpusOutputs:
    return CorpusOutputs(out_dir / "docs.parquet", out_dir / "rejects.parquet", out_dir / "parse_stats.json")


def _count(table: pa.Table, column: str) -> Counter:
    return Counter({str(v["values"]) or "(none)": int(v["counts"]) for v in pc.value_counts(table[column]).to_pylist()})


def extract_corpus(corpus_id: str, corpus: CorpusConfig, root: Path, out_dir: Path) -> tuple[CorpusOutputs, ParseStats]:
    """Parse a corpus into `out_dir`/{docs,rejects}.parquet and parse_stats.json, atomically."""
    corpus_dir = root / corpus.path
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus {corpus_id!r}: folder {corpus.path} not found (run `pepm data import` or `dvc pull`)")
    dialect = build(corpus_id, corpus_dir, corpus.dialect, corpus.dialect_options)
    files = corpus_files(corpus_dir, corpus.glob)
    outputs = corpus_outputs(out_dir)
    stats = ParseStats(corpus_id=corpus_id, n_files=len(files))
    started = time.perf_counter()
    failed_files: set[str] = set()
    all_rejects: list[dict[str, Any]] = []
    with atomic_path(outputs.docs) as docs_tmp, atomic_path(outputs.rejects) as rej_tmp:
        with pq.ParquetWriter(str(docs_tmp), schema(dialect.fields), compression="zstd") as writer:
            pending: list[pa.Table] = []  # small files are gathered into row groups of >= BATCH_ROWS
            for batch in iter_batches(dialect, files, corpus.parse_workers):
                if batch.docs.num_rows:
                    pending.append(batch.docs)
                    if sum(t.num_rows for t in pending) >= BATCH_ROWS or sum(t.nbytes for t in pending) >= BATCH_TEXT_BYTES:
                        writer.write_table(pa.concat_tables(pending))
                        pending.clear()
                    stats.n_docs += batch.docs.num_rows
                    stats.n_tokens += int(pc.sum(batch.docs["n_tokens"]).as_py() or 0)
                    stats.groups.update(_count(batch.docs, "group"))
                    stats.roles.update(_count(batch.docs, "role"))
                for reject in batch.rejects:
                    stats.rejects_by_reason[reject["reason"]] += 1
                    if not reject["doc_id"]:
                        failed_files.add(reject["source_file"])
                all_rejects.extend(batch.rejects)  # rejects are few: a broken file adds one row
            if pending:
                writer.write_table(pa.concat_tables(pending))
        stats.n_rejects = len(all_rejects)
        pq.write_table(_to_table(all_rejects, REJECT_FIELDS), str(rej_tmp), compression="zstd")
        stats.n_files_failed = len(failed_files)
        stats.seconds = time.perf_counter() - started
    write_json(outputs.stats, stats.as_dict())
    return outputs, stats
