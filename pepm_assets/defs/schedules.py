"""What the daemon (`dagster dev` starts one) runs without anyone clicking: source observations
every hour, the drift reports when data changes (a sensor) and the whole drift suite every day.
The drift sensor is on by default; the schedules too can be switched off in the UI (Automation)."""

import json
from pathlib import Path
from typing import Any

import dagster as dg

from ..core import lineage
from ..core.config import load_common
from ..core.drift import monitor
from ..core.paths import ProjectPaths
from .jobs import DRIFT_CORPUS, DRIFT_VIEW, OBSERVE_PARAMS, OBSERVE_RAW, PREPARE_CORPUS
from .resources import PepmProject

# a new materialization of the key asks for the drift run of the same partition
WATCHED = {"corpus_docs": DRIFT_CORPUS, "view_split": DRIFT_VIEW}
VERSION_ONLY = [dg.AssetKey("drift_corpus_version")]
WITH_BETWEEN = [dg.AssetKey("drift_corpus_version"), dg.AssetKey("drift_between_corpora")]


def build_schedules(jobs: dict[str, Any]) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    observe = [
        dg.ScheduleDefinition(
            name=f"{job}_hourly",
            job_name=job,
            cron_schedule="0 * * * *",
            description="Observe sources so that edited corpora or configs show as stale.",
        )
        for job in (OBSERVE_RAW, OBSERVE_PARAMS)
    ]

    @dg.sensor(
        name="drift_on_new_data",
        jobs=[jobs[DRIFT_VIEW], jobs[DRIFT_CORPUS]],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A corpus parsed again (new data) -> its corpus_version drift and the between-corpora reports; "
        "a split built again -> its train_vs_job drift. Only the affected partitions; nothing when nothing changed.",
    )
    def drift_on_new_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        requests, cursor = drift_requests(context.instance, context.cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    @dg.schedule(name="drift_daily_corpora", cron_schedule="0 6 * * *", job=jobs[DRIFT_CORPUS])
    def drift_daily_corpora(context: dg.ScheduleEvaluationContext, project: PepmProject) -> list[dg.RunRequest]:
        """Every parsed corpus vs its previous version, and every pair of corpora, once a day."""
        return daily_requests(project.paths, context.scheduled_execution_time.strftime("%Y-%m-%d"))[DRIFT_CORPUS]

    @dg.schedule(name="drift_daily_views", cron_schedule="0 6 * * *", job=jobs[DRIFT_VIEW])
    def drift_daily_views(context: dg.ScheduleEvaluationContext, project: PepmProject) -> list[dg.RunRequest]:
        """Every prepared split, train vs job, once a day."""
        return daily_requests(project.paths, context.scheduled_execution_time.strftime("%Y-%m-%d"))[DRIFT_VIEW]

    @dg.sensor(
        name="reparse_on_new_raw",
        jobs=[jobs[PREPARE_CORPUS]],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="A parsed corpus whose raw files changed (dvc pull, files added or edited: their content hash) "
        "-> its corpus_docs again; drift_on_new_data then reports the drift of the new version.",
    )
    def reparse_on_new_raw(context: dg.SensorEvaluationContext, project: PepmProject) -> dg.SensorResult:
        requests, cursor = reparse_requests(project.path, context.cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return [*observe, drift_daily_corpora, drift_daily_views], [drift_on_new_data, reparse_on_new_raw]


def reparse_requests(root: Path, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    """A corpus_docs run for each parsed corpus whose raw files no longer have the content hash its
    parse was made from (core/lineage.py; hashes are cached by size, mtime and inode, so a tick that
    finds nothing new reads no file). A raw version is requested once (the cursor keeps it); a
    corpus never parsed is left to the user."""
    requested = json.loads(cursor) if cursor else {}
    paths = ProjectPaths(root)
    requests = []
    for cid, corpus in load_common(root).corpora.items():
        stamp = lineage.read_stamp(paths.corpus_dir(cid) / "parse_stats.json")
        if stamp is None or not (root / corpus.path).is_dir():
            continue
        raw = lineage.raw_version(root, corpus)
        if raw != stamp["inputs"].get("raw") and requested.get(cid) != raw:
            requests.append(dg.RunRequest(run_key=f"{PREPARE_CORPUS}:{cid}:{raw}", job_name=PREPARE_CORPUS, partition_key=cid))
            requested[cid] = raw
    return requests, json.dumps(requested, sort_keys=True)


def _corpus_run(corpus_id: str, run_key: str, between: bool) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key, job_name=DRIFT_CORPUS, partition_key=corpus_id, asset_selection=WITH_BETWEEN if between else VERSION_ONLY
    )


def drift_requests(instance: dg.DagsterInstance, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    """The drift runs that new materializations of corpus_docs / view_split call for, since the
    cursor (the newest storage id seen per asset; with no cursor yet, the sensor starts from now:
    nothing is requested for the past). One run per changed partition; the first corpus run also
    compares the corpora with each other."""
    seen = json.loads(cursor) if cursor else None
    newest: dict[str, int] = {}
    changed: dict[str, list[str]] = {job: [] for job in WATCHED.values()}
    for asset, job in WATCHED.items():
        if seen is None:
            last = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records
            newest[asset] = last[0].storage_id if last else 0
            continue
        after = seen.get(asset, 0)
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(dg.AssetKey(asset), after_storage_id=after), limit=1000, ascending=True
        ).records
        newest[asset] = max([after, *(r.storage_id for r in records)])
        changed[job] += [r.partition_key for r in records if r.partition_key and r.partition_key not in changed[job]]
    mark = f"{newest.get('corpus_docs', 0)}-{newest.get('view_split', 0)}"
    requests = [_corpus_run(c, f"{DRIFT_CORPUS}:{c}:{mark}", i == 0) for i, c in enumerate(changed[DRIFT_CORPUS])]
    requests += [dg.RunRequest(run_key=f"{DRIFT_VIEW}:{v}:{mark}", job_name=DRIFT_VIEW, partition_key=v) for v in changed[DRIFT_VIEW]]
    return requests, json.dumps(newest, sort_keys=True)


def daily_requests(paths: ProjectPaths, day: str) -> dict[str, list[dg.RunRequest]]:
    """Per drift job, one run per corpus parsed on disk / per split prepared on disk."""
    corpora, views = monitor.on_disk(paths)
    return {
        DRIFT_CORPUS: [_corpus_run(c, f"{DRIFT_CORPUS}:{c}:{day}", i == 0) for i, c in enumerate(corpora)],
        DRIFT_VIEW: [dg.RunRequest(run_key=f"{DRIFT_VIEW}:{v}:{day}", job_name=DRIFT_VIEW, partition_key=v) for v in views],
    }
