"""Corpus extraction: every TEI file of a corpus -> one Parquet table of documents, one of rejects,
and parse statistics. Streaming: documents go to the Parquet writer in batches, never all in memory.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json
from .config import CorpusConfig
from .tei import TeiFileError
from .tei.dialects import Dialect, Reject, build

BATCH_ROWS = 4096
REJECT_FIELDS = ("corpus_id", "source_file", "source_line", "reason", "detail", "doc_id")
INT_FIELDS = {"source_line", "n_tokens"}


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


def iter_corpus(dialect: Dialect, files: list[Path]) -> Iterator[dict[str, Any]]:
    """Documents and Rejects of every file; an unreadable file becomes one Reject and the rest goes on."""
    for path in files:
        try:
            yield from dialect.iter_file(path)
        except TeiFileError as exc:
            yield dialect.reject(path, exc.line, exc.reason, exc.message)


def _schema(fields: tuple[str, ...]) -> pa.Schema:
    return pa.schema([(name, pa.int64() if name in INT_FIELDS else pa.string()) for name in fields])


class _BatchWriter:
    """Buffers rows and writes them as Parquet row groups."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self.fields, self.schema = fields, _schema(fields)
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            cols = {name: [r.get(name) for r in self.rows] for name in self.fields}
            self.writer.write_table(pa.table(cols, schema=self.schema))
            self.rows.clear()

    def close(self) -> None:
        self.flush()
        self.writer.close()


@dataclass(frozen=True)
class CorpusOutputs:
    docs: Path
    rejects: Path
    stats: Path


def corpus_outputs(out_dir: Path) -> CorpusOutputs:
    return CorpusOutputs(out_dir / "docs.parquet", out_dir / "rejects.parquet", out_dir / "parse_stats.json")


def extract_corpus(
    corpus_id: str,
    corpus: CorpusConfig,
    root: Path,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> tuple[CorpusOutputs, ParseStats]:
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
    with atomic_path(outputs.docs) as docs_tmp, atomic_path(outputs.rejects) as rej_tmp:
        docs = _BatchWriter(docs_tmp, dialect.fields)
        rejects = _BatchWriter(rej_tmp, REJECT_FIELDS)
        current = None
        for row in iter_corpus(dialect, files):
            if progress is not None and row["source_file"] != current:
                current = row["source_file"]
                progress(1)
            if isinstance(row, Reject):
                rejects.add(row)
                stats.n_rejects += 1
                stats.rejects_by_reason[row["reason"]] += 1
                if not row["doc_id"]:
                    failed_files.add(row["source_file"])
                continue
            docs.add(row)
            stats.n_docs += 1
            stats.n_tokens += row["n_tokens"]
            stats.groups[row["group"] or "(none)"] += 1
            stats.roles[row["role"]] += 1
        docs.close()
        rejects.close()
        stats.n_files_failed = len(failed_files)
        stats.seconds = time.perf_counter() - started
    write_json(outputs.stats, stats.as_dict())
    return outputs, stats
