"""Standard TEI: speakers and groups from `particDesc` (`listPerson` / `listOrg`), one document per
configured element: `<u who="#id">` for debates, `<div type="amendment" resp="#id">` for amendments.

Options say which element is a document, which attribute names its author and which child holds
the text, so a new corpus in standard TEI usually needs only a corpora.yml entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .. import reader
from . import REGISTRY, Dialect, DialectOptions

TEI = "{%s}" % reader.TEI_NS


class StandardOptions(DialectOptions):
    element: str = "u"                       # local name of the document element
    type: str | None = None                  # required @type of that element, if any
    speaker_attribute: str = "who"           # attribute pointing to the author (#person_id)
    text_element: str | None = None          # child holding the text (None: all the text)
    text_type: str | None = None             # required @type of that child
    government_ana: str = "#government"      # @ana value marking a member of the government


@REGISTRY.register("tei")
class StandardTeiDialect(Dialect):
    options_model = StandardOptions
    meta_fields = ("section", "xml_id", "number")

    def iter_file(self, path: Path) -> Iterator[dict[str, Any]]:
        opts: StandardOptions = self.options  # type: ignore[assignment]
        doc_tag = TEI + opts.element
        tags = {TEI + "person", TEI + "org", TEI + "date", TEI + "head", doc_tag}
        persons: dict[str, tuple[str, str]] = {}   # id -> (name, group ref)
        orgs: dict[str, str] = {}                   # id -> group name
        date, section, ordinal = "", "", 0
        for elem in reader.safe_iterparse(path, tags):
            tag = elem.tag
            if tag == doc_tag and (opts.type is None or elem.get("type") == opts.type):
                ordinal += 1
                yield self._document(path, elem, ordinal, persons, orgs, date, section)
            elif tag == TEI + "person":
                pid = elem.get(reader.XML_ID, "")
                name_el = elem.find(TEI + "persName")
                aff = elem.find(TEI + "affiliation")
                ref = aff.get("ref", "") if aff is not None else ""
                persons[pid] = (reader.normalize_space("".join(name_el.itertext())) if name_el is not None else pid, ref.lstrip("#"))
            elif tag == TEI + "org":
                name_el = elem.find(TEI + "orgName")
                orgs[elem.get(reader.XML_ID, "")] = (name_el.text or "").strip() if name_el is not None else ""
            elif tag == TEI + "date" and elem.get("when") and _parent_tag(elem) == TEI + "note":
                date = elem.get("when", "")
            elif tag == TEI + "head" and _parent_tag(elem) == TEI + "div" and elem.getparent().get("type") != opts.type:
                section = reader.normalize_space("".join(elem.itertext()))

    def _document(self, path: Path, elem: Any, ordinal: int, persons: dict, orgs: dict, date: str, section: str) -> dict[str, Any]:
        opts: StandardOptions = self.options  # type: ignore[assignment]
        xml_id = elem.get(reader.XML_ID, "")
        doc_id = f"{self.corpus_id}:{path.stem}:{xml_id or f'{ordinal:05d}'}"
        line = elem.sourceline
        if opts.text_element is None:
            raw = reader.element_text(elem)
        else:
            raw = " ".join(
                reader.element_text(child)
                for child in elem.iter(TEI + opts.text_element)
                if opts.text_type is None or child.get("type") == opts.text_type
            )
        text, n_tokens = reader.words_of(raw)
        if not text.strip(reader.PUNCTUATION):
            return self.reject(path, line, "empty_text", f"<{opts.element}> has no text", doc_id)
        speaker = (elem.get(opts.speaker_attribute) or "").lstrip("#")
        name, group_ref = persons.get(speaker, ("", ""))
        own_date = elem.find(f".//{TEI}date")
        if speaker and speaker not in persons:
            role = "unknown"
        elif opts.government_ana and opts.government_ana in (elem.get("ana") or "").split():
            role = "government"
        else:
            role = "member" if speaker else "unknown"
        return {
            "doc_id": doc_id,
            "corpus_id": self.corpus_id,
            "source_file": path.name,
            "source_line": line,
            "speaker": speaker,
            "speaker_name": name,
            "group": orgs.get(group_ref, group_ref),
            "role": role,
            "date": (own_date.get("when", "") if own_date is not None else "") or date,
            "text": text,
            "n_tokens": n_tokens,
            "section": section,
            "xml_id": xml_id,
            "number": elem.get("n", ""),
        }


def _parent_tag(elem: Any) -> str:
    parent = elem.getparent()
    return parent.tag if parent is not None else ""
