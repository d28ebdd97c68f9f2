"""Run stages through Dagster from Python (the CLI, make and the tests all come here).

A stage is a sequence of Dagster runs on the project's instance, so every run shows in the UI:
record the sources' versions (DVC hashes, params hash), parse each corpus the dataset needs
(skipped when Dagster says it is fresh), then build and (pipeline) train and evaluate the
dataset x view partition in one run, then the leaderboard. Runs execute in process: for a handful
of steps that is 2-3x faster than one process per step (measured in benchmarks/).

Source versions are recorded as runless observations (`report_runless_asset_event`): the runner
has just computed the hashes of the partitions it needs, so launching a run to compute them again
(the `observe_*` jobs, which the schedules and the UI use, and which observe every partition)
would only add a run's fixed cost. Dagster's staleness reads both kinds of observation alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dagster as dg

from ..core import dvc
from ..core.config import ResolvedParams, resolve_profile
from ..core.selection import resolve_partition, write_selection
from .jobs import PREPARE_CORPUS, PREPARE_VIEW, REPORTS, TRAIN_EVALUATE, VIEW_PIPELINE
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
    observed: list[str] = field(default_factory=list)  # source partitions whose new version was recorded
    checks: dict[str, bool] = field(default_factory=dict)


def _execute(defs: dg.Definitions, job: str, instance: dg.DagsterInstance, partition: str | None = None,
             run_config: dict | None = None, quiet: bool = True, assets: list[str] | None = None) -> dg.ExecuteInProcessResult:
    config = {**(QUIET if quiet else {}), **(run_config or {})}
    selection = [dg.AssetKey(a) for a in assets] if assets else None
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=partition, run_config=config,
                                                          raise_on_error=False, asset_selection=selection)
    if not result.success:
        errors = [str(e.event_specific_data.error.message).strip() for e in result.all_events
                  if e.is_step_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)]
        raise StageFailed(f"Dagster run {result.run_id} ({job}{' ' + partition if partition else ''}) failed: {'; '.join(errors) or 'see the run in the UI'}")
    return result


def _record(report: StageReport, job: str, partition: str, result: dg.ExecuteInProcessResult) -> None:
    report.runs.append((job, partition, result.run_id))
    report.checks.update({f"{e.asset_key.to_user_string()}[{partition}].{e.check_name}": e.passed
                          for e in result.get_asset_check_evaluations()})


def prepare(
    root: Path,
    profile: str,
    overrides: list[str],
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    on_step: Callable[[str], None] | None = None,
    quiet: bool = True,
) -> StageReport:
    """Prepare the profile's dataset x view (parse its corpora, split, formats), skipping what is fresh."""
    from ..definitions import build_definitions

    params = resolve_profile(root, profile, overrides)  # config errors stop here, before any run
    return _prepare(root, params, instance, defs or build_definitions(root), on_step or _no_step, quiet)


def _no_step(_name: str) -> None:
    pass


def _prepare(root: Path, params: ResolvedParams, instance: dg.DagsterInstance, defs: dg.Definitions,
             step: Callable[[str], None], quiet: bool, then: list[str] | None = None) -> StageReport:
    """`then` = assets of the same partition (models, evaluations) to materialize in the same run as
    the view, after its blocking checks."""
    for cid, corpus in params.corpora.items():
        if not (root / corpus.path).is_dir():
            raise StageFailed(f"corpus {cid!r}: {corpus.path} is missing; run `pepm data import` (shipped corpora) or `dvc pull`")
    report = StageReport(params=params)

    write_selection(root, params.dataset_id, params.view, params.profile, params.overrides)
    key = view_key(params.dataset_id, params.view)
    step("observe sources")
    observe(instance, "raw_tei", {cid: dvc.corpus_version(root, c.path) for cid, c in params.corpora.items()}, report)
    observe(instance, "view_params", {key: params.params_hash}, report)

    for cid in params.dataset.corpus_ids:
        step(f"corpus {cid}")
        status, _ = stale_status(instance, defs, "corpus_docs", cid)
        if status == "FRESH":
            report.skipped.append(f"corpus_docs[{cid}]")
            continue
        result = _execute(defs, PREPARE_CORPUS, instance, cid, quiet=quiet)
        _record(report, PREPARE_CORPUS, cid, result)

    step(f"view {params.dataset_id}/{params.view}")
    view_assets = ["view_split", "model_formats"]
    if all(stale_status(instance, defs, asset, key)[0] == "FRESH" for asset in view_assets):
        report.skipped.append(f"view_split[{key}], model_formats[{key}]")
        view_assets = []
    assets = view_assets + list(then or [])
    if not assets:
        return report
    job = TRAIN_EVALUATE if not view_assets else VIEW_PIPELINE if then else PREPARE_VIEW
    view_config = {"ops": {"view_split": {"config": {"profile": params.profile, "overrides": params.overrides}}}} if view_assets else None
    if then:
        step(f"{'view + ' if view_assets else ''}{len(then)} model / report assets on {params.dataset_id}/{params.view}")
    result = _execute(defs, job, instance, key, view_config, quiet=quiet, assets=assets)
    _record(report, job, key, result)
    return report


def observe(instance: dg.DagsterInstance, asset: str, versions: dict[str, str], report: StageReport) -> None:
    """Record each partition's data version as a runless observation, unless it is already the last one."""
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    for partition, version in versions.items():
        if recorded_version(instance, asset, partition) == version:
            report.skipped.append(f"{asset}[{partition}] (unchanged)")
            continue
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=asset, partition=partition, tags={DATA_VERSION_TAG: version},
            metadata={"observed_by": "pepm runner (the version it is about to use)"}))
        report.observed.append(f"{asset}[{partition}]")


def recorded_version(instance: dg.DagsterInstance, asset: str, partition: str) -> str | None:
    """The data version last observed for a source asset partition (None if never observed)."""
    from dagster._core.definitions.data_version import extract_data_version_from_entry

    record = instance.get_latest_data_version_record(dg.AssetKey(asset), is_source=True, partition_key=partition)
    version = extract_data_version_from_entry(record.event_log_entry) if record else None
    return version.value if version else None


STAGES = ("prepare", "train", "evaluate", "pipeline")


def run_stage(
    root: Path,
    stage: str,
    profile: str,
    overrides: list[str],
    instance: dg.DagsterInstance,
    defs: dg.Definitions | None = None,
    on_step: Callable[[str], None] | None = None,
    quiet: bool = True,
    reports: bool = True,
) -> StageReport:
    """prepare | train | evaluate | pipeline (= all three) for the profile's dataset x view; the
    evaluate and pipeline runs end with the leaderboard. Only the profile's models are selected."""
    from ..definitions import build_definitions

    if stage not in STAGES:
        raise StageFailed(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    params = resolve_profile(root, profile, overrides)  # config errors stop here, before any run
    defs = defs or build_definitions(root)
    step = on_step or _no_step
    kinds = {"prepare": (), "train": ("model__",), "evaluate": ("evaluation__",), "pipeline": ("model__", "evaluation__")}[stage]
    assets = [f"{kind}{model_id}" for model_id in params.models for kind in kinds]
    if assets and reports and stage != "train":
        assets.append("leaderboard")  # in the same run, after the evaluations
    if stage in ("prepare", "pipeline"):
        return _prepare(root, params, instance, defs, step, quiet, then=assets)
    if resolve_partition(root, params.dataset_id, params.view).params_hash != params.params_hash:
        raise StageFailed(f"{params.dataset_id}/{params.view} was last prepared with other parameters; run the prepare stage of this profile first")
    report = StageReport(params=params)
    if assets:
        key = view_key(params.dataset_id, params.view)
        step(f"{stage} {len(params.models)} models on {params.dataset_id}/{params.view}")
        result = _execute(defs, TRAIN_EVALUATE, instance, key, quiet=quiet, assets=assets)
        _record(report, TRAIN_EVALUATE, key, result)
    return report


def cross_corpus(root: Path, instance: dg.DagsterInstance, defs: dg.Definitions | None = None, quiet: bool = True) -> str:
    """Materialize cross_corpus_matrix (needs each dataset's model trained)."""
    from ..definitions import build_definitions

    defs = defs or build_definitions(root)
    return _execute(defs, REPORTS, instance, quiet=quiet, assets=["cross_corpus_matrix"]).run_id
