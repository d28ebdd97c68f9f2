"""Build of pepm's one compiled module (the TEI column walker); everything else is in pyproject.toml."""
import lxml
from Cython.Build import cythonize
from setuptools import Extension, setup

setup(
    ext_modules=cythonize(
        [Extension("pepm_assets.core.tei._walk", ["pepm_assets/core/tei/_walk.pyx"], include_dirs=lxml.get_include())],
        language_level=3,
    ),
)
