"""Training and evaluation as partitioned assets: one `model/<id>` and one `evaluation/<id>` per
models.yml entry (a factory: the one place where repetition is real), plus two cross-model
assets, `cross_corpus_matrix` and `leaderboard`.

    model_formats + view_params + train_params -> model/<id>[dataset|view] -> evaluation/<id>[dataset|view]
    evaluation/* -> leaderboard          model/ + evaluation/<cross model> -> cross_corpus_matrix

(asset keys ["model", id] and ["evaluation", id]: core/asset_names.py makes and parses them)
"""

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from ...core import asset_names as names
from ...core import cross_corpus, lineage, reports, side_worker, tracking, training
from ...core.config import CommonConfig, ModelSpec, resolve_on_dataset
from ...core.locks import views_locks
from ...core.selection import resolve_partition
from ...core.tracking import Tracker
from ..catalog import family_kinds
from ..metadata import image_markdown, per_class_table, rounded
from ..partitions import view_key, with_partition
from ..resources import PepmProject
from .prepare import markdown_counts, run_params

CODE_VERSION = "train-2"
RESOURCE_CLASS_TAG = "pepm/resource_class"
VALIDITY_CHECK = "label_validity"  # WARN: the diagnostics of core/diagnostics.py found something
T = TypeVar("T")


class MlflowTracking(dg.ConfigurableResource):
    """MLflow on the project's SQLite file by default; `tracking_uri` for a server or Postgres."""

    tracking_uri: str = ""
    enabled: bool = True

    def tracker(self, project: PepmProject) -> Tracker | None:
        """In process, or forwarded to the side worker a `pepm run` started (core/side_worker.py)."""
        return side_worker.tracker(project.path, self.tracking_uri or None) if self.enabled else None


def _tags(context: dg.AssetExecutionContext, params, model_id: str, spec: ModelSpec) -> dict[str, str]:
    return {
        "dataset": params.dataset_id,
        "view": params.view,
        "family": spec.family,
        "model": model_id,
        "seed": str(params.seed),
        "params_hash": params.params_hash,
        "profile": params.profile,
        "dagster_run_id": context.run.run_id,  # tracking.with_links adds dagster_run_url when PEPM_DAGSTER_URL is set
        **({"partition": str(context.partition_key)} if context.has_partition_key else {}),  # no empty tag
    }


def _in_partition(project: PepmProject, params, work: Callable[[], T], eval_params=None) -> T:
    """Core work under the partition's lock (and the one of the split a cross-dataset evaluation
    reads); a lineage refusal (a split or model of other versions) fails the step with its
    message, which says what to re-run."""
    parts = [(p.dataset_id, p.view) for p in (params, eval_params) if p is not None]
    with views_locks(project.path, parts):
        try:
            return work()
        except lineage.LineageError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None


def model_code_version(model_id: str, spec: ModelSpec) -> str:
    """Dagster's code version of a model asset: its models.yml entry and its family's code version
    (editing C of one model makes that model stale in the UI, and only it)."""
    inputs = lineage.model_inputs_of_spec(model_id, spec)
    return f"{CODE_VERSION}:{lineage.digest(inputs)}"


def _model_asset(model_id: str, spec: ModelSpec, views_pd: dg.PartitionsDefinition) -> Any:
    """The model fitted on its partition's train set, logged to MLflow, stamped last."""

    @dg.asset(
        key=names.key_path(names.model_asset(model_id)),
        partitions_def=views_pd,
        group_name="train",
        code_version=model_code_version(model_id, spec),
        deps=["model_formats", "view_params", "train_params"],
        kinds=family_kinds(spec.family),
        op_tags={RESOURCE_CLASS_TAG: spec.resource_class},
        description=f"{model_id} ({spec.family}) trained on the partition's train set -> `models/<dataset>/<view>/{spec.family}/{model_id}/`. {spec.description}",
    )
    def model_asset(context: dg.AssetExecutionContext, project: PepmProject, mlflow: MlflowTracking) -> dg.MaterializeResult:
        params = run_params(context, project)
        run_spec = params.model_specs.get(model_id, spec)  # with the run's models.<id>.params overrides
        meta = _in_partition(project, params, lambda: training.train_model(params, model_id, run_spec, project.path))
        model_dir = project.paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
        tracker = mlflow.tracker(project)
        tags = {**_tags(context, params, model_id, spec), "version": meta["lineage"]["version"], "split_version": meta["split_version"]}
        logged = tracker.log_training(meta, params.model_dump(mode="json"), model_dir, tags) if tracker else {}
        training.commit_model(project.path, meta)
        return dg.MaterializeResult(
            metadata=rounded(
                {
                    "params_hash": params.params_hash,
                    "seed": params.seed,
                    "split": meta["split"],
                    "class_weight": meta["class_weight"],
                    "splits_fitted": 1 + len(training.repeat_fits(meta)),
                    "n_train_used": meta["n_train_used"],
                    "truncated": meta["truncated"],
                    "train_seconds": meta["train_seconds"],
                    "fit": dg.MetadataValue.json(meta["fit"]),
                    "model_dir": dg.MetadataValue.path(project.paths.rel(model_dir)),
                    "split_version": meta["split_version"],
                    **(
                        {
                            "mlflow_run": dg.MetadataValue.url(tracker.run_url(logged["run_id"])),
                            "mlflow_run_id": logged["run_id"],
                            "registered_model": f"{logged['registered_model']} v{logged['version']}",
                        }
                        if logged
                        else {}
                    ),
                }
            ),
            data_version=dg.DataVersion(meta["lineage"]["version"]),
        )

    return model_asset


def _evaluation_asset(model_id: str, spec: ModelSpec, views_pd: dg.PartitionsDefinition, model_asset: Any) -> Any:
    """The model scored on its partition's job set (and on eval_dataset_id's); early_stop's
    thresholds as a WARN check."""
    stop = spec.early_stop
    limits = " and ".join(f"{m} < {v}" for m, v in (("accuracy", stop.min_accuracy), ("macro-F1", stop.min_macro_f1)) if v is not None)
    checks = (
        [
            dg.AssetCheckSpec(
                "quality_ok",
                asset=dg.AssetKey(names.key_path(names.evaluation_asset(model_id))),
                description=f"models.yml early_stop: flagged when {limits} (not blocking: the model stays in the leaderboard, flagged)",
            )
        ]
        if stop.enabled and limits
        else []
    ) + [
        dg.AssetCheckSpec(
            VALIDITY_CHECK,
            asset=dg.AssetKey(names.key_path(names.evaluation_asset(model_id))),
            description="label validity (core/diagnostics.py): warns when the label goes with other metadata (the vote, government/"
            "opposition, the corpus), when texts name parties or groups, or when the top terms are procedural words or names",
        )
    ]

    @dg.asset(
        key=names.key_path(names.evaluation_asset(model_id)),
        partitions_def=views_pd,
        group_name="evaluate",
        code_version=lineage.EVAL_CODE,
        deps=[model_asset],
        kinds=family_kinds(spec.family),
        check_specs=checks,
        description=f"{model_id} scored on the partition's job set: metrics.json, classification_report.txt, meta_eval.json, `metrics_by_<field>.json`, confusion_matrix.png under reports/.",
    )
    def evaluation_asset(context: dg.AssetExecutionContext, project: PepmProject, mlflow: MlflowTracking) -> dg.MaterializeResult:
        params = run_params(context, project)
        run_spec = params.model_specs.get(model_id, spec)
        result = _in_partition(project, params, lambda: training.evaluate_model(params, model_id, run_spec, project.path))
        tracker = mlflow.tracker(project)
        tags = {
            **_tags(context, params, model_id, spec),
            "version": result["lineage"]["version"],
            "model_version": result["model_version"],
            "quality_ok": str(result["quality_ok"]).lower(),
            "quality_flags": ",".join(result["quality_flags"]),
        }
        run_id = tracker.log_evaluation(result, result["metrics"], result["report_dir"], tags) if tracker else None
        training.commit_evaluation(project.path, result)
        cross = _cross_dataset_evaluation(context, project, mlflow, params, model_id, run_spec) if params.eval_dataset_id else {}
        summary = result["metrics"]
        check_results = (
            [
                dg.AssetCheckResult(
                    check_name="quality_ok",
                    passed=bool(result["quality_ok"]),
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={
                        "quality_flags": ",".join(result["quality_flags"]) or "none",
                        "accuracy": summary.get("accuracy", 0.0),
                        "macro_f1": summary.get("macro_f1", 0.0),
                        "min_accuracy": stop.min_accuracy or 0.0,
                        "min_macro_f1": stop.min_macro_f1 or 0.0,
                    },
                )
            ]
            if stop.enabled and limits
            else []
        ) + [_validity_check(result["label_validity_warnings"])]
        table = per_class_table(result["report_dir"])
        matrix = image_markdown(Path(result["report_dir"]) / "confusion_matrix.png", "confusion matrix")
        return dg.MaterializeResult(
            metadata=rounded(
                {
                    **{k: dg.MetadataValue.float(float(v)) for k, v in summary.items() if isinstance(v, (int, float))},
                    **{k: dg.MetadataValue.json(v) for k, v in summary.items() if isinstance(v, list)},
                    "n_job": result["n_job"],
                    "seed": params.seed,
                    "split": result["split"],
                    "class_weight": result["class_weight"],
                    "splits": result["splits"],
                    "params_hash": params.params_hash,
                    "report_dir": dg.MetadataValue.path(project.paths.rel(result["report_dir"])),
                    "model_version": result["model_version"],
                    "split_version": result["split_version"],
                    "label_validity_warnings": _validity_markdown(result["label_validity_warnings"]),
                    **({"per_class": table} if table is not None else {}),
                    **({"confusion_matrix": matrix} if matrix is not None else {}),
                    **({"mlflow_run": dg.MetadataValue.url(tracker.run_url(run_id)), "mlflow_run_id": run_id} if run_id else {}),
                    **cross,
                }
            ),
            data_version=dg.DataVersion(result["lineage"]["version"]),
            check_results=with_partition(check_results, context.partition_key),
        )

    return evaluation_asset


def _validity_check(messages: list[str]) -> dg.AssetCheckResult:
    """The label-validity WARN check of an evaluation: passed when its diagnostics warn of nothing."""
    return dg.AssetCheckResult(
        check_name=VALIDITY_CHECK,
        passed=not messages,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"warnings": len(messages), "label_validity_warnings": _validity_markdown(messages), "details": "diagnostics.json"},
    )


def _validity_markdown(messages: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- **WARNING**: {m}" for m in messages) or "no warning")


def _cross_dataset_evaluation(
    context, project: PepmProject, mlflow: MlflowTracking, params, model_id: str, spec: ModelSpec
) -> dict[str, Any]:
    """The model scored on eval_dataset_id's job set (spec §2.7.3), prepared with the same
    parameters: reports/<dataset>/<view>/<family>/<model>@<eval dataset>/, its own MLflow run and
    index entry. Returns the step's metadata about it."""
    eval_params = resolve_on_dataset(project.path, params, params.eval_dataset_id)
    result = _in_partition(
        project, params, lambda: training.evaluate_model(params, model_id, spec, project.path, eval_params=eval_params), eval_params
    )
    tracker = mlflow.tracker(project)
    tags = {**_tags(context, params, model_id, spec), "eval_dataset": eval_params.dataset_id, "version": result["lineage"]["version"]}
    run_id = tracker.log_evaluation(result, result["metrics"], result["report_dir"], tags) if tracker else None
    training.commit_evaluation(project.path, result)
    scores = {
        f"{k}_on_{eval_params.dataset_id}": dg.MetadataValue.float(float(v))
        for k, v in result["metrics"].items()
        if k in ("accuracy", "macro_f1", "ari")
    }
    return {
        **scores,
        "cross_dataset_report_dir": dg.MetadataValue.path(project.paths.rel(result["report_dir"])),
        **({"cross_dataset_mlflow_run_id": run_id} if run_id else {}),
    }


def build_train_assets(common: CommonConfig, views_pd: dg.PartitionsDefinition) -> list[Any]:
    assets: list[Any] = []
    for model_id, spec in common.models.items():
        model_asset = _model_asset(model_id, spec, views_pd)
        assets += [model_asset, _evaluation_asset(model_id, spec, views_pd, model_asset)]
    evaluations = [a for a in assets if (names.parse(a.key.to_user_string()) or ("",))[0] == names.EVALUATION]

    @dg.asset(
        group_name="reports",
        deps=evaluations,
        description="reports/index.json -> reports/leaderboard.{md,tsv,png}: every in-domain evaluation, best macro-F1 first, with 95% intervals; "
        "the clusterings' scores (no macro-F1) in reports/clustering.{md,tsv,png}.",
    )
    def leaderboard(project: PepmProject, mlflow: MlflowTracking) -> dg.MaterializeResult:
        out = reports.write_leaderboard(project.paths)
        table = reports.leaderboard_table(project.paths)
        best = table.groupby(["dataset_id", "view"]).head(1) if not table.empty else table
        champions = _set_champions(project, mlflow.tracker(project), best)
        return dg.MaterializeResult(
            metadata={
                "rows": out["rows"],
                "markdown": dg.MetadataValue.path(out["md"]),
                "plot": dg.MetadataValue.path(out["png"] or ""),
                **({"clustering": dg.MetadataValue.path(out["clustering"]["md"])} if out["clustering"]["md"] else {}),
                "best_per_view": markdown_counts(
                    {f"{r.dataset_id}/{r.view}": f"{r.model_id} {r.macro_f1:.4f} ({r.split})" for r in best.itertuples()},
                    "dataset/view",
                    "best model, macro-F1 (split)",
                ),
                **({"champions": markdown_counts(champions, "dataset/view", f"MLflow alias {tracking.CHAMPION}")} if champions else {}),
            }
        )

    if common.cross_corpus is not None:
        assets.append(_cross_corpus_asset(common, views_pd))
    return [*assets, leaderboard]


def _set_champions(project: PepmProject, tracker: Tracker | None, best: Any) -> dict[str, str]:
    """The MLflow alias `champion` of each dataset x view on its leaderboard's best model (the fit
    its ranked evaluation scored); {"dataset/view": "registered model vN = model"}."""
    if tracker is None:
        return {}
    out = {}
    for row in best.itertuples():
        report_dir = project.paths.report_dir(row.dataset_id, row.view, row.family, row.model_id)
        stamp = lineage.read_stamp(report_dir / "meta_eval.json")
        model_version = (stamp or {}).get("inputs", {}).get("model")
        if not model_version:
            continue
        got = tracker.set_champion(row.dataset_id, row.view, row.model_id, model_version)
        if got:
            out[f"{row.dataset_id}/{row.view}"] = f"{got['registered_model']} v{got['version']} = {row.model_id}"
    return out


def _cross_corpus_asset(common: CommonConfig, views_pd: dg.PartitionsDefinition) -> Any:
    cfg = common.cross_corpus
    spec = common.models[cfg.model_id]

    @dg.asset(
        group_name="reports",
        deps=[
            dg.AssetKey(names.key_path(names.model_asset(cfg.model_id))),
            dg.AssetKey(names.key_path(names.evaluation_asset(cfg.model_id))),
        ],
        description=f"{cfg.model_id} trained on each of {cfg.datasets} (view {cfg.view}), scored on its own job set and on every "
        "labelled document of each other dataset, with 95% intervals and the majority / stratified-chance baselines: "
        "reports/cross_corpus/... matrix.{json,tsv,png}.",
    )
    def cross_corpus_matrix(context: dg.AssetExecutionContext, project: PepmProject, mlflow: MlflowTracking) -> dg.MaterializeResult:
        started = time.perf_counter()
        params = {d: resolve_partition(project.path, d, cfg.view) for d in cfg.datasets}
        tracker = mlflow.tracker(project)
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        run_ids: dict[str, str] = {}
        for a in cfg.datasets:
            run_spec = params[a].model_specs.get(cfg.model_id, spec)
            tags = {**_tags(context, params[a], cfg.model_id, spec), "partition": view_key(a, cfg.view), "cross_corpus": "true"}
            own = _in_partition(
                project, params[a], partial(cross_corpus.own_cell, params[a], cfg.model_id, run_spec, project.path, cfg.n_boot)
            )
            result = own["evaluation"]
            if result is not None:  # no current evaluation on disk: this one is logged and stamped, once
                own_tags = {**tags, "version": result["lineage"]["version"], "model_version": result["model_version"]}
                run_id = tracker.log_evaluation(result, result["metrics"], result["report_dir"], own_tags) if tracker else None
                training.commit_evaluation(project.path, result)
                run_ids[f"{a} -> {a}"] = run_id or ""
            cells[(a, a)] = own["cell"]  # read from evaluation/<model>'s report when current: not logged again
            for b in cfg.datasets:
                if b == a:
                    continue
                got = _in_partition(
                    project,
                    params[a],
                    partial(cross_corpus.whole_cell, params[a], params[b], cfg.model_id, run_spec, project.path, cfg.n_boot),
                    params[b],
                )
                cell_tags = {**tags, "cross_corpus_documents": cross_corpus.WHOLE, "model_version": got["cell"]["model_version"]}
                run_id = tracker.log_evaluation(got["meta_eval"], got["summary"], got["report_dir"], cell_tags) if tracker else None
                run_ids[f"{a} -> {b}"] = run_id or ""
                cells[(a, b)] = got["cell"]
        out = reports.write_cross_matrix(project.paths, cfg.view, cfg.model_id, cfg.datasets, cells)
        rows = {f"{a} -> {b}": _cell_line(cells[(a, b)]) for a in cfg.datasets for b in cfg.datasets}
        return dg.MaterializeResult(
            metadata={
                "matrix": markdown_counts(rows, "trained on -> evaluated on", "macro-F1 [95% CI] · majority · chance · n"),
                "heat_map": dg.MetadataValue.path(out["png"]),
                "json": dg.MetadataValue.path(out["json"]),
                "tsv": dg.MetadataValue.path(out["tsv"]),
                "n_boot": cfg.n_boot,
                "seeds": dg.MetadataValue.json({d: params[d].seed for d in cfg.datasets}),
                "dropped_seen_in_training": dg.MetadataValue.json(
                    {f"{a} -> {b}": c["n_dropped_seen_in_training"] for (a, b), c in cells.items() if a != b}
                ),
                **({"mlflow_run_ids": dg.MetadataValue.json(run_ids)} if any(run_ids.values()) else {}),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )

    return cross_corpus_matrix


def _cell_line(c: dict[str, Any]) -> str:
    low, high = c["macro_f1_ci95"]
    base = c["baselines"]
    return (
        f"{c['macro_f1']:.4f} [{low:.4f}, {high:.4f}] · majority {base['majority']['macro_f1']:.4f} · "
        f"chance {base['stratified_chance']['macro_f1']:.4f} · n {c['n']} ({c['documents']})"
    )
