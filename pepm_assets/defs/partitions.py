"""Partitions built from the configs: corpora (corpora.yml) and dataset x view (datasets.yml x label map views)."""
from __future__ import annotations

import dagster as dg

from ..core.config import CommonConfig
from ..core.labels import LabelMap


def corpus_partitions(common: CommonConfig) -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(sorted(common.corpora))


def view_partitions(common: CommonConfig, label_map: LabelMap) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition({
        "dataset": dg.StaticPartitionsDefinition(sorted(common.datasets)),
        "view": dg.StaticPartitionsDefinition(sorted(label_map.views)),
    })


def view_key(dataset_id: str, view: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"dataset": dataset_id, "view": view})


def split_view_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims["dataset"], dims["view"]
    dataset_id, view = str(key).split("|")  # dimensions sorted by name: dataset|view
    return dataset_id, view


def corpus_to_views(common: CommonConfig, label_map: LabelMap) -> dg.StaticPartitionMapping:
    """Lineage at partition level: a corpus feeds every dataset x view whose dataset uses it."""
    mapping: dict[str, list[str]] = {cid: [] for cid in common.corpora}
    for dataset_id, dataset in common.datasets.items():
        for cid in dataset.corpus_ids:
            mapping[cid].extend(str(view_key(dataset_id, view)) for view in sorted(label_map.views))
    return dg.StaticPartitionMapping(mapping)
