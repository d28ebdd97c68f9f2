"""Ask Dagster which partitions are stale, the same way the UI does (for the CLI and the tests).

Dagster has no public API for this yet; this mirrors its own test helper
(dagster._utils.test.data_versions.get_stale_status_resolver); the private names it needs come from
dagster_internals.py.
"""

from __future__ import annotations

import dagster as dg

from ..core.asset_names import key_path
from .dagster_internals import AssetGraphView, CachingStaleStatusResolver, StaleStatus, TemporalContext, get_current_datetime


def stale_resolver(instance: dg.DagsterInstance, defs: dg.Definitions) -> CachingStaleStatusResolver:
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None), instance=instance, asset_graph=graph
    )
    return CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)


def stale_status(instance: dg.DagsterInstance, defs: dg.Definitions, asset: str, partition: str | None = None) -> tuple[str, list[str]]:
    """('FRESH' | 'STALE' | 'MISSING', [why...]) for one asset partition."""
    resolver = stale_resolver(instance, defs)
    key = dg.AssetKey(key_path(asset))  # model/<id>: ["model", id]
    status: StaleStatus = resolver.get_status(key, partition)
    causes = [f"{c.category.name.lower()}: {c.reason}" for c in resolver.get_stale_causes(key, partition)]
    return status.name, causes
