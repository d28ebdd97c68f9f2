#!/usr/bin/env python
"""Fuzz pepm's TEI reader: generated and mutated files through each dialect, read exactly as corpus
extraction reads them (`corpus.read_batches`: one file -> documents and rejects, and one status row
that says parsed, or failed with a reason). See docs/fuzzing.md.

    python scripts/fuzz_tei.py --inputs 100000 --seed 0                 # the long run
    python scripts/fuzz_tei.py --inputs 2000 --dialect mpt --json out.json
    python scripts/fuzz_tei.py --seed 0 --index 4711                    # rebuild and run one input
    python scripts/fuzz_tei.py --replay reports/fuzz_tei/bugs/x.xml --dialect standard

Each input is built from a valid base (the test fixtures' generators, or excerpts and whole files
of the real corpora under --corpus-root) by one strategy: the base as is, truncation, byte flips,
insertions, deletions, splices, structural edits, DTD / entity tricks, XInclude, deep nesting,
re-encodings, degenerate files, or several mutations stacked. Input `i` of seed `s` is always the
same bytes (given the same corpus files), so `--seed s --index i` rebuilds it.

Outcomes: `parsed` (a status row `parsed`, documents out), `rejected` (a status row `failed` with a
known reason and a detail), or `bug`: an exception out of the reader, a broken invariant of the
status row / tables, a parse slower than --slow seconds, a worker that hangs (--timeout) or dies, a
peak RSS above --memory-mb, secret file content or an entity expansion in the output, an outcome
that contradicts what the input must give (a DTD not refused, a truncation accepted, a re-encoding
or an inert XInclude that changes the documents, ...), or two reads of one file disagreeing: whole
and streaming (as a file above WHOLE_FILE_MAX is read), compiled and pure-Python column walkers.
A rejection under a less precise reason than expected is a finding, not a bug. Bugs are saved
under --out/bugs with a .json beside each input.
"""

from __future__ import annotations

import argparse
import bisect
import bz2
import gzip
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the fixtures' generators live in pepm_assets_tests
    sys.path.insert(0, str(REPO))

from lxml import etree  # noqa: E402

TEI_NS = "http://www.tei-c.org/ns/1.0"
KNOWN_REASONS = frozenset({"empty_file", "forbidden_dtd", "truncated_xml", "xml_syntax_error", "no_documents", "unreadable"})
SYNTAX_REASONS = frozenset({"truncated_xml", "xml_syntax_error"})
TRUNCATION_REASONS = frozenset({"truncated_xml", "xml_syntax_error", "empty_file"})
SECRET_MARK = "PEPM-FUZZ-SECRET-q8Zr"  # the content of the secret files the payloads point at
PASSWD_MARK = "root:x:0:0"
LAUGH = "Lq9x"  # the billion-laughs entity value: LAUGH*3 in an output means an entity was expanded
STREAM_SHARE = 0.25  # inputs read streaming (as a file above WHOLE_FILE_MAX is), the rest whole
MAX_SAVED_PER_KIND = 50
MAX_INPUT_BYTES = 16 * 1024 * 1024  # a generated input above this is replaced by its base (variant +oversized)
STACK_STOP_BYTES = 2 * 1024 * 1024  # stacked mutations stop growing an input past this
OK_EXIT, BUG_EXIT = 0, 1
KNOWN_ISSUES = {  # bugs this fuzzer found in the reader, reported and not fixed yet (docs/fuzzing.md)
    "stream_utf32": "a UTF-32 file is read whole but refused streaming ('Start tag expected')",
    "stream_prune_wide": "streaming, freeing a read document of 2 x 10^5 child elements still referenced takes seconds (lxml moves the subtree to a new document)",
}


def known_issue(reason: str, mode: str, variant: str, detail: str) -> str | None:
    """The KNOWN_ISSUES entry a bug is an instance of, from its kind and detail; None for a new one."""
    if reason == "differential:mode" and "Start tag expected" in detail and "whole: parsed" in detail:
        return "stream_utf32"
    if reason == "slow" and mode == "stream" and "wide_text" in variant:
        return "stream_prune_wide"
    return None


# --- targets: a dialect and its options, as configs/common/corpora.yml sets them -----------------


@dataclass(frozen=True)
class Target:
    name: str
    family: str  # what --dialect selects
    dialect: str  # registry name (dialects/__init__.py)
    options: dict
    corpus: str  # its real corpus: <corpus-root>/<corpus>
    xpath: str  # its document elements (real excerpts)
    doc_pattern: bytes  # a whole document element in the bytes of a base
    text_close: bytes  # closing tag of the element holding a document's text
    text_open: bytes
    stem: str  # the file name the input is written as
    prune: tuple[str, ...]  # local names the dialect has the reader prune while streaming (safe_iterparse)


DEBATES = {"element": "u", "speaker_attribute": "who", "text_element": "seg"}
AMENDMENTS = {"element": "div", "type": "amendment", "speaker_attribute": "resp", "text_element": "p", "text_type": "expose"}
TARGETS = (
    Target("mpt", "mpt", "mpt", {}, "mpt", "//tei:sp", rb"<sp\b.*?</sp>", b"</p>", b"<p>", "20130101", ("sp",)),
    Target(
        "standard:debates",
        "standard",
        "tei",
        DEBATES,
        "an_debats",
        "//tei:u",
        rb"<u\b.*?</u>",
        b"</seg>",
        b"<seg>",
        "an_fuzz",
        ("person", "org", "u"),
    ),
    Target(
        "standard:amendments",
        "standard",
        "tei",
        AMENDMENTS,
        "an_amendements",
        "//tei:div[@type='amendment']",
        rb'<div type="amendment".*?</div>',
        b"</p>",
        b'<p type="expose">',
        "bill_fuzz",
        ("person", "org", "div"),
    ),
)
FAMILIES = ("mpt", "standard")


def select_targets(dialect: str) -> list[Target]:
    """--dialect: all, a family (mpt, standard) or one target (standard:debates)."""
    chosen = [t for t in TARGETS if dialect in ("all", t.family, t.name)]
    if not chosen:
        raise SystemExit(f"--dialect {dialect!r}: expected all, {', '.join(FAMILIES)} or one of {', '.join(t.name for t in TARGETS)}")
    return chosen


# --- bases: valid files to mutate ------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    key: str
    data: bytes
    origin: str  # generated | real_excerpt | real_file


def amendment_bill(n: int, seed: int) -> str:
    """A standard-TEI bill of `n` amendments (the fixtures have no amendments generator)."""
    from pepm_assets_tests.fixtures import AN_PERSONS, LEFT_WORDS, RIGHT_WORDS

    rng = random.Random(seed)
    persons = "".join(
        f'<person xml:id="{pid}"><persName>{pid.replace("_", " ")}</persName><affiliation role="member" ref="#grp.{grp}"/></person>\n'
        for pid, grp, _ in AN_PERSONS
    )
    orgs = "".join(f'<org xml:id="grp.{g}"><orgName>{g}</orgName></org>\n' for g in sorted({g for _, g, _ in AN_PERSONS}))
    parts = []
    for i in range(1, n + 1):
        pid, _, wing = AN_PERSONS[i % len(AN_PERSONS)]
        words = LEFT_WORDS if wing == "left" else RIGHT_WORDS
        expose = " " if i % 5 == 0 else "Exposé : " + " ".join(rng.choice(words) for _ in range(10)) + "."
        parts.append(
            f'<div type="amendment" xml:id="a{seed}_{i}" n="{i}" resp="#{pid}"><head>Amendement n° {i}<date when="2025-01-{10 + i % 18}"/></head>'
            f'<p type="dispositif">Supprimer l’alinéa {i}.</p><p type="expose">{expose}</p></div>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:lang="fr"><teiHeader>'
        f"<profileDesc><particDesc><listPerson>\n{persons}</listPerson><listOrg>\n{orgs}</listOrg></particDesc></profileDesc></teiHeader>\n"
        f'<text><body><div type="dossier"><head>Projet de loi {seed}</head>\n' + "\n".join(parts) + "\n</div></body></text></TEI>\n"
    )


def generated_bases(target: Target, count: int = 10) -> list[Base]:
    from pepm_assets_tests.fixtures import an_month, mpt_sitting

    out = []
    for k in range(count):
        if target.family == "mpt":
            text = mpt_sitting(f"201301{k + 1:02d}", 1 + k % 3, seed=k)
        elif target.name == "standard:debates":
            text = an_month(1 + k % 3, seed=k)
        else:
            text = amendment_bill(3 + 4 * (k % 3), seed=k)
        out.append(Base(f"generated:{k}", text.encode(), "generated"))
    return out


def real_bases(target: Target, folder: Path, rng: random.Random, per_file: int) -> tuple[list[Base], list[Base]]:
    """(excerpts: each real file cut down to a window of 1-12 consecutive documents with its header;
    the whole files). Empty when the folder is absent."""
    excerpts: list[Base] = []
    whole: list[Base] = []
    for path in sorted(folder.glob("*.xml")) if folder.is_dir() else []:
        data = path.read_bytes()
        whole.append(Base(f"file:{path.name}", data, "real_file"))
        try:
            root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError:
            continue
        docs = root.xpath(target.xpath, namespaces={"tei": TEI_NS})
        for k in range(per_file if docs else 0):
            size = rng.randint(1, 12)
            keep = set(range(start := rng.randrange(max(1, len(docs) - size + 1)), start + size))
            removed = []
            for i in reversed(range(len(docs))):
                if i not in keep:
                    parent = docs[i].getparent()
                    removed.append((parent, parent.index(docs[i]), docs[i]))
                    parent.remove(docs[i])
            excerpts.append(
                Base(f"excerpt:{path.name}#{k}", etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"), "real_excerpt")
            )
            for parent, index, doc in reversed(removed):
                parent.insert(index, doc)
    return excerpts, whole


def build_bases(targets: Iterable[Target], corpus_root: Path | None, seed: int, per_file: int = 4) -> dict[str, dict[str, list[Base]]]:
    """target name -> origin -> bases."""
    bases: dict[str, dict[str, list[Base]]] = {}
    for target in targets:
        excerpts, whole = (
            real_bases(target, corpus_root / target.corpus, random.Random(f"{seed}:{target.name}"), per_file) if corpus_root else ([], [])
        )
        bases[target.name] = {"generated": generated_bases(target), "real_excerpt": excerpts, "real_file": whole}
    return bases


# --- inputs ------------------------------------------------------------------------------------------


@dataclass
class FuzzInput:
    index: int
    target: str
    strategy: str
    variant: str
    mode: str  # whole | stream
    base_key: str
    origin: str
    data: bytes
    expect: Any = None  # None, "same", ("prefix", reasons, cut), ("reject", reasons), ("total", n_extra)


TAG = re.compile(rb"<[^<>]{0,2000}>")
ENTITY_REF = re.compile(r"&[^;\s]{0,40};")
DECL = re.compile(rb"^(\xef\xbb\xbf)?<\?xml[^>]*\?>")
INTERESTING = (
    b"<", b">", b"&", b"&amp;", b"&#0;", b"&#x1F600;", b"&#xD800;", b"&#x110000;", b"]]>", b"<![CDATA[", b"<!--", b"-->",
    b"<?pi x?>", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xc3", b"\r", b"\r\n", b"\t", b"\xe2\x80\xa8", b"</TEI>", b"<TEI>",
    b"<u>", b"</u>", b"<sp>", b"</sp>", b'xmlns="', b' xml:id="x"', b'"', b"'", b"=", b"&lt;", b"\xed\xa0\x80", b"<!DOCTYPE x>",
    b"<!ENTITY e 'x'>", b"</", b"/>", b"<seg>", b"</seg>", b"<mpt:metadata>", b"&#10;", b" ", b"\xc2\xa0", b"\xf0\x9f\x98\x80",
)  # fmt: skip
BAD_UTF8 = (b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\xfe")
ODD_CHARS = ("\u00a0", "\u202f", "\u200b", "\u202e", "\u2028", "\U0001f600", "\u0085", "\ufeff", "é", "\u0301", "\U00010000", "\x7f")
ODD_ATTRS = ("", "#", "#" + "x" * 10000, "é\u202e", "&amp;&lt;", "&#x1F600;", "&#0;", "a\tb\nc", "#" * 300, '"', "#le_président", "  ")
XI = 'xmlns:xi="http://www.w3.org/2001/XInclude"'


class Maker:
    """Builds input `index` of `seed` for a target: deterministic, so a parent can rebuild the input
    a dead or hung worker was reading."""

    def __init__(self, bases: dict[str, dict[str, list[Base]]], workdir: Path, heavy: bool = True) -> None:
        self.bases = bases
        self.heavy = heavy  # False: without 2e5 siblings (seconds streaming), a 4 MB text, 1e6 open tags (a CI budget)
        self.secret = workdir / "secret.txt"  # what XXE / XInclude payloads point at
        self.secret_xml = workdir / "secret.xml"
        self.secret_dtd = workdir / "secret.dtd"
        self.strategies: dict[str, tuple[float, Callable]] = {
            "valid": (6, self.valid),
            "truncate": (12, self.truncate),
            "bitflip": (10, self.bitflip),
            "insert": (8, self.insert),
            "delete": (7, self.delete),
            "splice": (5, self.splice),
            "structure": (14, self.structure),
            "entity_dtd": (9, self.entity_dtd),
            "xinclude": (5, self.xinclude),
            "nesting": (5, self.nesting),
            "encoding": (11, self.encoding),
            "degenerate": (3, self.degenerate),
            "stacked": (8, self.stacked),
        }

    def write_secrets(self) -> None:
        self.secret.write_text(SECRET_MARK + "\n", encoding="utf-8")
        self.secret_xml.write_text(f"<secret>{SECRET_MARK}</secret>\n", encoding="utf-8")
        self.secret_dtd.write_text(f'<!ENTITY leak "{SECRET_MARK}">\n', encoding="utf-8")

    def make(self, seed: int, index: int, targets: list[Target]) -> FuzzInput:
        rng = random.Random(f"{seed}:{index}")
        return self.make_with(rng, targets[index % len(targets)], index)

    def make_with(self, rng: random.Random, target: Target, index: int = -1, strategy: str | None = None) -> FuzzInput:
        base = self.pick_base(rng, target)
        names = list(self.strategies)
        strategy = strategy or rng.choices(names, weights=[self.strategies[n][0] for n in names])[0]
        try:
            data, variant, expect = self.strategies[strategy][1](rng, target, base)
        except Exception as exc:  # a generator bug, not the reader's: counted apart (variant generator_error:...)
            data, variant, expect = base.data, f"generator_error:{type(exc).__name__}", None
        if len(data) > MAX_INPUT_BYTES:
            data, variant, expect = base.data, f"{variant}+oversized", "same"
        mode = "stream" if rng.random() < STREAM_SHARE else "whole"
        return FuzzInput(index, target.name, strategy, variant, mode, base.key, base.origin, data, expect)

    def pick_base(self, rng: random.Random, target: Target) -> Base:
        pools = self.bases[target.name]
        roll = rng.random()
        if roll < 0.01 and pools["real_file"]:
            return rng.choice(pools["real_file"])
        if roll < 0.45 and pools["real_excerpt"]:
            return rng.choice(pools["real_excerpt"])
        return rng.choice(pools["generated"])

    # each strategy: (rng, target, base) -> (bytes, variant, expectation)

    def valid(self, rng, target, base):
        return base.data, "as_is", "same"

    def truncate(self, rng, target, base):
        data = base.data
        how = rng.choice(("uniform", "tag", "end", "start", "multibyte"))
        if how == "tag" and (marks := [m.start() for m in re.finditer(rb"[<>]", data)]):
            cut = min(len(data), max(0, rng.choice(marks) + rng.randint(-1, 1)))
        elif how == "end":
            cut = max(0, len(data) - rng.randint(1, 64))
        elif how == "start":
            cut = rng.randint(0, min(len(data), 200))
        elif how == "multibyte" and (lead := [m.start() for m in re.finditer(rb"[\xc0-\xf4]", data)]):
            cut = rng.choice(lead) + 1  # inside a UTF-8 sequence
        else:
            how, cut = "uniform", rng.randint(0, len(data))
        root_end = data.rfind(b"</TEI>") + len(b"</TEI>")
        return data[:cut], how, (("prefix", TRUNCATION_REASONS, cut) if cut < root_end else "same")

    def bitflip(self, rng, target, base):
        data = bytearray(base.data)
        for _ in range(rng.choice((1, 1, 1, 2, 3, 5, 8, 16))):
            i = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.5:
                data[i] ^= 1 << rng.randrange(8)
            elif kind < 0.75:
                data[i] = rng.randrange(256)
            else:
                data[i] = rng.choice(b"\x00\xff<>&\"'\x80\xc3/=;")
        return bytes(data), "bits", None

    def insert(self, rng, target, base):
        data = base.data
        for _ in range(rng.randint(1, 3)):
            roll = rng.random()
            if roll < 0.6:
                token = rng.choice(INTERESTING)
            elif roll < 0.8:
                token = rng.randbytes(rng.randint(1, 16))
            else:
                token = "".join(rng.choice(ODD_CHARS + ("a", " ", "<", "&")) for _ in range(rng.randint(1, 8))).encode()
            i = rng.randint(0, len(data))
            data = data[:i] + token * rng.choice((1, 1, 1, 2, 100)) + data[i:]
        return data, "tokens", None

    def delete(self, rng, target, base):
        data = base.data
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.4 and (tags := list(TAG.finditer(data))):
                tag = rng.choice(tags)
                data = data[: tag.start()] + data[tag.end() :]
            elif data:
                i = rng.randrange(len(data))
                data = data[:i] + data[i + rng.randint(1, 64) :]
        return data, "spans", None

    def splice(self, rng, target, base):
        other_target = rng.choice(list(self.bases))
        other = self.pick_base(rng, next(t for t in TARGETS if t.name == other_target))
        a, b = rng.randint(0, len(base.data)), rng.randint(0, len(other.data))
        return base.data[:a] + other.data[b:], "same_target" if other_target == target.name else "cross_target", None

    def structure(self, rng, target, base):
        data = base.data
        text = data.decode("utf-8")
        docs = list(re.finditer(target.doc_pattern, data, re.DOTALL))
        tags = list(TAG.finditer(data))
        variant = rng.choice(
            (
                "drop_tag", "dup_tag", "swap_tags", "dup_document", "nest_document", "nested_container", "many_documents", "drop_tei_namespace",
                "other_tei_namespace", "strip_text_elements", "empty_texts", "attr_tamper", "duplicate_attr", "char_refs",
                "invalid_char_ref", "cdata", "comment_in_text", "pi_in_text", "crlf", "lone_cr", "odd_unicode",
                "forbidden_char", "undeclared_prefix", "many_attributes", "long_name", "huge_text", "many_namespaces",
            )
        )  # fmt: skip
        if variant in ("drop_tag", "dup_tag") and tags:
            tag = rng.choice(tags)
            return data[: tag.start()] + (tag.group() * 2 if variant == "dup_tag" else b"") + data[tag.end() :], variant, None
        if variant == "swap_tags" and len(tags) > 1:
            x, y = sorted(rng.sample(tags, 2), key=lambda m: m.start())
            return data[: x.start()] + y.group() + data[x.end() : y.start()] + x.group() + data[y.end() :], variant, None
        if variant in ("dup_document", "nest_document", "many_documents") and docs:
            doc = rng.choice(docs)
            if variant == "dup_document":  # the same document twice (the same xml:id, if any): one more document
                return data[: doc.end()] + b"\n" + doc.group() + data[doc.end() :], variant, ("total", 1)
            if variant == "many_documents":  # crosses the dialects' 4096-document chunks
                copies = min(rng.choice((10, 4096, 5000)), max(1, 4_000_000 // len(doc.group())))  # at most ~4 MB more
                return data[: doc.end()] + (b"\n" + doc.group()) * copies + data[doc.end() :], variant, ("total", copies)
            host = rng.choice(docs)
            at = data.find(target.text_close, host.start(), host.end())
            at = at if at >= 0 else host.end()
            return data[:at] + doc.group() + data[at:], variant, "modes"
        if variant == "nested_container" and docs:  # an element the streaming read prunes, inside a document, after its text
            doc = rng.choice(docs)
            inner = {
                "sp": b'<sp who="X"><p>x</p></sp>',
                "u": b'<u who="#x"><seg>x</seg></u>',
                "div": b'<div type="annexe"><p>annexe</p></div>',
            }
            element = inner.get(rng.choice(target.prune), b'<person xml:id="px"><persName>X</persName></person>')
            at = doc.end() - len(doc.group().rsplit(b"</", 1)[-1]) - 2
            return data[:at] + element + data[at:], variant, "modes"
        if variant == "drop_tei_namespace":
            return data.replace(f' xmlns="{TEI_NS}"'.encode(), b""), variant, ("reject", frozenset({"no_documents"}))
        if variant == "other_tei_namespace":
            return data.replace(TEI_NS.encode(), b"http://www.tei-c.org/ns/2.0"), variant, ("reject", frozenset({"no_documents"}))
        if variant == "strip_text_elements" and docs:  # no text left in any document: every one rejected
            if target.family == "mpt":
                stripped = re.sub(rb"</?mpt:metadata\b[^>]*>", b"", data)
            elif target.name == "standard:debates":
                stripped = re.sub(rb"</?seg\b[^>]*>", b"", data)
            else:
                stripped = data.replace(b'type="expose"', b'type="other"')
            return stripped, variant, ("reject", frozenset({"no_documents"}))
        if variant == "empty_texts" and docs:
            filler = rng.choice((b"", b" ", b" . ", b"\xe2\x80\xa6", b" \xe2\x80\x94 !? ", b"\xc2\xa0"))
            pattern = re.escape(target.text_open) + rb"[^<]*" + re.escape(target.text_close)
            return (
                re.sub(pattern, lambda m: target.text_open + filler + target.text_close if rng.random() < 0.7 else m.group(), data),
                variant,
                None,
            )
        if variant == "attr_tamper" and (attrs := list(re.finditer(rb'(\s[\w:]+=")([^"<>]*)(")', data))):
            attr = rng.choice(attrs)
            return data[: attr.start(2)] + rng.choice(ODD_ATTRS).encode() + data[attr.end(2) :], variant, None
        if variant == "duplicate_attr" and (attrs := list(re.finditer(rb'\s[\w:]+="[^"<>]*"', data))):
            attr = rng.choice(attrs)
            return data[: attr.end()] + attr.group() + data[attr.end() :], variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "char_refs" and "<!--" not in text and "CDATA" not in text:  # same documents
            return self._char_refs(rng, data), variant, "same"
        if variant == "invalid_char_ref" and docs:
            ref = rng.choice((b"&#0;", b"&#xD800;", b"&#x110000;", b"&#xFFFE;", b"&#1;", b"&#x;", b"&#99999999999;"))
            return self._in_text(rng, target, data, docs, ref), variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "cdata":
            spans = [m for m in re.finditer(rb">([^<>&\]]+)<", data) if m.group(1).strip()]
            if spans:
                m = rng.choice(spans)
                return data[: m.start(1)] + b"<![CDATA[" + m.group(1) + b"]]>" + data[m.end(1) :], variant, "same"
        if variant in ("comment_in_text", "pi_in_text"):  # removed by the parser: the same documents
            spans = [m for m in re.finditer(rb">([^<>&]*[A-Za-z][^<>&]*)<", data)]
            if spans:
                m = rng.choice(spans)
                letters = [i for i in range(m.start(1), m.end(1)) if data[i : i + 1].isalpha()]
                i = rng.choice(letters)
                junk = b"<!-- a - comment -->" if variant == "comment_in_text" else b"<?fuzz pi?>"
                return data[:i] + junk + data[i:], variant, "same"
        if variant == "crlf":
            return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), variant, "same"
        if variant == "lone_cr":
            return data.replace(b"\n", b"\r"), variant, None
        if variant == "odd_unicode" and docs:
            chars = "".join(rng.choice(ODD_CHARS) for _ in range(rng.randint(1, 6)))
            return self._in_text(rng, target, data, docs, chars.encode()), variant, None
        if variant == "forbidden_char" and docs:
            char = rng.choice(("\x01", "\x08", "\x1f", "\ufffe", "\uffff"))
            return self._in_text(rng, target, data, docs, char.encode()), variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "undeclared_prefix" and docs:
            return self._in_text(rng, target, data, docs, b"<zz:w>mot</zz:w>"), variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "many_attributes" and docs:
            doc = rng.choice(docs)
            at = data.index(b">", doc.start())
            extra = b"".join(b' a%d="%d"' % (i, i) for i in range(rng.choice((100, 10000))))
            return data[:at] + extra + data[at:], variant, None
        if variant == "long_name" and docs:
            name = b"n" * rng.choice((1000, 49999, 60000, 200000))
            return self._in_text(rng, target, data, docs, b"<" + name + b">x</" + name + b">"), variant, None
        if variant == "huge_text" and docs:
            words = (b"mot " * rng.choice((1000, 250_000, 1_000_000 if self.heavy else 250_000)))[:-1]
            return self._in_text(rng, target, data, docs, words), variant, None
        if variant == "many_namespaces":
            at = data.find(b"<TEI") + 4
            extra = b"".join(b' xmlns:n%d="urn:fuzz:%d"' % (i, i) for i in range(rng.choice((10, 10000))))
            return data[:at] + extra + data[at:], variant, "same"
        return base.data, "as_is", "same"  # the variant did not apply to this base

    def _char_refs(self, rng, data: bytes) -> bytes:
        """Letters of text nodes written as numeric character references (not whitespace, which
        would move line numbers, nor inside an entity reference)."""
        out = []
        pos = 0
        for tag in TAG.finditer(data):
            out.append(self._refs_in(rng, data[pos : tag.start()].decode("utf-8")))
            out.append(tag.group())
            pos = tag.end()
        out.append(data[pos:])
        return b"".join(out)

    def _refs_in(self, rng, text: str) -> bytes:
        protected = {i for m in ENTITY_REF.finditer(text) for i in range(m.start(), m.end())}
        chars = [
            (f"&#{ord(c)};" if rng.random() < 0.5 else f"&#x{ord(c):X};")
            if c.isalnum() and i not in protected and rng.random() < 0.3
            else c
            for i, c in enumerate(text)
        ]
        return "".join(chars).encode()

    def _in_text(self, rng, target, data: bytes, docs: list, payload: bytes) -> bytes:
        """`payload` inserted at the end of a document's text element (before its closing tag)."""
        doc = rng.choice(docs)
        at = data.find(target.text_close, doc.start(), doc.end())
        at = at if at >= 0 else doc.end()
        return data[:at] + payload + data[at:]

    @staticmethod
    def _after_decl(data: bytes) -> int:
        m = DECL.match(data)
        return m.end() if m else 0

    def entity_dtd(self, rng, target, base):
        """A DTD payload at one of several places before the root (plain, or where a prolog scan could
        miss it), or one of the entity tricks that need no DTD."""
        data = base.data
        docs = list(re.finditer(target.doc_pattern, data, re.DOTALL))
        laughs = f'<!ENTITY lol "{LAUGH}">' + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
        )
        payloads = {  # name -> (DOCTYPE, reference put in a document's text; None: an attribute value)
            "billion_laughs": (f"<!DOCTYPE TEI [{laughs}]>", "&lol9;"),
            "laughs_unreferenced": (f"<!DOCTYPE TEI [{laughs}]>", ""),
            "quadratic_blowup": (f'<!DOCTYPE TEI [<!ENTITY a "{"x" * 50000}">]>', "&a;" * 10000),
            "xxe_secret": (f'<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "file://{self.secret}">]>', "&xxe;"),
            "xxe_passwd": ('<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', "&xxe;"),
            "xxe_relative": ('<!DOCTYPE TEI [<!ENTITY xxe SYSTEM "../../../../../../etc/passwd">]>', "&xxe;"),
            "xxe_parameter": (f'<!DOCTYPE TEI [<!ENTITY % p SYSTEM "file://{self.secret_dtd}"> %p;]>', "&leak;"),
            "external_subset": (f'<!DOCTYPE TEI SYSTEM "file://{self.secret_dtd}">', "&leak;"),
            "public_dtd": ('<!DOCTYPE TEI PUBLIC "-//TEI P5//DTD Main//EN" "http://www.tei-c.org/tei_all.dtd">', ""),
            "network_entity": ('<!DOCTYPE TEI [<!ENTITY net SYSTEM "http://127.0.0.1:9/x.xml">]>', "&net;"),
            "entity_in_attribute": ('<!DOCTYPE TEI [<!ENTITY a "#injected">]>', None),
            "attlist_default": ('<!DOCTYPE TEI [<!ATTLIST u who CDATA "#injected">]>', ""),
        }
        placements = {  # where the DOCTYPE goes: after the XML declaration, behind something
            "plain": "",
            "after_comment_lt": "<!-- <a> -->",  # a `<letter` before it: where a prolog scan may stop
            "after_pi_lt": "<?fuzz <a?>",
            "after_70k_spaces": " " * 70000,  # beyond the reader's 64 KiB prolog scan
            "after_70k_comment": f"<!--{'-x' * 35000}-->",
            "utf16": "",  # the whole file re-encoded: a byte scan for "<!DOCTYPE" finds nothing
        }
        tricks = {  # no DTD to refuse: a variant -> (text put before the root, reference, expectation)
            "lowercase_doctype": ("<!doctype TEI>", "", frozenset({"forbidden_dtd", "xml_syntax_error"})),
            "entity_without_doctype": ('<!ENTITY x "y">', "&x;", frozenset({"forbidden_dtd", "xml_syntax_error"})),
            "doctype_in_body": ("", "<!DOCTYPE TEI [<!ENTITY x 'y'>]>", frozenset({"xml_syntax_error"})),
            "undefined_entity": ("", "&xxe;", frozenset({"xml_syntax_error"})),
        }
        if rng.random() < 0.15:
            variant = rng.choice(list(tricks))
            prolog, reference, reasons = tricks[variant]
        else:
            name, placement = rng.choice(list(payloads)), rng.choice(list(placements))
            variant, reasons = f"{name}@{placement}", frozenset({"forbidden_dtd"})
            doctype, reference = payloads[name]
            prolog = placements[placement] + doctype
        if reference is None:  # the entity in an attribute value
            m = re.search(rb'\s(who|resp)="[^"]*"', data)
            data = data[: m.start()] + b' who="&a;"' + data[m.end() :] if m else data
            reference = ""
        if reference and docs:
            data = self._in_text(rng, target, data, docs, reference.encode())
        at = self._after_decl(data)
        data = data[:at] + prolog.encode() + data[at:]
        if variant.endswith("@utf16"):
            body = DECL.sub(b"", data).decode("utf-8")
            data = ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode(rng.choice(("utf-16", "utf-16-le", "utf-16-be")))
        return data, variant, ("reject", reasons)

    def xinclude(self, rng, target, base):
        data = base.data
        docs = list(re.finditer(target.doc_pattern, data, re.DOTALL))
        variant = rng.choice(("text_secret", "xml_secret", "passwd", "xpointer_self", "fallback", "replaces_document", "xml_base"))
        element = {
            "text_secret": f'<xi:include {XI} href="file://{self.secret}" parse="text"/>',
            "xml_secret": f'<xi:include {XI} href="file://{self.secret_xml}" parse="xml"/>',
            "passwd": f'<xi:include {XI} href="/etc/passwd" parse="text"/>',
            "xpointer_self": f'<xi:include {XI} href="" xpointer="xpointer(/)"/>',
            "fallback": f'<xi:include {XI} href="missing.xml"><xi:fallback>repli</xi:fallback></xi:include>',
            "xml_base": f'<ptr xml:base="file:///etc/" target="passwd"/><xi:include {XI} xml:base="file:///etc/" href="passwd" parse="text"/>',
        }
        if not docs:
            return data, "no_document", None
        if variant == "replaces_document":
            doc = rng.choice(docs)
            inc = f'<xi:include {XI} href="file://{self.secret_xml}" parse="xml"/>'.encode()
            return data[: doc.start()] + inc + data[doc.end() :], variant, None
        # an XInclude element left unprocessed has no text: the documents are the same
        return self._in_text(rng, target, data, docs, element[variant].encode()), variant, (None if variant == "fallback" else "same")

    def nesting(self, rng, target, base):
        data = base.data
        docs = list(re.finditer(target.doc_pattern, data, re.DOTALL))
        if not docs:
            return data, "no_document", None
        variant = rng.choice(("deep_1e5_body", "deep_1e5_text", "deep_1e5_unclosed", "deep_1e6_unclosed", "deep_200_text", "wide_text"))
        doc = rng.choice(docs)
        syntax = ("reject", frozenset({"xml_syntax_error", "truncated_xml"}))
        if variant == "deep_1e5_body":  # libxml2 refuses depth > 256 without XML_PARSE_HUGE (huge_tree=False)
            return data[: doc.start()] + b"<div>" * 100_000 + b"</div>" * 100_000 + data[doc.start() :], variant, syntax
        if variant == "deep_1e5_text":
            return self._in_text(rng, target, data, [doc], b"<hi>" * 100_000 + b"mot" + b"</hi>" * 100_000), variant, syntax
        if variant == "deep_1e5_unclosed":
            return data[: doc.start()] + b"<div>" * 100_000, variant, syntax
        if variant == "deep_1e6_unclosed":
            return data[: doc.start()] + b"<a>" * (1_000_000 if self.heavy else 100_000), variant, syntax
        if variant == "deep_200_text":  # under the limit, no text: the same documents
            return self._in_text(rng, target, data, [doc], b"<hi>" * 200 + b"</hi>" * 200), variant, "same"
        # many empty siblings in one document: the same documents. 2 x 10^5 is rare: pruning it while
        # streaming takes seconds (lxml's remove() is quadratic in a namespaced subtree's size)
        wide = rng.choices((1000, 10_000, 30_000, 200_000 if self.heavy else 30_000), weights=(30, 40, 25, 5))[0]
        return self._in_text(rng, target, data, [doc], b"<lb/>" * wide), f"{variant}_{wide}", "same"

    def encoding(self, rng, target, base):
        data = base.data
        text = DECL.sub(b"", data).decode("utf-8")
        variant = rng.choice(
            (
                "utf8_bom", "utf16_bom", "utf16_nobom_decl", "utf16_nobom_nodecl", "utf16_bom_decl_utf8", "utf16_odd_length",
                "utf32_bom", "latin1_declared_utf8", "latin1_declared_latin1", "cp1252_declared", "utf8_declared_utf16",
                "invalid_utf8", "unknown_encoding", "ebcdic", "nul_padding", "bom_then_latin1",
            )
        )  # fmt: skip
        decl = '<?xml version="1.0" encoding="{}"?>'
        if variant == "utf8_bom":
            return b"\xef\xbb\xbf" + data, variant, "same"
        if variant == "utf16_bom":
            return ("\ufeff" + decl.format("UTF-16") + text).encode(rng.choice(("utf-16-le", "utf-16-be"))), variant, "same"
        if variant == "utf16_nobom_decl":
            return (decl.format("UTF-16") + text).encode(rng.choice(("utf-16-le", "utf-16-be"))), variant, "same"
        if variant == "utf16_nobom_nodecl":
            return text.lstrip().encode(rng.choice(("utf-16-le", "utf-16-be"))), variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "utf16_bom_decl_utf8":
            return ("\ufeff" + decl.format("UTF-8") + text).encode("utf-16-le"), variant, None
        if variant == "utf16_odd_length":
            return ("\ufeff" + decl.format("UTF-16") + text).encode("utf-16-le")[:-1], variant, None
        if variant == "utf32_bom":
            return ("\ufeff" + decl.format("UTF-32") + text).encode("utf-32-le"), variant, None
        if variant == "latin1_declared_utf8":
            raw = (decl.format("UTF-8") + text).encode("latin-1", "xmlcharrefreplace")
            return raw, variant, (("reject", frozenset({"xml_syntax_error"})) if re.search(rb"[\x80-\xff]", raw) else "same")
        if variant == "latin1_declared_latin1":
            return (decl.format("ISO-8859-1") + text).encode("latin-1", "xmlcharrefreplace"), variant, "same"
        if variant == "cp1252_declared":
            return (decl.format("windows-1252") + text).encode("cp1252", "xmlcharrefreplace"), variant, "same"
        if variant == "utf8_declared_utf16":
            return (decl.format("UTF-16") + text).encode(), variant, None
        if variant == "invalid_utf8":
            start = self._after_decl(data)
            for _ in range(rng.randint(1, 3)):
                i = rng.randint(start, len(data))
                data = data[:i] + rng.choice(BAD_UTF8) + data[i:]
            return data, variant, ("reject", frozenset({"xml_syntax_error", "truncated_xml"}))
        if variant == "unknown_encoding":
            return (decl.format(rng.choice(("x-fuzz", "UTF-7", "utf-9", "", "ISO-8859-99"))) + text).encode(), variant, None
        if variant == "ebcdic":
            return (decl.format("IBM500") + text).encode("cp500", "xmlcharrefreplace"), variant, None
        if variant == "nul_padding":
            return data + b"\x00" * rng.randint(1, 4096), variant, ("reject", frozenset({"xml_syntax_error"}))
        return b"\xef\xbb\xbf" + (decl.format("UTF-8") + text).encode("latin-1", "xmlcharrefreplace"), variant, None

    def degenerate(self, rng, target, base):
        variant = rng.choice(
            (
                "empty",
                "whitespace",
                "bom_only",
                "nuls",
                "random_bytes",
                "random_text",
                "lt",
                "decl_only",
                "html",
                "json",
                "gzip",
                "bz2",
                "root_only",
            )
        )
        if variant == "empty":
            return b"", variant, ("reject", frozenset({"empty_file"}))
        if variant == "whitespace":
            return rng.choice((b" ", b"\n\n\t ", b"\r\n" * 1000)), variant, ("reject", frozenset({"empty_file"}))
        if variant == "gzip":  # libxml2 inflates a gzip file it is given by name: the reader must not (a zip bomb)
            return gzip.compress(base.data), variant, ("reject", frozenset({"xml_syntax_error"}))
        if variant == "root_only":
            return f'<TEI xmlns="{TEI_NS}"/>'.encode(), variant, ("reject", frozenset({"no_documents"}))
        return (
            {
                "bom_only": b"\xef\xbb\xbf",
                "nuls": b"\x00" * rng.randint(1, 5000),
                "random_bytes": rng.randbytes(rng.randint(1, 4096)),
                "random_text": "".join(rng.choice("<>/&;= \"'abcTEIu\n") for _ in range(rng.randint(1, 2000))).encode(),
                "lt": b"<",
                "decl_only": b'<?xml version="1.0" encoding="UTF-8"?>\n',
                "html": b"<!DOCTYPE html><html><body><p>Bonjour</p></body></html>",
                "json": b'{"TEI": {"u": "bonjour"}}',
                "bz2": bz2.compress(base.data),
            }[variant],
            variant,
            None,
        )

    def stacked(self, rng, target, base):
        names = ("truncate", "bitflip", "insert", "delete", "splice", "structure", "encoding", "entity_dtd", "xinclude")
        steps = rng.choices(names, k=rng.randint(2, 4))
        data = base.data
        for name in steps:
            if len(data) > STACK_STOP_BYTES:  # each step may add a few MB: several would compound
                break
            if _utf8(data) or name in ("truncate", "bitflip", "insert", "delete", "splice"):
                data = self.strategies[name][1](rng, target, Base(base.key, data, base.origin))[0]
        return data, "+".join(steps), None


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# --- running one input -------------------------------------------------------------------------------


@dataclass
class Parsed:
    files: list[dict]
    docs: Any  # pa.Table
    rejects: list[dict]


@dataclass
class Result:
    index: int
    target: str
    strategy: str
    variant: str
    mode: str
    origin: str
    size: int
    outcome: str  # parsed | rejected | bug
    reason: str  # the reject reason, or the kind of bug
    detail: str = ""
    line: int | None = None
    n_docs: int = 0
    n_rejects: int = 0
    seconds: float = 0.0
    maxrss_kb: int = 0  # the worker's peak RSS so far
    rss_kb: int = 0  # its RSS after this input
    pid: int = 0
    flags: list[str] = field(default_factory=list)  # findings that are not bugs
    note: str = ""  # what the finding is
    lost: int | None = None  # truncations: documents complete before the cut that were not delivered
    data: bytes | None = None  # the input, for a bug only


class Runner:
    """One process's dialects (a corpus folder per target under `workdir`) and the checks."""

    def __init__(self, targets: list[Target], workdir: Path, slow: float = 5.0, memory_mb: int = 1024, differential_rate: float = 0.1):
        from pepm_assets.core.tei.dialects import build

        self.targets = {t.name: t for t in targets}
        # --memory-mb above the RSS this process starts with (a forked worker starts with its parent's)
        self.slow, self.memory_kb, self.differential_rate = slow, memory_mb * 1024 + _current_rss_kb(), differential_rate
        self.dialects = {}
        self.paths = {}
        for t in targets:
            folder = workdir / t.name.replace(":", "_")
            folder.mkdir(parents=True, exist_ok=True)
            if t.family == "mpt":
                (folder / "metadata.csv").write_text(f'"id","seance","date"\n"{t.stem}","Séance fuzz","2013-01-01"\n', encoding="utf-8")
            self.dialects[t.name] = build("fuzz", folder, t.dialect, t.options)
            self.paths[t.name] = folder / f"{t.stem}.xml"
        self._base_cache: dict[tuple[str, str], Parsed | None] = {}

    def parse(self, target: str, data: bytes, mode: str = "whole", walker: str | None = None) -> Parsed:
        """The file read as pepm's corpus extraction reads it."""
        import pyarrow as pa

        from pepm_assets.core import corpus
        from pepm_assets.core.tei import reader, walk

        path = self.paths[target]
        path.write_bytes(data)
        saved = reader.WHOLE_FILE_MAX, walk.IMPLEMENTATION
        reader.WHOLE_FILE_MAX = 0 if mode == "stream" else saved[0]  # stream: as a file above WHOLE_FILE_MAX is read
        walk.IMPLEMENTATION = walker or saved[1]
        try:
            batches = list(corpus.read_batches(self.dialects[target], [path]))
        finally:
            reader.WHOLE_FILE_MAX, walk.IMPLEMENTATION = saved
        tables = [b.docs for b in batches]
        docs = pa.concat_tables(tables) if tables else None
        return Parsed([row for b in batches for row in b.files], docs, [r for b in batches for r in b.rejects])

    def base(self, maker: Maker, inp: FuzzInput) -> Parsed | None:
        key = (inp.target, inp.base_key)
        if key in self._base_cache:
            return self._base_cache[key]
        data = next(b.data for b in maker.bases[inp.target][inp.origin] if b.key == inp.base_key)
        try:
            parsed = self.parse(inp.target, data)
        except Exception:
            parsed = None  # the base itself is a bug: its `valid` inputs report it
        if len(data) < 1_000_000:
            self._base_cache[key] = parsed
        return parsed

    def run(self, inp: FuzzInput, maker: Maker | None = None) -> Result:
        res = Result(inp.index, inp.target, inp.strategy, inp.variant, inp.mode, inp.origin, len(inp.data), "bug", "")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        try:
            parsed = self.parse(inp.target, inp.data, inp.mode)
        except BaseException as exc:  # noqa: BLE001 - everything out of the reader is the finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            res.seconds = time.perf_counter() - started
            res.reason = f"uncaught:{type(exc).__name__}"
            res.detail = "".join(traceback.format_exception(exc))[-4000:]
            return self._finish(res, inp, before)
        res.seconds = time.perf_counter() - started
        problems = self.check(inp, parsed, res)
        if not problems and res.seconds > self.slow:
            problems.append(("slow", f"{res.seconds:.1f} s > --slow {self.slow} s"))
        if not problems and maker is not None:
            problems += self.oracles(inp, parsed, res, maker)
        draw = random.Random(f"differential:{inp.index}")
        if not problems and (draw.random() < self.differential_rate or inp.expect == "modes") and len(inp.data) < 2_000_000:
            problems += self.mode_differential(inp, parsed, res)
        if not problems and draw.random() < self.differential_rate and res.n_docs + res.n_rejects and len(inp.data) < 512_000:
            problems += self.walker_differential(inp, parsed)
        if problems:
            res.outcome, res.reason = "bug", problems[0][0]
            res.detail = "; ".join(f"{k}: {d}" for k, d in problems)[:4000]
        return self._finish(res, inp, before)

    def _finish(self, res: Result, inp: FuzzInput, before: int) -> Result:
        usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        res.maxrss_kb = usage
        res.rss_kb = _current_rss_kb()
        res.pid = os.getpid()
        if usage > self.memory_kb and before <= self.memory_kb and res.outcome != "bug":
            res.outcome, res.reason, res.detail = (
                "bug",
                "memory",
                f"peak RSS {usage // 1024} MiB > --memory-mb + the RSS it started with ({self.memory_kb // 1024} MiB)",
            )
        if res.outcome == "bug":
            res.data = inp.data
        return res

    def check(self, inp: FuzzInput, parsed: Parsed, res: Result) -> list[tuple[str, str]]:
        """The status row and tables every input must give: parsed with documents, or failed with a
        known reason, a detail and the file's name; tables that match the row and are valid Arrow."""
        from pepm_assets.core.tei import reader
        from pepm_assets.core.tei.dialects import schema

        problems: list[tuple[str, str]] = []
        name = self.paths[inp.target].name
        if len(parsed.files) != 1:
            return [("invariant:file_rows", f"{len(parsed.files)} status rows for one file")]
        row = parsed.files[0]
        res.line, res.n_docs, res.n_rejects = row["line"], row["n_docs"], row["n_rejects"]
        if row["source_file"] != name:
            problems.append(("invariant:source_file", f"status row names {row['source_file']!r}, not {name!r}"))
        if row["status"] == "parsed":
            res.outcome, res.reason = "parsed", ""
            if row["reason"] or row["n_docs"] <= 0 or row["line"] is not None:
                problems.append(
                    ("invariant:parsed_row", f"parsed row with reason={row['reason']!r} n_docs={row['n_docs']} line={row['line']}")
                )
        elif row["status"] == "failed":
            res.outcome, res.reason, res.detail = "rejected", row["reason"], str(row["detail"])[:300]
            if row["reason"] not in KNOWN_REASONS:
                problems.append(("invariant:unknown_reason", f"reason {row['reason']!r}"))
            if not isinstance(row["detail"], str) or not row["detail"].strip():
                problems.append(("invariant:no_detail", f"failed ({row['reason']}) without a detail"))
            if row["line"] is not None and (not isinstance(row["line"], int) or row["line"] < 1):
                problems.append(("invariant:line", f"line {row['line']!r}"))
            if row["reason"] in SYNTAX_REASONS and row["line"] is None:
                self._finding(res, "syntax_error_without_line", str(row["detail"]))
        else:
            problems.append(("invariant:status", f"status {row['status']!r}"))
        n = parsed.docs.num_rows if parsed.docs is not None else 0
        if n != row["n_docs"] or len(parsed.rejects) != row["n_rejects"]:
            problems.append(
                ("invariant:counts", f"row says {row['n_docs']} docs / {row['n_rejects']} rejects, tables hold {n} / {len(parsed.rejects)}")
            )
        if parsed.docs is not None:
            dialect = self.dialects[inp.target]
            if parsed.docs.schema != schema(dialect.fields):
                problems.append(("invariant:schema", str(parsed.docs.schema)[:300]))
            try:
                parsed.docs.validate(full=True)
            except Exception as exc:  # the compiled walker writes Arrow buffers itself
                problems.append(("invariant:arrow", f"{type(exc).__name__}: {exc}"))
            else:
                cols = parsed.docs.select(["source_file", "text", "n_tokens"]).to_pydict()
                for source, text, tokens in zip(cols["source_file"], cols["text"], cols["n_tokens"]):
                    if source != name or not reader.has_words(text) or tokens != reader.count_tokens(text):
                        problems.append(("invariant:document", f"source_file={source!r} n_tokens={tokens} text={text[:80]!r}"))
                        break
        for reject in parsed.rejects:
            if reject.get("source_file") != name or not reject.get("reason") or not isinstance(reject.get("source_line"), int):
                problems.append(("invariant:reject", repr(dict(reject))[:300]))
                break
        problems += self._leaks(parsed)
        return problems

    @staticmethod
    def _leaks(parsed: Parsed) -> list[tuple[str, str]]:
        """Secret file content or an expanded entity anywhere in the output."""
        chunks = [str(r) for r in parsed.rejects] + [str(parsed.files)]
        if parsed.docs is not None:
            chunks += [str(v) for col in parsed.docs.columns if str(col.type) == "string" for v in col.to_pylist()]
        out = "\n".join(chunks)
        found = []
        if SECRET_MARK in out or PASSWD_MARK in out:
            found.append(("leak:external_content", "secret file content in the output"))
        if LAUGH * 3 in out:
            found.append(("leak:entity_expansion", "an entity was expanded into the output"))
        return found

    def oracles(self, inp: FuzzInput, parsed: Parsed, res: Result, maker: Maker) -> list[tuple[str, str]]:
        """What this input must give, from how it was built. Parsed where it must be rejected, or other
        documents than it must give, is a bug; rejected under another reason than the expected one
        is a finding (`reason_mismatch`): the file is still refused, under a less precise name."""
        expect = inp.expect
        if expect is None or expect == "modes":  # "modes": whole and streaming reads compared (run)
            return []
        row = parsed.files[0]
        got = f"{row['status']} {row['reason']!r}".strip()
        if isinstance(expect, tuple) and expect[0] in ("reject", "prefix"):
            reasons = expect[1]
            if row["status"] != "failed":
                return [("unexpected_outcome", f"{got}, expected failed with one of {sorted(reasons)}")]
            if row["reason"] not in reasons:
                self._finding(res, "reason_mismatch", f"{row['reason']} where {'/'.join(sorted(reasons))} was expected: {row['detail']}")
            if expect[0] == "reject":
                return []
        base = self.base(maker, inp)
        if base is None:
            return []
        brow = base.files[0]
        if expect == "same":
            if row["status"] != brow["status"]:
                return [("unexpected_outcome", f"{got} where the base gives {brow['status']} {brow['reason']!r}")]
            if row["reason"] != brow["reason"]:
                self._finding(res, "reason_mismatch", f"{row['reason']} where the base gives {brow['reason']}: {row['detail']}")
            elif not _same_tables(parsed.docs, base.docs) or _strip(parsed.rejects) != _strip(base.rejects):
                return [("differential:documents", "documents or rejects differ from the base's (an edit that must not change them)")]
            return []
        if expect[0] == "total":
            want = brow["n_docs"] + brow["n_rejects"] + expect[1]
            have = row["n_docs"] + row["n_rejects"]
            if brow["status"] == "parsed" and (row["status"] != "parsed" or have != want):
                return [("unexpected_outcome", f"{got} with {have} documents + rejects, expected parsed with {want}: {row['detail']}")]
            return []
        # a truncation: the documents read before the cut are the base's first ones
        cut = expect[2]
        n = parsed.docs.num_rows if parsed.docs is not None else 0
        base_docs = base.docs.slice(0, n) if base.docs is not None else None
        if (n and not _same_tables(parsed.docs, base_docs)) or _strip(parsed.rejects) != _strip(base.rejects[: len(parsed.rejects)]):
            return [("differential:truncation", "documents read before the cut differ from the base's first documents")]
        target = self.targets[inp.target]
        if target.name != "standard:amendments":  # a document's end tag is unambiguous: count those before the cut
            data = next(b.data for b in maker.bases[inp.target][inp.origin] if b.key == inp.base_key)
            closer = b"</sp>" if target.family == "mpt" else b"</u>"
            ends = [m.end() for m in re.finditer(re.escape(closer), data)]
            res.lost = bisect.bisect_right(ends, cut) - (row["n_docs"] + row["n_rejects"])
        return []

    @staticmethod
    def _finding(res: Result, name: str, note: str) -> None:
        res.flags.append(name)
        res.note = note[:300]

    def mode_differential(self, inp: FuzzInput, parsed: Parsed, res: Result) -> list[tuple[str, str]]:
        """The same file read the other way (whole / streaming): a file's documents must not depend
        on its size. A different reject reason alone is a finding."""
        other_mode = "stream" if inp.mode == "whole" else "whole"
        try:
            other = self.parse(inp.target, inp.data, other_mode)
        except Exception as exc:
            return [("differential:mode", f"read {other_mode}, it raised {type(exc).__name__}: {exc}")]
        mine, theirs = parsed.files[0], other.files[0]
        hint = " (a document holds an element the streaming read prunes)" if self._prunes_inside_a_document(inp) else ""
        if mine["status"] != theirs["status"]:
            return [
                (
                    "differential:mode",
                    f"{inp.mode}: {mine['status']} {mine['reason']} {mine['detail']!r}; "
                    f"{other_mode}: {theirs['status']} {theirs['reason']} {theirs['detail']!r}{hint}",
                )
            ]
        if not _same_tables(parsed.docs, other.docs) or _strip(parsed.rejects) != _strip(other.rejects):
            return [("differential:mode", f"documents or rejects differ between whole and streaming reads ({mine['status']}){hint}")]
        if mine["reason"] != theirs["reason"]:
            self._finding(res, "mode_reason_mismatch", f"{inp.mode}: {mine['reason']}, {other_mode}: {theirs['reason']}")
        return []

    def _prunes_inside_a_document(self, inp: FuzzInput) -> bool:
        """Whether a document element of the input holds an element of the tags its dialect prunes
        while streaming (reader._prune_before then frees the document's earlier children)."""
        target = self.targets[inp.target]
        try:
            root = etree.fromstring(inp.data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, collect_ids=False))
        except etree.XMLSyntaxError:
            return False
        inner = " or ".join(f"self::tei:{name}" for name in target.prune)
        return bool(root.xpath(f"{target.xpath}[descendant::*[{inner}]]", namespaces={"tei": TEI_NS}))

    def walker_differential(self, inp: FuzzInput, parsed: Parsed) -> list[tuple[str, str]]:
        """The compiled column walker against its pure-Python reference on the same file."""
        try:
            python = self.parse(inp.target, inp.data, inp.mode, walker="python")
        except Exception as exc:
            return [("differential:walker", f"the pure-Python walker raised {type(exc).__name__}: {exc}")]
        if python.files != parsed.files or not _same_tables(python.docs, parsed.docs) or _strip(python.rejects) != _strip(parsed.rejects):
            return [("differential:walker", "compiled and pure-Python walkers disagree")]
        return []


def _strip(rejects: list[dict]) -> list[str]:
    """The rejects, whatever their order and ordinal ids (see _same_tables)."""
    return sorted(repr(sorted((k, v) for k, v in dict(r).items() if k != "doc_id")) for r in rejects)


def _same_tables(a: Any, b: Any) -> bool:
    """The same documents, whatever their order and ordinal ids: streaming delivers nested
    documents (a <sp> within a <sp>) in the order their ends are read, a whole read in the order
    they start."""
    if a is None or b is None:
        return (a is None or a.num_rows == 0) and (b is None or b.num_rows == 0)
    if a.equals(b):
        return True

    def rows(table: Any) -> list[str]:
        return sorted(repr(sorted((k, v) for k, v in row.items() if k != "doc_id")) for row in table.to_pylist())

    return a.schema.equals(b.schema) and rows(a) == rows(b)


def _current_rss_kb() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError):
        return 0


# --- the campaign: workers, a watchdog, the summary --------------------------------------------------


@dataclass
class Config:
    inputs: int
    seed: int
    dialect: str  # --dialect: with the seed and an index, it names one input
    targets: list[Target]
    workers: int
    out: Path
    slow: float
    timeout: float
    memory_mb: int
    differential_rate: float
    start: int = 0
    heavy: bool = True  # False: --light (see Maker)
    repeat: int = 1  # run the inputs this many times (a leak shows as RSS growing from pass to pass)


def _worker_main(conn: Connection, cfg: Config, maker: Maker, workdir: Path) -> None:
    runner = Runner(cfg.targets, workdir, cfg.slow, cfg.memory_mb, cfg.differential_rate)
    while True:
        index = conn.recv()
        if index is None:
            return
        conn.send(runner.run(maker.make(cfg.seed, index, cfg.targets), maker))


class _Worker:
    def __init__(self, ctx, cfg: Config, maker: Maker, workdir: Path) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, cfg, maker, workdir), daemon=True)
        self.proc.start()
        child.close()
        self.pending: deque[int] = deque()
        self.since = time.monotonic()  # when the input at the head of `pending` started

    def send(self, index: int) -> None:
        if not self.pending:
            self.since = time.monotonic()
        self.pending.append(index)
        self.conn.send(index)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()


class Summary:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.outcomes: Counter = Counter()
        self.by_strategy: dict[str, Counter] = defaultdict(Counter)
        self.by_target: dict[str, Counter] = defaultdict(Counter)
        self.by_mode: dict[str, Counter] = defaultdict(Counter)
        self.by_origin: dict[str, Counter] = defaultdict(Counter)
        self.by_variant: dict[str, Counter] = defaultdict(Counter)
        self.reasons: Counter = Counter()
        self.flags: Counter = Counter()
        self.flag_examples: dict[str, list[dict]] = defaultdict(list)  # the first of each strategy:variant
        self.flags_by_variant: dict[str, Counter] = defaultdict(Counter)
        self.bugs: list[dict] = []
        self.bug_kinds: Counter = Counter()
        self.bug_issues: Counter = Counter()  # KNOWN_ISSUES name, or NEW
        self.peak_rss_kb = 0
        self.workers_rss: dict[int, dict[str, int]] = {}  # pid -> inputs, RSS after its 200th input and after its last, peak
        self.pass_rss: list[dict[int, int]] = []  # --repeat: each worker's RSS at the end of each pass
        self.slowest: list[tuple[float, int, str, str]] = []
        self.seconds_total = 0.0
        self.lost: Counter = Counter()
        self.done = 0
        self.started = time.monotonic()
        self.wall = 0.0

    def add(self, res: Result) -> None:
        self.done += 1
        self.outcomes[res.outcome] += 1
        key = res.outcome if res.outcome != "bug" else "bug"
        self.by_strategy[res.strategy][key] += 1
        self.by_target[res.target][key] += 1
        self.by_mode[res.mode][key] += 1
        self.by_origin[res.origin][key] += 1
        self.by_variant[f"{res.strategy}:{res.variant}"][res.reason or res.outcome] += 1
        if res.outcome == "rejected":
            self.reasons[res.reason] += 1
        for flag in res.flags:
            self.flags[flag] += 1
            where = f"{res.strategy}:{res.variant}"
            self.flags_by_variant[flag][where] += 1
            if self.flags_by_variant[flag][where] == 1 and len(self.flag_examples[flag]) < 20:
                self.flag_examples[flag].append(
                    {"index": res.index, "target": res.target, "strategy": where, "mode": res.mode, "note": res.note}
                )
        if res.lost is not None:
            self.lost["truncations_counted"] += 1
            if res.lost > 0:
                self.lost["with_documents_lost"] += 1
                self.lost["documents_lost"] += res.lost
                self.lost["max_lost_in_one"] = max(self.lost["max_lost_in_one"], res.lost)
        self.peak_rss_kb = max(self.peak_rss_kb, res.maxrss_kb)
        self.seconds_total += res.seconds
        self.slowest = sorted([*self.slowest, (res.seconds, res.index, res.target, f"{res.strategy}:{res.variant}")], reverse=True)[:5]
        if res.pid:
            w = self.workers_rss.setdefault(res.pid, {"inputs": 0, "warm_kb": 0, "last_kb": 0, "peak_kb": 0})
            w["inputs"] += 1
            w["last_kb"], w["peak_kb"] = res.rss_kb, max(w["peak_kb"], res.maxrss_kb)
            if w["inputs"] == 200:
                w["warm_kb"] = res.rss_kb
        if self.cfg.repeat > 1 and self.done % self.cfg.inputs == 0:
            self.pass_rss.append({pid: w["last_kb"] for pid, w in self.workers_rss.items()})
        if res.outcome == "bug":
            self.bug(res)

    def bug(self, res: Result) -> None:
        self.bug_kinds[res.reason] += 1
        entry = {k: v for k, v in asdict(res).items() if k != "data"}
        entry["known_issue"] = known_issue(res.reason, res.mode, res.variant, res.detail)
        self.bug_issues[entry["known_issue"] or "NEW"] += 1
        light = "" if self.cfg.heavy else " --light"
        entry["replay"] = f"python scripts/fuzz_tei.py --seed {self.cfg.seed} --index {res.index} --dialect {self.cfg.dialect}{light}"
        if res.data is not None and self.bug_kinds[res.reason] <= MAX_SAVED_PER_KIND:
            folder = self.cfg.out / "bugs"
            folder.mkdir(parents=True, exist_ok=True)
            stem = f"{res.index:07d}_{res.target.replace(':', '_')}_{res.strategy}_{re.sub(r'[^A-Za-z0-9_]+', '_', res.reason)}"
            (folder / f"{stem}.xml").write_bytes(res.data)
            (folder / f"{stem}.json").write_text(json.dumps(entry, indent=2, ensure_ascii=False), encoding="utf-8")
            entry["saved"] = str(folder / f"{stem}.xml")
        self.bugs.append(entry)

    def as_dict(self) -> dict:
        rate = self.done / self.wall if self.wall else 0.0
        return {
            "inputs": self.done,
            "seed": self.cfg.seed,
            "start_index": self.cfg.start,
            "targets": [t.name for t in self.cfg.targets],
            "workers": self.cfg.workers,
            "wall_seconds": round(self.wall, 1),
            "inputs_per_second": round(rate, 1),
            "parse_seconds_total": round(self.seconds_total, 1),
            "peak_rss_mib": round(self.peak_rss_kb / 1024, 1),
            "parent_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "worker_rss_mib": [
                {"pid": pid, "inputs": w["inputs"], **{k[:-3]: round(w[k] / 1024, 1) for k in ("warm_kb", "last_kb", "peak_kb")}}
                for pid, w in self.workers_rss.items()
            ],
            "repeat": self.cfg.repeat,
            "rss_mib_after_each_pass": [{str(pid): round(kb / 1024, 1) for pid, kb in p.items()} for p in self.pass_rss],
            "outcomes": dict(self.outcomes),
            "reject_reasons": dict(self.reasons.most_common()),
            "by_target": {k: dict(v) for k, v in sorted(self.by_target.items())},
            "by_strategy": {k: dict(v) for k, v in sorted(self.by_strategy.items())},
            "by_mode": {k: dict(v) for k, v in sorted(self.by_mode.items())},
            "by_origin": {k: dict(v) for k, v in sorted(self.by_origin.items())},
            "by_variant": {k: dict(v) for k, v in sorted(self.by_variant.items())},
            "findings": dict(self.flags),
            "findings_by_variant": {k: dict(v.most_common()) for k, v in self.flags_by_variant.items()},
            "finding_examples": dict(self.flag_examples),
            "truncations": dict(self.lost),
            "slowest": [{"seconds": round(s, 3), "index": i, "target": t, "strategy": v} for s, i, t, v in self.slowest],
            "bug_kinds": dict(self.bug_kinds),
            "bugs_by_known_issue": dict(self.bug_issues.most_common()),
            "bugs": self.bugs[:500],
        }


def campaign(cfg: Config, bases: dict[str, dict[str, list[Base]]], progress: bool = True) -> Summary:
    """Run inputs start .. start + inputs - 1 over `cfg.workers` forked workers (two inputs in flight
    each); a worker that dies or runs past --timeout is replaced and its input recorded as a bug."""
    summary = Summary(cfg)
    ctx = mp.get_context("fork")
    workdir = Path(tempfile.mkdtemp(prefix="pepm_fuzz_tei_"))
    maker = Maker(bases, workdir, cfg.heavy)
    todo = deque(list(range(cfg.start, cfg.start + cfg.inputs)) * cfg.repeat)
    generation = 0

    def spawn() -> _Worker:
        nonlocal generation
        generation += 1
        return _Worker(ctx, cfg, maker, workdir / f"w{generation}")

    workers: list[_Worker] = []
    bar = _Progress(cfg.inputs * cfg.repeat, progress)
    try:
        maker.write_secrets()
        workers = [spawn() for _ in range(max(1, cfg.workers))]
        for w in workers:
            for _ in range(2):
                if todo:
                    w.send(todo.popleft())
        while any(w.pending for w in workers):
            ready = wait([w.conn for w in workers if w.pending], timeout=0.5)
            for i, w in enumerate(workers):
                if not w.pending:
                    continue
                dead = False
                if w.conn in ready:
                    try:
                        res = w.conn.recv()
                    except (EOFError, OSError):
                        dead = True
                    else:
                        w.pending.popleft()
                        w.since = time.monotonic()
                        summary.add(res)
                        bar.update(summary)
                        if todo:
                            w.send(todo.popleft())
                        continue
                overdue = time.monotonic() - w.since > cfg.timeout
                if dead or overdue or not w.proc.is_alive():
                    index = w.pending.popleft()
                    todo.extendleft(reversed(w.pending))  # the other input in flight is run again
                    w.stop()
                    kind = "hang" if overdue and not dead else f"crash(exit {w.proc.exitcode})"
                    inp = maker.make(cfg.seed, index, cfg.targets)
                    res = Result(
                        index, inp.target, inp.strategy, inp.variant, inp.mode, inp.origin, len(inp.data), "bug", kind, data=inp.data
                    )
                    res.detail = f"worker {'ran past --timeout ' + str(cfg.timeout) + ' s' if kind == 'hang' else 'died'} on this input"
                    summary.add(res)
                    bar.update(summary)
                    workers[i] = spawn()
                    for _ in range(2):
                        if todo:
                            workers[i].send(todo.popleft())
    except KeyboardInterrupt:
        print("interrupted: summary of the inputs done so far", file=sys.stderr)
    finally:
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.stop()
        bar.close()
        shutil.rmtree(workdir, ignore_errors=True)
        summary.wall = time.monotonic() - summary.started
    return summary  # peak_rss_kb: the workers' own (RUSAGE_CHILDREN would count every earlier child of this process too)


class _Progress:
    """A rich progress bar on a terminal; a line every 30 s otherwise (a log)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.last = total, enabled, 0.0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("fuzz"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>6.0f}/s  bugs {task.fields[bugs]}  RSS {task.fields[rss]:.0f} MiB"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task("fuzz", total=total, rate=0.0, bugs=0, rss=0.0)

    def update(self, s: Summary) -> None:
        elapsed = time.monotonic() - s.started
        rate = s.done / elapsed if elapsed else 0.0
        if self.bar is not None:
            if s.done % 50 == 0 or s.done == self.total:
                self.bar.update(self.task, completed=s.done, rate=rate, bugs=s.outcomes["bug"], rss=s.peak_rss_kb / 1024)
        elif self.enabled and (time.monotonic() - self.last > 30 or s.done == self.total):
            self.last = time.monotonic()
            print(
                f"fuzz {s.done}/{self.total} {rate:.0f}/s bugs {s.outcomes['bug']} peak RSS {s.peak_rss_kb / 1024:.0f} MiB",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_summary(summary: Summary) -> None:
    from rich.console import Console
    from rich.table import Table

    d = summary.as_dict()
    console = Console()
    console.print(
        f"[bold]TEI fuzz[/]: {d['inputs']} inputs, seed {d['seed']}, targets {', '.join(d['targets'])}, {d['workers']} workers: "
        f"{d['wall_seconds']} s wall, {d['inputs_per_second']} inputs/s, peak RSS {d['peak_rss_mib']} MiB (largest worker; this process {d['parent_peak_rss_mib']} MiB)"
    )
    cols = ("parsed", "rejected", "bug")
    for title, rows in (
        ("outcome by target", d["by_target"]),
        ("outcome by strategy", d["by_strategy"]),
        ("outcome by mode", d["by_mode"]),
        ("outcome by base", d["by_origin"]),
    ):
        table = Table(title=title)
        table.add_column("")
        for c in cols:
            table.add_column(c, justify="right")
        for name, counts in rows.items():
            table.add_row(name, *(str(counts.get(c, 0)) for c in cols))
        table.add_row("[bold]total", *(f"[bold]{d['outcomes'].get(c, 0)}" for c in cols))
        console.print(table)
    console.print("reject reasons: " + ", ".join(f"{k} {v}" for k, v in d["reject_reasons"].items()))
    if d["findings"]:
        console.print("findings (not bugs): " + ", ".join(f"{k} {v}" for k, v in d["findings"].items()))
    if d["truncations"]:
        console.print("truncations: " + ", ".join(f"{k} {v}" for k, v in d["truncations"].items()))
    console.print(
        "worker RSS (MiB, after its 200th input -> after its last, peak): "
        + ", ".join(f"{w['warm']} -> {w['last']} ({w['peak']}) over {w['inputs']} inputs" for w in d["worker_rss_mib"])
    )
    if d["rss_mib_after_each_pass"]:
        console.print(
            "RSS after each pass (MiB): " + " | ".join(", ".join(f"{v}" for v in p.values()) for p in d["rss_mib_after_each_pass"])
        )
    console.print("slowest: " + ", ".join(f"{s['seconds']} s (#{s['index']} {s['target']} {s['strategy']})" for s in d["slowest"]))
    if summary.bugs:
        console.print(f"[bold red]{len(summary.bugs)} BUG(s)[/]: " + ", ".join(f"{k} {v}" for k, v in d["bug_kinds"].items()))
        console.print("  by known issue: " + ", ".join(f"{k} {v}" for k, v in d["bugs_by_known_issue"].items()))
        new = [b for b in summary.bugs if not b["known_issue"]]
        shown = new[:20] + [next(b for b in summary.bugs if b["known_issue"] == k) for k in KNOWN_ISSUES if k in d["bugs_by_known_issue"]]
        for bug in shown:
            console.print(
                f"  #{bug['index']} {bug['target']} {bug['strategy']}:{bug['variant']} ({bug['mode']}) {bug['reason']}"
                f" [{bug['known_issue'] or 'NEW'}]: {bug['detail'][-300:]}"
            )
            console.print(f"    replay: {bug['replay']}" + (f"  (input: {bug['saved']})" if "saved" in bug else ""))
    else:
        console.print("[bold green]no bug[/]: every input was parsed or rejected with a reason")


def replay(path: Path, targets: list[Target], workdir: Path) -> int:
    runner = Runner(targets, workdir, differential_rate=1.0)
    data = path.read_bytes()
    bugs = 0
    for target in targets:
        for mode in ("whole", "stream"):
            res = runner.run(FuzzInput(0, target.name, "replay", path.name, mode, "", "", data))
            bugs += res.outcome == "bug"
            print(
                f"{target.name} {mode}: {res.outcome} {res.reason} line={res.line} docs={res.n_docs} rejects={res.n_rejects} {res.seconds:.3f} s"
            )
            if res.detail:
                print("  " + res.detail.replace("\n", "\n  "))
    return BUG_EXIT if bugs else OK_EXIT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=2000, help="number of inputs (default 2000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="first input index (to resume or split a run)")
    ap.add_argument("--dialect", default="all", help="all, mpt, standard, standard:debates or standard:amendments")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the summary here")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "fuzz_tei", help="bug inputs go to OUT/bugs/")
    ap.add_argument("--corpus-root", type=Path, default=REPO / "data" / "raw", help="real corpora: <root>/{mpt,an_debats,an_amendements}")
    ap.add_argument("--slow", type=float, default=5.0, help="a parse slower than this (seconds) is a bug")
    ap.add_argument("--timeout", type=float, default=60.0, help="a worker silent this long (seconds) is killed: a hang")
    ap.add_argument("--memory-mb", type=int, default=1024, help="a worker peak RSS above this is a bug")
    ap.add_argument(
        "--differential-rate",
        type=float,
        default=0.1,
        help="share of inputs also read the other way (whole / streaming), and with the pure-Python walker",
    )
    ap.add_argument("--index", type=int, help="rebuild input INDEX of --seed, save it under --out and run it in this process")
    ap.add_argument("--replay", type=Path, help="run one saved input through the chosen dialects (whole and streaming)")
    ap.add_argument(
        "--light", action="store_true", help="without the heaviest inputs (2e5 siblings, a 4 MB text, 1e6 open tags): a CI budget"
    )
    ap.add_argument("--repeat", type=int, default=1, help="run the same inputs this many times (a leak check; use --workers 1)")
    ap.add_argument("--allow-known", action="store_true", help="exit 0 when every bug is one of KNOWN_ISSUES")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    targets = select_targets(args.dialect)
    if args.replay:
        with tempfile.TemporaryDirectory(prefix="pepm_fuzz_replay_") as tmp:
            return replay(args.replay, targets, Path(tmp))
    corpus_root = args.corpus_root if args.corpus_root.is_dir() else None
    if corpus_root is None:
        print(f"no real corpora under {args.corpus_root}: generated bases only", file=sys.stderr)
    started = time.monotonic()
    bases = build_bases(TARGETS, corpus_root, args.seed)  # all targets whatever --dialect: splices take any
    counts = ", ".join(f"{name} " + "/".join(str(len(pool)) for pool in pools.values()) for name, pools in bases.items())
    print(f"bases (generated/real excerpts/real files): {counts} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    if args.index is not None:
        with tempfile.TemporaryDirectory(prefix="pepm_fuzz_index_") as tmp:
            maker = Maker(bases, Path(tmp), not args.light)
            maker.write_secrets()
            inp = maker.make(args.seed, args.index, targets)
            args.out.mkdir(parents=True, exist_ok=True)
            saved = args.out / f"input_{args.seed}_{args.index}.xml"
            saved.write_bytes(inp.data)
            print(
                f"input {args.index}: {inp.target} {inp.strategy}:{inp.variant} ({inp.mode}, base {inp.base_key}, {len(inp.data)} bytes) -> {saved}"
            )
            res = Runner(targets, Path(tmp) / "run", args.slow, args.memory_mb, 1.0).run(inp, maker)
            print(f"{res.outcome} {res.reason} line={res.line} docs={res.n_docs} rejects={res.n_rejects} {res.seconds:.3f} s")
            if res.detail:
                print(res.detail)
            return BUG_EXIT if res.outcome == "bug" else OK_EXIT
    cfg = Config(
        args.inputs,
        args.seed,
        args.dialect,
        targets,
        args.workers,
        args.out,
        args.slow,
        args.timeout,
        args.memory_mb,
        args.differential_rate,
        args.start,
        not args.light,
        args.repeat,
    )
    summary = campaign(cfg, bases, progress=not args.no_progress)
    print_summary(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    new = summary.bug_issues["NEW"] if args.allow_known else summary.outcomes["bug"]
    return BUG_EXIT if new else OK_EXIT


if __name__ == "__main__":
    sys.exit(main())
