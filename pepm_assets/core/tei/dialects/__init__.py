"""TEI dialects: one file per encoding, one registry.

A dialect reads one TEI file into `Chunk`s: an Arrow table of documents (the columns of
`BASE_FIELDS` plus its own `meta_fields`) and the parse rejects. It works by columns, not by
document: it collects the document elements of a chunk, then asks `walk` for each field over all
of them at once (`walk.text_column`, `walk.attribute_columns`), which is what keeps extraction
close to the speed of parsing. To add one: write `dialects/<name>.py` with a subclass of `Dialect`
decorated by `@REGISTRY.register("<name>")`, import it below, and name it in corpora.yml.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from ...registry import Registry
from ..reader import TeiFileError

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pyarrow as pa

    Column = pa.Array | list | str | int  # n values, or one value shared by all n documents

BASE_FIELDS = (
    "doc_id",
    "corpus_id",
    "source_file",
    "source_line",
    "speaker",
    "speaker_name",
    "group",
    "role",
    "date",
    "text",
    "n_tokens",
)
INT_FIELDS = frozenset({"source_line", "n_tokens"})
CHUNK_DOCS = 4096  # document elements read into columns at once: bounds memory when a file is streamed
T = TypeVar("T")


@functools.cache
def schema(fields: tuple[str, ...]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([(name, pa.int64() if name in INT_FIELDS else pa.string()) for name in fields])


class Reject(dict):
    """A document that was not kept, with a reason code and where it was (a file that cannot be
    read at all is a failed file in files.parquet, not a Reject)."""


@dataclass
class Chunk:
    """Documents of (part of) one file as columns, not yet an Arrow table: building a table costs
    about 0.1 ms whatever its size, and a corpus of small files would pay it per file, so
    `Dialect.table` joins many chunks at once."""

    columns: dict[str, Column]  # every field of the dialect
    n: int
    rejects: list[Reject]  # in document order

    @property
    def text_bytes(self) -> int:
        import pyarrow as pa

        text = self.columns["text"]
        return text.nbytes if isinstance(text, pa.Array) else sum(len(t) for t in text)


class DialectOptions(BaseModel):
    """A dialect's `dialect_options` (corpora.yml), validated when the configs are loaded
    (config._check_corpora): extra="forbid" makes a misspelled option an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Dialect:
    options_model: ClassVar[type[DialectOptions]] = DialectOptions
    meta_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, corpus_id: str, corpus_dir: Path, options: DialectOptions) -> None:
        self.corpus_id = corpus_id
        self.corpus_dir = Path(corpus_dir)
        self.options = options

    @property
    def fields(self) -> tuple[str, ...]:
        return BASE_FIELDS + self.meta_fields

    def iter_file(self, path: Path) -> Iterator[Chunk]:
        """Yield the file's documents and rejects, chunk by chunk; raise TeiFileError if the file
        itself is unreadable (after the chunks read before the error)."""
        raise NotImplementedError

    def reject(self, path: Path, line: int | None, reason: str, detail: str = "", doc_id: str = "") -> Reject:
        return Reject(corpus_id=self.corpus_id, source_file=path.name, source_line=line or 0, reason=reason, detail=detail, doc_id=doc_id)

    def chunk(self, columns: Mapping[str, Column], n: int, rejects: Mapping[int, Reject]) -> Chunk:
        """A Chunk of the `n` documents of `columns` (Arrow arrays or lists of n values, or one
        value shared by all), without the positions in `rejects`."""
        import pyarrow as pa

        kept = {name: columns[name] for name in self.fields}
        if rejects:
            keep = [i not in rejects for i in range(n)]
            mask = pa.array(keep)
            kept = {name: _keep(values, keep, mask) for name, values in kept.items()}
        return Chunk(kept, n - len(rejects), [rejects[i] for i in sorted(rejects)])

    def table(self, chunks: list[Chunk]) -> pa.Table:
        """One Arrow table of these chunks' documents, in order."""
        import pyarrow as pa

        target = schema(self.fields)
        arrays = []
        for field in target:
            pieces = [(chunk.columns[field.name], chunk.n) for chunk in chunks]
            if any(isinstance(values, pa.Array) for values, _ in pieces):
                arrays.append(pa.concat_arrays([_array(values, n, field.type) for values, n in pieces]))
            else:  # Python values only: one conversion for all the chunks
                joined: list = []
                for values, n in pieces:
                    joined.extend(values if isinstance(values, list) else [values] * n)
                arrays.append(pa.array(joined, field.type))
        return pa.Table.from_arrays(arrays, schema=target)


def _keep(values: Column, keep: list[bool], mask: pa.Array) -> Column:
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values.filter(mask)
    if isinstance(values, list):
        return [value for value, kept in zip(values, keep) if kept]
    return values


def _array(values: Column, n: int, kind: pa.DataType) -> pa.Array:
    import pyarrow as pa

    if isinstance(values, pa.Array):
        return values
    if isinstance(values, list):
        return pa.array(values, kind)
    return pa.repeat(pa.scalar(values, kind), n)


def chunked(items: Iterable[T], size: int = CHUNK_DOCS) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items (the last may be shorter; none is empty). If
    `items` breaks (a truncated file), the items read before the break are still delivered."""
    batch: list[T] = []
    try:
        for item in items:
            batch.append(item)
            if len(batch) == size:
                yield batch
                batch = []
    except TeiFileError:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def ordinal_ids(prefix: str, first: int, n: int) -> pa.Array:
    """prefix + "00001", "00002", ... (five digits at least) for ordinals first .. first + n - 1."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    ordinals = pc.cast(pa.array(np.arange(first, first + n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(ordinals, 5, "0"), "")


REGISTRY: Registry[type[Dialect]] = Registry("TEI dialect")


def build(corpus_id: str, corpus_dir: Path, dialect: str, options: dict[str, Any]) -> Dialect:
    cls = REGISTRY.get(dialect)
    return cls(corpus_id, corpus_dir, cls.options_model.model_validate(options))


from . import mpt, standard  # noqa: E402,F401  (registration)
