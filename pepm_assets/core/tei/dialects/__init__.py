"""TEI dialects: one file per encoding, one registry.

A dialect turns one TEI file into document records (dicts with the columns of `BASE_FIELDS` plus
its own `meta_fields`) and parse rejects; `reader.element_words` gives an element's whitespace-normalised text and `reader.count_tokens` its token count. To add one: write `dialects/<name>.py` with a subclass of
`Dialect` decorated by `@REGISTRY.register("<name>")`, import it below, and name it in corpora.yml.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterator

from pydantic import BaseModel, ConfigDict

from ...registry import Registry

BASE_FIELDS = (
    "doc_id", "corpus_id", "source_file", "source_line", "speaker", "speaker_name",
    "group", "role", "date", "text", "n_tokens",
)


class Reject(dict):
    """A document (or file) that was not kept, with a reason code and where it was."""


class DialectOptions(BaseModel):
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

    def iter_file(self, path: Path) -> Iterator[dict[str, Any]]:
        """Yield document dicts and `Reject`s; raise TeiFileError if the file itself is unreadable."""
        raise NotImplementedError

    def reject(self, path: Path, line: int | None, reason: str, detail: str = "", doc_id: str = "") -> Reject:
        return Reject(corpus_id=self.corpus_id, source_file=path.name, source_line=line or 0, reason=reason, detail=detail, doc_id=doc_id)


REGISTRY: Registry[type[Dialect]] = Registry("TEI dialect")


def build(corpus_id: str, corpus_dir: Path, dialect: str, options: dict[str, Any]) -> Dialect:
    cls = REGISTRY.get(dialect)
    return cls(corpus_id, corpus_dir, cls.options_model.model_validate(options))


from . import mpt, standard  # noqa: E402,F401  (registration)
