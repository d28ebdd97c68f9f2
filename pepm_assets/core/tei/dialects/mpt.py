"""The "Mariage pour tous" dialect: `<sp>` turns whose text sits inside `<mpt:metadata attr=...>`.

See the corpus's Encoding.fr.md. Roles: `interventiontype="régulation"` is the chair, an author
named "Plusieurs ..." is a collective interjection, group GVT is the government.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterator

from .. import reader
from . import REGISTRY, Dialect, DialectOptions

TEI = "{%s}" % reader.TEI_NS
MPT_NS = "http://mpt.ethelred.fr/ns/0.0/"
MPT = "{%s}" % MPT_NS


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

    def iter_file(self, path: Path) -> Iterator[dict[str, Any]]:
        stem = path.stem
        sitting = self._sittings.get(stem, {})
        date, title = sitting.get("date", ""), sitting.get("seance", "")
        gov = self.options.government_group
        for ordinal, sp in enumerate(reader.safe_iterparse(path, [TEI + "sp"]), start=1):
            doc_id = f"{self.corpus_id}:{stem}:{ordinal:05d}"
            line = sp.sourceline
            meta = sp.find(MPT + "metadata")
            if meta is None:
                yield self.reject(path, line, "missing_metadata", "<sp> without <mpt:metadata>", doc_id)
                reader.release(sp)
                continue
            attrs = meta.attrib
            text = reader.normalize_space(" ".join(meta.itertext())).lstrip(". ")
            speaker = attrs.get("auteur") or sp.get("who") or ""
            speaker_el = sp.find(TEI + "speaker")
            speaker_name = reader.normalize_space(speaker_el.text or "").rstrip(" ,.") if speaker_el is not None else ""
            group = attrs.get("politicalgroup", "")
            reader.release(sp)
            if not text:
                yield self.reject(path, line, "empty_text", f"speaker {speaker!r}", doc_id)
                continue
            if attrs.get("interventiontype") == "régulation" or speaker.startswith("le_président"):
                role = "chair"
            elif speaker.startswith("Plusieurs") or speaker.startswith("Un_député") or speaker.startswith("Une_députée"):
                role = "collective"
            elif group == gov:
                role = "government"
            elif not speaker:
                role = "unknown"
            else:
                role = "member"
            yield {
                "doc_id": doc_id,
                "corpus_id": self.corpus_id,
                "source_file": path.name,
                "source_line": line,
                "speaker": speaker,
                "speaker_name": speaker_name,
                "group": group,
                "role": role,
                "date": date,
                "text": text,
                "n_tokens": len(text.split()),
                "interventiontype": attrs.get("interventiontype", ""),
                "wing": attrs.get("wing", ""),
                "vote": attrs.get("vote", ""),
                "gender": attrs.get("gender", ""),
                "debat": attrs.get("debat", ""),
                "subject": attrs.get("subject", ""),
                "sitting": title,
            }
