"""Safe, streaming XML parsing for TEI files.

Safety: DTDs are refused outright (a TEI corpus never needs one, and a DTD is how XXE and
entity-expansion bombs get in); the parser itself is also configured to load nothing, resolve no
entity and touch no network, so even a declaration we failed to spot is inert.

Memory: a file up to `WHOLE_FILE_MAX` bytes is parsed in one go (lxml's event machinery costs
more than the parse itself on files of a few MB); a larger one is streamed with iterparse and
every element the caller has finished with is pruned. Either way memory is bounded by
WHOLE_FILE_MAX, never by the corpus. A file that is broken is re-read streaming, so the documents
before the break are still delivered, then TeiFileError says where it broke.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from lxml import etree

TEI_NS = "http://www.tei-c.org/ns/1.0"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
WHOLE_FILE_MAX = 32 * 1024 * 1024
PUNCTUATION = " .…!?,;:-–—"  # a text made only of these has no word: rejected as empty_text
_WORD_CHAR = re.compile("[^" + re.escape(PUNCTUATION) + "]")
_PROLOG_BYTES = 65536
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")
_CHUNK_BYTES = 1 << 16  # what a streaming read feeds the parser at a time
_PARSER_OPTIONS = dict(
    resolve_entities=False, load_dtd=False, dtd_validation=False, no_network=True, huge_tree=False, remove_comments=True, remove_pis=True
)


class TeiFileError(Exception):
    """A whole file could not be read; `reason` is a short code, `line` the line where it failed."""

    def __init__(self, path: Path, reason: str, message: str, line: int | None = None) -> None:
        self.path, self.reason, self.message, self.line = Path(path), reason, message, line
        where = f"{self.path}:{line}" if line else str(self.path)
        super().__init__(f"{where}: {message}")


def _check_prolog(path: Path, head: bytes) -> None:
    """Refuse an empty file, and a DTD or entity declaration before the root element."""
    if not head.strip():
        raise TeiFileError(path, "empty_file", "empty file (no XML content)")
    root_at = _ROOT_START.search(head)
    prolog = head if root_at is None else head[: root_at.start()]
    match = _DTD.search(prolog)
    if match:
        line = head[: match.start()].count(b"\n") + 1
        raise TeiFileError(
            path, "forbidden_dtd", "DTD / entity declarations are not allowed in TEI input (XXE and entity-expansion protection)", line
        )


def _syntax_error(path: Path, exc: etree.XMLSyntaxError) -> TeiFileError:
    message = str(getattr(exc, "msg", None) or exc)
    truncated = "end of data" in message.lower() or "premature end" in message.lower()
    return TeiFileError(path, "truncated_xml" if truncated else "xml_syntax_error", f"XML error: {message}", exc.lineno or None)


def safe_iterparse(
    path: str | Path, tags: Iterable[str], whole_file_max: int | None = None, prune: Iterable[str] | None = None
) -> Iterator[etree._Element]:
    """Yield each complete element of `tags` (Clark notation), in document order, parsing with no
    DTD, no entity resolution and no network. While streaming, the earlier siblings of a yielded
    element of `prune` (default: of any of `tags`) are freed once the next one is asked for: name
    only elements that are never inside a document (the documents themselves, header entries), or
    a `<date>` inside a speech would free the start of that speech. Raises TeiFileError for an
    unreadable file (after the elements read before the error)."""
    path = Path(path)
    tags = list(tags)
    prune_tags = frozenset(tags if prune is None else prune)
    limit = WHOLE_FILE_MAX if whole_file_max is None else whole_file_max
    with open(path, "rb") as fh:  # one open: a small file is read whole and parsed from memory
        head = fh.read(_PROLOG_BYTES)
        _check_prolog(path, head)
        whole = os.fstat(fh.fileno()).st_size <= limit
        data = head + fh.read() if whole else b""
    if whole:
        try:
            root = etree.fromstring(data, etree.XMLParser(collect_ids=False, **_PARSER_OPTIONS))
        except etree.XMLSyntaxError:
            root = None  # re-read streaming below: deliver what precedes the error, then report it
        del data  # the tree holds the text now; the bytes would double the memory of a large file
        if root is not None:
            _refuse_doctype(path, root)
            yield from root.iter(*tags)
            return
    yield from _stream(path, tags, prune_tags)


def _stream(path: Path, tags: list[str], prune: frozenset[str]) -> Iterator[etree._Element]:
    """A pull parser fed 64 KiB at a time (not iterparse, whose collect_ids=False is not honoured:
    a duplicate xml:id that the whole read accepts would fail the file)."""
    parser = etree.XMLPullParser(events=("end",), tag=tags, collect_ids=False, **_PARSER_OPTIONS)
    checked = False
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                parser.feed(chunk)
                for _, elem in parser.read_events():
                    if not checked:
                        _refuse_doctype(path, elem)
                        checked = True
                    yield elem
                    # not inside another element of `tags` (a speech within a speech, a <div> within
                    # an amendment): its earlier siblings are that element's own content, still to be read
                    if elem.tag in prune and next(elem.iterancestors(*tags), None) is None:
                        _prune_before(elem)
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(path, exc) from None
    if not checked and root is not None:
        _refuse_doctype(path, root)


def _refuse_doctype(path: Path, elem: etree._Element) -> None:
    docinfo = elem.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise TeiFileError(path, "forbidden_dtd", "DTD / entity declarations are not allowed in TEI input", 1)


def _prune_before(elem: etree._Element) -> None:
    """Free what precedes `elem` among its siblings (earlier documents, headers): while streaming,
    only the current element and lxml's read-ahead buffer stay in memory."""
    parent = elem.getparent()
    if parent is None:
        return
    while elem.getprevious() is not None:
        del parent[0]  # the earlier siblings are parent's first children; parent.remove(x) is far slower (namespaced subtrees)


_NORMALIZED_TEXT = etree.XPath("normalize-space(.)", smart_strings=False)


def element_words(elem: etree._Element) -> str:
    """All the text inside `elem` (not its tail), whitespace-normalised by libxml2's XPath
    normalize-space: runs of XML whitespace (space, tab, CR, LF) become one space, ends trimmed.
    Text is taken exactly as in the source (no space added around inline tags such as <w>), and a
    non-breaking space is typography, not whitespace: it is kept. Twice as fast as serialising the
    element and splitting it in Python, which is most of the per-document cost. A leaf whose text
    is already normalised (a speaker's name, a group) is returned as is: checking is 4x cheaper
    than an XPath call."""
    if len(elem) == 0:
        text = elem.text
        if text is None:
            return ""
        if not (text[:1] == " " or text[-1:] == " " or "  " in text or "\n" in text or "\t" in text or "\r" in text):
            return text
    return _NORMALIZED_TEXT(elem)


def has_words(text: str) -> bool:
    """False for a text made only of spaces and punctuation (PUNCTUATION): nothing to classify."""
    return _WORD_CHAR.search(text) is not None


def count_tokens(normalized: str) -> int:
    """Whitespace tokens of an `element_words` text."""
    return normalized.count(" ") + 1 if normalized else 0
