"""Which parameters a dataset x view partition is built with.

A run carries its own: the CLI puts the profile and overrides in the run's tags (RUN_TAGS), and
every step resolves them from there, so two runs never read each other's choice. A run launched
without them (the Dagster UI, a schedule) gets the partition's *configured* profile: the profile in
configs/profiles/ that targets this dataset x view (the first by name if several do), else the
defaults. Configs are the user's declared intent; nothing a run writes changes what another reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from .config import (
    CommonConfig,
    ConfigError,
    ResolvedParams,
    default_profile,
    list_profiles,
    load_yaml,
    profile_path,
    resolve_on_dataset,
    resolve_profile,
)

PROFILE_TAG = "pepm/profile"
OVERRIDES_TAG = "pepm/overrides"
LAUNCHED_BY_TAG = "pepm/launched_by"  # who launched the run (defs/runner.py: launcher()); not read by the steps


def params_tags(params: ResolvedParams) -> dict[str, str]:
    """The tags that make a Dagster run resolve exactly `params` in every step."""
    return {PROFILE_TAG: params.profile, OVERRIDES_TAG: json.dumps(params.overrides, ensure_ascii=False)}


def configured_profile(root: Path, dataset_id: str, view: str) -> str:
    """The profile that targets this partition ("" when none does: the defaults apply)."""
    for name in list_profiles(root):
        try:
            raw = load_yaml(profile_path(root, name), root)
        except ConfigError:
            continue
        if raw.get("dataset_id") == dataset_id and raw.get("view") == view:
            return name
    return ""


def resolve_partition(
    root: Path, dataset_id: str, view: str, profile: str = "", overrides: list[str] | None = None, common: CommonConfig | None = None
) -> ResolvedParams:
    """Params of a partition: the given profile (+ overrides), else its configured profile, else the
    defaults. Pass `common` when resolving many partitions: the common configs are then read once."""
    overrides = list(overrides or [])
    profile = profile or configured_profile(root, dataset_id, view)
    if profile and profile != "default":
        params = resolve_profile(root, profile, overrides, common)
    else:
        params = resolve_profile(root, default_profile(dataset_id, view), overrides, common)
    if params.eval_dataset_id == dataset_id and params.view == view:  # the job set a cross-dataset evaluation scores on
        return resolve_on_dataset(root, params, dataset_id, common)
    if (params.dataset_id, params.view) != (dataset_id, view):
        raise ConfigError(
            f"profile {params.profile!r}",
            "dataset_id/view",
            f"targets {params.dataset_id}/{params.view}, not the partition {dataset_id}/{view}",
        )
    return params


def resolve_for_run(root: Path, dataset_id: str, view: str, tags: Mapping[str, str], common: CommonConfig | None = None) -> ResolvedParams:
    """The params a run stands for: its tags, else the partition's configured profile."""
    overrides = json.loads(tags.get(OVERRIDES_TAG) or "[]")
    return resolve_partition(root, dataset_id, view, tags.get(PROFILE_TAG, ""), overrides, common)
