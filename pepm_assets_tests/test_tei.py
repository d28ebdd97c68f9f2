"""TEI reading: both dialects on tiny files, and hostile or broken files beside good ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from pepm_assets.core import corpus
from pepm_assets.core.config import load_common
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.tei import TeiFileError, safe_iterparse
from pepm_assets.core.tei.dialects import build

TEI_NS = "{http://www.tei-c.org/ns/1.0}"
GOOD_U = '<?xml version="1.0"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><u who="#a"><seg>bonjour</seg></u></body></text></TEI>'


def _extract(project: Path, cid: str):
    common = load_common(project)
    return corpus.extract_corpus(cid, common.corpora[cid], project, ProjectPaths(project).corpus_dir(cid))


def test_mpt_dialect_reads_every_sp_with_metadata_and_roles(project: Path) -> None:
    outputs, stats = _extract(project, "mpt")
    docs = pd.read_parquet(outputs.docs)
    # 2 sittings x (1 chair + 6 x (7 members + gvt + collective)) = 110 docs; the blank <sp> is rejected
    assert stats.n_docs == 110 == len(docs)
    assert stats.rejects_by_reason == {"empty_text": 2}
    assert docs["doc_id"].is_unique
    assert set(docs["role"]) == {"chair", "member", "government", "collective"}
    mariton = docs[docs["speaker"] == "Hervé_Mariton"].iloc[0]
    assert mariton["group"] == "UMP" and mariton["wing"] == "right" and mariton["vote"] == "contre"
    assert mariton["date"] == "2013-01-29" and mariton["sitting"] == "Première séance"
    assert mariton["source_file"] == "20130101.xml" and mariton["source_line"] > 1
    assert docs[docs["role"] == "chair"]["text"].iloc[0] == "La séance est ouverte."


def test_standard_dialect_resolves_speakers_groups_and_dates(project: Path) -> None:
    outputs, stats = _extract(project, "an")
    docs = pd.read_parquet(outputs.docs)
    assert stats.n_docs == 36 and stats.n_rejects == 0
    vallaud = docs[docs["speaker"] == "Boris_Vallaud"].iloc[0]
    assert (vallaud["group"], vallaud["speaker_name"], vallaud["date"], vallaud["section"]) == (
        "SOC",
        "Boris Vallaud",
        "2019-03-01",
        "Débat 1",
    )
    gov = docs[docs["speaker"] == "Edouard_Philippe"]
    assert set(gov["role"]) == {"government"} and set(gov["group"]) == {""}


def test_standard_dialect_amendments_take_the_expose(tmp_path: Path) -> None:
    xml = (
        '<?xml version="1.0"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><teiHeader><profileDesc><particDesc>'
        '<listPerson><person xml:id="p1"><persName>P Un</persName><affiliation role="member" ref="#grp.RN"/></person></listPerson>'
        '<listOrg><org xml:id="grp.RN"><orgName>RN</orgName></org></listOrg></particDesc></profileDesc></teiHeader>'
        '<text><body><div type="bill"><head>Loi</head>'
        '<div type="amendment" xml:id="a1" n="12" resp="#p1"><head>Amendement n° 12<date when="2025-01-20"/></head>'
        '<p type="dispositif">Supprimer cet article.</p><p type="expose">Parce que cet article est mauvais.</p></div>'
        '<div type="amendment" xml:id="a2" n="13" resp="#p1"><head>Amendement n° 13</head><p type="dispositif">Rédiger ainsi.</p><p type="expose"> </p></div>'
        "</div></body></text></TEI>"
    )
    path = tmp_path / "bill.xml"
    path.write_text(xml, encoding="utf-8")
    dialect = build(
        "amend",
        tmp_path,
        "tei",
        {"element": "div", "type": "amendment", "speaker_attribute": "resp", "text_element": "p", "text_type": "expose"},
    )
    [chunk] = list(dialect.iter_file(path))
    [row] = dialect.table([chunk]).to_pylist()
    assert row["text"] == "Parce que cet article est mauvais."
    assert (row["group"], row["date"], row["number"], row["section"]) == ("RN", "2025-01-20", "12", "Loi")
    [reject] = chunk.rejects
    assert reject["reason"] == "empty_text" and reject["doc_id"] == "amend:bill:a2"


SECRET = "TOP-SECRET-CONTENT-42"
XXE = """<?xml version="1.0"?>
<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "file://{secret}">]>
<TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><u who="#a"><seg>&xxe;</seg></u></body></text></TEI>"""
BOMB = (
    """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol">"""
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + """]>
<TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body><u who="#a"><seg>&lol9;</seg></u></body></text></TEI>"""
)


@pytest.fixture()
def hostile_corpus(project: Path, tmp_path: Path) -> Path:
    """The tiny AN corpus plus an XXE file, a billion-laughs bomb, a truncated and an empty file."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    an = project / "data" / "raw" / "an"
    (an / "an_xxe.xml").write_text(XXE.format(secret=secret), encoding="utf-8")
    (an / "an_bomb.xml").write_text(BOMB, encoding="utf-8")
    good = (an / "an_2019-03.xml").read_text(encoding="utf-8")
    (an / "an_truncated.xml").write_text(good[: good.index("</u>", len(good) // 2) + 4].replace('xml:id="u', 'xml:id="t'), encoding="utf-8")
    (an / "an_empty.xml").write_text("", encoding="utf-8")
    return project


def test_hostile_and_broken_files_are_rejected_by_name_and_the_rest_is_read(hostile_corpus: Path) -> None:
    started = time.perf_counter()
    outputs, stats = _extract(hostile_corpus, "an")
    assert time.perf_counter() - started < 20  # nothing was expanded
    files = pd.read_parquet(outputs.files)  # a whole-file failure is a file status, not a document reject
    by_file = {row.source_file: row for row in files.itertuples()}
    assert by_file["an_xxe.xml"].reason == "forbidden_dtd"
    assert by_file["an_bomb.xml"].reason == "forbidden_dtd"
    assert by_file["an_empty.xml"].reason == "empty_file"
    assert by_file["an_truncated.xml"].reason in {"truncated_xml", "xml_syntax_error"}
    assert by_file["an_truncated.xml"].line > 1
    docs = pd.read_parquet(outputs.docs)
    # the good month is complete, and the truncated copy keeps the speeches before the cut
    assert (docs["source_file"] == "an_2019-03.xml").sum() == 36
    assert 0 < (docs["source_file"] == "an_truncated.xml").sum() < 36
    assert not docs["text"].str.contains(SECRET).any()
    assert not docs["text"].str.contains("lollol").any()
    assert stats.n_files == 5 and stats.n_files_failed == 4


def test_dtd_hidden_after_a_long_prolog_is_still_refused_without_expansion(tmp_path: Path) -> None:
    """Padding defeats the cheap prolog scan; the parser flags still expand nothing."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET, encoding="utf-8")
    path = tmp_path / "padded.xml"
    path.write_text(XXE.format(secret=secret).replace("<!DOCTYPE", "<!--" + "x" * 70000 + "-->\n<!DOCTYPE", 1), encoding="utf-8")
    with pytest.raises(TeiFileError) as err:
        list(safe_iterparse(path, [TEI_NS + "u"]))
    assert err.value.reason == "forbidden_dtd" and "padded.xml" in str(err.value)


def test_error_message_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.xml"
    path.write_text(GOOD_U.replace("</seg>", "</seg>\n\n<oops>"), encoding="utf-8")
    with pytest.raises(TeiFileError) as err:
        list(safe_iterparse(path, [TEI_NS + "u"]))
    assert "broken.xml:" in str(err.value) and err.value.line == 3


def test_memory_is_released_while_streaming(tmp_path: Path) -> None:
    """Streaming prunes what the caller is done with: what stays in memory is bounded by lxml's
    read-ahead buffer, not by the file (20,000 documents, never more than a couple of thousand held)."""
    n_docs = 20000
    body = "".join(f'<u who="#a"><seg>texte {i}</seg></u>' for i in range(n_docs))
    path = tmp_path / "big.xml"
    path.write_text(
        f'<?xml version="1.0"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><text><body>{body}</body></text></TEI>', encoding="utf-8"
    )
    widths = [len(elem.getparent()) for elem in safe_iterparse(path, [TEI_NS + "u"], whole_file_max=0)]
    assert len(widths) == n_docs
    assert max(widths) < n_docs / 10


@pytest.mark.parametrize("cid", ["mpt", "an"])
def test_whole_file_and_streaming_modes_read_the_same_documents(project: Path, cid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pepm_assets.core.tei import reader

    common = load_common(project)
    cfg = common.corpora[cid]
    dialect = build(cid, project / cfg.path, cfg.dialect, cfg.dialect_options)
    files = corpus.corpus_files(project / cfg.path, cfg.glob)

    def documents(workers: int) -> tuple[list, list]:  # batch boundaries may differ, the documents may not
        batches = list(corpus.iter_batches(dialect, files, workers))
        return [row for b in batches for row in b.docs.to_pylist()], [r for b in batches for r in b.rejects]

    whole = documents(workers=1)
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)  # the fixture is tiny: use the pool anyway
    assert documents(workers=2) == whole  # the process pool changes nothing but speed
    monkeypatch.setattr(reader, "WHOLE_FILE_MAX", 0)
    streamed = documents(workers=1)
    assert len(whole[0]) > 30 and whole == streamed


def _die(paths: list) -> list:
    os._exit(3)  # a parse worker killed mid-task (out of memory, a crash)


def test_a_parse_worker_that_dies_is_an_error_not_a_hang(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_common(project).corpora["mpt"]
    dialect = build("mpt", project / cfg.path, cfg.dialect, cfg.dialect_options)
    files = corpus.corpus_files(project / cfg.path, cfg.glob)
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(corpus, "_read_files", _die)
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"parse worker died .* before 20130101\.xml was read"):
        list(corpus.iter_batches(dialect, files, 2))
    assert time.perf_counter() - started < 30


def test_element_words_normalises_xml_whitespace_only() -> None:
    from lxml import etree

    from pepm_assets.core.tei.reader import count_tokens, element_words

    seg = etree.fromstring("<seg>\n  Mes<w>dames</w>,\tmessieurs\r\n <hi>les</hi>  députés\u00a0! <note>(rires)</note>\n</seg>")
    seg.tail = " tail is not text"
    text = element_words(seg)
    # inline tags add no space, XML whitespace runs become one space, the no-break space stays
    assert text == "Mesdames, messieurs les députés\u00a0! (rires)"
    assert count_tokens(text) == 5 and count_tokens("") == 0  # "députés\u00a0!" is one token


@pytest.mark.parametrize(
    "text",
    ["Mme la ministre", " M. Dupont", "M. Dupont ", "M.  Dupont", "M.\nDupont", "M.\tDupont", "M.\r\nDupont", "M.\u00a0Dupont", "", None],
)
def test_element_words_leaf_shortcut_matches_xpath(text: str | None) -> None:
    """A leaf's text is returned without XPath only when it is already normalised: same result."""
    from lxml import etree

    from pepm_assets.core.tei import reader

    leaf = etree.Element("speaker")
    leaf.text = text
    assert reader.element_words(leaf) == reader._NORMALIZED_TEXT(leaf)


def test_has_words() -> None:
    from pepm_assets.core.tei.reader import has_words

    assert not has_words("") and not has_words(" . … — !?") and has_words(". Oui.") and has_words("…\u00a0")
