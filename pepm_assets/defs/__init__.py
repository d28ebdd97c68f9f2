"""Thin Dagster layer over `pepm_assets.core`: partitions, assets, checks, jobs, schedules."""
