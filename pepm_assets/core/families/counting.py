"""scikit-learn's text vectorizers, counting faster, with exactly scikit-learn's output.

In `TfidfVectorizer` / `CountVectorizer`, counting (tokenising, building n-grams, counting them:
pure Python) is ~75% of a fit and all of a transform. Inside `fast_counting(vectorizers, n_jobs)`,
the vectorizers' `_count_vocab` is replaced by two stacked strategies (1, 2), and the pruning
after it by a third (3):

1. Compiled counting (`_ngrams.pyx`) for the built-in word analyzer with the default
   `token_pattern` and no stop words (what pepm's sklearn and cluster families use): 2-3x faster,
   in one process (splitting it over processes was slower at every size measured, 0.8M to 27M
   characters: merging the chunks' vocabularies costs as much as the counting saved). Fitting, it
   numbers the terms without making their strings, drops those outside [min_df, max_df], and makes
   strings for the rest only (with word bigrams and min_df=2, a third of the terms counted).
2. Any other vectorizer (characters, a custom tokenizer, stop words), or all of them when the
   module is not built (`PEPM_NGRAMS=python` forces that), counts with scikit-learn's own
   `_count_vocab`, on several processes for inputs of `min_chars` characters or more: the
   documents are split into contiguous chunks; forked workers count all chunks but the first
   while the parent counts the first; the parent then merges (a term keeps the index of its first
   appearance, as in one serial pass). Forking and shipping the counts back costs tens of
   milliseconds, which pays off above ~1M characters (about a second of serial counting).
3. After counting, scikit-learn prunes (min_df, max_df, max_features) and numbers the terms in
   sorted order with Python loops over the terms (`_limit_features`, `_sort_features`): a third of
   a fit on MPT. Inside the block the same two steps run with NumPy (the same masks, order, value
   types and errors).

scikit-learn's own code does the rest (idf, the model). Same vocabulary (key order and value
types included), same matrix, same model: tested value for value against the plain vectorizer,
and `benchmarks/bench_counting.py` measures the strategies against scikit-learn's in the same run.
It is an execution strategy, not an estimator: the vectorizer stays a plain scikit-learn object
and what is pickled is plain scikit-learn (a model.pkl loads without pepm).
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np

from .. import compiled, settings

_ngrams, IMPLEMENTATION = compiled.load(f"{__package__}._ngrams", settings.NGRAMS, "word n-grams count 2-3x slower")
MIN_CHARS = 1_000_000
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WORK: dict[str, Any] = {}  # what the forked workers read (inherited memory: the documents are never pickled)


@contextmanager
def fast_counting(vectorizers: list[Any], n_jobs: int, min_chars: int = MIN_CHARS) -> Iterator[None]:
    """Within the block, fit / transform of these vectorizers count compiled where they can, else
    with up to n_jobs processes on inputs of `min_chars` characters or more."""
    jobs = min(n_jobs, os.cpu_count() or 1)
    if "fork" not in multiprocessing.get_all_start_methods():
        jobs = 1
    unique = [v for v in {id(v): v for v in vectorizers}.values() if getattr(v, "input", None) == "content"]
    counted = {id(v) for v in unique if jobs > 1 or _compiled_applies(v)}
    shadows = [
        (vectorizer, name, method)
        for vectorizer in unique
        for name, method in (
            ("_count_vocab", functools.partial(_count_vocab, vectorizer, jobs, min_chars) if id(vectorizer) in counted else None),
            ("_limit_features", _limit_features),
            ("_sort_features", _sort_features),
        )
        if method is not None
    ]
    previous = [vars(vectorizer).get(name) for vectorizer, name, _ in shadows]  # an enclosing fast_counting's, restored on exit
    for vectorizer, name, method in shadows:  # an instance attribute shadows the method, for this block only
        setattr(vectorizer, name, method)
    try:
        yield
    finally:
        for (vectorizer, name, _), before in zip(shadows, previous):
            if before is None:
                delattr(vectorizer, name)
            else:
                setattr(vectorizer, name, before)


def _compiled_applies(vectorizer: Any) -> bool:
    return (
        IMPLEMENTATION == "compiled"
        and vectorizer.analyzer == "word"
        and vectorizer.tokenizer is None
        and vectorizer.token_pattern == DEFAULT_TOKEN_PATTERN
        and vectorizer.get_stop_words() is None
        and vectorizer.ngram_range[0] >= 1
    )  # (0, n): scikit-learn counts empty-string "0-grams"


def _serial(vectorizer: Any, documents: list, fixed_vocab: bool):
    if not _compiled_applies(vectorizer):
        return type(vectorizer)._count_vocab(vectorizer, documents, fixed_vocab)
    return _compiled_count(vectorizer, documents, fixed_vocab)


def _compiled_count(vectorizer: Any, documents: list, fixed_vocab: bool):
    """scikit-learn's `_count_vocab`, its n-gram loop compiled; the rest as scikit-learn does it.
    Fitting, the terms outside [min_df, max_df] are left out already (`_document_frequency_kept`):
    scikit-learn's pruning then keeps every term it is given, and ends where it would have."""
    import scipy.sparse as sp
    from sklearn.feature_extraction import text

    min_n, max_n = vectorizer.ngram_range
    preprocess = vectorizer.build_preprocessor()
    columns = None  # fitting: the features kept, where min_df / max_df drop some
    if fixed_vocab:
        vocabulary = vectorizer.vocabulary_
        indices, values, indptr = _ngrams.count_word_ngrams(documents, preprocess, vectorizer.decode, min_n, max_n, vocabulary)
        n_features = len(vocabulary)
    else:
        indices, values, indptr, counter = _ngrams.count_word_ngrams_deferred(documents, preprocess, vectorizer.decode, min_n, max_n)
        n_features = counter.n_features
        if not n_features:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        kept = _document_frequency_kept(vectorizer, indices, n_features, len(indptr) - 1)
        columns = np.flatnonzero(kept) if kept is not None else None
        # terms are made here only, for the features kept: most of a fit's bigrams never become strings
        terms = counter.terms(columns if columns is not None else np.arange(n_features))
        del counter
        vocabulary = dict(zip(terms, range(len(terms))))
    index_dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
    X = sp.csr_array(
        (values.astype(np.intc, copy=False), indices.astype(index_dtype), indptr.astype(index_dtype)),
        shape=(len(indptr) - 1, n_features),
        dtype=vectorizer.dtype,
    )
    del indices, values, indptr
    if columns is not None:
        X = X[:, columns]  # the kept entries only, in their order (what scikit-learn's pruning copies too)
    X.sort_indices()
    align = getattr(text, "_align_api_if_sparse", None)  # scikit-learn >= 1.8: csr_array or csr_matrix per its config
    return vocabulary, (align(X) if align is not None else sp.csr_matrix(X))


def _document_frequency_kept(vectorizer: Any, indices: np.ndarray, n_features: int, n_doc: int) -> np.ndarray | None:
    """Which features scikit-learn's min_df / max_df keep (its thresholds, from the same number of
    documents); None where it keeps all, or where it will raise (max_df below min_df, nothing
    kept): its own error then comes from its own code."""
    high = vectorizer.max_df if isinstance(vectorizer.max_df, Integral) else vectorizer.max_df * n_doc
    low = vectorizer.min_df if isinstance(vectorizer.min_df, Integral) else vectorizer.min_df * n_doc
    kept = _document_frequency_mask(np.bincount(indices, minlength=n_features), high, low)
    return None if high < low or kept.all() or not kept.any() else kept


def _document_frequency_mask(dfs: np.ndarray, high=None, low=None) -> np.ndarray:
    """The features whose document frequency is within [low, high] (a bound None: no bound)."""
    mask = np.ones(len(dfs), dtype=bool)
    if high is not None:
        mask &= dfs <= high
    if low is not None:
        mask &= dfs >= low
    return mask


class _Counted(NamedTuple):
    """One chunk's counts as CSR arrays (cheap to send back), with its terms in index order."""

    terms: list[str] | None  # None with a fixed vocabulary
    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    matrix_class: type  # csr_matrix or csr_array, as scikit-learn returned it


def _count_chunk(bounds: tuple[int, int]) -> _Counted:
    vectorizer, documents, fixed_vocab = _WORK["vectorizer"], _WORK["documents"], _WORK["fixed_vocab"]
    vocabulary, X = _serial(vectorizer, documents[bounds[0] : bounds[1]], fixed_vocab)
    # dict order is index order (scikit-learn numbers a term when first seen), so the terms alone say it
    return _Counted(None if fixed_vocab else list(vocabulary), X.data, X.indices, X.indptr, type(X))


def _count_vocab(vectorizer: Any, jobs: int, min_chars: int, raw_documents, fixed_vocab: bool):
    documents = raw_documents if isinstance(raw_documents, list) else list(raw_documents)
    try:
        small = len(documents) < 2 * jobs or sum(map(len, documents)) < min_chars
    except TypeError:  # not sized (NaN, a callable analyzer's objects): scikit-learn's own errors
        small = True
    if small or _compiled_applies(vectorizer):
        return _serial(vectorizer, documents, fixed_vocab)
    edges = np.linspace(0, len(documents), jobs + 1).astype(int).tolist()
    chunks = list(itertools.pairwise(edges))
    _WORK.update(vectorizer=vectorizer, documents=documents, fixed_vocab=fixed_vocab)
    try:
        with ProcessPoolExecutor(len(chunks) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
            pending = [pool.submit(_count_chunk, bounds) for bounds in chunks[1:]]
            parts = [_count_chunk(chunks[0])] + [p.result() for p in pending]
    except (ValueError, BrokenProcessPool):  # a chunk of stop words only ("empty vocabulary"), a
        return _serial(vectorizer, documents, fixed_vocab)  # worker killed (memory): the serial pass decides
    finally:
        _WORK.clear()
    vocabulary = vectorizer.vocabulary_ if fixed_vocab else None
    remaps: list[np.ndarray | None] = [None] * len(parts)
    if not fixed_vocab:
        vocabulary, remaps = _merge_terms([part.terms for part in parts])
    X = _stack(parts, remaps, len(vocabulary), vectorizer.dtype)
    return vocabulary, X


def _limit_features(X, vocabulary: dict[str, int], high=None, low=None, limit=None):
    """scikit-learn's `CountVectorizer._limit_features` (min_df, max_df, max_features: the same
    mask, the same error), its loop over every term done with NumPy (counted with scikit-learn's
    own code, MPT's left/right train set has 185,405 terms for 58,753 kept, and the loop was
    0.07-0.19 s of a 0.7 s fit). The vocabulary keeps its key order (first appearance)."""
    dfs = np.bincount(X.indices, minlength=X.shape[1])  # a counted row holds a term once
    mask = _document_frequency_mask(dfs, high, low)
    if limit is not None and mask.sum() > limit:
        tfs = np.asarray(X.sum(axis=0)).ravel()
        mask_inds = (-tfs[mask]).argsort()[:limit]
        new_mask = np.zeros(len(dfs), dtype=bool)
        new_mask[np.where(mask)[0][mask_inds]] = True
        mask = new_mask
    kept_indices = np.flatnonzero(mask)
    if len(kept_indices) == 0:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    old = np.fromiter(vocabulary.values(), dtype=np.int64, count=len(vocabulary))
    keep = mask[old]
    terms = list(itertools.compress(vocabulary, keep.tolist()))
    new = (np.cumsum(mask) - 1)[old[keep]]  # old index -> new, as scikit-learn numbers them
    vocabulary.clear()
    vocabulary.update(zip(terms, new))  # NumPy integers, as scikit-learn leaves them
    return X[:, kept_indices]


def _sort_features(X, vocabulary: dict[str, int]):
    """scikit-learn's `CountVectorizer._sort_features` (features numbered in term order), without
    its Python loop over (term, index) pairs: the terms sorted once, the columns remapped by NumPy."""
    ordered = sorted(vocabulary)
    n = len(ordered)
    map_index = np.empty(n, dtype=X.indices.dtype)
    map_index[np.fromiter(map(vocabulary.__getitem__, ordered), dtype=np.int64, count=n)] = np.arange(n, dtype=X.indices.dtype)
    vocabulary.update(zip(ordered, range(n)))  # existing keys: values change, key order stays
    X.indices = map_index.take(X.indices, mode="clip")
    return X


def _merge_terms(chunk_terms: list[list[str]]) -> tuple[dict[str, int], list[np.ndarray | None]]:
    """One vocabulary in order of first appearance, and per chunk the map local index -> global."""
    vocabulary = {term: i for i, term in enumerate(chunk_terms[0])}
    remaps: list[np.ndarray | None] = [None]  # the first chunk's indices are already global
    for terms in chunk_terms[1:]:
        setdefault = vocabulary.setdefault
        remaps.append(np.fromiter((setdefault(term, len(vocabulary)) for term in terms), dtype=np.int64, count=len(terms)))
    return vocabulary, remaps


def _stack(parts: list[_Counted], remaps: list, n_features: int, dtype: Any):
    """The chunks' rows one after another, column indices mapped to the merged vocabulary."""
    import scipy.sparse as sp

    blocks = [
        part.matrix_class(
            (part.data, part.indices if remap is None else remap[part.indices], part.indptr),
            shape=(len(part.indptr) - 1, n_features),
            dtype=dtype,
        )
        for part, remap in zip(parts, remaps)
    ]
    X = sp.vstack(blocks, format="csr", dtype=dtype)
    X.sort_indices()  # remapped rows are no longer in column order
    index_dtype = np.int64 if X.nnz > np.iinfo(np.int32).max else np.int32  # scikit-learn's rule (remaps are int64)
    X.indices, X.indptr = X.indices.astype(index_dtype, copy=False), X.indptr.astype(index_dtype, copy=False)
    return X
