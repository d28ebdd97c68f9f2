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
MPT = "{http://mpt.ethelred.fr/ns/0.0/}"
SP, SPEAKER, METADATA = TEI + "sp", TEI + "speaker", MPT + "metadata"
COLLECTIVE_PREFIXES = ("Plusieurs", "Un_député", "Une_députée")


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
        stem, name = path.stem, path.name
        sitting = self._sittings.get(stem, {})
        date, title = sitting.get("date", ""), sitting.get("seance", "")
        gov = self.options.government_group
        id_prefix = f"{self.corpus_id}:{stem}:"
        for ordinal, sp in enumerate(reader.safe_iterparse(path, [SP]), start=1):
            doc_id = f"{id_prefix}{ordinal:05d}"
            line = sp.sourceline
            meta = speaker_el = None
            for child in sp:  # two children: <speaker>, <mpt:metadata>
                tag = child.tag
                if tag == METADATA:
                    meta = child
                elif tag == SPEAKER:
                    speaker_el = child
            if meta is None:
                yield self.reject(path, line, "missing_metadata", "<sp> without <mpt:metadata>", doc_id)
                continue
            get = meta.get
            text = reader.element_words(meta).lstrip(" .")  # "<p>. La séance..."
            speaker = get("auteur") or sp.get("who") or ""
            if not reader.has_words(text):
                yield self.reject(path, line, "empty_text", f"speaker {speaker!r}", doc_id)
                continue
            speaker_name = _speaker_name(speaker_el)
            group = get("politicalgroup", "")
            kind = get("interventiontype", "")
            yield {
                "doc_id": doc_id,
                "corpus_id": self.corpus_id,
                "source_file": name,
                "source_line": line,
                "speaker": speaker,
                "speaker_name": speaker_name,
                "group": group,
                "role": _role(speaker, group, kind, gov),
                "date": date,
                "text": text,
                "n_tokens": reader.count_tokens(text),
                "interventiontype": kind,
                "wing": get("wing", ""),
                "vote": get("vote", ""),
                "gender": get("gender", ""),
                "debat": get("debat", ""),
                "subject": get("subject", ""),
                "sitting": title,
            }


def _speaker_name(speaker_el: Any) -> str:
    if speaker_el is None:
        return ""
    return reader.element_words(speaker_el).rstrip(" ,.")


def _role(speaker: str, group: str, kind: str, government_group: str) -> str:
    if kind == "régulation" or speaker.startswith("le_président"):
        return "chair"
    if speaker.startswith(COLLECTIVE_PREFIXES):
        return "collective"
    if group == government_group:
        return "government"
    return "member" if speaker else "unknown"
