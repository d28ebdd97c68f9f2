"""Partitions built from the configs: corpora (corpora.yml) and dataset x view (datasets.yml x label map views)."""

from __future__ import annotations

import dagster as dg

from ..core.config import CommonConfig
from ..core.labels import LabelMap
from .metadata import rounded


def corpus_partitions(common: CommonConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(common.corpora))


def view_partitions(common: CommonConfig, label_map: LabelMap) -> dg.StaticPartitionsDefinition:
    """One partition per dataset x view, keyed "dataset|view". Static, not a MultiPartitionsDefinition:
    the corpus -> view lineage is a StaticPartitionMapping, which Dagster validates only between two
    static partition sets (`dagster definitions validate` refuses it toward a multi-partition one).
    The keys are the strings a multi-partition key would print, so earlier runs still match."""
    return dg.StaticPartitionsDefinition(
        [view_key(dataset_id, view) for dataset_id in sorted(common.datasets) for view in sorted(label_map.views)]
    )


def view_key(dataset_id: str, view: str) -> str:
    return f"{dataset_id}|{view}"


def split_view_key(key: str) -> tuple[str, str]:
    dataset_id, view = str(key).split("|")
    return dataset_id, view


def corpus_to_views(common: CommonConfig, label_map: LabelMap) -> dg.StaticPartitionMapping:
    """Lineage at partition level: a corpus feeds every dataset x view whose dataset uses it."""
    mapping: dict[str, list[str]] = {cid: [] for cid in common.corpora}
    for dataset_id, dataset in common.datasets.items():
        for cid in dataset.corpus_ids:
            mapping[cid].extend(view_key(dataset_id, view) for view in sorted(label_map.views))
    return dg.StaticPartitionMapping(mapping)


def with_partition(results: list[dg.AssetCheckResult], partition: str) -> list[dg.AssetCheckResult]:
    """Each check result with the partition it judged in its metadata (and, without a description of
    its own, in its description): Dagster records the check of a partitioned asset's materialization
    without its partition, so the UI's check history would not say which partition passed or failed.
    Its floats rounded (metadata.rounded)."""
    return [
        r._replace(
            metadata={**rounded(r.metadata or {}), "partition": dg.MetadataValue.text(partition)},
            description=r.description or f"partition {partition}",
        )
        for r in results
    ]
