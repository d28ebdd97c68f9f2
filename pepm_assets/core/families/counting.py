"""scikit-learn's text vectorizers, counting faster, with exactly scikit-learn's output.

In `TfidfVectorizer` / `CountVectorizer`, counting (tokenising, building n-grams, counting them:
pure Python) is ~75% of a fit and all of a transform. Inside `fast_counting(vectorizers, n_jobs)`,
the vectorizers' `_count_vocab` is replaced by two stacked strategies:

1. Compiled counting (`_ngrams.pyx`) for the built-in word analyzer with the default
   `token_pattern` and no stop words (what pepm's sklearn and cluster families use): 2-3x faster,
   in one process (splitting it over processes was slower at every size measured, 0.8M to 27M
   characters: merging the chunks' vocabularies costs as much as the counting saved).
2. Any other vectorizer (characters, a custom tokenizer, stop words), or all of them when the
   module is not built (`PEPM_NGRAMS=python` forces that), counts with scikit-learn's own
   `_count_vocab`, on several processes for inputs of `min_chars` characters or more: the
   documents are split into contiguous chunks; forked workers count all chunks but the first
   while the parent counts the first; the parent then merges (a term keeps the index of its first
   appearance, as in one serial pass). Forking and shipping the counts back costs tens of
   milliseconds, which pays off above ~1M characters (about a second of serial counting).

scikit-learn's own code does everything after counting (min_df, max_df, max_features, sorting,
idf). Same vocabulary, same matrix, same model: tested value for value against the plain
vectorizer. It is an execution strategy, not an estimator: the vectorizer stays a plain
scikit-learn object and what is pickled is plain scikit-learn (a model.pkl loads without pepm).
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
    unique = {id(v): v for v in vectorizers}.values()
    patched = [v for v in unique if getattr(v, "input", None) == "content" and (jobs > 1 or _compiled_applies(v))]
    shadowed = [vars(v).get("_count_vocab") for v in patched]  # an enclosing fast_counting's, restored on exit
    for vectorizer in patched:  # an instance attribute shadows the method, for this block only
        vectorizer._count_vocab = functools.partial(_count_vocab, vectorizer, jobs, min_chars)
    try:
        yield
    finally:
        for vectorizer, previous in zip(patched, shadowed):
            if previous is None:
                del vectorizer._count_vocab
            else:
                vectorizer._count_vocab = previous


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
    """scikit-learn's `_count_vocab`, its n-gram loop compiled; the rest as scikit-learn does it."""
    import scipy.sparse as sp
    from sklearn.feature_extraction import text

    vocabulary = vectorizer.vocabulary_ if fixed_vocab else {}
    min_n, max_n = vectorizer.ngram_range
    indices, values, indptr = _ngrams.count_word_ngrams(
        documents, vectorizer.build_preprocessor(), vectorizer.decode, min_n, max_n, vocabulary, fixed_vocab
    )
    if not fixed_vocab and not vocabulary:
        raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
    index_dtype = np.int64 if indptr[-1] > np.iinfo(np.int32).max else np.int32
    X = sp.csr_array(
        (values.astype(np.intc, copy=False), indices.astype(index_dtype), indptr.astype(index_dtype)),
        shape=(len(indptr) - 1, len(vocabulary)),
        dtype=vectorizer.dtype,
    )
    X.sort_indices()
    align = getattr(text, "_align_api_if_sparse", None)  # scikit-learn >= 1.8: csr_array or csr_matrix per its config
    return vocabulary, (align(X) if align is not None else sp.csr_matrix(X))


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
