"""Counting on several processes must give exactly scikit-learn's vectorizer, and leave it plain."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from pepm_assets.core.families import parallel_counting as pc

WORDS = ("mariage égalité famille enfants droits filiation adoption loi république liberté amour "
         "couples parents société nature tradition code civil union homme femme débat").split()


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


@pytest.mark.parametrize("make", [
    lambda: TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
    lambda: TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, max_features=500),
    lambda: CountVectorizer(max_df=0.5, binary=True),
])
def test_same_vocabulary_and_matrix_as_scikit_learn(make, monkeypatch: pytest.MonkeyPatch) -> None:
    train, job = _texts(400, 1), _texts(150, 2)
    calls = _pool_used(monkeypatch)
    plain, parallel = make(), make()
    expected, expected_job = plain.fit_transform(train), plain.transform(job)
    with pc.parallel_counting([parallel], n_jobs=3, min_chars=0):
        got = parallel.fit_transform(train)
        got_job = parallel.transform(job)
    assert calls == [3]  # the fit was counted in 3 chunks and merged
    assert parallel.vocabulary_ == plain.vocabulary_
    for a, b in ((expected, got), (expected_job, got_job)):
        assert type(a) is type(b) and a.shape == b.shape and a.indices.dtype == b.indices.dtype
        assert (a != b).nnz == 0
    # what gets pickled is the plain scikit-learn object
    assert "_count_vocab" not in vars(parallel)
    assert pickle.loads(pickle.dumps(parallel)).transform(job).toarray().tolist() == expected_job.toarray().tolist()


def test_small_input_stays_serial_and_stop_words_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _pool_used(monkeypatch)
    vectorizer = CountVectorizer(stop_words=["le", "la"])
    with pc.parallel_counting([vectorizer], n_jobs=2):  # default min_chars: these few texts stay serial
        vectorizer.fit(_texts(50, 3))
    assert calls == []
    # a chunk made only of stop words has an empty vocabulary: the serial pass decides (no error here)
    texts = ["le la le"] * 20 + _texts(20, 4)
    plain = CountVectorizer(stop_words=["le", "la"]).fit_transform(texts)
    vectorizer = CountVectorizer(stop_words=["le", "la"])
    with pc.parallel_counting([vectorizer], n_jobs=2, min_chars=0):
        got = vectorizer.fit_transform(texts)
    assert (plain != got).nnz == 0
