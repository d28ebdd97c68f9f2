"""Fuzzing the TEI reader, the CI part (docs/fuzzing.md; the long run is `scripts/fuzz_tei.py`).

A short fixed-seed run of the fuzzer (every strategy, every dialect, whole and streaming reads),
hypothesis-generated files (arbitrary bytes, mutated corpus files, random TEI-like trees), then one
explicit case per attack class with the outcome it must have. An input must end parsed, or failed
with a known reason, a detail and the file's name (the fuzzer's `Runner.check`); nothing may leave
the reader as an exception.

Issues the fuzzer found and that are not fixed yet are listed in `fuzz_tei.KNOWN_ISSUES`: the short
run and the hypothesis tests tolerate them (any other bug fails), and each has a strict xfail test
at the end, which fails once the issue is fixed: then remove it from KNOWN_ISSUES and drop the
marker. Two findings that are not bugs (a less precise reject reason, no line) have one too.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from pepm_assets.core.tei import TeiFileError
from scripts import fuzz_tei as fz

from .fixtures import REPO, an_month, mpt_sitting

TARGETS = {t.name: t for t in fz.TARGETS}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
TEI = '<TEI xmlns="http://www.tei-c.org/ns/1.0">'
DEBATE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    + TEI
    + '<text><body>\n<u who="#a" xml:id="u1"><seg>bonjour{ref}</seg></u>\n</body></text></TEI>\n'
)

KNOWN_ISSUES = fz.KNOWN_ISSUES
known_issue = fz.known_issue


def assert_not_a_bug(res: fz.Result) -> None:
    if res.outcome == "bug":
        assert known_issue(res.reason, res.mode, res.variant, res.detail), (
            f"{res.target} {res.strategy}:{res.variant} ({res.mode}): {res.reason}: {res.detail}"
        )
    else:
        assert res.outcome in ("parsed", "rejected")
        if res.outcome == "rejected":
            assert res.reason in fz.KNOWN_REASONS and res.detail


@pytest.fixture(scope="module")
def bases() -> dict:
    raw = REPO / "data" / "raw"
    return fz.build_bases(fz.TARGETS, raw if raw.is_dir() else None, seed=0, per_file=2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def maker(bases: dict, workdir: Path) -> fz.Maker:
    made = fz.Maker(bases, workdir, heavy=False)
    made.write_secrets()
    return made


@pytest.fixture(scope="module")
def runner(workdir: Path) -> fz.Runner:
    """Reads each input whole or streaming as asked, then the other way and with the pure-Python
    walker too (differential_rate=1)."""
    return fz.Runner(list(fz.TARGETS), workdir / "run", slow=10.0, differential_rate=1.0)


def read(runner: fz.Runner, target: str, data: bytes, mode: str = "whole") -> tuple[dict, list[dict], list[dict]]:
    """(status row, documents, rejects) of `data` read as corpus extraction reads a file."""
    parsed = runner.parse(target, data, mode)
    [row] = parsed.files
    return row, parsed.docs.to_pylist() if parsed.docs is not None else [], parsed.rejects


def file_error(runner: fz.Runner, target: str, data: bytes) -> TeiFileError:
    """The TeiFileError the dialect raises for `data`, after the documents before it."""
    path = runner.paths[target]
    path.write_bytes(data)
    with pytest.raises(TeiFileError) as caught:
        for _ in runner.dialects[target].iter_file(path):
            pass
    return caught.value


# --- the short run and hypothesis ----------------------------------------------------------------


def test_the_fuzzer_reads_each_corpus_with_its_configured_options() -> None:
    import yaml

    corpora = yaml.safe_load((REPO / "configs" / "common" / "corpora.yml").read_text(encoding="utf-8"))["corpora"]
    for target in fz.TARGETS:
        assert (target.dialect, target.options) == (corpora[target.corpus]["dialect"], corpora[target.corpus].get("dialect_options", {}))


def test_short_fuzz_run_parses_or_rejects_every_input(bases: dict, tmp_path: Path) -> None:
    """1500 inputs of the fuzzer, fixed seed, every strategy, 2 workers (a worker that dies or
    hangs is a bug): no uncaught exception, every file parsed or rejected with a reason."""
    cfg = fz.Config(
        inputs=1500,
        seed=20250601,
        dialect="all",
        targets=list(fz.TARGETS),
        workers=2,
        out=tmp_path,
        slow=10.0,
        timeout=120.0,
        memory_mb=1024,
        differential_rate=0.1,
        heavy=False,
    )
    with open("/proc/self/statm") as fh:  # forked workers start with this process's RSS as their peak
        rss_at_fork_mib = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    summary = fz.campaign(cfg, bases, progress=False)
    d = summary.as_dict()
    assert d["inputs"] == sum(d["outcomes"].values()) == 1500
    unknown = [b for b in summary.bugs if not b["known_issue"]]
    assert not unknown, "\n".join(
        f"#{b['index']} {b['strategy']}:{b['variant']} ({b['mode']}) {b['reason']}: {b['detail'][:500]}" for b in unknown
    )
    assert set(d["by_target"]) == set(TARGETS)
    assert set(d["by_strategy"]) == set(fz.Maker(bases, tmp_path).strategies)
    assert set(d["by_mode"]) == {"whole", "stream"}
    assert set(d["reject_reasons"]) <= fz.KNOWN_REASONS
    assert d["outcomes"]["parsed"] > 200 and d["outcomes"]["rejected"] > 500
    assert not [v for v in d["by_variant"] if "generator_error" in v]
    assert d["truncations"].get("with_documents_lost", 0) == 0  # what was read before a cut is delivered
    assert d["peak_rss_mib"] - rss_at_fork_mib < 1024, (d["peak_rss_mib"], rss_at_fork_mib)  # what fuzzing added


@SETTINGS
@given(target=st.sampled_from(sorted(TARGETS)), mode=st.sampled_from(["whole", "stream"]), data=st.binary(max_size=3000))
def test_arbitrary_bytes_are_parsed_or_rejected(runner: fz.Runner, target: str, mode: str, data: bytes) -> None:
    assert_not_a_bug(runner.run(fz.FuzzInput(0, target, "hypothesis", "bytes", mode, "", "", data)))


@SETTINGS
@given(target=st.sampled_from(sorted(TARGETS)), rng=st.randoms(use_true_random=False))
def test_mutated_corpus_files_are_parsed_or_rejected(runner: fz.Runner, maker: fz.Maker, target: str, rng) -> None:
    """The fuzzer's strategies, driven by hypothesis (which shrinks a failure to a smaller input)."""
    assert_not_a_bug(runner.run(maker.make_with(rng, TARGETS[target]), maker))


ELEMENTS = ("u", "seg", "sp", "speaker", "p", "div", "head", "note", "date", "hi", "lb", "person", "persName", "org", "orgName")
ATTRIBUTES = ("who", "resp", "type", "when", "n", "ana", "ref")
VALUES = ("#a", "#b", "amendment", "expose", "dispositif", "#government", "2020-01-01", "", " ", "é", "#le_président")
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> str:
    """A random TEI-namespaced element (some in the MPT namespace) with attributes, text and
    children; xml:ids are unique (a duplicate is a KNOWN_ISSUES entry of its own)."""
    name = draw(st.sampled_from(ELEMENTS + ("mpt:metadata",)))
    attrs = draw(st.dictionaries(st.sampled_from(ATTRIBUTES), st.one_of(st.sampled_from(VALUES), TEXT), max_size=3))
    if draw(st.booleans()):
        attrs["xml:id"] = f"id{draw(st.uuids()).hex}"
    head = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    children = draw(st.lists(elements(depth + 1), max_size=3)) if depth < 3 else []
    texts = draw(st.lists(TEXT, min_size=len(children) + 1, max_size=len(children) + 1))
    body = escape(texts[0]) + "".join(child + escape(text) for child, text in zip(children, texts[1:]))
    return f"<{name}{head}>{body}</{name}>"


@settings(SETTINGS, max_examples=30)
@given(target=st.sampled_from(sorted(TARGETS)), body=st.lists(elements(), max_size=6))
def test_random_tei_trees_account_for_every_document(runner: fz.Runner, target: str, body: list[str]) -> None:
    """Any tree: parsed or rejected; when it parses, every document element is a document or a
    reject (none lost, none invented), and both walkers and both reads agree."""
    xml = f'{TEI[:-1]} xmlns:mpt="http://mpt.ethelred.fr/ns/0.0/"><text><body>{"".join(body)}</body></text></TEI>'
    res = runner.run(fz.FuzzInput(0, target, "hypothesis", "tree", "whole", "", "", xml.encode()))
    assert_not_a_bug(res)
    try:
        root = etree.fromstring(xml.encode())
    except etree.XMLSyntaxError:
        return  # e.g. a control character in a text: rejected, checked above
    expected = len(root.xpath(TARGETS[target].xpath, namespaces={"tei": fz.TEI_NS}))
    assert res.n_docs + res.n_rejects == expected
    if expected == 0:
        assert (res.outcome, res.reason) == ("rejected", "no_documents")


# --- one case per attack class -----------------------------------------------------------------


def _laughs(levels: int = 9) -> str:
    return f'<!ENTITY lol "{fz.LAUGH}">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, levels + 1)
    )


@pytest.mark.parametrize("mode", ["whole", "stream"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_billion_laughs_is_refused_unexpanded(runner: fz.Runner, target: str, mode: str) -> None:
    xml = DEBATE.replace("\n", f"\n<!DOCTYPE TEI [{_laughs()}]>", 1).format(ref="&lol9;")
    started = time.perf_counter()
    row, docs, _ = read(runner, target, xml.encode(), mode)
    assert time.perf_counter() - started < 5
    assert (row["status"], row["reason"], row["line"]) == ("failed", "forbidden_dtd", 2)
    assert docs == [] and fz.LAUGH * 2 not in str(row)
    error = file_error(runner, target, xml.encode())
    assert (error.reason, error.path, error.line) == ("forbidden_dtd", runner.paths[target], 2)
    assert str(error).startswith(f"{runner.paths[target]}:2: ")


@pytest.mark.parametrize("hiding", ["", " " * 70_000, "<!-- <a> -->"])
@pytest.mark.parametrize("mode", ["whole", "stream"])
def test_external_entities_are_refused_and_never_read(runner: fz.Runner, maker: fz.Maker, mode: str, hiding: str) -> None:
    """To /etc/passwd and to a secret file, behind nothing, 70 KB of spaces (past the reader's
    prolog scan) or a comment with a `<a` in it: refused as a DTD, the files never read."""
    for system in ("file:///etc/passwd", f"file://{maker.secret}"):
        xml = DEBATE.replace("\n", f'\n{hiding}<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "{system}">]>', 1).format(ref="&xxe;")
        row, docs, rejects = read(runner, "standard:debates", xml.encode(), mode)
        assert (row["status"], row["reason"]) == ("failed", "forbidden_dtd")
        out = str([row, docs, rejects])
        assert fz.SECRET_MARK not in out and fz.PASSWD_MARK not in out


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_a_dtd_in_utf16_is_refused(runner: fz.Runner, maker: fz.Maker, encoding: str) -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        + f'<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "file://{maker.secret}">]>'
        + DEBATE.split("\n", 1)[1]
    ).format(ref="&xxe;")
    row, docs, _ = read(runner, "standard:debates", xml.encode(encoding))
    assert (row["status"], row["reason"], docs) == ("failed", "forbidden_dtd", [])


@pytest.mark.parametrize("mode", ["whole", "stream"])
def test_xinclude_is_not_processed(runner: fz.Runner, maker: fz.Maker, mode: str) -> None:
    include = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{maker.secret}" parse="text"/>'
    plain = read(runner, "standard:debates", DEBATE.format(ref="").encode(), mode)
    included = read(runner, "standard:debates", DEBATE.format(ref=include).encode(), mode)
    assert included == plain and included[0]["status"] == "parsed"
    assert included[1][0]["text"] == "bonjour" and fz.SECRET_MARK not in str(included)


@pytest.mark.parametrize("mode", ["whole", "stream"])
@pytest.mark.parametrize("where", ["body", "document"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_deep_nesting_is_refused(runner: fz.Runner, bases: dict, target: str, where: str, mode: str) -> None:
    """10^5 nested elements: libxml2 stops at depth 256 (no huge_tree): refused, at once."""
    t = TARGETS[target]
    base = bases[target]["generated"][0].data
    deep = b"<hi>" * 100_000 + b"x" + b"</hi>" * 100_000
    at = base.index(t.text_close) if where == "document" else base.index(b"<text>")
    data = base[:at] + deep + base[at:]
    started = time.perf_counter()
    row, _, _ = read(runner, target, data, mode)
    assert time.perf_counter() - started < 5
    assert (row["status"], row["reason"]) == ("failed", "xml_syntax_error")
    assert "depth" in row["detail"] and row["line"] >= 1


@pytest.mark.parametrize("mode", ["whole", "stream"])
@pytest.mark.parametrize("target", ["mpt", "standard:debates"])
def test_utf16_reads_like_utf8_and_needs_a_bom_or_a_declaration(runner: fz.Runner, target: str, mode: str) -> None:
    text = (mpt_sitting("20130101", 1, seed=0) if target == "mpt" else an_month(1, seed=0)).split("\n", 1)[1]
    utf8 = read(runner, target, text.encode(), mode)
    assert utf8[0]["status"] == "parsed"
    declared = '<?xml version="1.0" encoding="UTF-16"?>' + text
    for data in (
        ("\ufeff" + text).encode("utf-16-le"),
        ("\ufeff" + declared).encode("utf-16-be"),
        declared.encode("utf-16-le"),  # no BOM: the declaration says it
        declared.encode("utf-16-be"),
    ):
        assert read(runner, target, data, mode) == utf8
    row, docs, _ = read(runner, target, text.encode("utf-16-le"), mode)  # neither
    assert (row["status"], row["reason"], docs) == ("failed", "xml_syntax_error", [])


@pytest.mark.parametrize("mode", ["whole", "stream"])
@pytest.mark.parametrize("target", ["mpt", "standard:debates"])
def test_a_truncated_file_names_file_and_line_and_keeps_what_precedes_the_cut(runner: fz.Runner, target: str, mode: str) -> None:
    full = (mpt_sitting("20130101", 2, seed=0) if target == "mpt" else an_month(2, seed=0)).encode()
    closer = b"</sp>" if target == "mpt" else b"</u>"
    cut = full.index(closer, len(full) // 2) + len(closer) + 7  # inside the next document
    _, whole_docs, _ = read(runner, target, full, mode)
    row, docs, _ = read(runner, target, full[:cut], mode)
    assert row["status"] == "failed" and row["reason"] in ("truncated_xml", "xml_syntax_error") and row["line"] > 1
    kept = full[:cut].count(closer)
    assert 0 < len(docs) <= kept and docs == whole_docs[: len(docs)]
    error = file_error(runner, target, full[:cut])
    assert error.path == runner.paths[target] and error.line == row["line"]
    assert str(error).startswith(f"{runner.paths[target]}:{row['line']}: ")


@pytest.mark.parametrize(
    "data",
    [
        DEBATE.format(ref=" été").encode("latin-1"),  # latin-1 bytes, UTF-8 declared
        DEBATE.format(ref="").encode().replace(b"bonjour", b"bon\xc0\x80jour"),  # an overlong sequence
        DEBATE.format(ref="").encode().replace(b"bonjour", b"bon\xed\xa0\x80jour"),  # a surrogate
        DEBATE.format(ref="&#xFFFE;").encode(),  # a character XML forbids
    ],
    ids=["latin1_as_utf8", "overlong", "surrogate", "forbidden_char"],
)
def test_invalid_text_is_refused_with_its_line(runner: fz.Runner, data: bytes) -> None:
    for mode in ("whole", "stream"):
        row, docs, _ = read(runner, "standard:debates", data, mode)
        assert (row["status"], row["reason"], row["line"], docs) == ("failed", "xml_syntax_error", 3, [])


def test_a_compressed_file_is_not_inflated(runner: fz.Runner) -> None:
    """libxml2 inflates a gzip file it is given by name (a decompression bomb): the reader must not."""
    for mode in ("whole", "stream"):
        row, docs, _ = read(runner, "standard:debates", gzip.compress(DEBATE.format(ref="").encode()), mode)
        assert (row["status"], docs) == ("failed", [])


# --- known issues: strict xfails, which fail once fixed (then update KNOWN_ISSUES) ----------------


@pytest.mark.parametrize("ids", [("u1", "u1"), ("u1", "#u2")], ids=["duplicate", "not_ncname"])
def test_streaming_accepts_the_xml_ids_a_whole_read_accepts(runner: fz.Runner, ids: tuple[str, str]) -> None:
    xml = f'{TEI}<text><body><u who="#a" xml:id="{ids[0]}"><seg>un</seg></u><u who="#b" xml:id="{ids[1]}"><seg>deux</seg></u></body></text></TEI>'
    assert read(runner, "standard:debates", xml.encode(), "whole")[0]["status"] == "parsed"
    assert read(runner, "standard:debates", xml.encode(), "stream")[0]["status"] == "parsed"


MPT_NS = 'xmlns:mpt="http://mpt.ethelred.fr/ns/0.0/"'
NESTED = {  # target -> a file whose first document holds an element the dialect has the reader prune
    "mpt": f'{TEI[:-1]} {MPT_NS}><text><body><sp who="A"><speaker>A</speaker><mpt:metadata auteur="A"><p>texte de A</p></mpt:metadata>'
    '<sp who="B"><mpt:metadata auteur="B"><p>texte de B</p></mpt:metadata></sp></sp></body></text></TEI>',
    "standard:amendments": f'{TEI}<text><body><div type="dossier"><head>Loi</head><div type="amendment" xml:id="a1" resp="#p1">'
    '<head>Amendement 1</head><p type="expose">Parce que.</p><div type="annexe"><p>annexe</p></div></div></div></body></text></TEI>',
}


@pytest.mark.parametrize("target", sorted(NESTED))
def test_streaming_keeps_a_document_that_holds_a_pruned_element(runner: fz.Runner, target: str) -> None:
    """Streaming used to free a document's own content when an element inside it was pruned (the
    outer <sp> got the inner one's speaker and text, the amendment lost its exposé). The documents
    must be those of a whole read; nested documents come in the order their ends are read, so
    they are compared without their ordinal ids."""
    whole = read(runner, target, NESTED[target].encode(), "whole")
    stream = read(runner, target, NESTED[target].encode(), "stream")
    assert whole[0]["status"] == stream[0]["status"] == "parsed"

    def content(docs: list[dict]) -> list[tuple]:
        return sorted(tuple(sorted((k, str(v)) for k, v in d.items() if k != "doc_id")) for d in docs)

    assert content(stream[1]) == content(whole[1])


@pytest.mark.xfail(strict=True, reason=KNOWN_ISSUES["stream_utf32"])
def test_known_issue_streaming_reads_utf32_like_a_whole_read(runner: fz.Runner) -> None:
    data = DEBATE.format(ref="").split("\n", 1)[1].encode("utf-32")
    assert read(runner, "standard:debates", data, "whole")[0]["status"] == "parsed"
    assert read(runner, "standard:debates", data, "stream") == read(runner, "standard:debates", data, "whole")


def test_streaming_reads_a_wide_document_like_a_whole_read(runner: fz.Runner) -> None:
    """8 x 10^4 empty elements in one <u>, then another <u>: both documents, as a whole read gives
    them. (How long freeing such a document takes when streamed is the known issue
    stream_prune_wide, which the long fuzz run's --slow check measures.)"""
    data = DEBATE.format(ref="<lb/>" * 80_000).replace("</u>\n", '</u>\n<u who="#b"><seg>fin</seg></u>\n').encode()
    whole = read(runner, "standard:debates", data, "whole")
    assert whole[0]["n_docs"] == 2
    assert read(runner, "standard:debates", data, "stream") == whole


@pytest.mark.xfail(strict=True, reason="an undefined entity read with resolve_entities=False: lxml says 'no element found', no line")
def test_known_issue_an_undefined_entity_is_reported_with_its_line(runner: fz.Runner) -> None:
    row, _, _ = read(runner, "standard:debates", DEBATE.format(ref="&xxe;").encode())
    assert row["reason"] == "xml_syntax_error" and row["line"] == 3


@pytest.mark.xfail(
    strict=True, reason="a DTD past the 64 KiB prolog scan reaches libxml2: a bomb is stopped by its limits, as xml_syntax_error"
)
def test_known_issue_a_hidden_entity_bomb_is_refused_as_a_dtd(runner: fz.Runner) -> None:
    xml = DEBATE.replace("\n", "\n" + " " * 70_000 + f"<!DOCTYPE TEI [{_laughs()}]>", 1).format(ref="&lol9;")
    row, docs, _ = read(runner, "standard:debates", xml.encode())
    assert docs == [] and fz.LAUGH * 2 not in str(row)  # holds today: refused, fast, not expanded
    assert row["reason"] == "forbidden_dtd"  # fails today: xml_syntax_error (entity amplification)
