"""Standard TEI: speakers and groups from `particDesc` (`listPerson` / `listOrg`), one document per
configured element: `<u who="#id">` for debates, `<div type="amendment" resp="#id">` for amendments.

Options say which element is a document, which attribute names its author and which child holds
the text, so a new corpus in standard TEI usually needs only a corpora.yml entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, NamedTuple

from .. import reader, walk
from . import REGISTRY, Chunk, Dialect, DialectOptions, chunked

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

    def iter_file(self, path: Path) -> Iterator[Chunk]:
        file = _File(path, f"{self.corpus_id}:{path.stem}:", {}, {}, [])
        done = 0
        for documents in chunked(self._documents(path, file)):
            yield self._chunk(file, documents, done)
            done += len(documents)

    def _documents(self, path: Path, file: "_File") -> Iterator[tuple[Any, str, str]]:
        """Each document element with the date and section it stands in; fills the file's
        persons and orgs from the header on the way."""
        opts: StandardOptions = self.options  # type: ignore[assignment]
        doc_tag = TEI + opts.element
        date = section = ""
        for elem in reader.safe_iterparse(path, (PERSON, ORG, DATE, HEAD, doc_tag), prune=(PERSON, ORG, doc_tag)):
            tag = elem.tag
            if tag == doc_tag:
                if opts.type is None or elem.get("type") == opts.type:
                    yield elem, date, section
            elif tag == PERSON or tag == ORG:
                file.header.append(elem)  # read by columns with the documents (_read_header)
            elif tag == DATE:
                if elem.get("when") and _parent_tag(elem) == NOTE:
                    date = elem.get("when", "")
            else:  # HEAD: a section title, unless it is a document's own heading
                parent = elem.getparent()
                if parent is not None and parent.tag == DIV and parent.get("type") != opts.type:
                    section = reader.element_words(elem)

    def _chunk(self, file: "_File", documents: list[tuple[Any, str, str]], done: int) -> Chunk:
        opts: StandardOptions = self.options  # type: ignore[assignment]
        _read_header(file)
        docs = [doc for doc, _, _ in documents]
        parts = TEI + opts.text_element if opts.text_element else None
        text = walk.text_column(docs, parts=parts, part_type=opts.text_type)
        attributes = walk.attribute_columns(docs, (reader.XML_ID, opts.speaker_attribute, "n", "ana"))
        own_dates = walk.attribute_columns(docs, ("when",), within=DATE)["when"].to_pylist()
        xml_ids = attributes[reader.XML_ID].to_pylist()
        ids = [file.id_prefix + (xml_id or f"{done + i + 1:05d}") for i, xml_id in enumerate(xml_ids)]
        speakers = [ref.lstrip("#") for ref in attributes[opts.speaker_attribute].to_pylist()]
        lines = [doc.sourceline for doc in docs]
        rejects = {i: self.reject(file.path, lines[i], "empty_text", f"<{opts.element}> has no text", ids[i]) for i in text.empty}
        people = [file.persons.get(speaker, ("", "")) for speaker in speakers]
        columns = {
            "doc_id": ids,
            "corpus_id": self.corpus_id,
            "source_file": file.path.name,
            "source_line": lines,
            "speaker": speakers,
            "speaker_name": [name for name, _ in people],
            "group": [file.orgs.get(ref, ref) for _, ref in people],
            "role": [self._role(speaker, ana, file.persons) for speaker, ana in zip(speakers, attributes["ana"].to_pylist())],
            "date": [own or date for own, (_, date, _) in zip(own_dates, documents)],
            "text": text.text,
            "n_tokens": text.n_tokens,
            "section": [section for _, _, section in documents],
            "xml_id": xml_ids,
            "number": attributes["n"],
        }
        return self.chunk(columns, len(docs), rejects)

    def _role(self, speaker: str, ana: str, persons: dict) -> str:
        government_ana = self.options.government_ana  # type: ignore[attr-defined]
        if speaker and speaker not in persons:
            return "unknown"
        if government_ana and government_ana in ana.split():
            return "government"
        return "member" if speaker else "unknown"


class _File(NamedTuple):
    path: Path
    id_prefix: str                          # "<corpus>:<file stem>:"
    persons: dict[str, tuple[str, str]]     # id -> (name, group ref), from listPerson
    orgs: dict[str, str]                    # id -> group name, from listOrg
    header: list[Any]                       # <person> / <org> elements met, not yet in persons / orgs


def _read_header(file: _File) -> None:
    """Add the <person> and <org> elements met so far to the file's persons and orgs: a person's
    name is its <persName> (its xml:id if it has none), its group the @ref of its <affiliation>;
    an org's name is its <orgName>."""
    persons = [elem for elem in file.header if elem.tag == PERSON]
    orgs = [elem for elem in file.header if elem.tag == ORG]
    file.header.clear()
    if persons:
        ids = walk.attribute_columns(persons, (reader.XML_ID,))[reader.XML_ID].to_pylist()
        names = walk.text_column(persons, within=PERS_NAME)
        refs = walk.attribute_columns(persons, ("ref",), within=AFFILIATION)["ref"].to_pylist()
        nameless = set(names.missing)
        for i, (pid, name, ref) in enumerate(zip(ids, names.text.to_pylist(), refs)):
            file.persons[pid] = (pid if i in nameless else name, ref.lstrip("#"))
    if orgs:
        ids = walk.attribute_columns(orgs, (reader.XML_ID,))[reader.XML_ID].to_pylist()
        file.orgs.update(zip(ids, walk.text_column(orgs, within=ORG_NAME).text.to_pylist()))
def _parent_tag(elem: Any) -> str:
    parent = elem.getparent()
    return parent.tag if parent is not None else ""
