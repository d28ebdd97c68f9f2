"""Compiled counting and counting on several processes must give exactly scikit-learn's vectorizer,
and leave it plain."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from pepm_assets.core.families import counting as pc

WORDS = [
    "mariage",
    "égalité",
    "famille",
    "enfants",
    "droits",
    "filiation",
    "adoption",
    "loi",
    "république",
    "liberté",
    "amour",
    "couples",
    "parents",
    "société",
    "nature",
    "tradition",
    "code",
    "civil",
    "union",
    "homme",
    "femme",
    "débat",
]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(3, 40))) + f" doc{i % 97}" for i in range(n)]


def _pool_used(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many chunks each parallel call made (the tiny texts must really go through the pool)."""
    calls: list[int] = []
    merge = pc._merge_terms

    def spy(chunk_terms):
        calls.append(len(chunk_terms))
        return merge(chunk_terms)

    monkeypatch.setattr(pc, "_merge_terms", spy)
    monkeypatch.setattr(pc.os, "cpu_count", lambda: 4)
    return calls


@pytest.mark.parametrize(
    "make",
    [
        lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
        lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, max_features=500),
        lambda: CountVectorizer(max_df=0.5, binary=True),
    ],
)
def test_same_vocabulary_and_matrix_as_scikit_learn(make, monkeypatch: pytest.MonkeyPatch) -> None:
    train, job = _texts(400, 1), _texts(150, 2)
    calls = _pool_used(monkeypatch)
    monkeypatch.setattr(pc, "IMPLEMENTATION", "python")  # scikit-learn's counting: the one that goes parallel
    plain, parallel = make(), make()
    expected, expected_job = plain.fit_transform(train), plain.transform(job)
    with pc.fast_counting([parallel], n_jobs=3, min_chars=0):
        got = parallel.fit_transform(train)
        got_job = parallel.transform(job)
    assert calls == [3]  # the fit was counted in 3 chunks and merged
    assert [(k, v, type(v)) for k, v in parallel.vocabulary_.items()] == [(k, v, type(v)) for k, v in plain.vocabulary_.items()]
    for a, b in ((expected, got), (expected_job, got_job)):
        assert type(a) is type(b) and a.shape == b.shape and a.indices.dtype == b.indices.dtype
        assert (a != b).nnz == 0
    # what gets pickled is the plain scikit-learn object
    assert "_count_vocab" not in vars(parallel)
    assert pickle.loads(pickle.dumps(parallel)).transform(job).toarray().tolist() == expected_job.toarray().tolist()


def test_small_input_stays_serial_and_stop_words_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _pool_used(monkeypatch)
    vectorizer = CountVectorizer(stop_words=["le", "la"])
    with pc.fast_counting([vectorizer], n_jobs=2):  # default min_chars: these few texts stay serial
        vectorizer.fit(_texts(50, 3))
    assert calls == []
    # a chunk made only of stop words has an empty vocabulary: the serial pass decides (no error here)
    texts = ["le la le"] * 20 + _texts(20, 4)
    plain = CountVectorizer(stop_words=["le", "la"]).fit_transform(texts)
    vectorizer = CountVectorizer(stop_words=["le", "la"])
    with pc.fast_counting([vectorizer], n_jobs=2, min_chars=0):
        got = vectorizer.fit_transform(texts)
    assert (plain != got).nnz == 0


# ------------------------------------------------------------------ the compiled counter
EDGE_TEXTS = [
    "",
    " ",
    "a",
    "a b c",
    "ab",
    "ab cd",
    "Ab AB ab",
    "l'été, l’été — «\u00a0été\u00a0» étés",
    "snake_case __x__ _ __",
    "2024 1er 3° 42e x2 ½ ² ٣٤ ๑๒",
    "ΣΊΣΥΦΟΣ σίσυφος Straße STRASSE",
    "日本語テキスト 中文 한국어 tiếng việt",
    "e\u0301te\u0301 cafe\u0301",
    "emoji🙂emoji 🙂🙂 ok",
    "tab\tnew\nline\r\nend",
    "ab ab ab ab ab cd ab cd",
    "\u00a0\u202f\u2009nbsp\u00a0words",
    "ﬁn ﬂeur Ǆemal",
    "mot-composé aujourd'hui peut-être",
    "x" * 300 + " y" * 3,
]
WORD_VECTORIZERS = [
    dict(ngram_range=(1, 2)),
    dict(ngram_range=(1, 1)),
    dict(ngram_range=(2, 2)),
    dict(ngram_range=(1, 3)),
    dict(ngram_range=(2, 4)),
    dict(ngram_range=(1, 2), lowercase=False),
    dict(ngram_range=(1, 2), strip_accents="unicode"),
    dict(ngram_range=(1, 2), binary=True, dtype=np.float32),
    dict(ngram_range=(1, 2), max_features=300),
    dict(ngram_range=(1, 3), max_df=0.2, max_features=5000),
]


def test_the_compiled_counter_is_the_one_in_use() -> None:
    if os.environ.get("PEPM_NGRAMS") == "python":
        pytest.fail("PEPM_NGRAMS=python is set: the compiled counter is not under test")
    assert pc.IMPLEMENTATION == "compiled", "pepm_assets/core/families/_ngrams.pyx is not built"


def _assert_same(plain: CountVectorizer, fast: CountVectorizer, train: list, job: list) -> None:
    expected, expected_job = plain.fit_transform(train), plain.transform(job)
    with pc.fast_counting([fast], n_jobs=1):
        got, got_job = fast.fit_transform(train), fast.transform(job)
    assert [(k, v, type(v)) for k, v in fast.vocabulary_.items()] == [(k, v, type(v)) for k, v in plain.vocabulary_.items()]
    for a, b in ((expected, got), (expected_job, got_job)):
        assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape and a.indices.dtype == b.indices.dtype
        assert (a != b).nnz == 0
    assert pickle.dumps(fast.vocabulary_) == pickle.dumps(plain.vocabulary_)  # same key order, same value types


@pytest.mark.parametrize("params", WORD_VECTORIZERS, ids=str)
def test_compiled_counter_matches_scikit_learn_on_edge_cases(params: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    used = []
    monkeypatch.setattr(pc, "_compiled_count", lambda *a, _real=pc._compiled_count: used.append(1) or _real(*a))
    train = EDGE_TEXTS + _texts(200, 5)
    job = list(reversed(EDGE_TEXTS)) + _texts(50, 6) + ["jamais vu ailleurs", ""]
    _assert_same(CountVectorizer(**params), CountVectorizer(**params), train, job)
    _assert_same(TfidfVectorizer(sublinear_tf=True, min_df=2, **params), TfidfVectorizer(sublinear_tf=True, min_df=2, **params), train, job)
    assert len(used) == 4  # fit and transform of both vectorizers went through the compiled counter


def test_compiled_counting_stays_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _pool_used(monkeypatch)
    plain, fast = CountVectorizer(ngram_range=(1, 2)), CountVectorizer(ngram_range=(1, 2))
    with pc.fast_counting([fast], n_jobs=3, min_chars=0):
        got = fast.fit_transform(_texts(400, 1))
    assert calls == [] and (got != plain.fit_transform(_texts(400, 1))).nnz == 0


def test_compiled_counter_takes_what_scikit_learn_takes() -> None:
    class Texts(list):
        pass

    texts = [np.str_("Ab cd ef"), "cd ef gh"] + _texts(20, 8)
    for params in (dict(lowercase=False), dict(ngram_range=(1, 2))):
        _assert_same(CountVectorizer(**params), CountVectorizer(**params), texts, Texts(reversed(texts)))
    for bad in (None, 3):  # scikit-learn's tokenizer refuses them; never read as a string
        plain_error = pytest.raises(TypeError)
        with plain_error:
            CountVectorizer(lowercase=False).fit([bad, "ab"])
        with pytest.raises(TypeError, match="expected string"), pc.fast_counting([v := CountVectorizer(lowercase=False)], n_jobs=1):
            v.fit([bad, "ab"])
    plain, fast = CountVectorizer(ngram_range=(0, 2)), CountVectorizer(ngram_range=(0, 2))
    assert not pc._compiled_applies(fast)  # scikit-learn's "0-grams" (empty strings) stay its own
    _assert_same(plain, fast, texts, texts[:3])


def test_fast_counting_twice_on_one_vectorizer_restores_it() -> None:
    v = CountVectorizer()
    with pc.fast_counting([v, v], n_jobs=1):
        with pc.fast_counting([v], n_jobs=2):
            inner = v._count_vocab
        assert v._count_vocab is not inner  # the outer block's counting is back
        v.fit(_texts(10, 9))
    assert "_count_vocab" not in vars(v)


def test_counting_on_several_processes_keeps_scikit_learns_index_types(monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn

    monkeypatch.setattr(pc, "IMPLEMENTATION", "python")
    monkeypatch.setattr(pc.os, "cpu_count", lambda: 4)
    for interface in ("sparray", "spmatrix"):
        with sklearn.config_context(sparse_interface=interface):
            plain, parallel = CountVectorizer(), CountVectorizer()
            expected = plain.fit_transform(_texts(40, 10))
            with pc.fast_counting([parallel], n_jobs=2, min_chars=0):
                got = parallel.fit_transform(_texts(40, 10))
            assert type(got) is type(expected) and (got.indices.dtype, got.indptr.dtype) == (expected.indices.dtype, expected.indptr.dtype)
            assert (got != expected).nnz == 0


def test_compiled_counter_keeps_scikit_learns_errors_and_fallbacks() -> None:
    with pytest.raises(ValueError, match="empty vocabulary"), pc.fast_counting([v := CountVectorizer()], n_jobs=1):
        v.fit(["a b", "! ?"])
    with pytest.raises(ValueError, match="np.nan is an invalid document"), pc.fast_counting([v := CountVectorizer()], n_jobs=1):
        v.fit(["un texte", np.nan])
    # the pruning errors: min_df above max_df, and thresholds that leave no term
    for params, message in (
        (dict(min_df=3, max_df=2), "max_df corresponds to < documents than min_df"),
        (dict(min_df=2), "no terms remain"),
    ):
        with pytest.raises(ValueError, match=message):
            CountVectorizer(**params).fit(["aa bb", "cc dd", "ee ff"])
        with pytest.raises(ValueError, match=message), pc.fast_counting([v := CountVectorizer(**params)], n_jobs=1):
            v.fit(["aa bb", "cc dd", "ee ff"])
    bytes_docs = [t.encode("utf-8") for t in _texts(30, 7)]
    _assert_same(CountVectorizer(), CountVectorizer(), bytes_docs, bytes_docs[:5])
    for params in (
        dict(stop_words=["le"]),
        dict(token_pattern=r"\w+"),
        dict(analyzer="char"),
        dict(tokenizer=str.split, token_pattern=None),
    ):
        assert not pc._compiled_applies(CountVectorizer(**params))  # scikit-learn's own counting, unchanged


def test_compiled_counter_matches_scikit_learn_on_the_shipped_corpora(shipped_corpora: Path) -> None:
    from pepm_assets_tests.fixtures import shipped_docs

    texts = []
    for corpus_id in ("mpt", "an_debats", "an_amendements"):
        texts += shipped_docs(shipped_corpora, corpus_id)["text"].to_pylist()[:4000]
    assert len(texts) > 7000
    _assert_same(CountVectorizer(ngram_range=(1, 2)), CountVectorizer(ngram_range=(1, 2)), texts[::2], texts[1::2])
    pruned = dict(ngram_range=(1, 3), min_df=2, max_df=0.5, sublinear_tf=True)  # most n-grams pruned: never made strings
    _assert_same(TfidfVectorizer(**pruned), TfidfVectorizer(**pruned), texts[1::2], texts[::2])
