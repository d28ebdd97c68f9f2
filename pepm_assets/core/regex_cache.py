"""Very large regular expressions compiled once per machine, not once per process.

spaCy's French tokenizer matches its hyphen and elision exceptions with one regex of 1.45 million
characters (`TOKEN_MATCH` in spacy/lang/fr/tokenizer_exceptions.py), compiled by Python's `re` when
`spacy.lang.fr` is first imported: 3.7 s of one core here, paid by every process that tokenizes
French (the spaCy format's writer, the spaCy family's training and scoring, each sweep run), more
than the spaCy format's whole writing of 4,000 documents. Inside `large_regexes_cached()`, a
pattern of MIN_CHARS characters or more is compiled by `re`'s own parser and code generator the first
time and the program they produce (what `re` hands to its C engine) is kept in the cache folder (JSON);
later processes build the pattern from it with the call `re` itself makes (`_sre.compile`): the same
pattern, with no parsing. The cache key holds the Python build and the engine's version (`MAGIC`),
and anything unexpected (another Python, a damaged file, a folder that cannot be written) compiles
as `re` would. Patterns below MIN_CHARS are left to `re` and its own in-process cache, which also
keeps the large ones: spaCy compiles TOKEN_MATCH again when it loads a trained pipeline, and finds
it there.

This reaches into CPython's private `re._compiler` and `re._parser` (3.11 to 3.13): pickling a
pattern stores only its source, so there is no public way to keep a compiled one.
`PEPM_REGEX_CACHE=off` turns it off; another value is the cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import settings
from .atomic import atomic_path

MIN_CHARS = 100_000  # patterns this long or longer go through the cache (spaCy French's TOKEN_MATCH: 1.45M)
_LOCK = threading.Lock()
_DEPTH = 0  # nested blocks: the outermost one installs the cached compile and puts back `_REAL`
_REAL: Any = None  # re._compiler.compile while the cached one is installed


def folder() -> Path | None:
    """The cache folder (PEPM_REGEX_CACHE; default $XDG_CACHE_HOME/pepm/regex or ~/.cache/pepm/regex), None when off."""
    value = settings.REGEX_CACHE.get()
    if value == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pepm" / "regex"


def _engine() -> tuple[Any, Any, Any] | None:
    """re's parser, code generator and C engine where they are as this module knows them, else None."""
    try:
        import _sre
        from re import _compiler, _parser
    except ImportError:
        return None
    if not all(hasattr(m, n) for m, n in ((_compiler, "_code"), (_compiler, "compile"), (_parser, "parse"), (_sre, "compile"))):
        return None
    return _compiler, _parser, _sre


def _key(pattern: str, flags: int, sre: Any) -> str:
    tag = f"{sys.implementation.cache_tag}|{sys.version}|{sre.MAGIC}|{flags}|".encode()
    return hashlib.sha256(tag + pattern.encode("utf-8", "surrogatepass")).hexdigest()


def _program(pattern: str, flags: int, compiler: Any, parser: Any) -> tuple:
    """(flags, code, groups, groupindex, indexgroup): the arguments `re` passes `_sre.compile`
    after parsing `pattern` (re/_compiler.py, `compile`)."""
    parsed = parser.parse(pattern, flags)
    code = [int(op) for op in compiler._code(parsed, flags)]  # opcodes are named ints: stored as plain ones
    groupindex = dict(parsed.state.groupdict)
    indexgroup = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return flags | parsed.state.flags, code, parsed.state.groups - 1, groupindex, tuple(indexgroup)


def _load(path: Path) -> tuple | None:
    """A stored program, checked to be plain data of the right shape (JSON: loading it runs no code,
    whoever could write to the folder)."""
    try:
        flags, code, groups, groupindex, indexgroup = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    ints = isinstance(flags, int) and isinstance(groups, int) and isinstance(code, list) and all(type(op) is int for op in code)
    names = isinstance(groupindex, dict) and all(isinstance(k, str) and type(v) is int for k, v in groupindex.items())
    if not (ints and names and isinstance(indexgroup, list) and all(g is None or isinstance(g, str) for g in indexgroup)):
        return None
    return flags, code, groups, groupindex, tuple(indexgroup)


def _cached_compile(real: Any, cache: Path, compiler: Any, parser: Any, sre: Any) -> Any:
    def compile(p: Any, flags: int = 0) -> Any:
        if not isinstance(p, str) or len(p) < MIN_CHARS or int(flags) & re.DEBUG:  # DEBUG prints the program: re's own way
            return real(p, flags)
        path = cache / f"{_key(p, int(flags), sre)}.json"
        program = _load(path)
        if program is not None:
            try:
                return sre.compile(p, *program)
            except (TypeError, ValueError, RuntimeError):  # a program _sre's checks refuse: compiled below, as re would
                pass
        try:
            program = _program(p, int(flags), compiler, parser)
            pattern = sre.compile(p, *program)
        except Exception:  # noqa: BLE001  (re's own errors, raised by re's own path)
            return real(p, flags)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(program, separators=(",", ":")), encoding="utf-8")
        return pattern

    return compile


@contextlib.contextmanager
def large_regexes_cached() -> Iterator[None]:
    """Within the block, `re` compiles patterns of MIN_CHARS characters or more through the cache
    folder (see the module docstring); nothing changes where the cache is off or unusable."""
    global _DEPTH, _REAL
    cache, engine = folder(), _engine()
    if cache is None or engine is None:
        yield
        return
    compiler, parser, sre = engine
    with _LOCK:
        _DEPTH += 1
        if _DEPTH == 1:
            _REAL = compiler.compile
            compiler.compile = _cached_compile(_REAL, cache, compiler, parser, sre)
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                compiler.compile, _REAL = _REAL, None


def spacy_language(lang: str) -> Any:
    """spaCy's Language class for `lang`, its module imported (and its large regexes compiled)
    through the cache: call it before spacy.blank / spacy.load / init_nlp of that language."""
    from spacy import util

    with large_regexes_cached():
        return util.get_lang_class(lang)
