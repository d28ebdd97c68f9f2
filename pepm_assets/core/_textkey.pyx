# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled half of `split.text_keys`: the dedup key of many texts in one C loop.

The key of a text is the BLAKE2b digest (12 bytes, hex) of `split.normalize_for_dedup(text)`:
casefolded (Python's own `str.casefold`), ASCII punctuation and the given marks made spaces,
spaces collapsed and stripped, as UTF-8. In Python that is 16 substring scans, a translate, a split
and a join per text; here one pass over the UTF-8 bytes CPython already holds. The pure-Python
function stays the reference: the tests compare both on edge cases and on the shipped corpora.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport free, malloc

import hashlib

cdef unsigned char IS_ALNUM[128]   # ASCII kept as is: 0-9 a-z (a casefolded text has no A-Z)
for _c in range(128):
    IS_ALNUM[_c] = (48 <= _c <= 57) or (97 <= _c <= 122)


cdef struct Marks:
    # the separators in UTF-8, by their last byte: U+0080-U+00BF are C2 xx, U+2000-U+203F E2 80 xx
    unsigned char c2[256]
    unsigned char e280[256]


cdef Marks _marks(str marks) except *:
    cdef Marks m
    cdef int i
    for i in range(256):
        m.c2[i] = 0
        m.e280[i] = 0
    for mark in marks:
        code = ord(mark)
        if 0x80 <= code <= 0xBF:
            m.c2[code] = 1
        elif 0x2000 <= code <= 0x203F:
            m.e280[0x80 + code - 0x2000] = 1
        else:
            raise ValueError(f"no UTF-8 rule here for the separator U+{code:04X} (only U+0080-U+00BF and U+2000-U+203F)")
    return m


cdef Py_ssize_t _normalize(const unsigned char* s, Py_ssize_t n, unsigned char* out, const Marks* m) noexcept nogil:
    """Write the normalised bytes of s[:n] into out (at most n bytes); return their length."""
    cdef Py_ssize_t i = 0, j = 0, width
    cdef bint gap = False  # a separator was met since the last kept byte
    cdef unsigned char c
    while i < n:
        c = s[i]
        # continuation bytes are 0x80-0xBF, so 0xC2 / 0xE2 can only be the start of a character
        if c < 0x80:
            width = 0 if IS_ALNUM[c] else 1
        elif c == 0xC2 and i + 1 < n and m.c2[s[i + 1]]:
            width = 2
        elif c == 0xE2 and i + 2 < n and s[i + 1] == 0x80 and m.e280[s[i + 2]]:
            width = 3
        else:
            width = 0  # any other byte of a non-ASCII character is kept
        if width:  # a separator of `width` bytes
            gap = True
            i += width
            continue
        if gap and j:
            out[j] = 32
            j += 1
        gap = False
        out[j] = c
        j += 1
        i += 1
    return j


def normalized(texts, str marks):
    """`split.normalize_for_dedup` of each text (bytes); `marks`: the non-ASCII separators."""
    cdef Marks m = _marks(marks)
    return [_one(t, &m) for t in texts]


def keys(texts, str marks):
    """The dedup key of each text: blake2b(normalized, digest_size=12).hexdigest()."""
    cdef Marks m = _marks(marks)
    blake2b = hashlib.blake2b
    return [blake2b(_one(t, &m), digest_size=12).hexdigest() for t in texts]


cdef bytes _one(object text, const Marks* m):
    # text.casefold() as the reference calls it: a str subclass gives a str, None an AttributeError
    cdef object result = text.casefold()
    if type(result) is not str:
        raise TypeError(f"casefold() of {type(text).__name__!r} gave {type(result).__name__!r}, not str")
    cdef str folded = <str>result
    cdef Py_ssize_t n
    cdef const char* s = PyUnicode_AsUTF8AndSize(folded, &n)
    cdef unsigned char* out = <unsigned char*> malloc(n + 1)
    if out == NULL:
        raise MemoryError()
    try:
        return PyBytes_FromStringAndSize(<char*> out, _normalize(<const unsigned char*> s, n, out, m))
    finally:
        free(out)
