"""Source versions recorded in Dagster (raw_tei, view_params, train_params), so its UI shows what became stale.

The CLI runner records the versions it is about to use before its runs; a run launched any other
way (the UI, a schedule, a sensor) records them when its resources start, before any step reads its
inputs' versions: a partition is versioned the same way whoever builds it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..core import lineage
from ..core.config import ConfigError, ResolvedParams, load_common
from ..core.selection import PROFILE_TAG, resolve_for_run
from .dagster_internals import DATA_VERSION_TAG, extract_data_version_from_entry
from .partitions import split_view_key, view_key


def observe(instance: dg.DagsterInstance, asset: str, versions: dict[str, str], by: str = "pepm runner") -> list[str]:
    """Record each partition's data version as a runless observation, unless it is already the last
    one; returns the partitions recorded."""
    observed = []
    for partition, version in versions.items():
        if recorded_version(instance, asset, partition) == version:
            continue
        instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=asset,
                partition=partition,
                tags={DATA_VERSION_TAG: version},
                metadata={"observed_by": f"{by} (the version it is about to use)"},
            )
        )
        observed.append(f"{asset}[{partition}]")
    return observed


def recorded_version(instance: dg.DagsterInstance, asset: str, partition: str) -> str | None:
    """The data version last observed for a source asset partition (None if never observed)."""
    record = instance.get_latest_data_version_record(dg.AssetKey(asset), is_source=True, partition_key=partition)
    version = extract_data_version_from_entry(record.event_log_entry) if record else None
    return version.value if version else None


def observe_partition(
    instance: dg.DagsterInstance, root: Path, params: ResolvedParams, by: str = "pepm runner", raw: dict[str, str] | None = None
) -> list[str]:
    """Record the source versions a dataset x view run uses: its corpora's raw files (`raw`, when
    already hashed), its parameters and its hardware preset. Returns what was recorded."""
    key = view_key(params.dataset_id, params.view)
    raw = raw if raw is not None else {cid: lineage.raw_version(root, c) for cid, c in params.corpora.items()}
    return [
        *observe(instance, "raw_tei", raw, by),
        *observe(instance, "view_params", {key: params.params_hash}, by),
        *observe(instance, "train_params", {key: lineage.hardware_version(params)}, by),
    ]


def observe_for_run(instance: dg.DagsterInstance, root: Path, tags: dict[str, str]) -> list[str]:
    """Record the source versions of a run's partition, unless the CLI runner already did (its runs
    carry pepm/profile). Returns what was recorded."""
    partition = tags.get("dagster/partition")
    if not partition or PROFILE_TAG in tags:
        return []
    common = load_common(root)
    by = f"run {tags.get('dagster/run_id', '')} at its start".strip()
    if "|" in partition:
        dataset_id, view = split_view_key(partition)
        try:
            params = resolve_for_run(root, dataset_id, view, tags, common)
        except ConfigError:
            return []  # the step reports the config error itself
        return observe_partition(instance, root, params, by)
    if partition not in common.corpora:
        return []
    return observe(instance, "raw_tei", {partition: lineage.raw_version(root, common.corpora[partition])}, by)
