"""Plain-Python core: every function takes resolved parameters and paths, returns data or writes files.

Nothing in this package imports Dagster, so it can be used from a notebook or a script.
"""
