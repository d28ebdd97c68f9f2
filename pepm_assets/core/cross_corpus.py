"""The cells of the cross-corpus matrix (configs/common/cross_corpus.yml): one model, trained on
each dataset A of the list, scored on each dataset B.

- A = B: A's own evaluation on its job set (held out), the one `evaluation/<model>` writes; read
  from disk when it is current, else computed (and then committed and logged once, by the asset).
- A != B: the model scored on every labelled document of B's view: B's train, valid and job files
  of its canonical split, each document once (a copy made by train-stage over-sampling counts
  once), as labelled, filtered and de-duplicated by B's prepare, and not re-balanced. With a
  pool-stage balance strategy (down-sampling: cap_docs, cap_tokens, alpha_total) B's files hold
  its down-sampled pool, which is then what is scored (the cell says so: `whole_pool` false).
  A document whose normalised text (split.text_keys) is in A's train or valid set is left out of
  the score (two datasets can share a corpus, or a text), and counted (`n_dropped_seen_in_training`).
  With split.repeats, each of A's models (one per split) is scored on B minus its own train
  texts, and the cell is their mean with the pooled interval, as A's own evaluation is.

Every cell also has two baselines computed on the same documents from A's train set (train.tsv
as fitted): the majority class (the `check` family's rule: ties go to the first label in sorted
order) and stratified chance (labels drawn at random with A's train class shares: its exact
expected accuracy and macro-F1, `stratified_chance`).

Intervals: percentile bootstrap, seeded with A's profile seed (each repeat with its own seed),
resampling whole speakers (B's split.group_by field, else `speaker` when the documents have one;
a document without one is a cluster of its own) or documents when there is no speaker column.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import balance, families, lineage, metrics, training
from .config import ModelSpec, ResolvedParams
from .paths import ProjectPaths
from .prepare import read_repeat, repeat_dir
from .split import text_keys

TARGET_FILES = ("train", "valid", "job")  # B's view files that hold its labelled documents
HELD_OUT = "job set (held out)"
WHOLE = "all labelled documents"
CHANCE_FORMULA = (
    "labels drawn independently with A's train class shares q: accuracy = sum_c p_c q_c; macro-F1 = mean over the "
    "classes c present in the scored documents of E[2 TP_c / (n_c + TP_c + FP_c)], TP_c ~ Binomial(n_c, q_c) and "
    "FP_c ~ Binomial(n - n_c, q_c) independent (p_c = n_c / n): both exact expectations, not a simulation"
)


def cells_dir(paths: ProjectPaths, view: str, model_id: str) -> Path:
    """Where the A != B cells' reports go (not reports/<A>/.../<model>@<B>/, which is the score on
    B's job set that an eval_dataset_id profile writes)."""
    return paths.reports / "cross_corpus" / view / model_id / "cells"


# ---------------------------------------------------------------- what is scored
def target_documents(eval_params: ResolvedParams, root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every labelled document of B's view, once (column `part`: the file it was read from), and
    the facts of that choice."""
    stamp, frames = training.read_prepared_view(eval_params, root, TARGET_FILES)
    parts = [frames[name].assign(part=name) for name in TARGET_FILES if name in frames]
    rows = pd.concat(parts, ignore_index=True)
    docs = rows.drop_duplicates("doc_id", keep="first").reset_index(drop=True)
    stage = balance.build(eval_params.balance_strategy, eval_params.balance).stage
    return docs, {
        "documents": WHOLE,
        "files": [name for name in TARGET_FILES if name in frames],
        "n_rows_read": len(rows),
        "n_documents": len(docs),
        "by_part": {str(k): int(v) for k, v in docs["part"].value_counts().sort_index().items()},
        "label_counts": {str(k): int(v) for k, v in docs["label"].value_counts().sort_index().items()},
        "balance_strategy": eval_params.balance_strategy,
        "whole_pool": stage != "pool",  # a pool-stage strategy down-sampled B's files
        "view_version": stamp["version"],
    }


def seen_text_keys(params: ResolvedParams, root: Path, repeat: int) -> set[str]:
    """The normalised-text keys of the documents A's model of split `repeat` was fitted (train)
    or selected (valid) on."""
    view_dir = ProjectPaths(root).view_dir(params.dataset_id, params.view)
    folder = view_dir if repeat == 0 else repeat_dir(view_dir, repeat)
    texts: list[str] = []
    for name in ("train", "valid"):
        if (folder / f"{name}.tsv").is_file():
            texts += read_repeat(params, root, repeat, name)["text"].tolist()
    return set(text_keys(texts))


def cluster_column(eval_params: ResolvedParams, docs: pd.DataFrame) -> str | None:
    """The column the intervals resample as clusters: B's split.group_by, else `speaker`; None when
    the documents have no such column (or no value in it)."""
    field = eval_params.split.group_by or "speaker"
    if field not in docs.columns or not (docs[field].astype(str) != "").any():
        return None
    return field


# ---------------------------------------------------------------- baselines
def train_shares(train_labels: pd.Series) -> tuple[str, dict[str, float]]:
    """(majority label, class shares) of A's train set, as the check family computes them."""
    counts = train_labels.astype(str).value_counts().sort_index()
    return str(counts.idxmax()), {str(k): float(v / counts.sum()) for k, v in counts.items()}


def stratified_chance(gold: list[str], shares: dict[str, float], labels: list[str]) -> dict[str, float]:
    """Expected accuracy and macro-F1 of labels drawn at random with `shares` (CHANCE_FORMULA), exact
    for any number of documents (the F1 of the expected confusion matrix, 2 p q / (p + q), is only
    its large-n limit and overstates it on a small job set); macro-F1 over the classes present in
    `gold`, as classification_metrics counts it."""
    from scipy.stats import binom

    n = len(gold)
    if n == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    counts = pd.Series(gold).value_counts()
    accuracy, f1 = 0.0, []
    for c in labels:
        n_c, q = int(counts.get(c, 0)), float(shares.get(c, 0.0))
        accuracy += n_c / n * q
        if n_c == 0:
            continue
        tp, p_tp = _support(n_c, q, binom)
        fp, p_fp = _support(n - n_c, q, binom)
        f1.append(float(p_tp @ (2 * tp[:, None] / (n_c + tp[:, None] + fp[None, :])) @ p_fp))
    return {"accuracy": float(accuracy), "macro_f1": float(np.mean(f1))}


def _support(n: int, q: float, binom: Any) -> tuple[np.ndarray, np.ndarray]:
    """The values of Binomial(n, q) with a probability above 1e-16, and those probabilities (the
    rest weighs less than n * 1e-16: a 10^4-document set needs ~10^3 values, not 10^4)."""
    k = np.arange(n + 1)
    p = binom.pmf(k, n, q)
    keep = p > 1e-16
    return k[keep].astype(float), p[keep]


def baselines(
    train_labels: pd.Series, gold: list[str], labels: list[str], seed: int, n_boot: int, clusters: list[Any] | None
) -> dict[str, Any]:
    """The majority-class and stratified-chance baselines of A's train set on the scored documents
    `gold`; the majority's interval by the same bootstrap (same seed, same clusters) as the model's."""
    majority, shares = train_shares(train_labels)
    constant = [majority] * len(gold)
    scores = metrics.classification_metrics(gold, constant, labels)
    ci = metrics.bootstrap_intervals(gold, constant, labels, seed, n_boot, clusters=clusters)
    return {
        "majority": {
            "label": majority,
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "accuracy_ci95": ci["accuracy"],
            "macro_f1_ci95": ci["macro_f1"],
        },
        "stratified_chance": {"shares": shares, **stratified_chance(gold, shares, labels), "formula": CHANCE_FORMULA},
    }


# ---------------------------------------------------------------- cells
def own_cell(params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path, n_boot: int = 1000) -> dict[str, Any]:
    """A = A: the model's own evaluation on its job set. Read from the report on disk when its stamp
    is the version the model and split now on disk give; else computed by evaluate_model, returned
    under `evaluation` for the caller to log and commit (so that it is logged once)."""
    paths = ProjectPaths(root)
    model_dir = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    model_stamp, view_stamp = training.trained_model(params, model_id, spec, root)
    meta_model = json.loads((model_dir / "meta_model.json").read_text(encoding="utf-8"))
    report_dir = paths.report_dir(params.dataset_id, params.view, spec.family, model_id)
    expected = lineage.evaluation_version(model_stamp["version"], view_stamp["version"], meta_model.get("training_id"))
    found = lineage.read_stamp(report_dir / "meta_eval.json")
    evaluation = None
    if found is not None and found["version"] == expected:
        scores = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))
    else:
        evaluation = training.evaluate_model(params, model_id, spec, root, n_boot=n_boot)
        scores = evaluation["scores"]
    summary, proto, ci = training._summary(scores, supervised=True), scores["protocol"], scores["ci95"]
    job = training.read_tsv(params, root, "job")
    gold = job["label"].astype(str).tolist()
    labels = sorted(set(meta_model["labels"]) | set(gold))
    cluster = training.cluster_field(params, job)
    clusters = job[cluster].tolist() if cluster else None
    train = training.read_tsv(params, root, "train")
    cell = {
        "trained_on": params.dataset_id,
        "evaluated_on": params.dataset_id,
        "documents": HELD_OUT,
        "n": len(job),
        "n_dropped_seen_in_training": 0,  # the split's own leakage gate holds (view_split's check)
        **_headline(summary),
        "interval": {k: ci[k] for k in ("level", "n_boot", "seed", "resampled", "n_clusters", "method") if k in ci},
        "baselines": baselines(train["label"], gold, labels, params.seed, n_boot, clusters),
        "protocol": proto,
        "model_version": model_stamp["version"],
        "eval_view_version": view_stamp["version"],
        "report_dir": paths.rel(report_dir),
        "from_disk": evaluation is None,
    }
    return {"cell": cell, "evaluation": evaluation}


def whole_cell(
    params: ResolvedParams, eval_params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path, n_boot: int = 1000
) -> dict[str, Any]:
    """A != B: A's model(s) on every labelled document of B (module docstring), with the report
    folder (metrics.json, predictions.tsv, meta_eval.json) under reports/cross_corpus/.../cells/."""
    from .atomic import atomic_dir, write_json
    from .prepare import write_tsv

    if eval_params.view != params.view:
        raise ValueError(f"cross-corpus needs the same view ({params.view} vs {eval_params.view})")
    started_at = training.now_iso()  # the cell's evaluation: its MLflow run's span
    paths = ProjectPaths(root)
    model_dir = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    model_stamp, _ = training.trained_model(params, model_id, spec, root, eval_params)
    meta_model = json.loads((model_dir / "meta_model.json").read_text(encoding="utf-8"))
    family = families.build(spec.family, spec.params)
    if not family.supervised:
        raise ValueError(f"cross_corpus.model_id {model_id}: a {spec.family} model has no labels to score on another corpus")
    docs, target = target_documents(eval_params, root)
    cluster = cluster_column(eval_params, docs)
    if cluster is not None:  # a document without a speaker is a cluster of its own
        values = docs[cluster].astype(str)
        docs[cluster] = values.where(values != "", "doc:" + docs["doc_id"].astype(str))
    keys = pd.Series(text_keys(docs["text"].tolist()), index=docs.index)
    fits = [(0, params.seed, model_dir, meta_model.get("by_corpus"))] + [
        (f["repeat"], f["seed"], model_dir / f["model_dir"], f.get("by_corpus")) for f in training.repeat_fits(meta_model)
    ]
    started = time.perf_counter()
    splits, dropped = [], []
    for repeat, seed, sub, by_corpus in fits:
        seen = keys.isin(seen_text_keys(params, root, repeat))
        scored = docs[~seen]
        groups = training._corpus_groups(params, eval_params, {**meta_model, "by_corpus": by_corpus}, scored)
        texts = scored["text"].tolist()
        pred = family.predict(sub, texts) if groups is None else training._predict_by_corpus(family, sub, scored, groups)[0]
        splits.append(training.ScoredSplit(repeat, seed, scored, [str(p) for p in pred]))
        dropped.append({"repeat": repeat, "seed": seed, "n_dropped": int(seen.sum()), "n_scored": len(scored)})
    predict_seconds = time.perf_counter() - started
    canonical = splits[0]
    gold = canonical.job["label"].astype(str).tolist()
    labels = sorted(set(meta_model["labels"]) | set().union(*(set(s.job["label"]) for s in splits)))
    scores = metrics.classification_metrics(gold, canonical.pred, labels)
    plan = meta_model.get("repeats") or {}
    scores.update(training._repeated_scores(splits, labels, n_boot, cluster, params.seed, plan, scores))
    unit = f"whole {cluster}s of the scored documents" if cluster else "documents"
    scores["ci95"]["method"] = f"{metrics.CLUSTER_METHOD if cluster else metrics.DOCUMENT_METHOD}: {unit}" + (
        f"; {metrics.POOLED_METHOD}" if len(splits) > 1 else ""
    )
    proto = training.protocol(params, meta_model)
    scores["protocol"] = proto
    summary = training._summary(scores, supervised=True)
    clusters = canonical.job[cluster].tolist() if cluster else None
    train = training.read_tsv(params, root, "train")
    out = cells_dir(paths, params.view, model_id) / f"{params.dataset_id}@{eval_params.dataset_id}"
    cell = {
        "trained_on": params.dataset_id,
        "evaluated_on": eval_params.dataset_id,
        "documents": WHOLE,
        "n": len(canonical.job),
        "n_dropped_seen_in_training": dropped[0]["n_dropped"],
        "dropped_by_split": dropped,
        **_headline(summary),
        "interval": {
            "level": 0.95,
            "n_boot": n_boot,
            "seed": params.seed,
            "resampled": cluster or "document",
            **({"n_clusters": int(canonical.job[cluster].nunique())} if cluster else {}),
            "method": scores["ci95"]["method"],
        },
        "baselines": baselines(train["label"], gold, labels, params.seed, n_boot, clusters),
        "target": target,
        "protocol": proto,
        "model_version": model_stamp["version"],
        "eval_view_version": target["view_version"],
        "report_dir": paths.rel(out),
        "predict_seconds": round(predict_seconds, 3),
    }
    meta_eval = {
        "model_id": model_id,
        "family": spec.family,
        "dataset_id": params.dataset_id,
        "eval_dataset_id": eval_params.dataset_id,
        "view": params.view,
        "profile": params.profile,
        "params_hash": params.params_hash,
        "eval_params_hash": eval_params.params_hash,
        "seed": params.seed,
        "n_job": len(canonical.job),
        **proto,
        **{k: v for k, v in cell.items() if k not in ("trained_on", "evaluated_on")},
        "started_at": started_at,
        "ended_at": training.now_iso(),
    }
    scores["title"] = f"{model_id} · trained on {params.dataset_id} · all labelled documents of {eval_params.dataset_id} · {params.view}"
    with atomic_dir(out) as tmp:
        write_json(tmp / "metrics.json", scores)
        write_json(tmp / "meta_eval.json", meta_eval)
        predictions = canonical.job[["doc_id", "label", "part", *([cluster] if cluster else [])]].assign(predicted=canonical.pred)
        write_tsv(predictions, tmp / "predictions.tsv")
    return {"cell": cell, "meta_eval": meta_eval, "summary": summary, "report_dir": out}


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    keep = ("accuracy", "macro_f1", "accuracy_ci95", "macro_f1_ci95", "n_splits", "accuracy_sd", "macro_f1_sd")
    return {k: summary[k] for k in keep if k in summary}
