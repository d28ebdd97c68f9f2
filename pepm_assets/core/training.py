"""Train and evaluate one model of models.yml on one dataset x view (spec §2.6-2.7).

`train_model` and `evaluate_model` are what the Dagster assets `model__<id>` and
`evaluation__<id>` call; each writes its outputs atomically and returns its meta dict.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import families, lineage, metrics
from .atomic import atomic_dir, write_json, write_text
from .config import ModelSpec, ResolvedParams
from .locks import exclusive_lock
from .paths import ProjectPaths
from .prepare import effective_compare_by, read_tsv, write_tsv

TOP_TERMS = 25


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def train_model(params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path) -> dict[str, Any]:
    """Fit `model_id` on train.tsv (capped by the hardware preset) into models/<ds>/<view>/<family>/<id>/."""
    paths = ProjectPaths(root)
    train = read_tsv(params, root, "train")  # the job set never reaches a fit
    view_stamp, formats_stamp = prepared_split(params, root)
    meta_view = _read_json(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    meta_formats = _read_json(paths.processed_dir(params.dataset_id, params.view) / "meta_formats.json")
    inputs = lineage.model_inputs(params, model_id, spec)
    version = lineage.model_version(formats_stamp["version"], inputs)
    cap = params.hardware.cap(spec.family)
    used = train.iloc[:cap] if cap is not None and len(train) > cap else train  # train.tsv is shuffled (seeded)
    family = families.build(spec.family, spec.params)
    labels = sorted(meta_formats["labels"])
    data = families.TrainData(
        train=used.reset_index(drop=True),
        labels=labels,
        seed=params.seed,
        hardware=params.hardware,
        root=root,
        formats=meta_formats["families"].get(spec.family, {}),
        class_weights=meta_view["balance"]["class_weights"],
    )
    seed_everything(params.seed)
    target = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    started = time.perf_counter()
    with atomic_dir(target) as tmp:
        info = family.fit(data, tmp)
        meta = {
            "model_id": model_id,
            "family": spec.family,
            "model_params": spec.params,
            "dataset_id": params.dataset_id,
            "view": params.view,
            "profile": params.profile,
            "params_hash": params.params_hash,
            "seed": params.seed,
            "hardware_preset": params.hardware_preset,
            "labels": labels,
            "n_train_available": len(train),
            "n_train_used": len(used),
            "truncated": len(used) < len(train),
            "max_train_docs": cap,
            "train_seconds": round(time.perf_counter() - started, 3),
            "fit": info,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "training_id": uuid.uuid4().hex,  # this fit, whatever its version (evaluations name the fit they scored)
            "split_version": view_stamp["version"],
            "lineage": lineage.stamp(
                version,
                {"formats": formats_stamp["version"], "view": view_stamp["version"], "params_hash": params.params_hash, **inputs},
                [],
            ),
        }
        write_json(tmp / "meta_model.json", {k: v for k, v in meta.items() if k != "lineage"})
    return meta


def evaluate_model(
    params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path, eval_params: ResolvedParams | None = None, n_boot: int = 1000
) -> dict[str, Any]:
    """Score the trained model on a job set: its own dataset's, or `eval_params`' (cross-dataset)."""
    paths = ProjectPaths(root)
    eval_params = eval_params or params
    if eval_params.view != params.view:
        raise ValueError(f"cross-dataset evaluation needs the same view ({params.view} vs {eval_params.view})")
    model_dir = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    model_stamp, eval_view = trained_model(params, model_id, spec, root, eval_params)
    meta_model = _read_json(model_dir / "meta_model.json")
    fit = meta_model.get("training_id")
    version = lineage.evaluation_version(model_stamp["version"], eval_view["version"], fit)
    job = read_tsv(eval_params, root, "job")
    family = families.build(spec.family, spec.params)
    labels = sorted(set(meta_model["labels"]) | set(job["label"]))
    texts = job["text"].tolist()
    started = time.perf_counter()
    pred = family.predict(model_dir, texts)
    predict_seconds = time.perf_counter() - started
    out_dir = paths.report_dir(params.dataset_id, params.view, spec.family, model_id, eval_params.dataset_id)
    title = f"{model_id} · trained on {params.dataset_id} · job of {eval_params.dataset_id} · {params.view}"
    files: dict[str, str] = {}
    with atomic_dir(out_dir) as tmp:
        if family.supervised:
            scores = metrics.classification_metrics(job["label"].tolist(), pred, labels)
            scores["ci95"] = metrics.bootstrap_intervals(job["label"].tolist(), pred, labels, seed=params.seed, n_boot=n_boot)
            write_text(tmp / "classification_report.txt", _report_text(scores, title))
            metrics.plot_confusion(scores["confusion_matrix"], labels, tmp / "confusion_matrix.png", title)
            for field in _compare_fields(params, eval_params, job):
                write_json(tmp / f"metrics_by_{field}.json", metrics.metrics_by_group(job, pred, field, labels))
            terms = family.top_terms(model_dir, TOP_TERMS)
            if terms:
                write_json(tmp / "top_terms.json", terms)
        else:
            scores = metrics.cluster_metrics(job["label"].tolist(), pred, family.embed(model_dir, texts), seed=params.seed)
            write_text(
                tmp / "classification_report.txt",
                f"{title}\n\nclustering: " + json.dumps({k: v for k, v in scores.items() if k != "contingency"}, indent=2) + "\n",
            )
        write_json(tmp / "metrics.json", scores)
        write_tsv(pd.DataFrame({"doc_id": job["doc_id"], "label": job["label"], "predicted": pred}), tmp / "predictions.tsv")
        summary = _summary(scores, family.supervised)
        quality_ok, quality_flags = spec.early_stop.judge(summary)
        meta_eval = {
            "model_id": model_id,
            "family": spec.family,
            "supervised": family.supervised,
            "dataset_id": params.dataset_id,
            "eval_dataset_id": eval_params.dataset_id,
            "view": params.view,
            "profile": params.profile,
            "params_hash": params.params_hash,
            "eval_params_hash": eval_params.params_hash,
            "seed": params.seed,
            "n_job": len(job),
            "predict_seconds": round(predict_seconds, 3),
            "model_created_at": meta_model["created_at"],
            "n_train_used": meta_model["n_train_used"],
            "truncated": meta_model["truncated"],
            "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quality_ok": quality_ok,
            "quality_flags": quality_flags,
            "settings_hash": lineage.digest(params.settings_hash, eval_params.settings_hash, lineage.model_inputs(params, model_id, spec)),
            "model_version": model_stamp["version"],
            "split_version": model_stamp["inputs"]["view"],
            "eval_split_version": eval_view["version"],
            "lineage": lineage.stamp(
                version, {"model": model_stamp["version"], "eval_view": eval_view["version"], "training_id": fit}, ["metrics.json"]
            ),
        }
        write_json(tmp / "meta_eval.json", {k: v for k, v in meta_eval.items() if k != "lineage"})
        files = {name.name: paths.rel(out_dir / name.name) for name in sorted(tmp.iterdir())}
    entry = {
        **{k: v for k, v in meta_eval.items() if k != "lineage"},
        "version": version,
        "metrics": summary,
        "files": files,
        "model_dir": paths.rel(model_dir),
    }
    return {**meta_eval, "metrics": summary, "scores": scores, "report_dir": out_dir, "index_entry": entry}


def commit_model(root: Path, meta: dict[str, Any]) -> None:
    """The model's stamp, written once everything else of its step is done (its MLflow run too):
    a step killed before this leaves the model missing, to be trained again, never fresh."""
    paths = ProjectPaths(root)
    lineage.commit(paths.model_dir(meta["dataset_id"], meta["view"], meta["family"], meta["model_id"]) / "meta_model.json", meta["lineage"])


def commit_evaluation(root: Path, result: dict[str, Any]) -> None:
    """The evaluation's stamp and its entry in reports/index.json, once its step is done: the
    leaderboard never shows a score whose step failed."""
    lineage.commit(Path(result["report_dir"]) / "meta_eval.json", result["lineage"])
    update_index(ProjectPaths(root), result["index_entry"])


def prepared_split(params: ResolvedParams, root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The lineage stamps of the split and formats on disk, if they were built with `params`;
    else a LineageError saying to prepare (never train on a split of other parameters)."""
    paths = ProjectPaths(root)
    where = f"{params.dataset_id}/{params.view}"
    fix = f"run the prepare stage of this profile first ({command('prepare', params)})"
    view = lineage.read_stamp(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    if view is None:
        raise lineage.LineageError(f"{where}: no prepared split (data/interim/{where}/meta_view.json or its TSVs missing); {fix}")
    built_with = view["inputs"].get("params_hash")
    if built_with != params.params_hash:
        raise lineage.LineageError(
            f"{where}: the split on disk was prepared with params {built_with}, this run has params "
            f"{params.params_hash} (seed {params.seed}); {fix}"
        )
    formats = lineage.read_stamp(paths.processed_dir(params.dataset_id, params.view) / "meta_formats.json")
    if formats is None or formats["inputs"].get("view") != view["version"]:
        raise lineage.LineageError(f"{where}: the model formats on disk are not those of the split on disk; {fix}")
    return view, formats


def trained_model(
    params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path, eval_params: ResolvedParams | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model stamp, stamp of the split to score on), if the model on disk was fitted on the split
    now on disk for `params`; else a LineageError. Scoring a model on a job set of another split
    (another seed, other data) would score it on its own training documents."""
    paths = ProjectPaths(root)
    eval_params = eval_params or params
    model_dir = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    fix = f"re-train it ({command('train', params)}, or `pepm run --stage pipeline`)"
    model = lineage.read_stamp(model_dir / "meta_model.json")
    if model is None:
        raise lineage.LineageError(f"{paths.rel(model_dir)}: no trained model; {fix}")
    view, _ = prepared_split(params, root)
    if model["inputs"].get("view") != view["version"]:
        raise lineage.LineageError(
            f"model {model_id} was fitted on split {model['inputs'].get('view')} of {params.dataset_id}/{params.view} "
            f"(params {model['inputs'].get('params_hash')}), the split on disk is {view['version']} (params {params.params_hash}, "
            f"seed {params.seed}): its job set may hold its own training documents; {fix}"
        )
    eval_view = view if eval_params is params else prepared_split(eval_params, root)[0]
    return model, eval_view


def command(stage: str, params: ResolvedParams) -> str:
    """The `pepm <stage>` command that stands for these params, for messages that say what to run."""
    return f"`pepm {stage} -p {params.profile}" + "".join(f" -o '{o}'" for o in params.overrides) + "`"


def _compare_fields(params: ResolvedParams, eval_params: ResolvedParams, job: pd.DataFrame) -> list[str]:
    fields = dict.fromkeys(effective_compare_by(eval_params) + params.compare_by)
    return [f for f in fields if f in job.columns]


def _summary(scores: dict[str, Any], supervised: bool) -> dict[str, Any]:
    if supervised:
        return {
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "weighted_f1": scores["weighted_f1"],
            "accuracy_ci95": scores["ci95"]["accuracy"],
            "macro_f1_ci95": scores["ci95"]["macro_f1"],
        }
    return {k: scores[k] for k in ("ari", "nmi", "homogeneity", "completeness", "n_clusters") if k in scores} | (
        {"silhouette": scores["silhouette"]} if "silhouette" in scores else {}
    )


def _report_text(scores: dict[str, Any], title: str) -> str:
    """A readable table of metrics.json's own numbers (macro-F1 over the classes present in the job
    set, as everywhere in pepm), with the bootstrap intervals."""
    width = max(12, *(len(label) for label in scores["labels"]))
    lines = [title, "", f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}"]
    for label, s in scores["per_class"].items():
        lines.append(f"{label:>{width}}  {s['precision']:9.4f}  {s['recall']:9.4f}  {s['f1']:9.4f}  {s['support']:9d}")
    ci = scores["ci95"]
    lines += [
        "",
        f"{'accuracy':>{width}}  {scores['accuracy']:.4f}  (95% CI {ci['accuracy'][0]:.4f}-{ci['accuracy'][1]:.4f})",
        f"{'macro-F1':>{width}}  {scores['macro_f1']:.4f}  (95% CI {ci['macro_f1'][0]:.4f}-{ci['macro_f1'][1]:.4f})",
        f"{'weighted-F1':>{width}}  {scores['weighted_f1']:.4f}",
        f"{'documents':>{width}}  {scores['n']}; bootstrap n={ci['n_boot']}, seed={ci['seed']}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- reports/index.json
def index_path(paths: ProjectPaths) -> Path:
    return paths.reports / "index.json"


def read_index(paths: ProjectPaths) -> list[dict[str, Any]]:
    path = index_path(paths)
    return json.loads(path.read_text(encoding="utf-8"))["entries"] if path.is_file() else []


def slot(e: dict[str, Any]) -> tuple[str, str, str, str]:
    """What an index entry is an evaluation of: (dataset, view, model, eval dataset)."""
    return e["dataset_id"], e["view"], e["model_id"], e["eval_dataset_id"]


def update_index(paths: ProjectPaths, entry: dict[str, Any]) -> None:
    """The history of evaluations, oldest first: one entry per evaluation version (profile, seed,
    params hash, time); evaluating the same version again replaces its entry (same result)."""
    same = lambda e: (*slot(e), e.get("version")) == (*slot(entry), entry["version"])  # noqa: E731
    with exclusive_lock(index_path(paths).with_suffix(".lock")):  # read-modify-write between evaluation processes
        entries = [e for e in read_index(paths) if not same(e)] + [entry]
        entries.sort(key=lambda e: e.get("evaluated_at", ""))
        write_json(index_path(paths), {"entries": entries})


def latest_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest evaluation of each (dataset, view, model, eval dataset), in index order."""
    latest = {slot(e): e for e in entries}
    return [e for e in entries if latest[slot(e)] is e]
