"""Which profile + overrides a dataset x view partition currently stands for.

The spec paths (data/interim/<dataset>/<view>/) do not include the profile, so a partition's
parameters are "the last profile and overrides it was prepared with" (or the defaults). That choice
is stored beside the outputs, so the Dagster UI, sensors and the CLI all resolve the same params,
and editing a profile file changes the partition's params hash (-> stale in the UI).
"""
from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_json
from .config import CommonConfig, ConfigError, ResolvedParams, default_profile, resolve_profile
from .paths import ProjectPaths


def selection_file(root: Path, dataset_id: str, view: str) -> Path:
    return ProjectPaths(root).view_dir(dataset_id, view) / "selection.json"


def read_selection(root: Path, dataset_id: str, view: str) -> tuple[str, list[str]]:
    path = selection_file(root, dataset_id, view)
    if not path.is_file():
        return "", []
    data = json.loads(path.read_text(encoding="utf-8"))
    return data.get("profile", ""), list(data.get("overrides", []))


def write_selection(root: Path, dataset_id: str, view: str, profile: str, overrides: list[str]) -> None:
    write_json(selection_file(root, dataset_id, view), {"profile": profile, "overrides": overrides})


def resolve_partition(root: Path, dataset_id: str, view: str, profile: str = "", overrides: list[str] | None = None,
                      common: CommonConfig | None = None) -> ResolvedParams:
    """Params of a partition: the given profile, else the stored selection, else the defaults.
    Pass `common` when resolving many partitions: the common configs are then read once."""
    if not profile and overrides is None:
        profile, overrides = read_selection(root, dataset_id, view)
    overrides = list(overrides or [])
    if profile:
        params = resolve_profile(root, profile, overrides, common)
    else:
        params = resolve_profile(root, default_profile(dataset_id, view), overrides, common)
    if (params.dataset_id, params.view) != (dataset_id, view):
        raise ConfigError(f"profile {params.profile!r}", "dataset_id/view",
                          f"targets {params.dataset_id}/{params.view}, not the partition {dataset_id}/{view}")
    return params
