"""Corpus extraction: every TEI file of a corpus -> one Parquet table of documents, one of document
rejects, one row per file matched (parsed, or failed and why) and parse statistics.

Documents travel as Arrow tables of about BATCH_ROWS rows or BATCH_TEXT_BYTES of text at most
(consecutive small files share one), so memory is
bounded by a batch and a file, never by the corpus. Files are independent, so they are parsed by a
pool of forked worker processes (`parse_workers` in corpora.yml, default one per core, max 4);
each worker hands back Arrow tables, which cross the process boundary almost for free.

Every path the corpus glob matches is accounted for in files.parquet: a file that cannot be read
(broken XML, no TEI document, no permission, a dangling link, a directory) is a failed file, named,
never silently skipped, and never stops the others. `quality_gate` counts failed files apart from
document rejects: one lost file among thousands of documents would not move a reject rate.
"""

from __future__ import annotations

import ctypes
import errno
import multiprocessing as mp
import os
import signal
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json
from .config import CorpusConfig
from .tei import TeiFileError
from .tei.dialects import Chunk, Dialect, build, schema
from .tei.reader import TEI_NS

BATCH_ROWS = 4096
BATCH_TEXT_BYTES = 1_000_000  # and at most about this much text: long speeches fill a batch before 4096 rows
# lz4, not zstd: at 10x MPT (192,400 documents) docs.parquet is 33 MB instead of 22, written in 0.33 s
# instead of 0.48 and read in 0.11 s instead of 0.39, and the view, the actor counts, the diagnostics
# and drift each read it (measured on this 2-core machine, 2026-12-03)
PARQUET_COMPRESSION = "lz4"
PARALLEL_MIN_BYTES = 8 * 1024 * 1024  # below this, starting worker processes costs more than it saves
TASK_MAX_BYTES = 2 * 1024 * 1024  # a worker task (a few files) is handed back whole: this bounds memory
REJECT_FIELDS = ("corpus_id", "source_file", "source_line", "reason", "detail", "doc_id")
FILE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("line", pa.int64()),
        ("detail", pa.string()),
        ("n_docs", pa.int64()),
        ("n_rejects", pa.int64()),
    ]
)
NO_DOCUMENTS = f"no TEI document element found (is the TEI namespace {TEI_NS} declared?)"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class ParseStats:
    corpus_id: str
    n_files: int = 0
    n_files_parsed: int = 0
    n_files_failed: int = 0
    n_docs: int = 0
    n_rejects: int = 0  # documents only: a failed file is counted in n_files_failed, not here
    n_tokens: int = 0
    rejects_by_reason: Counter = field(default_factory=Counter)
    failed_by_reason: Counter = field(default_factory=Counter)
    failed_files: list[dict[str, Any]] = field(default_factory=list)  # {source_file, reason, line, detail}
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
            "n_files_parsed": self.n_files_parsed,
            "n_files_failed": self.n_files_failed,
            "n_docs": self.n_docs,
            "n_rejects": self.n_rejects,
            "reject_rate": round(self.reject_rate, 6),
            "n_tokens": self.n_tokens,
            "rejects_by_reason": dict(self.rejects_by_reason.most_common()),
            "groups": dict(self.groups.most_common()),
            "roles": dict(self.roles.most_common()),
            "failed_by_reason": dict(self.failed_by_reason.most_common()),
            "seconds": round(self.seconds, 3),
            "failed_files": self.failed_files,
        }

    def count_files(self, rows: list[dict[str, Any]]) -> None:
        failed = [row for row in rows if row["status"] == "failed"]
        self.n_files_parsed, self.n_files_failed = len(rows) - len(failed), len(failed)
        self.failed_by_reason = Counter(row["reason"] for row in failed)
        self.failed_files = [{key: row[key] for key in ("source_file", "reason", "line", "detail")} for row in failed]


def quality_gate(stats: ParseStats, cfg: CorpusConfig) -> list[str]:
    """The corpus's quality problems, one printable line each; [] when it passes. Failed files are
    gated by their number (`max_failed_files`) and each is named, with its reason and line: a lost
    file is a hole in the corpus whatever its size, which a document reject rate would dilute.
    Document rejects are gated by their rate (`max_reject_rate`)."""
    cid, problems = stats.corpus_id, []
    if stats.n_files_failed > cfg.max_failed_files:
        problems.append(f"{cid}: {stats.n_files_failed} of {stats.n_files} files failed (max_failed_files: {cfg.max_failed_files})")
        for failed in stats.failed_files:
            problems.append(f"{cid}: failed file {where(failed)}: {failed['reason']}: {failed['detail']}")
    if stats.reject_rate > cfg.max_reject_rate:
        reasons = ", ".join(f"{reason} {n}" for reason, n in stats.rejects_by_reason.most_common())
        problems.append(
            f"{cid}: {stats.n_rejects} of {stats.n_docs + stats.n_rejects} documents rejected "
            f"(rate {stats.reject_rate:.4f} > max_reject_rate {cfg.max_reject_rate}): {reasons}"
        )
    return problems


def where(failed: dict[str, Any]) -> str:
    """file:line of a failed file (file alone when the line is unknown)."""
    return failed["source_file"] + (f":{failed['line']}" if failed.get("line") else "")


def corpus_files(corpus_dir: Path, pattern: str) -> list[Path]:
    """Every path the glob matches, links and directories included: each must be accounted for
    (read or failed), not skipped because it is not a readable file."""
    return sorted(corpus_dir.glob(pattern))


@dataclass
class Batch:
    """Documents from one file or several consecutive small ones (about BATCH_ROWS rows or
    BATCH_TEXT_BYTES of text at most, unless one chunk of a file is bigger), the document rejects
    met while reading them, and the status row (FILE_SCHEMA) of each file that ended in the batch."""

    docs: pa.Table
    rejects: list[dict[str, Any]]
    files: list[dict[str, Any]] = field(default_factory=list)


def _to_table(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> pa.Table:
    return pa.table({name: [row[name] for row in rows] for name in fields}, schema=schema(fields))


def read_batches(dialect: Dialect, paths: list[Path]) -> Iterator[Batch]:
    """The files' documents in order, and one status row per path: nothing one file does (broken
    XML, no permission, a link to nowhere) stops the others, and the documents read before a break
    are kept. Small files share a batch: one table per file would cost more than parsing a small
    file, and would make the Parquet row groups tiny."""
    chunks: list[Chunk] = []
    rejects: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    rows = size = 0
    for path in paths:
        n_docs = n_rejects = 0
        line = None
        failure = _not_a_readable_file(path)
        if failure is None:
            try:
                for chunk in dialect.iter_file(path):
                    n_docs += chunk.n
                    n_rejects += len(chunk.rejects)
                    rejects.extend(chunk.rejects)
                    chunks.append(chunk)
                    rows += chunk.n
                    size += chunk.text_bytes
                    if rows >= BATCH_ROWS or size >= BATCH_TEXT_BYTES:
                        yield Batch(dialect.table(chunks), rejects, files)
                        chunks, rejects, files, rows, size = [], [], [], 0, 0
            except TeiFileError as exc:
                failure, line = (exc.reason, exc.message), exc.line
            except OSError as exc:  # open() or a read refused: permissions, I/O error
                failure = ("unreadable", exc.strerror or str(exc))
            if failure is None and n_docs == 0:  # e.g. no TEI namespace: valid XML, but no document element matched
                detail = f"all {n_rejects} documents were rejected (see rejects.parquet)" if n_rejects else NO_DOCUMENTS
                failure = ("no_documents", detail)
        reason, detail = failure or ("", "")
        files.append(
            {
                "source_file": _relative(path, dialect.corpus_dir),
                "status": "failed" if failure else "parsed",
                "reason": reason,
                "line": line,
                "detail": detail,
                "n_docs": n_docs,
                "n_rejects": n_rejects,
            }
        )
    if chunks or rejects or files:
        yield Batch(dialect.table(chunks), rejects, files)


def _not_a_readable_file(path: Path) -> tuple[str, str] | None:
    """(reason, detail) when `path` is no regular file, checked before opening it: a dangling link
    or a link loop, a directory, a FIFO or device (reading one could block forever)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "broken_link", f"symbolic link loop ({path.name} -> {_link_target(path)})"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and path.is_symlink():
            return "broken_link", f"dangling symbolic link ({path.name} -> {_link_target(path)})"
        return "unreadable", exc.strerror or str(exc)
    if stat.S_ISDIR(mode):
        return "not_a_file", "a directory, not a file"
    if not stat.S_ISREG(mode):
        return "not_a_file", "not a regular file (a FIFO, socket or device)"
    return None


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # the loop is in a folder above, not the file itself
        return "?"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name


def _size(path: Path) -> int:
    """Bytes of a file, 0 for a path that cannot be stat'ed (it fails when read, not here)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
        size += _size(path)
    return tasks


def iter_batches(dialect: Dialect, files: list[Path], workers: int = 1) -> Iterator[Batch]:
    """Batches of every file, in file order; a broken file never stops the others."""
    workers = resolve_workers(workers)
    total = sum(_size(p) for p in files)
    if workers == 1 or len(files) < 2 or total < PARALLEL_MIN_BYTES or "fork" not in mp.get_all_start_methods():
        yield from read_batches(dialect, files)
        return
    global _WORKER_DIALECT
    _WORKER_DIALECT = dialect  # inherited by the forked workers
    tasks = _tasks(files, min(TASK_MAX_BYTES, total // (16 * workers)))  # small tasks: no worker idles long at the end
    # an executor, not multiprocessing.Pool: a worker that dies (killed, out of memory) breaks it
    # with an error, where Pool would replace the worker and wait forever for the lost task
    pool = ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=mp.get_context("fork"), initializer=_reset_signals, initargs=(os.getpid(),)
    )
    try:
        results = pool.map(_read_files, tasks)
        for task in tasks:
            try:
                batches = next(results)
            except BrokenProcessPool as exc:
                raise RuntimeError(
                    f"a parse worker died (killed or crashed) before {', '.join(p.name for p in task)} "
                    "was read (that task or one running beside it): set parse_workers: 1 in corpora.yml "
                    "to read in one process"
                ) from exc
            yield from batches
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _reset_signals(parent_pid: int) -> None:
    """Forked workers must not inherit the parent's handlers (Dagster turns SIGTERM/SIGINT into
    DagsterExecutionInterruptedError tracebacks when the pool shuts down), and must not outlive the
    parent: one killed with SIGKILL (out of memory, a cancelled run) cleans nothing up, and its
    workers would stay, blocked on the task queue, forever."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """Have Linux SIGKILL this process when its parent dies (PR_SET_PDEATHSIG; a no-op elsewhere).
    The signal only covers deaths after the call: a parent that died since the fork has already
    left us to another parent, so exit now. (Linux sends it when the parent's *thread* that forked
    us ends: the pool is started by the thread iterating iter_batches, which outlives the pool.)"""
    if not sys.platform.startswith("linux"):
        return
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc / no prctl
        return
    if armed and os.getppid() != parent_pid:
        os._exit(1)


@dataclass(frozen=True)
class CorpusOutputs:
    docs: Path
    rejects: Path
    stats: Path
    files: Path


def corpus_outputs(out_dir: Path) -> CorpusOutputs:
    return CorpusOutputs(out_dir / "docs.parquet", out_dir / "rejects.parquet", out_dir / "parse_stats.json", out_dir / "files.parquet")


def _count(table: pa.Table, column: str) -> Counter:
    return Counter({str(v["values"]) or "(none)": int(v["counts"]) for v in pc.value_counts(table[column]).to_pylist()})


def extract_corpus(corpus_id: str, corpus: CorpusConfig, root: Path, out_dir: Path) -> tuple[CorpusOutputs, ParseStats]:
    """Parse a corpus into `out_dir`/{docs,rejects,files}.parquet and parse_stats.json, atomically."""
    corpus_dir = root / corpus.path
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus {corpus_id!r}: folder {corpus.path} not found (run `pepm data import` or `dvc pull`)")
    dialect = build(corpus_id, corpus_dir, corpus.dialect, corpus.dialect_options)
    files = corpus_files(corpus_dir, corpus.glob)
    outputs = corpus_outputs(out_dir)
    stats = ParseStats(corpus_id=corpus_id, n_files=len(files))
    started = time.perf_counter()
    all_rejects: list[dict[str, Any]] = []
    file_rows: list[dict[str, Any]] = []
    with atomic_path(outputs.docs) as docs_tmp, atomic_path(outputs.rejects) as rej_tmp, atomic_path(outputs.files) as files_tmp:
        with pq.ParquetWriter(str(docs_tmp), schema(dialect.fields), compression=PARQUET_COMPRESSION) as writer:
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
                all_rejects.extend(batch.rejects)  # rejects are few
                file_rows.extend(batch.files)
            if pending:
                writer.write_table(pa.concat_tables(pending))
        if len(file_rows) != len(files):
            raise RuntimeError(f"corpus {corpus_id!r}: {len(files)} files matched but {len(file_rows)} accounted for")
        stats.n_rejects = len(all_rejects)
        stats.rejects_by_reason = Counter(reject["reason"] for reject in all_rejects)
        stats.count_files(file_rows)
        pq.write_table(_to_table(all_rejects, REJECT_FIELDS), str(rej_tmp), compression=PARQUET_COMPRESSION)
        pq.write_table(pa.Table.from_pylist(file_rows, schema=FILE_SCHEMA), str(files_tmp), compression=PARQUET_COMPRESSION)
        stats.seconds = time.perf_counter() - started
    write_json(outputs.stats, stats.as_dict())
    return outputs, stats
