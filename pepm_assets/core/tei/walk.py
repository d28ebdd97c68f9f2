"""Columns of many TEI elements at once: a dialect collects its document elements, then asks for
each field as one Arrow column instead of building a dict per document.

Two implementations with the same results: the compiled `_walk` (built by `pip install -e .`; it
reads libxml2's tree in C and writes Arrow buffers directly, 5-10x faster) and the plain-Python
one below, the reference the tests compare it with. `PEPM_TEI_WALK=python` forces the latter.

Text semantics are XPath's normalize-space() of the element's string value (see
`reader.element_words`): runs of XML whitespace become one space, nothing is added at tag
boundaries, a no-break space is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from .. import compiled, settings
from . import reader

if TYPE_CHECKING:  # annotations only; the functions that compute import it (CLI start-up, docs/internals.md)
    import pyarrow as pa

_walk, IMPLEMENTATION = compiled.load(f"{__package__}._walk", settings.TEI_WALK, "extraction runs several times slower")


@dataclass(frozen=True)
class TextColumn:
    text: pa.StringArray
    n_tokens: pa.Int64Array
    missing: list[int]  # positions with no `within` element (their text is "")
    empty: list[int]  # positions whose text has no word (only spaces and reader.PUNCTUATION)


def text_column(
    elements: Sequence[etree._Element],
    within: str | None = None,
    parts: str | None = None,
    part_type: str | None = None,
    lstrip: str = "",
    rstrip: str = "",
    implementation: str | None = None,
) -> TextColumn:
    """Each element's normalised text, or that of its first `within` descendant (Clark notation),
    or the texts of its `parts` descendants (with @type == `part_type`) joined by one space (a part
    inside a part is not read twice); then leading `lstrip` and trailing `rstrip` characters (ASCII)
    are removed. Token counts are of the final text."""
    import pyarrow as pa

    if not (lstrip + rstrip).isascii():
        raise ValueError("lstrip / rstrip must be ASCII characters")
    if (implementation or IMPLEMENTATION) == "python":
        return _python_text_column(elements, within, parts, part_type, lstrip, rstrip)
    offsets, data, tokens, missing, empty = _walk.texts(
        list(elements), within, parts, part_type, lstrip.encode(), rstrip.encode(), reader.PUNCTUATION
    )
    n = len(elements)
    return TextColumn(_strings(n, offsets, data), pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(tokens)]), missing, empty)


def attribute_columns(
    elements: Sequence[etree._Element],
    names: Sequence[str],
    within: str | None = None,
    default: str = "",
    implementation: str | None = None,
) -> dict[str, pa.StringArray]:
    """Attributes `names` (Clark notation) of each element, or of its first `within` descendant;
    `default` where either is missing."""
    import pyarrow as pa

    names = list(dict.fromkeys(names))  # a name asked twice is one column
    if (implementation or IMPLEMENTATION) == "python":
        return {name: pa.array([_python_attribute(e, name, within, default) for e in elements], pa.string()) for name in names}
    n = len(elements)
    buffers = _walk.attributes(list(elements), names, within, default)
    return {name: _strings(n, offsets, data) for name, (offsets, data) in zip(names, buffers)}


def _strings(n: int, offsets: bytes, data: bytes) -> pa.StringArray:
    """An Arrow string array over the walker's buffers (int32 offsets, UTF-8 bytes), no copy."""
    import pyarrow as pa

    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# --- the plain-Python reference -------------------------------------------------------------


def _first_descendant(elem: etree._Element, tag: str) -> etree._Element | None:
    return next(elem.iterdescendants(tag), None)


def _python_parts(elem: etree._Element, tag: str, part_type: str | None) -> list[etree._Element]:
    found: list[etree._Element] = []
    for child in elem.iterdescendants(tag):
        if part_type is not None and child.get("type") != part_type:
            continue
        if any(a in found for a in child.iterancestors(tag)):
            continue  # inside a part already taken
        found.append(child)
    return found


def _python_text_column(elements, within, parts, part_type, lstrip, rstrip) -> TextColumn:
    import pyarrow as pa

    texts, tokens, missing, empty = [], [], [], []
    for i, elem in enumerate(elements):
        node = _first_descendant(elem, within) if within is not None else elem
        if node is None:
            missing.append(i)
            text = ""
        elif parts is None:
            text = reader.element_words(node)
        else:
            text = " ".join(t for t in (reader.element_words(p) for p in _python_parts(node, parts, part_type)) if t)
        if node is not None:
            text = text.lstrip(lstrip).rstrip(rstrip) if (lstrip or rstrip) else text
            if not reader.has_words(text):
                empty.append(i)
        texts.append(text)
        tokens.append(reader.count_tokens(text))
    return TextColumn(pa.array(texts, pa.string()), pa.array(tokens, pa.int64()), missing, empty)


def _python_attribute(elem: etree._Element, name: str, within: str | None, default: str) -> str:
    node = _first_descendant(elem, within) if within is not None else elem
    if node is None:
        return default
    value = node.get(name)
    return default if value is None else value
