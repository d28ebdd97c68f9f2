"""The "Mariage pour tous" dialect: `<sp>` turns whose text sits inside `<mpt:metadata attr=...>`.

See the corpus's Encoding.fr.md. Roles: `interventiontype="régulation"` is the chair, an author
named "Plusieurs ..." is a collective interjection, group GVT is the government.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .. import reader, walk
from . import REGISTRY, Chunk, Dialect, DialectOptions, chunked, ordinal_ids

if TYPE_CHECKING:  # annotations only; the functions that compute import it (CLI start-up, docs/internals.md)
    import pyarrow as pa

TEI = f"{{{reader.TEI_NS}}}"
MPT = "{http://mpt.ethelred.fr/ns/0.0/}"
SP, SPEAKER, METADATA = TEI + "sp", TEI + "speaker", MPT + "metadata"
COLLECTIVE_PREFIXES = ("Plusieurs", "Un_député", "Une_députée")
METADATA_ATTRIBUTES = ("auteur", "politicalgroup", "interventiontype", "wing", "vote", "gender", "debat", "subject")


class MptOptions(DialectOptions):
    sittings_csv: str | None = "metadata.csv"  # file id -> date, sitting title (optional)
    government_group: str = "GVT"


@REGISTRY.register("mpt")
class MptDialect(Dialect):
    options_model = MptOptions
    meta_fields = ("interventiontype", "wing", "vote", "gender", "debat", "subject", "sitting")

    def __init__(self, corpus_id: str, corpus_dir: Path, options: MptOptions) -> None:
        super().__init__(corpus_id, corpus_dir, options)
        self._sittings = self._read_sittings()

    def _read_sittings(self) -> dict[str, dict[str, str]]:
        name = self.options.sittings_csv
        path = self.corpus_dir / name if name else None
        if path is None or not path.is_file():
            return {}
        with open(path, newline="", encoding="utf-8") as fh:
            return {row["id"]: row for row in csv.DictReader(fh)}

    def iter_file(self, path: Path) -> Iterator[Chunk]:
        sitting = self._sittings.get(path.stem, {})
        constants = {
            "corpus_id": self.corpus_id,
            "source_file": path.name,
            "date": sitting.get("date", ""),
            "sitting": sitting.get("seance", ""),
        }
        done = 0
        for sps in chunked(reader.safe_iterparse(path, [SP])):
            yield self._chunk(path, sps, done, constants)
            done += len(sps)

    def _chunk(self, path: Path, sps: list, done: int, constants: dict[str, str]) -> Chunk:
        import pyarrow.compute as pc

        n = len(sps)
        ids = ordinal_ids(f"{self.corpus_id}:{path.stem}:", done + 1, n)
        text = walk.text_column(sps, within=METADATA, lstrip=" .")  # "<p>. La séance..."
        meta = walk.attribute_columns(sps, METADATA_ATTRIBUTES, within=METADATA)
        who = walk.attribute_columns(sps, ("who",))["who"]
        speaker = pc.if_else(pc.equal(meta["auteur"], ""), who, meta["auteur"])
        lines = [sp.sourceline for sp in sps]
        rejects = {i: self.reject(path, lines[i], "missing_metadata", "<sp> without <mpt:metadata>", ids[i].as_py()) for i in text.missing}
        rejects.update(
            {i: self.reject(path, lines[i], "empty_text", f"speaker {speaker[i].as_py()!r}", ids[i].as_py()) for i in text.empty}
        )
        columns = {
            **constants,
            **meta,
            "doc_id": ids,
            "source_line": lines,
            "speaker": speaker,
            "speaker_name": walk.text_column(sps, within=SPEAKER, rstrip=" ,.").text,
            "group": meta["politicalgroup"],
            "role": _roles(speaker, meta["politicalgroup"], meta["interventiontype"], self.options.government_group),
            "text": text.text,
            "n_tokens": text.n_tokens,
        }
        return self.chunk(columns, n, rejects)


_COLLECTIVE = "^(?:" + "|".join(re.escape(prefix) for prefix in COLLECTIVE_PREFIXES) + ")"


def _roles(speaker: pa.Array, group: pa.Array, kind: pa.Array, government_group: str) -> pa.Array:
    """chair (the sitting's president, or any `régulation` turn), collective, government, member,
    or unknown (no speaker): the first that applies."""
    import pyarrow.compute as pc

    chair = pc.or_(pc.equal(kind, "régulation"), pc.starts_with(speaker, "le_président"))
    collective = pc.match_substring_regex(speaker, _COLLECTIVE)
    conditions = pc.make_struct(chair, collective, pc.equal(group, government_group), pc.not_equal(speaker, ""))
    return pc.case_when(conditions, "chair", "collective", "government", "member", "unknown")
