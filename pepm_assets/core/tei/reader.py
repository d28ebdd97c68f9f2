"""Safe, streaming XML parsing for TEI files.

Safety: DTDs are refused outright (a TEI corpus never needs one, and a DTD is how XXE and
entity-expansion bombs get in); the parser itself is also configured to load nothing, resolve no
entity and touch no network, so even a declaration we failed to spot is inert.
Streaming: callers receive `end` events for the tags they ask for and must free what they are done
with (`release`), so memory stays bounded by the largest document, not the corpus.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

from lxml import etree

TEI_NS = "http://www.tei-c.org/ns/1.0"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_PROLOG_BYTES = 65536
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")


class TeiFileError(Exception):
    """A whole file could not be read; `reason` is a short code, `line` the line where it failed."""

    def __init__(self, path: Path, reason: str, message: str, line: int | None = None) -> None:
        self.path, self.reason, self.message, self.line = Path(path), reason, message, line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


def _check_prolog(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(_PROLOG_BYTES)
    if not head.strip():
        raise TeiFileError(path, "empty_file", "empty file (no XML content)")
    root_at = _ROOT_START.search(head)
    prolog = head if root_at is None else head[: root_at.start()]
    match = _DTD.search(prolog)
    if match:
        line = head[: match.start()].count(b"\n") + 1
        raise TeiFileError(path, "forbidden_dtd", "DTD / entity declarations are not allowed in TEI input (XXE and entity-expansion protection)", line)


def safe_iterparse(path: str | Path, tags: Iterable[str]) -> Iterator[etree._Element]:
    """Yield each element of `tags` (Clark notation) once it is complete, parsing with no DTD,
    no entity resolution and no network. Raises TeiFileError for an unreadable file."""
    path = Path(path)
    _check_prolog(path)
    context = etree.iterparse(
        str(path),
        events=("end",),
        tag=list(tags),
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    checked = False
    try:
        for _, elem in context:
            if not checked:
                _refuse_doctype(path, elem)
                checked = True
            yield elem
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno else None
        message = str(exc.msg if hasattr(exc, "msg") else exc)
        reason = "truncated_xml" if "end of data" in message.lower() or "premature end" in message.lower() else "xml_syntax_error"
        raise TeiFileError(path, reason, f"XML error: {message}", line) from None
    if not checked and getattr(context, "root", None) is not None:
        _refuse_doctype(path, context.root)


def _refuse_doctype(path: Path, elem: etree._Element) -> None:
    docinfo = elem.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise TeiFileError(path, "forbidden_dtd", "DTD / entity declarations are not allowed in TEI input", 1)


def release(elem: etree._Element) -> None:
    """Free a processed element and the siblings before it, so the tree never grows."""
    elem.clear(keep_tail=False)
    parent = elem.getparent()
    if parent is not None:
        while elem.getprevious() is not None:
            del parent[0]


def normalize_space(text: str) -> str:
    return " ".join(text.split())


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
