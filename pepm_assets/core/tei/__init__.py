"""TEI reading: a safe streaming parser (`reader`) and one dialect per encoding (`dialects/`)."""

from .reader import TeiFileError, safe_iterparse

__all__ = ["TeiFileError", "safe_iterparse"]
