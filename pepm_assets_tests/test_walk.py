"""The column walker: the compiled module against the plain-Python reference, on hand-made edge
cases and on the three shipped corpora end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from lxml import etree

from pepm_assets.core import corpus
from pepm_assets.core.config import load_common
from pepm_assets.core.tei import reader, walk
from pepm_assets.core.tei.dialects import build
from pepm_assets_tests.fixtures import REPO

T = "{http://www.tei-c.org/ns/1.0}"
X = "{urn:x}"
DOC = """<TEI xmlns="http://www.tei-c.org/ns/1.0" xmlns:x="urn:x">
<u who="#a" xml:id="u1" n="1"><seg>  Bonjour\tà\r\n  <hi>tous</hi>,   mes <w>chers</w>collègues  </seg><x:meta x:k="v" k="plain"> . . Oui </x:meta></u>
<u who="#b"><seg type="a">Un</seg><note><seg type="b">  </seg></note><seg type="a">deux <seg type="a">dans</seg> trois</seg></u>
<u><seg>\u00a0non-breaking\u00a0space </seg><![CDATA[ cdata  text ]]><!-- a comment --></u>
<u who=""><seg> . … — !? </seg></u>
<u who="#c" x:k="1 &amp; 2 &lt; 3"/>
<u who="#d"><seg>l&#8217;été &amp; «\u00a0guillemets\u00a0»</seg>  <seg></seg></u>
</TEI>"""


def _elements() -> list:
    root = etree.fromstring(DOC.encode(), etree.XMLParser(**reader._PARSER_OPTIONS))
    return list(root.iter(T + "u"))


CASES = [
    {},
    {"parts": T + "seg"},
    {"parts": T + "seg", "part_type": "a"},
    {"parts": T + "seg", "part_type": "b"},
    {"within": X + "meta", "lstrip": " ."},
    {"within": T + "seg", "rstrip": " !?"},
    {"within": T + "note", "parts": T + "seg"},
]


def test_the_compiled_walker_is_the_one_in_use() -> None:
    """`pip install -e .` builds it; without it extraction silently runs several times slower."""
    if os.environ.get("PEPM_TEI_WALK") == "python":
        pytest.fail("PEPM_TEI_WALK=python is set: the compiled walker is not under test")
    assert walk.IMPLEMENTATION == "compiled", "pepm_assets/core/tei/_walk.pyx is not built"


@pytest.mark.parametrize("options", CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "whole")
def test_text_column_matches_the_python_reference(options: dict) -> None:
    elements = _elements()
    compiled = walk.text_column(elements, implementation="compiled", **options)
    python = walk.text_column(elements, implementation="python", **options)
    assert compiled.text.to_pylist() == python.text.to_pylist()
    assert compiled.n_tokens.to_pylist() == python.n_tokens.to_pylist()
    assert (compiled.missing, compiled.empty) == (python.missing, python.empty)
    compiled.text.validate(full=True)  # the buffers written in C are valid Arrow (offsets, UTF-8)


def test_text_column_semantics() -> None:
    """What the reference itself promises: XPath normalize-space, nothing added at tags, parts
    joined by one space, a part inside a part read once."""
    elements = _elements()
    whole = walk.text_column(elements).text.to_pylist()
    assert whole[0] == "Bonjour à tous, mes cherscollègues . . Oui"
    assert whole[2] == "\u00a0non-breaking\u00a0space cdata text"  # no-break space kept, CDATA is text
    assert whole[4] == ""
    assert whole[5] == "l\u2019été & «\u00a0guillemets\u00a0»"
    parts = walk.text_column(elements, parts=T + "seg", part_type="a")
    assert parts.text[1].as_py() == "Un deux dans trois"
    meta = walk.text_column(elements, within=X + "meta", lstrip=" .")
    assert meta.text[0].as_py() == "Oui" and meta.missing == [1, 2, 3, 4, 5]
    counted = walk.text_column(elements)
    assert counted.n_tokens.to_pylist()[0] == 8 and counted.empty == [3, 4]


def test_attribute_columns_match_the_python_reference() -> None:
    elements = _elements()
    names = ("who", "n", reader.XML_ID, X + "k", "k", "missing")
    for within, default in ((None, ""), (X + "meta", "?")):
        compiled = walk.attribute_columns(elements, names, within=within, default=default, implementation="compiled")
        python = walk.attribute_columns(elements, names, within=within, default=default, implementation="python")
        assert {k: v.to_pylist() for k, v in compiled.items()} == {k: v.to_pylist() for k, v in python.items()}
    plain = walk.attribute_columns(elements, names)
    assert plain["who"].to_pylist() == ["#a", "#b", "", "", "#c", "#d"]  # absent and empty both read ""
    assert plain[X + "k"][4].as_py() == "1 & 2 < 3" and plain["k"][0].as_py() == ""  # namespaces are told apart
    assert walk.attribute_columns(elements, ["k"], within=X + "meta", default="?")["k"].to_pylist() == ["plain"] + ["?"] * 5
    twice = walk.attribute_columns(elements, ["n", "who", "n"])  # a name asked twice is one column, with its values
    assert list(twice) == ["n", "who"] and twice["n"].to_pylist() == plain["n"].to_pylist()


def test_walker_refuses_what_is_not_an_element() -> None:
    with pytest.raises(TypeError):
        walk.text_column(["not an element"], implementation="compiled")
    with pytest.raises(ValueError):
        walk.text_column(_elements(), lstrip="…")


def test_streaming_keeps_the_start_of_a_speech_that_contains_a_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While streaming, only documents and header entries free their earlier siblings: a <date>
    inside a speech must not free the speech's own first paragraph."""
    xml = (
        '<?xml version="1.0"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><div type="s"><head>S</head>'
        '<u who="#a"><seg>Premier paragraphe.</seg><date when="2020-01-01"/><seg>Second.</seg></u></div></body></text></TEI>'
    )
    path = tmp_path / "dated.xml"
    path.write_text(xml, encoding="utf-8")
    dialect = build("t", tmp_path, "tei", {"element": "u", "text_element": "seg"})
    for whole_file_max in (reader.WHOLE_FILE_MAX, 0):
        monkeypatch.setattr(reader, "WHOLE_FILE_MAX", whole_file_max)
        [chunk] = list(dialect.iter_file(path))
        [row] = dialect.table([chunk]).to_pylist()
        assert (row["text"], row["date"], row["section"]) == ("Premier paragraphe. Second.", "2020-01-01", "S")


def test_a_speaker_listed_after_the_speeches_is_not_known_to_them(tmp_path: Path) -> None:
    """Speakers are resolved against the listPerson read before each document, as the documents
    are met: the answer cannot depend on how documents are grouped into chunks."""
    person = '<listPerson><person xml:id="a"><persName>A</persName><affiliation ref="#g"/></person></listPerson>'
    xml = (
        '<?xml version="1.0"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body>'
        '<u who="#a"><seg>Avant la liste.</seg></u>' + person + '<u who="#a"><seg>Après la liste.</seg></u>'
        "</body></text></TEI>"
    )
    path = tmp_path / "late.xml"
    path.write_text(xml, encoding="utf-8")
    dialect = build("t", tmp_path, "tei", {"element": "u", "text_element": "seg"})
    rows = dialect.table(list(dialect.iter_file(path))).to_pylist()
    assert [(r["speaker_name"], r["group"], r["role"]) for r in rows] == [("", "", "unknown"), ("A", "g", "member")]


@pytest.mark.parametrize("corpus_id", ["mpt", "an_debats", "an_amendements"])
def test_both_walkers_extract_the_same_shipped_corpus(shipped_corpora: Path, corpus_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_common(REPO).corpora[corpus_id]
    dialect = build(corpus_id, shipped_corpora / corpus_id, cfg.dialect, cfg.dialect_options)
    files = corpus.corpus_files(shipped_corpora / corpus_id, cfg.glob)

    def extract() -> tuple[pa.Table, list]:
        batches = list(corpus.read_batches(dialect, files))
        return pa.concat_tables(b.docs for b in batches), [r for b in batches for r in b.rejects]

    compiled = extract()
    monkeypatch.setattr(walk, "IMPLEMENTATION", "python")
    python = extract()
    assert compiled[0].num_rows > 1000 and compiled[0].equals(python[0])
    assert compiled[1] == python[1]
