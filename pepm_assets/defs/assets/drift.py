"""Drift monitoring as assets (core/drift/monitor.py does the work): each report is a partitioned
asset with one asset check, whose severity is the report's (WARN or ERROR, configs/common/drift.yml).

    view_split[dataset|view]  -> drift_train_vs_job[dataset|view]
                              -> drift_predictions[dataset|view]  (each model's scores: own job set vs another dataset's)
    corpus_docs[corpus]       -> drift_corpus_version[corpus]
    corpus_docs (every corpus) -> drift_between_corpora            -> reports/drift/alerts.{json,csv}

The drift sensor and the daily schedule (defs/schedules.py) request these runs; `pepm drift` runs
them from the command line.
"""

from typing import Any

import dagster as dg

from ...core.drift import DriftInputError, DriftResult, load_drift_config, monitor
from ...core.locks import corpus_lock, view_lock
from ..metadata import rounded
from ..partitions import split_view_key, with_partition
from ..resources import PepmProject
from .prepare import markdown_counts

GROUP = "drift"
CHECK = "no_drift"


def _check(result: DriftResult | None, asset: str, nothing: str = "nothing (first version)") -> dg.AssetCheckResult:
    """Passed when the report raised no alert; else failed with the report's severity. No report
    (`nothing` says why): passed, saying that nothing was compared."""
    if result is None:
        return dg.AssetCheckResult(asset_key=asset, check_name=CHECK, passed=True, metadata={"compared": nothing})
    severity = result.severity
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CHECK,
        passed=severity is None,
        severity=dg.AssetCheckSeverity[severity or "WARN"],
        metadata=rounded(
            {
                "drift_share": result.drift_share,
                "drifted_columns": ", ".join(result.drifted_columns) or "none",
                "alerts": len(result.alerts),
                "report": dg.MetadataValue.path(str(result.path("html"))),
            }
        ),
    )


def _worst(results: list[DriftResult]) -> DriftResult | None:
    """The report whose alerts are the most severe (an asset of several reports has one check)."""
    return max(results, key=lambda r: {"ERROR": 2, "WARN": 1, None: 0}[r.severity], default=None)


def _metadata(result: DriftResult | None, project: PepmProject) -> dict[str, Any]:
    if result is None:
        return {"compared": "nothing: first parsed version of this corpus (kept for the next one)"}
    return rounded(
        {
            "title": result.title,
            "drift_share": result.drift_share,
            "dataset_drift": result.dataset_drift,
            "scores": markdown_counts({c: f"{s:.4f}" for c, s in result.scores.items()}, "column", "score"),
            "drifted_columns": ", ".join(result.drifted_columns) or "none",
            "n_reference": result.n_reference,
            "n_current": result.n_current,
            "report": dg.MetadataValue.path(project.paths.rel(result.path("html"))),
        }
    )


def build_drift_assets(corpora_pd: dg.PartitionsDefinition, views_pd: dg.PartitionsDefinition, corpus_ids: list[str]) -> list[Any]:
    def spec(asset: str, what: str) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(CHECK, asset=asset, description=f"no drift above configs/common/drift.yml's thresholds ({what})")

    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        deps=["view_split"],
        check_specs=[spec("drift_train_vs_job", "train_vs_job: WARN per column, ERROR when the report drifts")],
        description="Evidently report: the split's train set vs its job set (text descriptors, label, metadata) -> `reports/drift/<dataset>/<view>/train_vs_job/`. A random split should show none.",
    )
    def drift_train_vs_job(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        dataset_id, view = split_view_key(context.partition_key)
        with view_lock(project.path, dataset_id, view):
            result = _run(lambda: monitor.train_vs_job(project.path, dataset_id, view, load_drift_config(project.path)))
        monitor.suite_alerts(project.path)
        return dg.MaterializeResult(
            metadata=_metadata(result, project), check_results=with_partition([_check(result, "drift_train_vs_job")], context.partition_key)
        )

    @dg.asset(
        partitions_def=corpora_pd,
        group_name=GROUP,
        deps=["corpus_docs"],
        check_specs=[spec("drift_corpus_version", "corpus_version")],
        description="Evidently report: this parsed version of the corpus vs the previous one (kept under `data/interim/_corpora_history/<corpus>/`) -> `reports/drift/_corpora/<corpus>/corpus_version/`.",
    )
    def drift_corpus_version(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        cid = context.partition_key
        with corpus_lock(project.path, cid):
            result = _run(lambda: monitor.corpus_version(project.path, cid, load_drift_config(project.path)))
        monitor.suite_alerts(project.path)
        return dg.MaterializeResult(
            metadata=_metadata(result, project),
            check_results=with_partition([_check(result, "drift_corpus_version")], context.partition_key),
        )

    pairs = [(a, b) for i, a in enumerate(corpus_ids) for b in corpus_ids[i + 1 :]]

    @dg.asset(
        group_name=GROUP,
        deps=["corpus_docs"],
        check_specs=[spec("drift_between_corpora", "dataset_vs_dataset, every pair of parsed corpora; its severity is the worst pair's")],
        description="Evidently reports: each parsed corpus vs each other one (e.g. 2013 debates vs 2024 written amendements) -> `reports/drift/_between/<a>__vs__<b>/`; reports/drift/alerts.{json,csv}.",
    )
    def drift_between_corpora(project: PepmProject) -> dg.MaterializeResult:
        cfg = load_drift_config(project.path)
        parsed, _ = monitor.on_disk(project.paths)
        results, rows = [], {}
        for a, b in pairs:
            if a not in parsed or b not in parsed:
                rows[f"{a} vs {b}"] = f"not compared: {', '.join(c for c in (a, b) if c not in parsed)} not parsed"
                continue
            result = _run(lambda a=a, b=b: monitor.between_corpora(project.path, a, b, cfg))
            results.append(result)
            rows[f"{a} vs {b}"] = f"{result.drift_share:.2f} ({', '.join(result.drifted_columns) or 'none'}) {result.severity or ''}"
        json_path, _ = monitor.suite_alerts(project.path)
        check = _check(_worst(results), "drift_between_corpora", "nothing: fewer than two corpora parsed")
        return dg.MaterializeResult(
            metadata={
                "drift_share (drifted columns)": markdown_counts(rows, "pair", "drift share"),
                "alerts": dg.MetadataValue.path(project.paths.rel(json_path)),
            },
            check_results=[check],
        )

    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        deps=["view_split"],
        check_specs=[spec("drift_predictions", "prediction, every model evaluated on another dataset; its severity is the worst model's")],
        description="Evidently reports: each model's confidence scores and predicted labels on its own job set vs on another "
        "dataset's job set (its cross-dataset evaluations; K-S and chi-square) -> `reports/drift/<dataset>/<view>/predictions/<model>@<other>/`.",
    )
    def drift_predictions(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        dataset_id, view = split_view_key(context.partition_key)
        cfg = load_drift_config(project.path)
        results, rows = [], {}
        with view_lock(project.path, dataset_id, view):
            for family, model_id, eval_id in monitor.scored_cross_evaluations(project.paths, dataset_id, view):
                name = f"{family}/{model_id} on {eval_id}"
                try:
                    result = monitor.prediction_drift_of(project.path, dataset_id, view, family, model_id, eval_id, cfg)
                except (monitor.NothingToCompare, DriftInputError) as exc:
                    rows[name] = f"not compared: {exc}"
                    continue
                results.append(result)
                rows[name] = f"{result.drift_share:.2f} ({', '.join(result.drifted_columns) or 'none'}) {result.severity or ''}"
        json_path, _ = monitor.suite_alerts(project.path)
        nothing = "nothing: no model of this split evaluated, with scores, on its own and another dataset's job set"
        check = _check(_worst(results), "drift_predictions", nothing)
        return dg.MaterializeResult(
            metadata={
                "drift_share (drifted columns)": markdown_counts(rows or {"(none)": "nothing compared"}, "model", "drift share"),
                "models_compared": len(results),
                "alerts": dg.MetadataValue.path(project.paths.rel(json_path)),
            },
            check_results=[check],
        )

    return [drift_train_vs_job, drift_corpus_version, drift_between_corpora, drift_predictions]


def _run(work):
    """A missing input is the user's next step, said plainly (not a stack trace)."""
    try:
        return work()
    except monitor.NothingToCompare as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
