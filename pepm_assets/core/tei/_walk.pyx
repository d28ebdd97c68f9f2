# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled half of `walk.py`: the same columns, read straight off libxml2's tree.

Per document, the Python way costs an XPath call, a Python string per field and Arrow's
re-encoding of each string to UTF-8: about 8 µs, more than parsing the document. Here a column is
one C loop over the elements that writes UTF-8 bytes and Arrow offsets directly (libxml2 already
holds the text as UTF-8), so a document costs well under a microsecond.

Only libxml2's node structs are read (through lxml's public C API, `_Element._c_node`); no
libxml2 function is called and nothing in the tree is modified. Semantics are those of the
pure-Python functions in `walk.py`, which the tests compare against on the shipped corpora.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memmove, strcmp, strlen

from lxml.includes cimport tree
from lxml.includes.etreepublic cimport _Element, import_lxml__etree

import_lxml__etree()

cdef enum:
    MAX_PUNCTUATION = 64

cdef unsigned char IS_SPACE[256]   # XML whitespace: what normalize-space() collapses
for _c in range(256):
    IS_SPACE[_c] = _c in (9, 10, 13, 32)


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _reserve(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = b.cap if b.cap else 65536
    cdef char* data
    if b.size + extra <= b.cap:
        return 0
    while cap < b.size + extra:
        cap *= 2
    data = <char*> realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data, b.cap = data, cap
    return 0


cdef struct Name:   # an element or attribute name, Clark notation split: namespace (or NULL), local
    const char* ns
    const char* local


cdef class _Names:
    """Keeps the encoded names alive while C pointers to them are in use."""
    cdef list keep

    def __cinit__(self):
        self.keep = []

    cdef Name split(self, str clark) except *:
        cdef Name name
        cdef bytes ns, local
        if clark.startswith("{"):
            ns_text, local_text = clark[1:].split("}", 1)
            ns, local = ns_text.encode(), local_text.encode()
            self.keep += [ns, local]
            name.ns, name.local = ns, local
        else:
            local = clark.encode()
            self.keep.append(local)
            name.ns, name.local = NULL, local
        return name


cdef inline bint _same_ns(tree.xmlNs* ns, const char* href) noexcept:
    if href == NULL:
        return ns == NULL
    return ns != NULL and strcmp(<const char*> ns.href, href) == 0


cdef inline bint _is(tree.xmlNode* node, Name name) noexcept:
    return (node.type == tree.XML_ELEMENT_NODE and strcmp(<const char*> node.name, name.local) == 0
            and _same_ns(node.ns, name.ns))


cdef tree.xmlNode* _next_in_subtree(tree.xmlNode* node, tree.xmlNode* top, bint descend) noexcept:
    """Document-order successor of `node` inside `top`'s subtree, or NULL at its end."""
    if descend and node.type == tree.XML_ELEMENT_NODE and node.children != NULL:
        return node.children
    while node != top and node.next == NULL:
        node = node.parent
    if node == top:
        return NULL
    return node.next


cdef tree.xmlNode* _first_descendant(tree.xmlNode* top, Name name) noexcept:
    cdef tree.xmlNode* node = top.children
    while node != NULL:
        if _is(node, name):
            return node
        node = _next_in_subtree(node, top, True)
    return NULL


cdef tree.xmlAttr* _attribute(tree.xmlNode* node, Name name) noexcept:
    cdef tree.xmlAttr* attr = node.properties
    while attr != NULL:
        if strcmp(<const char*> attr.name, name.local) == 0 and _same_ns(attr.ns, name.ns):
            return attr
        attr = attr.next
    return NULL


cdef int _append_attribute(Buf* b, tree.xmlAttr* attr) except -1:
    cdef tree.xmlNode* text = attr.children
    cdef Py_ssize_t n
    while text != NULL:
        if text.content != NULL:
            n = strlen(<const char*> text.content)
            _reserve(b, n)
            memmove(b.data + b.size, text.content, n)
            b.size += n
        text = text.next
    return 0


cdef int _append_normalized(Buf* b, const unsigned char* s, unsigned int* after_space) except -1:
    """Append `s` with runs of XML whitespace written as one space; `after_space` carries across
    calls (the text of an element spans several text nodes), starting at 1 drops leading space."""
    cdef Py_ssize_t n = strlen(<const char*> s)
    cdef Py_ssize_t i, size
    cdef unsigned char c
    cdef unsigned int space, prev = after_space[0]
    cdef unsigned char* out
    _reserve(b, n + 1)
    out = <unsigned char*> b.data
    size = b.size
    for i in range(n):   # branch-free: whitespace becomes ' ', a space after a space is overwritten
        c = s[i]
        space = IS_SPACE[c]
        out[size] = c ^ ((c ^ 32) & (0 - space))
        size += 1 - (space & prev)
        prev = space
    b.size = size
    after_space[0] = prev
    return 0


cdef int _append_subtree_text(Buf* b, tree.xmlNode* top) except -1:
    """normalize-space() of `top`'s string value (its text nodes, not its tail)."""
    cdef Py_ssize_t start = b.size
    cdef unsigned int after_space = 1
    cdef tree.xmlNode* node = top.children
    while node != NULL:
        if (node.type == tree.XML_TEXT_NODE or node.type == tree.XML_CDATA_SECTION_NODE) and node.content != NULL:
            _append_normalized(b, <const unsigned char*> node.content, &after_space)
        node = _next_in_subtree(node, top, True)
    if b.size > start and b.data[b.size - 1] == 32:
        b.size -= 1
    return 0


cdef bint _has_type(tree.xmlNode* node, Name type_name, const char* wanted) noexcept:
    cdef tree.xmlAttr* attr
    if wanted == NULL:
        return True
    attr = _attribute(node, type_name)
    return (attr != NULL and attr.children != NULL and attr.children.next == NULL
            and attr.children.content != NULL and strcmp(<const char*> attr.children.content, wanted) == 0)


cdef int _append_parts_text(Buf* b, tree.xmlNode* top, Name part, Name type_name, const char* part_type) except -1:
    """The texts of `top`'s `part` descendants (with @type = part_type), joined by one space."""
    cdef Py_ssize_t start = b.size, before
    cdef tree.xmlNode* node = top.children
    cdef bint descend
    while node != NULL:
        descend = True
        if _is(node, part) and _has_type(node, type_name, part_type):
            before = b.size
            if before > start:
                _reserve(b, 1)
                b.data[b.size] = 32
                b.size += 1
            _append_subtree_text(b, node)
            if b.size == before + 1 and before > start:
                b.size = before      # an empty part adds no separator
            descend = False          # a part inside a part is already in its text
        node = _next_in_subtree(node, top, descend)
    return 0


cdef inline Py_ssize_t _utf8_at(const unsigned char* s, Py_ssize_t i, Py_ssize_t end, int32_t* cp) noexcept:
    """Decode the code point at s[i] (valid UTF-8 from libxml2); return its length in bytes."""
    cdef unsigned char c = s[i]
    if c < 0x80:
        cp[0] = c
        return 1
    if c < 0xE0 and i + 1 < end:
        cp[0] = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F)
        return 2
    if c < 0xF0 and i + 2 < end:
        cp[0] = ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F)
        return 3
    if i + 3 < end:
        cp[0] = ((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F)
        return 4
    cp[0] = c
    return 1


def texts(list elements, str within=None, str parts=None, str part_type=None,
          bytes lstrip=b"", bytes rstrip=b"", str punctuation=""):
    """For each element: its whitespace-normalised text (or that of its first `within`
    descendant, or its `parts` descendants joined by a space), stripped of leading `lstrip` and
    trailing `rstrip` bytes (ASCII). Returns Arrow string buffers (offsets, data), the token
    counts as int64 bytes, the indices with no `within` element and those whose text is made only
    of `punctuation` (and spaces)."""
    cdef Py_ssize_t n = len(elements), i, j, k, start, end
    cdef _Names names = _Names()
    cdef Name within_name = Name(NULL, NULL), part_name = Name(NULL, NULL), type_name = names.split("type")
    cdef bint has_within = within is not None, has_parts = parts is not None
    cdef bytes part_type_b = part_type.encode() if part_type is not None else None
    cdef const char* c_part_type = NULL
    if part_type_b is not None:
        c_part_type = part_type_b
    cdef int32_t punct[MAX_PUNCTUATION]
    cdef int32_t cp
    cdef Py_ssize_t n_punct = len(punctuation)
    cdef unsigned char lstrip_set[256]
    cdef unsigned char rstrip_set[256]
    cdef Buf data, offsets, tokens
    cdef tree.xmlNode* node
    cdef int64_t count
    cdef bint word
    cdef list missing = [], empty = []
    if n_punct > MAX_PUNCTUATION:
        raise ValueError(f"at most {MAX_PUNCTUATION} punctuation characters")
    for k in range(n_punct):
        punct[k] = ord(punctuation[k])
    for k in range(256):
        lstrip_set[k] = rstrip_set[k] = 0
    for k in lstrip:
        lstrip_set[k] = 1
    for k in rstrip:
        rstrip_set[k] = 1
    if has_within:
        within_name = names.split(within)
    if has_parts:
        part_name = names.split(parts)
    data.data = offsets.data = tokens.data = NULL
    data.size = offsets.size = tokens.size = data.cap = offsets.cap = tokens.cap = 0
    try:
        _reserve(&offsets, (n + 1) * sizeof(int32_t))
        _reserve(&tokens, n * sizeof(int64_t) + 1)
        (<int32_t*> offsets.data)[0] = 0
        for i in range(n):
            node = (<_Element?> elements[i])._c_node
            start = data.size
            if has_within:
                node = _first_descendant(node, within_name)
                if node == NULL:
                    missing.append(i)
            if node != NULL:
                if has_parts:
                    _append_parts_text(&data, node, part_name, type_name, c_part_type)
                else:
                    _append_subtree_text(&data, node)
            k = start   # strip: leading bytes shift left, trailing ones are cut
            while k < data.size and lstrip_set[<unsigned char> data.data[k]]:
                k += 1
            if k > start:
                memmove(data.data + start, data.data + k, data.size - k)
                data.size -= k - start
            while data.size > start and rstrip_set[<unsigned char> data.data[data.size - 1]]:
                data.size -= 1
            end = data.size
            if end > 0x7FFFFFFF:
                raise OverflowError("more than 2 GiB of text in one column")
            count = 0
            for j in range(start, end):
                count += data.data[j] == 32
            (<int64_t*> tokens.data)[i] = count + 1 if end > start else 0
            word = False
            j = start
            while j < end and not word:
                j += _utf8_at(<const unsigned char*> data.data, j, end, &cp)
                word = cp != 32
                for k in range(n_punct):
                    if punct[k] == cp:
                        word = False
                        break
            if not word and node != NULL:
                empty.append(i)
            (<int32_t*> offsets.data)[i + 1] = <int32_t> end
        return (PyBytes_FromStringAndSize(offsets.data, (n + 1) * sizeof(int32_t)),
                PyBytes_FromStringAndSize(data.data, data.size),
                PyBytes_FromStringAndSize(tokens.data, n * sizeof(int64_t)),
                missing, empty)
    finally:
        free(data.data)
        free(offsets.data)
        free(tokens.data)


def attributes(list elements, list names, str within=None, str default=""):
    """For each element, the values of the attributes `names` (Clark notation) on it or on its
    first `within` descendant, `default` when absent. One pass over each element's attributes for
    all the names (the tree walk, not the copying, is what costs). Returns Arrow string buffers
    (offsets, data) per name."""
    cdef Py_ssize_t n = len(elements), m = len(names), i, k
    cdef _Names keep = _Names()
    cdef Name* wanted = NULL
    cdef Name within_name = Name(NULL, NULL)
    cdef bint has_within = within is not None
    cdef bytes default_b = default.encode()
    cdef Py_ssize_t default_len = len(default_b)
    cdef Buf* data = NULL
    cdef Buf* offsets = NULL
    cdef tree.xmlAttr** found = NULL
    cdef tree.xmlNode* node
    cdef tree.xmlAttr* attr
    if has_within:
        within_name = keep.split(within)
    try:
        wanted = <Name*> calloc(m + 1, sizeof(Name))
        data = <Buf*> calloc(m + 1, sizeof(Buf))
        offsets = <Buf*> calloc(m + 1, sizeof(Buf))
        found = <tree.xmlAttr**> calloc(m + 1, sizeof(tree.xmlAttr*))
        if wanted == NULL or data == NULL or offsets == NULL or found == NULL:
            raise MemoryError()
        for k in range(m):
            wanted[k] = keep.split(names[k])
            _reserve(&offsets[k], (n + 1) * sizeof(int32_t))
            (<int32_t*> offsets[k].data)[0] = 0
        for i in range(n):
            node = (<_Element?> elements[i])._c_node
            if has_within:
                node = _first_descendant(node, within_name)
            for k in range(m):
                found[k] = NULL
            attr = node.properties if node != NULL else NULL
            while attr != NULL:
                for k in range(m):
                    if (found[k] == NULL and attr.name[0] == wanted[k].local[0]   # first byte: skips most strcmp calls
                            and strcmp(<const char*> attr.name, wanted[k].local) == 0 and _same_ns(attr.ns, wanted[k].ns)):
                        found[k] = attr
                        break
                attr = attr.next
            for k in range(m):
                if found[k] != NULL:
                    _append_attribute(&data[k], found[k])
                elif default_len:
                    _reserve(&data[k], default_len)
                    memmove(data[k].data + data[k].size, <const char*> default_b, default_len)
                    data[k].size += default_len
                if data[k].size > 0x7FFFFFFF:
                    raise OverflowError("more than 2 GiB of attribute values in one column")
                (<int32_t*> offsets[k].data)[i + 1] = <int32_t> data[k].size
        return [(PyBytes_FromStringAndSize(offsets[k].data, (n + 1) * sizeof(int32_t)),
                 PyBytes_FromStringAndSize(data[k].data, data[k].size)) for k in range(m)]
    finally:
        if data != NULL and offsets != NULL:
            for k in range(m):
                free(data[k].data)
                free(offsets[k].data)
        free(wanted)
        free(data)
        free(offsets)
        free(found)
