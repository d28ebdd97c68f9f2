"""The dedup text key: the compiled `_textkey` against the plain-Python reference
(`split.normalize_for_dedup`), on hand-made edge cases and on every text of the shipped corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pepm_assets.core import _textkey, split
from pepm_assets_tests.fixtures import shipped_docs

EDGE_CASES = [
    "",
    " ",
    "...",
    "\u00a0",
    "«\u00a0»",
    "a",
    "A",
    " a ",
    "a.b",
    "a  b",
    "\tA\r\nB\x0b\x0cc",
    "Très bien !",
    "TRÈS BIEN !!",
    "très\u00a0bien\u202f!",
    "«\u00a0Très bien\u00a0»",
    "l’été",
    "l'été",
    "L’ÉTÉ…",
    "Straße",
    "STRASSE",
    "ﬁn",
    "ΣΊΣΥΦΟΣ",
    "İstanbul",
    "Ǆ",
    "naïve café",
    "ŒUVRE œuvre",
    "100° – 20 %",
    "a—b–c",
    "x•y·z",
    "„quoted“",
    "‘single’",
    "2 000\u2009€",
    "…début",
    "fin…",
    "© ® ‰ ′ ″",
    "\u2000\u200a\u2028\u203f",
    "\u00a1\u00bf\u00bb\u00ab",
    "日本語 テキスト",
    "emoji 🙂 ok",
    "e\u0301",
    "«",
    "»a",
    "a«",
    "\u00c2\u00a0",
    "\u00e2\u0080\u0099",  # characters whose UTF-8 bytes look like marks' bytes
]


def test_the_compiled_text_key_is_the_one_in_use() -> None:
    if os.environ.get("PEPM_TEXT_KEY") == "python":
        pytest.fail("PEPM_TEXT_KEY=python is set: the compiled text key is not under test")
    assert split.IMPLEMENTATION == "compiled", "pepm_assets/core/_textkey.pyx is not built"


@pytest.mark.parametrize("text", EDGE_CASES)
def test_compiled_normalisation_matches_the_reference(text: str) -> None:
    assert _textkey.normalized([text], split._MARKS) == [split.normalize_for_dedup(text)]


def test_the_reference_normalisation_does_what_the_split_promises() -> None:
    same = ["Très bien !", "TRÈS   BIEN", "«\u00a0très bien\u00a0»…", "très—bien"]
    assert len(set(split.text_keys(same, "python"))) == 1
    assert len(set(split.text_keys(same, "compiled"))) == 1
    distinct = ["très bien", "tres bien", "très bien, non", "bien très", "trèsbien"]
    assert len(set(split.text_keys(distinct, "python"))) == len(set(split.text_keys(distinct, "compiled"))) == len(distinct)


def test_compiled_keys_take_what_the_reference_takes() -> None:
    import numpy as np

    texts = [np.str_("Très «\u00a0bien\u00a0»"), "très bien"]
    assert split.text_keys(texts, "compiled") == split.text_keys(texts, "python")
    assert len(set(split.text_keys(texts, "compiled"))) == 1
    for bad in (None, 3):  # never read as a string
        with pytest.raises(AttributeError):
            split.text_keys(["a", bad], "python")
        with pytest.raises(AttributeError):
            split.text_keys(["a", bad], "compiled")


def test_a_separator_the_compiled_tables_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="U\\+2192"):
        _textkey.keys(["a"], "→")


@pytest.mark.parametrize("corpus_id", ["mpt", "an_debats", "an_amendements"])
def test_both_text_keys_agree_on_the_shipped_corpus(shipped_corpora: Path, corpus_id: str) -> None:
    texts = shipped_docs(shipped_corpora, corpus_id)["text"].to_pylist()
    assert len(texts) > 1000
    assert split.text_keys(texts, "compiled") == split.text_keys(texts, "python")


@pytest.mark.parametrize("implementation", ["python", "compiled"])
def test_every_ascii_character_is_a_letter_a_digit_or_a_space(implementation: str) -> None:
    """The key's definition, character by character: ASCII letters and digits are kept (casefolded),
    every other ASCII character separates words, like a space."""
    for code in range(128):
        c = chr(code)
        expected = f"a{c.casefold()}b" if c.isalnum() else "a b"
        reference = split.text_keys([expected], "python")
        assert split.text_keys([f"a{c}b"], implementation) == reference, f"character {code} ({c!r})"
    assert split.normalize_for_dedup("a{b}c~d|e") == b"a b c d e"
    assert split.normalize_for_dedup("été 2013 œ ¤") == "été 2013 œ ¤".encode()  # non-ASCII kept


def test_the_text_key_implementation_is_the_one_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """`PEPM_TEXT_KEY=python` (implementation "python") must bypass the compiled module, which a user
    turns off precisely when they distrust it; by default the compiled one runs when it is built."""
    calls: list[int] = []

    class Spy:
        @staticmethod
        def keys(texts: list[str], marks: str) -> list[str]:
            calls.append(len(texts))
            return _textkey.keys(texts, marks)

    monkeypatch.setattr(split, "_textkey", Spy)
    monkeypatch.setattr(split, "IMPLEMENTATION", "compiled")
    split.text_keys(["a", "b"], "python")
    assert calls == []
    split.text_keys(["a", "b", "c"])
    assert calls == [3]
    monkeypatch.setattr(split, "IMPLEMENTATION", "python")
    split.text_keys(["a"])
    assert calls == [3]
    split.text_keys(["a", "b"], "compiled")
    assert calls == [3, 2]
