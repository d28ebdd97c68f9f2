# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# distutils: language = c++
"""Compiled half of `counting.py`: scikit-learn's word n-gram counting (`CountVectorizer._count_vocab`
with `analyzer="word"` and the default `token_pattern`), with exactly its vocabulary and matrix.

scikit-learn finds the tokens with a regex, builds every n-gram as a new string and looks each up
in a dict: ~75 µs per MPT speech, most of a fit. Here the tokens are found in C (sre's `\\w` is
`Py_UNICODE_ISALNUM` or "_", so `\\b\\w\\w+\\b` is every maximal run of such characters of length >= 2),
each distinct token and each distinct pair of tokens is looked up in a C++ hash table, and a
Python string is made only where one is needed. Fitting (`count_word_ngrams_deferred`), terms are
numbered in scikit-learn's order (a document's unigrams in order, then its bigrams, ...) and stay
a token id or a pair of them until the caller asks for the strings of the terms it keeps
(`_Counter.terms`: min_df drops most bigrams first); transforming (`count_word_ngrams`), each
distinct token and pair is looked up in the vocabulary once. The vocabulary, the rows and the
counts are the ones scikit-learn builds; `test_counting.py` compares them value for value.
n-grams longer than 2 are built as strings, as scikit-learn does.
"""
from cpython.dict cimport PyDict_GetItemWithError
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_Substring
from cython.operator cimport dereference as deref
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from libcpp.pair cimport pair
from libcpp.string cimport string
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

import numpy as np

cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    Py_UCS4 PyUnicode_MAX_CHAR_VALUE(object o)
    Py_UCS4 PyUnicode_READ(int kind, void* data, Py_ssize_t index) nogil
    bint Py_UNICODE_ISALNUM(Py_UCS4 ch) nogil
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    Py_ssize_t PyUnicode_CopyCharacters(object to, Py_ssize_t to_start, object frm, Py_ssize_t from_start, Py_ssize_t how_many) except -1
    int PyUnicode_WriteChar(object s, Py_ssize_t index, Py_UCS4 ch) except -1
    PyObject* PyDict_SetDefault(object d, object key, object default) except NULL

cdef enum:
    UNSEEN = -2   # a token whose unigram was never looked up in the vocabulary
    ABSENT = -1   # a term not in a fixed vocabulary (transform): not counted
    UNIGRAM = -1  # deferred: a feature that is one token
    LONGER = -2   # deferred: a feature that is an n-gram longer than 2 (its string in long_terms)

cdef int64_t MAX_TOKENS = (<int64_t>1) << 31


cdef unsigned char ASCII_WORD[128]
for _c in range(128):
    ASCII_WORD[_c] = chr(_c).isalnum() or _c == 95


cdef inline bint _is_word(Py_UCS4 ch) noexcept nogil:
    if ch < 128:
        return ASCII_WORD[ch]
    return Py_UNICODE_ISALNUM(ch)


cdef str _join2(str a, str b):
    """a + " " + b, without the tuple of " ".join((a, b)) (tuples are tracked by the GC, and a
    fit makes one per distinct bigram)."""
    cdef Py_ssize_t la = PyUnicode_GET_LENGTH(a), lb = PyUnicode_GET_LENGTH(b)
    out = PyUnicode_New(la + 1 + lb, max(PyUnicode_MAX_CHAR_VALUE(a), PyUnicode_MAX_CHAR_VALUE(b), 32))
    PyUnicode_CopyCharacters(out, 0, a, 0, la)
    PyUnicode_WriteChar(out, la, 32)
    PyUnicode_CopyCharacters(out, la + 1, b, 0, lb)
    return out


cdef struct Seen:
    int64_t doc
    int64_t position


cdef struct PairTable:
    # open addressing, linear probing: one cache miss per lookup where std::unordered_map chases a
    # node pointer (a fit looks up every bigram of every document)
    int64_t* keys   # -1: empty slot
    int64_t* features
    size_t mask     # capacity - 1 (a power of two)
    size_t used


cdef inline size_t _slot(const PairTable* t, int64_t key) noexcept nogil:
    cdef size_t i = <size_t>((<uint64_t>key * 0x9E3779B97F4A7C15ULL) >> 20) & t.mask
    while t.keys[i] != -1 and t.keys[i] != key:
        i = (i + 1) & t.mask
    return i


cdef int _grow(PairTable* t, size_t capacity) except -1:
    cdef int64_t* keys = <int64_t*>malloc(capacity * sizeof(int64_t))
    cdef int64_t* features = <int64_t*>malloc(capacity * sizeof(int64_t))
    cdef PairTable old = t[0]
    cdef size_t i, j
    if keys == NULL or features == NULL:
        free(keys)
        free(features)
        raise MemoryError()
    memset(keys, 0xFF, capacity * sizeof(int64_t))
    t.keys, t.features, t.mask = keys, features, capacity - 1
    if old.keys != NULL:
        for i in range(old.mask + 1):
            if old.keys[i] != -1:
                j = _slot(t, old.keys[i])
                t.keys[j] = old.keys[i]
                t.features[j] = old.features[i]
    free(old.keys)
    free(old.features)
    return 0


cdef class _Counter:
    """One counting pass: tokens and pairs seen so far, and the rows being built."""
    cdef dict vocabulary                           # transforming: the fitted one; fitting: the longer n-grams' numbers
    cdef bint fixed                                # transforming (else fitting, deferred)
    cdef unordered_map[string, int64_t] token_ids  # token (UCS-4 code points as bytes) -> token id
    cdef list token_strings                        # token id -> its Python string
    cdef vector[int64_t] unigram                   # token id -> feature (UNSEEN, ABSENT or >= 0)
    cdef PairTable bigram                          # (token id << 32) | token id -> feature
    cdef vector[int64_t] doc_tokens                # token ids of the current document
    cdef vector[Seen] seen                         # feature -> last document it was counted in, its position there
    cdef vector[int64_t] indices
    cdef vector[int32_t] values
    cdef vector[int64_t] indptr
    cdef int64_t doc_no
    # fitting: features are numbered as met, their strings made on demand (`terms`)
    cdef vector[int64_t] first                     # feature -> its token id (unigram, bigram), or its index in long_terms
    cdef vector[int64_t] second                    # feature -> the bigram's second token id; UNIGRAM or LONGER
    cdef list long_terms                           # the n-grams longer than 2, as strings (deduplicated by `vocabulary`)

    def __cinit__(self, dict vocabulary, bint fixed):
        self.vocabulary = vocabulary
        self.fixed = fixed
        self.long_terms = []
        self.token_strings = []
        self.token_ids.reserve(1 << 14)
        _grow(&self.bigram, 1 << 16)
        self.indptr.push_back(0)
        self.doc_no = 0

    def __dealloc__(self):
        free(self.bigram.keys)
        free(self.bigram.features)

    cdef int64_t feature(self, str term) except -3:
        """The feature number of a term: the vocabulary's, or (fitting: an n-gram longer than 2, the
        others are numbered by `_new` without a string) its own or the next one."""
        cdef PyObject* found
        cdef int64_t f
        if self.fixed:
            found = PyDict_GetItemWithError(self.vocabulary, term)
            return ABSENT if found == NULL else <int64_t><object>found
        f = <int64_t><object>PyDict_SetDefault(self.vocabulary, term, <int64_t>self.first.size())
        if f == <int64_t>self.first.size():
            self._new(len(self.long_terms), LONGER)
            self.long_terms.append(term)
        return f

    cdef inline int64_t _new(self, int64_t first, int64_t second):
        self.first.push_back(first)
        self.second.push_back(second)
        return self.first.size() - 1

    cdef int64_t unigram_feature(self, int64_t a) except -3:
        if not self.fixed:
            return self._new(a, UNIGRAM)
        return self.feature(<str>PyList_GET_ITEM(self.token_strings, a))

    cdef int64_t bigram_feature(self, int64_t a, int64_t b) except -3:
        if not self.fixed:
            return self._new(a, b)
        return self.feature(_join2(<str>PyList_GET_ITEM(self.token_strings, a), <str>PyList_GET_ITEM(self.token_strings, b)))

    @property
    def n_features(self) -> int:
        return self.first.size()

    def terms(self, const int64_t[::1] features):
        """The strings of these features (fitting), in this order: scikit-learn's terms."""
        cdef Py_ssize_t i
        cdef int64_t f, a, b
        cdef list out = [None] * features.shape[0]
        for i in range(features.shape[0]):
            f = features[i]
            if f < 0 or <size_t>f >= self.first.size():
                raise IndexError(f"feature {f} of {self.first.size()}")
            a, b = self.first[f], self.second[f]
            if b == UNIGRAM:
                out[i] = <str>PyList_GET_ITEM(self.token_strings, a)
            elif b == LONGER:
                out[i] = <str>PyList_GET_ITEM(self.long_terms, a)
            else:
                out[i] = _join2(<str>PyList_GET_ITEM(self.token_strings, a), <str>PyList_GET_ITEM(self.token_strings, b))
        return out

    cdef void tokenize(self, str text) except *:
        """doc_tokens = ids of the tokens of text (maximal runs of word characters, length >= 2)."""
        cdef int kind = PyUnicode_KIND(text)
        cdef void* data = PyUnicode_DATA(text)
        cdef Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, start
        cdef Py_UCS4 ch
        cdef string key
        cdef unordered_map[string, int64_t].iterator it
        cdef int64_t token_id
        self.doc_tokens.clear()
        while i < n:
            if not _is_word(PyUnicode_READ(kind, data, i)):
                i += 1
                continue
            start = i
            key.clear()
            while i < n:
                ch = PyUnicode_READ(kind, data, i)
                if not _is_word(ch):
                    break
                key.append(<char*>&ch, sizeof(Py_UCS4))
                i += 1
            if i - start < 2:
                continue
            it = self.token_ids.find(key)
            if it == self.token_ids.end():
                token_id = len(self.token_strings)
                if token_id >= MAX_TOKENS:  # a pair of token ids is one 64-bit key
                    raise OverflowError("more than 2**31 distinct tokens")
                self.token_ids.insert(pair[string, int64_t](key, token_id))
                self.token_strings.append(PyUnicode_Substring(text, start, i))
                self.unigram.push_back(UNSEEN)
            else:
                token_id = deref(it).second
            self.doc_tokens.push_back(token_id)

    cdef inline void count(self, int64_t f):
        cdef Seen fresh
        if f < 0:
            return
        if <size_t>f >= self.seen.size():
            fresh.doc, fresh.position = -1, 0
            self.seen.resize(f + 1 + (f >> 1), fresh)
        if self.seen[f].doc != self.doc_no:
            self.seen[f].doc = self.doc_no
            self.seen[f].position = self.indices.size()
            self.indices.push_back(f)
            self.values.push_back(1)
        else:
            self.values[self.seen[f].position] += 1

    cdef void document(self, str text, int min_n, int max_n) except *:
        cdef Py_ssize_t n_tok, i, n
        cdef int64_t f, key, a, b
        cdef size_t j
        cdef list tokens = None
        self.tokenize(text)
        n_tok = self.doc_tokens.size()
        if min_n <= 1 <= max_n:
            for i in range(n_tok):
                a = self.doc_tokens[i]
                f = self.unigram[a]
                if f == UNSEEN:
                    f = self.unigram_feature(a)
                    self.unigram[a] = f
                self.count(f)
        if min_n <= 2 <= max_n:
            for i in range(n_tok - 1):
                a, b = self.doc_tokens[i], self.doc_tokens[i + 1]
                key = (a << 32) | b
                j = _slot(&self.bigram, key)
                if self.bigram.keys[j] == -1:
                    f = self.bigram_feature(a, b)
                    self.bigram.keys[j] = key
                    self.bigram.features[j] = f
                    self.bigram.used += 1
                    if 2 * self.bigram.used > self.bigram.mask:  # at most half full
                        _grow(&self.bigram, 2 * (self.bigram.mask + 1))
                else:
                    f = self.bigram.features[j]
                self.count(f)
        if max_n >= 3 and n_tok >= 3:
            tokens = [self.token_strings[self.doc_tokens[i]] for i in range(n_tok)]
            for n in range(max(min_n, 3), min(max_n, n_tok) + 1):
                for i in range(n_tok - n + 1):
                    self.count(self.feature(" ".join(tokens[i:i + n])))
        self.indptr.push_back(self.indices.size())
        self.doc_no += 1


def count_word_ngrams(documents, preprocess, decode, int min_n, int max_n, dict vocabulary):
    """Rows of counts of `documents` in the features of a fitted `vocabulary` (terms outside it are
    not counted), as CSR arrays (indices int64, counts int32, indptr int64); `decode` and
    `preprocess` are the vectorizer's own (`decode`, `build_preprocessor()`)."""
    return _count(_Counter(vocabulary, True), documents, preprocess, decode, min_n, max_n)[:3]


def count_word_ngrams_deferred(documents, preprocess, decode, int min_n, int max_n):
    """Fitting without a vocabulary: the same rows, features numbered in scikit-learn's order, and
    no string made for a term yet: (indices, values, indptr, counter), where `counter.terms(ids)`
    makes the strings of the features the caller keeps (min_df prunes most bigrams) and
    `counter.n_features` is the number of distinct terms."""
    return _count(_Counter({}, False), documents, preprocess, decode, min_n, max_n)


cdef tuple _count(_Counter counter, documents, preprocess, decode, int min_n, int max_n):
    if min_n < 1 or max_n >= 1 << 31:
        raise ValueError(f"ngram_range ({min_n}, {max_n})")
    for doc in documents:
        counter.document(_exact_str(preprocess(decode(doc))), min_n, max_n)
    rows = (_array(counter.indices.data(), counter.indices.size(), np.int64),
            _array(counter.values.data(), counter.values.size(), np.int32),
            _array(counter.indptr.data(), counter.indptr.size(), np.int64))
    # copied out: the counter's own rows go now (a fitting counter lives on for `terms`)
    vector[int64_t]().swap(counter.indices)
    vector[int32_t]().swap(counter.values)
    vector[int64_t]().swap(counter.indptr)
    vector[Seen]().swap(counter.seen)
    return (*rows, counter)


cdef str _exact_str(object text):
    """The text as an exact str (the C loops read its buffer): a str subclass (numpy.str_) is
    copied; anything else (None, a number) is the error scikit-learn's regex tokenizer raises."""
    if type(text) is str:
        return <str>text
    if isinstance(text, str):
        return str.__str__(text)
    raise TypeError(f"expected string or bytes-like object, got {type(text).__name__!r}")


cdef object _array(void* data, size_t n, dtype):
    """A NumPy copy of a vector's n elements."""
    out = np.empty(n, dtype=dtype)
    cdef unsigned char[::1] target = out.view(np.uint8)
    if n:
        memcpy(&target[0], data, n * out.itemsize)
    return out
