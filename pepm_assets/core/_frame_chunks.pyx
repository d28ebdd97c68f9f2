# cython: language_level=3
"""Compiled half of `frame_chunks.py`: an arena allocator for CPython that keeps the small blocks
given back to it (the frame stack's 16 KiB chunks) for the next request of the same size, instead
of returning them to the system (munmap) to map fresh ones (mmap, then page faults) a moment later.

CPython calls an arena allocator with the GIL held (the frame stack of a thread, obmalloc's arenas),
so the list of kept blocks needs no lock of its own. Blocks larger than LARGEST_KEPT (obmalloc's
1 MiB arenas) pass through to the allocator found at `install`.
"""

cdef extern from "Python.h":
    ctypedef struct PyObjectArenaAllocator:
        void* ctx
        void* (*alloc)(void* ctx, size_t size) noexcept nogil
        void (*free)(void* ctx, void* ptr, size_t size) noexcept nogil
    void PyObject_GetArenaAllocator(PyObjectArenaAllocator* allocator)
    void PyObject_SetArenaAllocator(PyObjectArenaAllocator* allocator)

cdef enum:
    KEEP = 64                # blocks kept at most: 1 MiB of 16 KiB chunks
    LARGEST_KEPT = 65536     # bytes

cdef PyObjectArenaAllocator _found      # the allocator in place at `install`
cdef void* _blocks[KEEP]
cdef size_t _sizes[KEEP]
cdef int _n_kept = 0
cdef bint _installed = False
cdef long long _reused = 0
cdef long long _passed = 0              # requests that went to `_found`


cdef void* _alloc(void* ctx, size_t size) noexcept nogil:
    global _n_kept, _reused, _passed
    cdef int i = _n_kept - 1
    cdef void* block
    while i >= 0:  # the most recently kept first: its pages are the likeliest to be in cache
        if _sizes[i] == size:
            block = _blocks[i]
            _n_kept -= 1
            _blocks[i], _sizes[i] = _blocks[_n_kept], _sizes[_n_kept]
            _reused += 1
            return block
        i -= 1
    _passed += 1
    return _found.alloc(_found.ctx, size)


cdef void _free(void* ctx, void* block, size_t size) noexcept nogil:
    global _n_kept
    if size <= LARGEST_KEPT and _n_kept < KEEP:
        _blocks[_n_kept], _sizes[_n_kept] = block, size
        _n_kept += 1
        return
    _found.free(_found.ctx, block, size)


def install() -> bool:
    """Put this allocator in place (False if it already is)."""
    global _installed
    cdef PyObjectArenaAllocator mine
    if _installed:
        return False
    PyObject_GetArenaAllocator(&_found)
    mine.ctx = NULL
    mine.alloc = _alloc
    mine.free = _free
    PyObject_SetArenaAllocator(&mine)
    _installed = True
    return True


def uninstall() -> bool:
    """Put back the allocator found at `install` and give it the kept blocks (they are its own);
    False, leaving things as they are, when another allocator has been put in place since."""
    global _installed, _n_kept
    cdef PyObjectArenaAllocator current
    if not _installed:
        return False
    PyObject_GetArenaAllocator(&current)
    if current.alloc != _alloc:
        return False
    PyObject_SetArenaAllocator(&_found)
    while _n_kept > 0:
        _n_kept -= 1
        _found.free(_found.ctx, _blocks[_n_kept], _sizes[_n_kept])
    _installed = False
    return True


def stats() -> dict:
    """installed, and since the module was loaded: blocks reused, requests passed on; blocks kept now."""
    return {"installed": bool(_installed), "reused": _reused, "passed": _passed, "kept": _n_kept}
