"""Run stages through Dagster from Python (the CLI, make and the tests all come here).

A stage is a sequence of Dagster runs on the project's instance, so every run shows in the UI:
record the sources' versions (content hashes, params hash), parse each corpus the dataset needs
(skipped when its version stamp is current, core/lineage.py), then build and (pipeline) train and
evaluate the dataset x view partition in one run, then the leaderboard. Every run carries the
profile and overrides in its tags, which each step resolves, and who launched it
(`pepm/launched_by`: cli, make, test, sweep; `launcher()`). Runs execute in process: for a
handful of steps that is 2-3x faster than one process per step (measured in benchmarks/).

A run executed in process still belongs to its job in the UI: it is created with the remote origin
of the workspace's code location (`job_origin`), as a run launched from the UI is, so it is listed
under Jobs -> <job> -> Runs (which filters on the `.dagster/repository` tag that the origin writes)
and on the Overview timeline (which drops a run without an origin).

Source versions are recorded as runless observations (`report_runless_asset_event`): the runner
has just computed the hashes of the partitions it needs, so launching a run to compute them again
(the `observe_*` jobs, which the schedules and the UI use, and which observe every partition)
would only add a run's fixed cost. Dagster's staleness reads both kinds of observation alike.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ..core import collector, frame_chunks, lineage, settings
from ..core.asset_names import EVALUATION, MODEL, asset_name, key_path, model_asset, parse, step_key
from ..core.config import ResolvedParams, resolve_on_dataset, resolve_profile
from ..core.locks import views_locks
from ..core.make_vars import STAGES
from ..core.selection import LAUNCHED_BY_TAG, params_tags
from ..core.training import command
from .jobs import PREPARE_CORPUS, REPORTS, VIEW_PIPELINE
from .partitions import view_key
from .recovery import process_tags
from .sources import observe, observe_partition, recorded_version  # noqa: F401  (observe, recorded_version: the tests call them here)

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LAUNCHED_BY = LAUNCHED_BY_TAG
LOCATION = "pepm_assets"  # workspace.yaml's location_name, when the project's workspace.yaml names none
_launcher = ["python"]  # who calls the runner in this process: the CLI sets "cli" (set_launcher)


def set_launcher(name: str) -> None:
    """Who this process's runs are launched by, unless PEPM_LAUNCHED_BY says (make exports it)."""
    _launcher[0] = name


def launcher() -> str:
    """PEPM_LAUNCHED_BY (make, the tests' conftest), else what the process set (the CLI: cli), else python."""
    return settings.LAUNCHED_BY.get() or _launcher[0]


def code_location(root: Path) -> str:
    """The location name the project's workspace.yaml gives pepm_assets.definitions (`pepm dev` loads
    that file): the UI lists a run under a job of the location its origin names."""
    import yaml

    try:
        entries = (yaml.safe_load((Path(root) / "workspace.yaml").read_text(encoding="utf-8")) or {}).get("load_from") or []
    except (OSError, yaml.YAMLError, AttributeError):
        return LOCATION
    targets = [target for entry in entries if isinstance(entry, dict) for target in entry.values() if isinstance(target, dict)]
    ours = [t for t in targets if t.get("module_name") == "pepm_assets.definitions"] or targets
    return str(ours[0].get("location_name") or LOCATION) if ours else LOCATION


def job_origin(root: Path, job: str):
    """The remote origin of `job` in the project's code location, as the UI would give a run it launched."""
    from .dagster_internals import SINGLETON_REPOSITORY_NAME, RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(code_location(root)), SINGLETON_REPOSITORY_NAME)
    return repository.get_job_origin(job)


@contextlib.contextmanager
def _with_origin(instance: dg.DagsterInstance, root: Path | None) -> Iterator[None]:
    """Runs this instance creates (execute_in_process creates its run through `create_run_for_job`,
    which takes no origin from it) get the origin of their job in the project's code location."""
    if root is None:
        yield
        return
    create = type(instance).create_run_for_job

    def create_with_origin(job_def, *args, **kwargs):
        if kwargs.get("remote_job_origin") is None:
            kwargs["remote_job_origin"] = job_origin(root, job_def.name)
        return create(instance, job_def, *args, **kwargs)

    instance.create_run_for_job = functools.wraps(create)(create_with_origin)
    try:
        yield
    finally:
        del instance.create_run_for_job


def _project_root(defs: dg.Definitions) -> Path | None:
    project = (defs.resources or {}).get("project")
    return project.path if project is not None and hasattr(project, "path") else None


class StageFailed(RuntimeError):
    pass


@dataclass
class StageReport:
    params: ResolvedParams
    runs: list[tuple[str, str, str]] = field(default_factory=list)  # (job, partition, run_id)
    skipped: list[str] = field(default_factory=list)
    observed: list[str] = field(default_factory=list)  # source partitions whose new version was recorded
    checks: dict[str, bool] = field(default_factory=dict)


def _execute(
    defs: dg.Definitions,
    job: str,
    instance: dg.DagsterInstance,
    partition: str | None = None,
    run_config: dict | None = None,
    quiet: bool = True,
    assets: list[str] | None = None,
    tags: dict[str, str] | None = None,
    on_step_start: Callable[[str], None] | None = None,
) -> dg.ExecuteInProcessResult:
    """`on_step_start(step_key)` as each step starts (the run's STEP_START events, as they are stored)."""
    config = {**(QUIET if quiet else {}), **(run_config or {})}
    selection = [dg.AssetKey(key_path(a)) for a in assets] if assets else None
    run_id = str(uuid.uuid4())
    if on_step_start is not None:
        instance.add_event_listener(run_id, _step_starts(on_step_start))
    with _with_origin(instance, _project_root(defs)):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance,
            partition_key=partition,
            run_config=config,
            raise_on_error=False,
            asset_selection=selection,
            tags={**process_tags(), LAUNCHED_BY: launcher(), **(tags or {})},
            run_id=run_id,
        )  # process_tags: recognised if this process dies
    if not result.success:
        errors = [
            _root_cause(e.event_specific_data.error)
            for e in result.all_events
            if e.is_step_failure and e.event_specific_data and getattr(e.event_specific_data, "error", None)
        ]
        raise StageFailed(
            f"Dagster run {result.run_id} ({job}{' ' + partition if partition else ''}) failed: {'; '.join(errors) or 'see the run in the UI'}"
        )
    return result


def _step_starts(fn: Callable[[str], None]) -> Callable[[dg.EventLogEntry], None]:
    def listener(event: dg.EventLogEntry) -> None:
        if event.is_dagster_event and event.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            fn(event.dagster_event.step_key)

    return listener


def _asset_steps(on_asset: Callable[[int, int, str], None], assets: list[str]) -> Callable[[str], None]:
    """on_step_start for a run of `assets`: on_asset(i, N, "train <model>") as the i-th of them
    starts (the trainings and evaluations are one run: without this a terminal shows one step for all)."""
    started: list[str] = []
    verbs = {MODEL: "train", EVALUATION: "evaluate"}
    by_step = {step_key(a): a for a in assets}  # Dagster's step of model/<id> is model__<id>

    def on_start(step: str) -> None:
        asset = by_step.get(step)
        if asset is None or asset in started:
            return
        started.append(asset)
        parsed = parse(asset)
        on_asset(len(started), len(assets), f"{verbs[parsed[0]]} {parsed[1]}" if parsed else asset)

    return on_start


def _root_cause(error) -> str:
    """The user's error, not Dagster's "Error occurred while executing op" wrapper around it."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def _record(report: StageReport, job: str, partition: str, result: dg.ExecuteInProcessResult) -> None:
    report.runs.append((job, partition, result.run_id))
    report.checks.update(_checks(partition, result))


def _checks(partition: str, result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """{asset[partition].check: passed} of a run."""
    return {f"{e.asset_key.to_user_string()}[{partition}].{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def _no_step(_name: str) -> None:
    pass


KINDS = {"prepare": (), "train": (MODEL,), "evaluate": (EVALUATION,), "pipeline": (MODEL, EVALUATION)}


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
    on_asset: Callable[[int, int, str], None] | None = None,
) -> StageReport:
    """prepare | train | evaluate | pipeline (= all three) for the profile's dataset x view.

    What runs is decided by versions (core/lineage.py), not by time: every asset partition whose
    stamp on disk is the version its inputs and parameters call for is skipped, the rest runs, in one
    Dagster run per corpus and one for the dataset x view (models and evaluations included), then
    the leaderboard (`on_step(name)` before each of these; `on_asset(i, N, what)` as each asset of
    the last run starts, by default an on_step "i/N what"). With eval_dataset_id, the split of that dataset is prepared with the same
    parameters (its own run) and every model is scored on its job set too, in its evaluation step
    (reports/<dataset>/<view>/<family>/<model>@<eval dataset>/). `train` and `evaluate` never prepare: they stop with what to run first when the
    split (or, for evaluate, the model) on disk is not the one these parameters call for. The
    partition's lock is held throughout, so a second command on it waits."""
    from ..definitions import build_definitions

    if stage not in STAGES:
        raise StageFailed(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    params = resolve_profile(root, profile, overrides)  # config errors stop here, before any run
    defs = defs or build_definitions(root)
    step = on_step or _no_step
    asset = on_asset or (lambda i, n, what: step(f"{i}/{n} {what}"))
    # a cross-dataset evaluation (eval_dataset_id) scores on a split of that dataset prepared like this one
    eval_params = resolve_on_dataset(root, params, params.eval_dataset_id) if params.eval_dataset_id and stage != "train" else None
    partitions = [params, *([eval_params] if eval_params else [])]
    for cid, corpus in {cid: c for part in partitions for cid, c in part.corpora.items()}.items():
        if not (root / corpus.path).is_dir():
            raise StageFailed(f"corpus {cid!r}: {corpus.path} is missing; run `pepm data import` (shipped corpora) or `dvc pull`")
    report = StageReport(params=params)
    tags = params_tags(params)
    key = view_key(params.dataset_id, params.view)
    with (
        views_locks(root, [(p.dataset_id, p.view) for p in partitions]),
        collector.older_objects_left_alone(),  # core/collector.py
        frame_chunks.kept(),  # no mmap/munmap each time a call crosses a frame-stack chunk's edge
    ):
        step("versions")
        expected = lineage.Expected(root)
        models = params.model_specs

        def statuses() -> dict[tuple[str, str], lineage.Status]:
            found = expected.statuses(params, models, eval_params) + (expected.statuses(eval_params, {}) if eval_params else [])
            return {(st.asset, st.partition): st for st in found}

        for part in partitions:
            raw = {cid: expected.raw(cid, c) for cid, c in part.corpora.items()}
            report.observed += observe_partition(instance, root, part, raw=raw)
        status = statuses()

        if stage in ("prepare", "pipeline"):
            corpus_ids = [cid for part in partitions for cid in part.dataset.corpus_ids]
            _prepare_corpora(root, defs, instance, report, corpus_ids, status, tags, step, quiet)
            status = statuses()  # the new stamps; raw hashes kept
        if eval_params is not None:
            status = _prepare_eval_split(defs, instance, report, stage, eval_params, status, statuses, tags, step, quiet)
        wanted = [asset_name(kind, m) for m in params.models for kind in KINDS[stage]]
        if stage in ("prepare", "pipeline"):
            wanted = ["view_split", "model_formats", *wanted]
        else:
            _require_fresh(status, key, ["view_split", "model_formats"], f"run the prepare stage first ({command('prepare', params)})")
            if stage == "evaluate":
                _require_fresh(status, key, [model_asset(m) for m in params.models], f"train first ({command('train', params)})")
        stale = [a for a in wanted if status[(a, key)].state != "FRESH"]
        report.skipped += [f"{a}[{key}]" for a in wanted if a not in stale]
        if stale and reports and stage != "train" and any((parse(a) or ("",))[0] == EVALUATION for a in stale):
            stale.append("leaderboard")  # in the same run, after the evaluations
        if stale:
            step(f"{len(stale)} assets of {params.dataset_id}/{params.view}")
            run = _execute(
                defs, VIEW_PIPELINE, instance, key, quiet=quiet, assets=stale, tags=tags, on_step_start=_asset_steps(asset, stale)
            )
            _record(report, VIEW_PIPELINE, key, run)
    return report


def parse_corpora(
    root: Path,
    instance: dg.DagsterInstance,
    partitions: list[ResolvedParams],
    defs: dg.Definitions | None = None,
    quiet: bool = True,
    launched_by: str | None = None,
) -> StageReport | None:
    """Parse every corpus these datasets read that is not parsed at its current version (one
    Dagster run each, as the prepare stage does); a sweep calls it once before its runs
    (`launched_by="sweep"`: the runs' pepm/launched_by tag)."""
    from ..definitions import build_definitions

    if not partitions:
        return None
    for cid, corpus in {cid: c for part in partitions for cid, c in part.corpora.items()}.items():
        if not (root / corpus.path).is_dir():
            raise StageFailed(f"corpus {cid!r}: {corpus.path} is missing; run `pepm data import` (shipped corpora) or `dvc pull`")
    report = StageReport(params=partitions[0])
    expected = lineage.Expected(root)
    status = {}
    for part in partitions:
        raw = {cid: expected.raw(cid, c) for cid, c in part.corpora.items()}
        report.observed += observe_partition(instance, root, part, raw=raw)
        status.update({(st.asset, st.partition): st for st in expected.statuses(part, {}) if st.asset == "corpus_docs"})
    corpus_ids = sorted({cid for part in partitions for cid in part.dataset.corpus_ids})
    tags = {LAUNCHED_BY: launched_by} if launched_by else {}
    _prepare_corpora(root, defs or build_definitions(root), instance, report, corpus_ids, status, tags, _no_step, quiet)
    return report


def _prepare_corpora(root, defs, instance, report, corpus_ids, status, tags, step, quiet) -> None:
    """One Dagster run per corpus whose parse is not current; a failed quality gate names its files."""
    for cid in corpus_ids:
        step(f"corpus {cid}")
        if status[("corpus_docs", cid)].state == "FRESH":
            report.skipped.append(f"corpus_docs[{cid}]")
            continue
        try:
            result = _execute(defs, PREPARE_CORPUS, instance, cid, quiet=quiet, tags=tags)
        except StageFailed as exc:
            raise StageFailed("\n".join([str(exc), *_gate_problems(root, cid)])) from None
        _record(report, PREPARE_CORPUS, cid, result)


def _prepare_eval_split(defs, instance, report, stage, eval_params, status, statuses, tags, step, quiet):
    """The split a cross-dataset evaluation scores on: prepared by prepare / pipeline when it is
    not the one these parameters call for; `evaluate` only checks it (it never prepares)."""
    key = view_key(eval_params.dataset_id, eval_params.view)
    assets = ["view_split", "model_formats"]
    if stage == "evaluate":
        _require_fresh(status, key, assets, f"prepare it first ({command('prepare', eval_params)})")
        return status
    stale = [a for a in assets if status[(a, key)].state != "FRESH"]
    report.skipped += [f"{a}[{key}]" for a in assets if a not in stale]
    if not stale:
        return status
    step(f"{len(stale)} assets of {eval_params.dataset_id}/{eval_params.view} (evaluation set)")
    _record(report, VIEW_PIPELINE, key, _execute(defs, VIEW_PIPELINE, instance, key, quiet=quiet, assets=stale, tags=tags))
    return statuses()


def _gate_problems(root: Path, corpus_id: str) -> list[str]:
    """The corpus quality gate's lines (each failed file named), as corpus_docs wrote them."""
    import json

    from ..core.paths import ProjectPaths

    try:
        stats = json.loads((ProjectPaths(root).corpus_dir(corpus_id) / "parse_stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return list(stats.get("quality_gate", []))


def _require_fresh(status: dict, key: str, assets: list[str], fix: str) -> None:
    bad = [status[(a, key)] for a in assets if status[(a, key)].state != "FRESH"]
    if bad:
        raise StageFailed(
            "; ".join(f"{st.asset}[{key}] is {st.state.lower()} for these parameters ({', '.join(st.why)})" for st in bad) + f": {fix}"
        )


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
    return run_stage(root, "prepare", profile, overrides, instance, defs, on_step, quiet)


def cross_corpus(root: Path, instance: dg.DagsterInstance, defs: dg.Definitions | None = None, quiet: bool = True) -> str:
    """Materialize cross_corpus_matrix (needs each dataset's model trained on its current split)."""
    from ..definitions import build_definitions

    defs = defs or build_definitions(root)
    return _execute(defs, REPORTS, instance, quiet=quiet, assets=["cross_corpus_matrix"]).run_id


def drift(
    root: Path,
    instance: dg.DagsterInstance,
    corpora: list[str],
    views: list[str],
    defs: dg.Definitions | None = None,
    on_step: Callable[[str], None] | None = None,
    quiet: bool = True,
) -> dict[str, bool]:
    """The drift reports of these corpora (each vs its previous version; the first run also compares
    every pair of corpora) and of these dataset|view splits (train vs job, and each model's
    predictions on its job set vs on another dataset's), one Dagster run each. Returns the
    checks' results ({asset[partition].check: passed})."""
    from ..definitions import build_definitions
    from .jobs import DRIFT_CORPUS, DRIFT_VIEW

    defs = defs or build_definitions(root)
    step = on_step or _no_step
    checks: dict[str, bool] = {}
    plan = [(DRIFT_CORPUS, c, ["drift_corpus_version", *(["drift_between_corpora"] if i == 0 else [])]) for i, c in enumerate(corpora)]
    plan += [(DRIFT_VIEW, v, ["drift_train_vs_job", "drift_predictions"]) for v in views]
    for job, partition, assets in plan:
        step(f"drift {partition}")
        checks.update(_checks(partition, _execute(defs, job, instance, partition, quiet=quiet, assets=assets)))
    return checks
