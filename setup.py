"""Build of pepm's compiled modules (the TEI column walker, the dedup text keys, the n-gram counter,
the frame-stack chunk keeper); everything else is in pyproject.toml. Each has a pure-Python
reference (for the chunk keeper: Python's own allocator) that the tests compare it with."""

import lxml
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [
            Extension("pepm_assets.core.tei._walk", ["pepm_assets/core/tei/_walk.pyx"], include_dirs=lxml.get_include()),
            Extension("pepm_assets.core._textkey", ["pepm_assets/core/_textkey.pyx"]),
            Extension("pepm_assets.core.families._ngrams", ["pepm_assets/core/families/_ngrams.pyx"], language="c++"),
            Extension("pepm_assets.core._frame_chunks", ["pepm_assets/core/_frame_chunks.pyx"]),
        ],
        language_level=3,
    ),
)
