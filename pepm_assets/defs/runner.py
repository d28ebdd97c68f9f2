"""Run stages through Dagster from Python (the CLI, make and the tests all come here).

A stage is a sequence of Dagster runs on the project's instance, so every run shows in the UI:
observe the sources (DVC hashes, params hashes), parse each corpus the dataset needs (skipped when
Dagster says it is fresh), then build the dataset x view partition. Runs execute in process: for a
handful of steps that is 2-3x faster than one process per step (measured in benchmarks/).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from ..core.config import ResolvedParams, resolve_profile
from ..core.selection import write_selection
from .jobs import OBSERVE_PARAMS, OBSERVE_RAW, PREPARE_CORPUS, PREPARE_VIEW
from .partitions import view_key
from .staleness import stale_status

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class StageFailed(RuntimeError):
    pass


@dataclass
class StageReport:
    params: ResolvedParams
    runs: list[tuple[str, str, str]] = field(default_factory=list)  # (job, partition, run_id)
    skipped: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, partition: str | None = None,
             run_config: dict | None = None, quiet: bool = True) -> dg.ExecuteInProcessResult:
    config = {**(QUIET if quiet else {}), **(run_config or {})}
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config=config, raise_on_error=False)
    if not result.success:
        errors = [str(e.event_specific_data.error.message).strip() for e in result.all_events
                  if e.is_step_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)]
        raise StageFailed(f"Dagster run {result.run_id} ({job}{' ' + partition if partition else ''}) failed: {'; '.join(errors) or 'see the run in the UI'}")
    return result


def prepare(
    root: Path,
    profile: str,
    overrides: list[str],
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    on_step: Callable[[str], None] | None = None,
    quiet: bool = True,
) -> StageReport:
    from ..definitions import build_definitions

    params = resolve_profile(root, profile, overrides)  # config errors stop here, before any run
    for cid, corpus in params.corpora.items():
        if not (root / corpus.path).is_dir():
            raise StageFailed(f"corpus {cid!r}: {corpus.path} is missing; run `pepm data import` (shipped corpora) or `dvc pull`")
    defs = defs or build_definitions(root)
    report = StageReport(params=params)
    step = on_step or (lambda _name: None)

    write_selection(root, params.dataset_id, params.view, params.profile, params.overrides)
    for job in (OBSERVE_RAW, OBSERVE_PARAMS):
        step(f"observe {job.removeprefix('observe_')}")
        report.runs.append((job, "", _execute(defs, job, instance, quiet=quiet).run_id))

    for cid in params.dataset.corpus_ids:
        step(f"corpus {cid}")
        status, _ = stale_status(instance, defs, "corpus_docs", cid)
        if status == "FRESH":
            report.skipped.append(f"corpus_docs[{cid}]")
            continue
        result = _execute(defs, PREPARE_CORPUS, instance, cid, quiet=quiet)
        report.runs.append((PREPARE_CORPUS, cid, result.run_id))
        report.checks.update({f"{e.asset_key.to_user_string()}[{cid}].{e.check_name}": e.passed for e in result.get_asset_check_evaluations()})

    key = str(view_key(params.dataset_id, params.view))
    step(f"view {params.dataset_id}/{params.view}")
    view_config = {"ops": {"view_split": {"config": {"profile": params.profile, "overrides": params.overrides}}}}
    result = _execute(defs, PREPARE_VIEW, instance, key, view_config, quiet=quiet)
    report.runs.append((PREPARE_VIEW, key, result.run_id))
    report.checks.update({f"{e.asset_key.to_user_string()}[{key}].{e.check_name}": e.passed for e in result.get_asset_check_evaluations()})
    return report
