"""core/regex_cache.py: a very large regex built from the machine's cache is the pattern `re` compiles
(same flags, groups, matches), a damaged or unwritable cache changes nothing but the time, and
spaCy's French tokenizer, loaded through the cache in a new process, splits text exactly as the one
compiled by `re` does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pepm_assets.core import regex_cache

WORDS = [f"mot{i}-{chr(0x4E00 + i % 500)}é{i % 7}" for i in range(12_000)]
PATTERN = "(?iu)" + "|".join(f"(?:{re.escape(w)}(?:-(?P<g{i}>là|ci))?)" if i < 50 else f"(?:{re.escape(w)})" for i, w in enumerate(WORDS))
PROBES = [*WORDS[::97], "MOT5-丅É5", "mot3-七é3-là", "mot7-万é0", "autre", "mot12", "", "mot1-丁é1-ci"]


def _fresh_compile(pattern: str, flags: int = 0) -> re.Pattern:
    """As `re.compile`, bypassing re's in-process cache (where the pattern would come back as it is)."""
    re.purge()
    return re.compile(pattern, flags)


def _same(a: re.Pattern, b: re.Pattern) -> None:
    assert (a.pattern, a.flags, a.groups, a.groupindex) == (b.pattern, b.flags, b.groups, b.groupindex)
    for probe in PROBES:
        ma, mb = a.match(probe), b.match(probe)
        assert (ma and (ma.group(0), ma.groupdict())) == (mb and (mb.group(0), mb.groupdict())), probe
        assert a.findall(probe + " " + probe) == b.findall(probe + " " + probe)


def test_a_large_pattern_from_the_cache_is_the_pattern_re_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(PATTERN) >= regex_cache.MIN_CHARS
    monkeypatch.setenv("PEPM_REGEX_CACHE", str(tmp_path / "cache"))
    expected = _fresh_compile(PATTERN)
    with regex_cache.large_regexes_cached():
        first = _fresh_compile(PATTERN)  # compiled, and its program stored
    stored = list((tmp_path / "cache").glob("*.json"))
    assert len(stored) == 1
    written = stored[0].stat().st_mtime_ns
    parsed: list[str] = []
    real_parse = re._parser.parse
    monkeypatch.setattr(re._parser, "parse", lambda *a, **k: parsed.append("parse") or real_parse(*a, **k))
    with regex_cache.large_regexes_cached():
        second = _fresh_compile(PATTERN)  # built from the stored program: nothing parsed
    assert parsed == []
    assert stored[0].stat().st_mtime_ns == written  # read, not rewritten
    monkeypatch.setattr(re._parser, "parse", real_parse)
    _same(first, expected)
    _same(second, expected)
    with regex_cache.large_regexes_cached():  # small patterns are re's own business: nothing stored for them
        assert _fresh_compile("a(b)c").match("abc").group(1) == "b"
    assert list((tmp_path / "cache").glob("*.json")) == stored
    assert re._compiler.compile.__module__ == "re._compiler"  # put back after the block


def test_a_damaged_or_unwritable_cache_compiles_as_re_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PEPM_REGEX_CACHE", str(cache))
    with regex_cache.large_regexes_cached():
        _fresh_compile(PATTERN)
    (stored,) = cache.glob("*.json")
    good = stored.read_text(encoding="utf-8")
    expected = _fresh_compile(PATTERN)
    for damaged in ("not json", "[1, 2]", json.dumps([0, ["import os"], 0, {}, []]), json.dumps([0, [9999999], 0, {}, []])):
        stored.write_text(damaged, encoding="utf-8")  # not JSON, another shape, not integers, a program _sre refuses
        with regex_cache.large_regexes_cached():
            _same(_fresh_compile(PATTERN), expected)
        assert stored.read_text(encoding="utf-8") == good  # compiled as re would, and stored again whole
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("PEPM_REGEX_CACHE", str(blocker / "cache"))  # a folder that cannot be made
    with regex_cache.large_regexes_cached():
        _same(_fresh_compile(PATTERN), expected)
    monkeypatch.setenv("PEPM_REGEX_CACHE", "off")
    assert regex_cache.folder() is None
    with regex_cache.large_regexes_cached():
        assert re._compiler.compile.__module__ == "re._compiler"  # not even installed


def test_re_errors_are_re_s_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_REGEX_CACHE", str(tmp_path))
    broken = PATTERN + "|(unclosed"
    with pytest.raises(re.error) as expected:
        _fresh_compile(broken)
    with regex_cache.large_regexes_cached(), pytest.raises(re.error) as got:
        _fresh_compile(broken)
    assert str(got.value) == str(expected.value)
    assert not list(tmp_path.glob("*.json"))


def test_debug_patterns_are_re_s_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """re.DEBUG prints the compiled program: left to re, never cached."""
    monkeypatch.setenv("PEPM_REGEX_CACHE", str(tmp_path))
    pattern = "(?:" + "|".join(WORDS[:8000]) + ")"
    with regex_cache.large_regexes_cached():
        _fresh_compile(pattern, re.DEBUG)
    assert not list(tmp_path.glob("*.json"))
    assert capsys.readouterr().out.count("\n") > 1000


TOKENIZE = """
import json, re, sys
from re import _parser
real_parse, big = _parser.parse, []
_parser.parse = lambda p, *a, **k: (big.append(1) if len(p) >= 100_000 else None) or real_parse(p, *a, **k)
from pepm_assets.core import regex_cache
regex_cache.spacy_language("fr")
import spacy
nlp = spacy.blank("fr")
from spacy.lang.fr.tokenizer_exceptions import TOKEN_MATCH
texts = json.loads(sys.stdin.read())
print(json.dumps({"tokens": [[t.text for t in nlp(x)] for x in texts], "pattern": TOKEN_MATCH.__self__.pattern[:200],
                  "flags": TOKEN_MATCH.__self__.flags, "large_patterns_parsed": len(big)}))
"""
FRENCH = [
    "Aujourd'hui, peut-être qu'il viendra à Saint-Étienne ; c'est-à-dire demain.",
    "Le porte-parole du groupe a dit : « l'arrière-pays n'est pas une variable d'ajustement ».",
    "Vingt-et-un députés, M. le rapporteur, ont voté contre l'amendement n° 42 ; l'Assemblée l'a rejeté.",
    "Est-ce que la ministre peut-elle nous dire où en est le projet de loi anti-gaspillage ?",
]


def _tokenize(cache: str) -> dict:
    env = {**os.environ, "PEPM_REGEX_CACHE": cache}
    out = subprocess.run([sys.executable, "-c", TOKENIZE], input=json.dumps(FRENCH), env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_spacy_french_through_the_cache_tokenizes_as_without_it(tmp_path: Path) -> None:
    """Three new processes: re alone, the cache's first (it compiles and stores), its second (it loads)."""
    without = _tokenize("off")
    first = _tokenize(str(tmp_path))
    assert len(list(tmp_path.glob("*.json"))) == 1
    second = _tokenize(str(tmp_path))
    for got in (first, second):
        assert (got["tokens"], got["pattern"], got["flags"]) == (without["tokens"], without["pattern"], without["flags"])
    # the 1.45M-character exceptions regex: parsed by re, then by the cache's first process, not by its second
    assert (without["large_patterns_parsed"], first["large_patterns_parsed"], second["large_patterns_parsed"]) == (1, 1, 0)
    assert without["tokens"][0][:3] == ["Aujourd'hui", ",", "peut-être"]  # TOKEN_MATCH at work
