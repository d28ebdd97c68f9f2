"""Standard TEI: speakers and groups from `particDesc` (`listPerson` / `listOrg`), one document per
configured element: `<u who="#id">` for debates, `<div type="amendment" resp="#id">` for amendments.

A person's group is the `<affiliation>` in force on the document's date: affiliations may carry
`from` / `to` (ISO, inclusive, as in ParlaMint), so a deputy who changes group mid-corpus is in
each group for its own documents (`group_at`).

Options say which element is a document, which attribute names its author and which child holds
the text, so a new corpus in standard TEI usually needs only a corpora.yml entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ...periods import date_span
from .. import reader, walk
from . import REGISTRY, Chunk, Dialect, DialectOptions, chunked

TEI = f"{{{reader.TEI_NS}}}"
PERSON, PERS_NAME, AFFILIATION = TEI + "person", TEI + "persName", TEI + "affiliation"
ORG, ORG_NAME = TEI + "org", TEI + "orgName"
DATE, HEAD, NOTE, DIV = TEI + "date", TEI + "head", TEI + "note", TEI + "div"


class StandardOptions(DialectOptions):
    element: str = "u"  # local name of the document element
    type: str | None = None  # required @type of that element, if any
    speaker_attribute: str = "who"  # attribute pointing to the author (#person_id)
    text_element: str | None = None  # child holding the text (None: all the text)
    text_type: str | None = None  # required @type of that child
    government_ana: str = "#government"  # @ana value marking a member of the government


@REGISTRY.register("tei")
class StandardTeiDialect(Dialect):
    options_model = StandardOptions
    meta_fields = ("section", "xml_id", "number")

    def iter_file(self, path: Path) -> Iterator[Chunk]:
        id_prefix = f"{self.corpus_id}:{path.stem}:"
        done = 0
        for documents in chunked(self._documents(path)):
            yield self._chunk(path, id_prefix, documents, done)
            done += len(documents)

    def _documents(self, path: Path) -> Iterator[_Document]:
        """Each document element with what stands before it: the date and section it is in, and
        its speaker resolved against the `<person>`/`<org>` entries read so far (a listPerson
        after the documents does not name them: it was not there when they were read)."""
        opts: StandardOptions = self.options  # type: ignore[assignment]
        doc_tag = TEI + opts.element
        persons: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}  # id -> (name, [(group ref, from, to)])
        orgs: dict[str, str] = {}  # id -> group name
        date = section = ""
        for elem in reader.safe_iterparse(path, (PERSON, ORG, DATE, HEAD, doc_tag), prune=(PERSON, ORG, doc_tag)):
            tag = elem.tag
            if tag == doc_tag:
                if opts.type is None or elem.get("type") == opts.type:
                    speaker = (elem.get(opts.speaker_attribute) or "").lstrip("#")
                    person = persons.get(speaker)
                    name, affiliations = person if person is not None else ("", [])
                    groups = tuple((orgs.get(ref, ref), start, end) for ref, start, end in affiliations)
                    yield _Document(elem, date, section, speaker, name, groups, person is not None)
            elif tag == PERSON:
                pid = elem.get(reader.XML_ID, "")
                name_el = _first_child(elem, PERS_NAME)
                affiliations = [(a.get("ref", "").lstrip("#"), a.get("from", ""), a.get("to", "")) for a in elem.iterchildren(AFFILIATION)]
                persons[pid] = (reader.element_words(name_el) if name_el is not None else pid, affiliations)
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

    def _chunk(self, path: Path, id_prefix: str, documents: list[_Document], done: int) -> Chunk:
        opts: StandardOptions = self.options  # type: ignore[assignment]
        docs = [d.elem for d in documents]
        parts = TEI + opts.text_element if opts.text_element else None
        text = walk.text_column(docs, parts=parts, part_type=opts.text_type)
        attributes = walk.attribute_columns(docs, (reader.XML_ID, "n", "ana"))
        own_dates = walk.attribute_columns(docs, ("when",), within=DATE)["when"].to_pylist()
        xml_ids = attributes[reader.XML_ID].to_pylist()
        ids = [id_prefix + (xml_id or f"{done + i + 1:05d}") for i, xml_id in enumerate(xml_ids)]
        lines = [doc.sourceline for doc in docs]
        rejects = {i: self.reject(path, lines[i], "empty_text", f"<{opts.element}> has no text", ids[i]) for i in text.empty}
        dates = [own or d.date for own, d in zip(own_dates, documents)]
        columns = {
            "doc_id": ids,
            "corpus_id": self.corpus_id,
            "source_file": path.name,
            "source_line": lines,
            "speaker": [d.speaker for d in documents],
            "speaker_name": [d.name for d in documents],
            "group": [group_at(d.affiliations, day) for d, day in zip(documents, dates)],
            "role": [self._role(d, ana) for d, ana in zip(documents, attributes["ana"].to_pylist())],
            "date": dates,
            "text": text.text,
            "n_tokens": text.n_tokens,
            "section": [d.section for d in documents],
            "xml_id": xml_ids,
            "number": attributes["n"],
        }
        return self.chunk(columns, len(docs), rejects)

    def _role(self, doc: _Document, ana: str) -> str:
        government_ana = self.options.government_ana  # type: ignore[attr-defined]
        if doc.speaker and not doc.known:
            return "unknown"
        if government_ana and government_ana in ana.split():
            return "government"
        return "member" if doc.speaker else "unknown"


class _Document(NamedTuple):
    elem: Any
    date: str
    section: str
    speaker: str  # the id its speaker attribute points to
    name: str  # that person's name, group affiliations and whether listPerson had them, when it was read
    affiliations: tuple[tuple[str, str, str], ...]  # (group name, from, to)
    known: bool


def group_at(affiliations: tuple[tuple[str, str, str], ...], when: str) -> str:
    """The group of the affiliation in force on the date `when` ("" when none is):

    - no affiliation carries a date: the first one (what every affiliation of the shipped corpora is);
    - otherwise the first dated affiliation whose [from, to] holds the whole date (a date known to the
      month must fall in the range all month), else the first undated one, else none;
    - a document without a readable date: the group all the affiliations agree on, else none.

    "None" means the document is parsed with an empty group, so a view excludes it as `no_group`:
    counted, never a guessed group."""
    if not affiliations:
        return ""
    undated = [group for group, start, end in affiliations if not start and not end]
    if len(undated) == len(affiliations):
        return undated[0]
    span = date_span(when)
    if span is None:
        groups = {group for group, _, _ in affiliations}
        return groups.pop() if len(groups) == 1 else ""
    first, last = span
    for group, start, end in affiliations:
        if not start and not end:
            continue
        lo, hi = date_span(start) if start else None, date_span(end) if end else None
        if (start and lo is None) or (end and hi is None):
            continue  # an unreadable bound: this affiliation says nothing of the date
        if (lo is None or lo[0] <= first) and (hi is None or last <= hi[1]):
            return group
    return undated[0] if undated else ""


def _first_child(elem: Any, tag: str) -> Any:
    return next(elem.iterchildren(tag), None)


def _parent_tag(elem: Any) -> str:
    parent = elem.getparent()
    return parent.tag if parent is not None else ""
