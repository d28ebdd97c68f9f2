"""Standard TEI: speakers and groups from `particDesc` (`listPerson` / `listOrg`), one document per
configured element: `<u who="#id">` for debates, `<div type="amendment" resp="#id">` for amendments.

Options say which element is a document, which attribute names its author and which child holds
the text, so a new corpus in standard TEI usually needs only a corpora.yml entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, NamedTuple

from .. import reader
from . import REGISTRY, Dialect, DialectOptions

TEI = "{%s}" % reader.TEI_NS
PERSON, PERS_NAME, AFFILIATION = TEI + "person", TEI + "persName", TEI + "affiliation"
ORG, ORG_NAME = TEI + "org", TEI + "orgName"
DATE, HEAD, NOTE, DIV = TEI + "date", TEI + "head", TEI + "note", TEI + "div"


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
        persons: dict[str, tuple[str, str]] = {}   # id -> (name, group ref)
        orgs: dict[str, str] = {}                   # id -> group name
        file = _File(path.name, f"{self.corpus_id}:{path.stem}:")
        date, section, ordinal = "", "", 0
        for elem in reader.safe_iterparse(path, (PERSON, ORG, DATE, HEAD, doc_tag)):
            tag = elem.tag
            if tag == doc_tag:
                if opts.type is None or elem.get("type") == opts.type:
                    ordinal += 1
                    yield self._document(path, file, elem, ordinal, persons, orgs, date, section)
            elif tag == PERSON:
                pid = elem.get(reader.XML_ID, "")
                name_el = _first_child(elem, PERS_NAME)
                aff = _first_child(elem, AFFILIATION)
                ref = aff.get("ref", "") if aff is not None else ""
                persons[pid] = (reader.element_words(name_el) if name_el is not None else pid, ref.lstrip("#"))
            elif tag == ORG:
                name_el = _first_child(elem, ORG_NAME)
                orgs[elem.get(reader.XML_ID, "")] = (name_el.text or "").strip() if name_el is not None else ""
            elif tag == DATE:
                if elem.get("when") and _parent_tag(elem) == NOTE:
                    date = elem.get("when", "")
            else:  # HEAD: a section title, unless it is a document's own heading
                parent = elem.getparent()
                if parent is not None and parent.tag == DIV and parent.get("type") != opts.type:
                    section = reader.element_words(elem)

    def _document(self, path: Path, file: "_File", elem: Any, ordinal: int, persons: dict, orgs: dict, date: str, section: str) -> dict[str, Any]:
        opts: StandardOptions = self.options  # type: ignore[assignment]
        xml_id = elem.get(reader.XML_ID, "")
        doc_id = file.id_prefix + (xml_id or f"{ordinal:05d}")
        line = elem.sourceline
        if opts.text_element is None:
            text = reader.element_words(elem)
        else:
            parts = (
                reader.element_words(child)
                for child in elem.iter(TEI + opts.text_element)
                if opts.text_type is None or child.get("type") == opts.text_type
            )
            text = " ".join(part for part in parts if part)
        if not reader.has_words(text):
            return self.reject(path, line, "empty_text", f"<{opts.element}> has no text", doc_id)
        speaker = (elem.get(opts.speaker_attribute) or "").lstrip("#")
        name, group_ref = persons.get(speaker, ("", ""))
        own_date = next(elem.iterdescendants(DATE), None)
        if speaker and speaker not in persons:
            role = "unknown"
        elif opts.government_ana and opts.government_ana in (elem.get("ana") or "").split():
            role = "government"
        else:
            role = "member" if speaker else "unknown"
        return {
            "doc_id": doc_id,
            "corpus_id": self.corpus_id,
            "source_file": file.name,
            "source_line": line,
            "speaker": speaker,
            "speaker_name": name,
            "group": orgs.get(group_ref, group_ref),
            "role": role,
            "date": (own_date.get("when", "") if own_date is not None else "") or date,
            "text": text,
            "n_tokens": reader.count_tokens(text),
            "section": section,
            "xml_id": xml_id,
            "number": elem.get("n", ""),
        }


class _File(NamedTuple):
    name: str
    id_prefix: str  # "<corpus>:<file stem>:"


def _first_child(elem: Any, tag: str) -> Any:
    return next(elem.iterchildren(tag), None)


def _parent_tag(elem: Any) -> str:
    parent = elem.getparent()
    return parent.tag if parent is not None else ""
