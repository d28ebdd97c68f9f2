"""pepm: TEI corpora of political speech -> labelled views -> classifiers, as Dagster assets.

`pepm_assets.core` is plain Python (no Dagster import); `pepm_assets.defs` wraps it in assets.
"""
