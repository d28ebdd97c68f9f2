"""Scores of predictions against gold labels: global, with bootstrap intervals, per group, for
clusterings; plus the confusion-matrix plot. Pure functions over lists and arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def confusion(y_true: list[str], y_pred: list[str], labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k x k confusion matrix, gold codes, predicted codes with k = outside the label set)."""
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    t = np.array([index[y] for y in y_true], dtype=np.int64)  # int even when empty (an empty job set)
    p = np.array([index.get(y, -1) for y in y_pred], dtype=np.int64)
    ok = p >= 0  # a prediction outside the label set counts as wrong for its gold class (recall)
    cm = np.bincount(t[ok] * k + p[ok], minlength=k * k).reshape(k, k)
    return cm, t, np.where(ok, p, k)


def classification_metrics(y_true: list[str], y_pred: list[str], labels: list[str]) -> dict[str, Any]:
    cm, t, _ = confusion(y_true, y_pred, labels)
    n = len(y_true)
    tp = np.diagonal(cm).astype(float)
    gold, pred = np.bincount(t, minlength=len(labels)).astype(float), cm.sum(axis=0).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.nan_to_num(tp / pred)
        recall = np.nan_to_num(tp / gold)
        f1 = np.nan_to_num(2 * tp / (pred + gold))
    present = gold > 0
    return {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * gold).sum() / gold.sum()) if gold.sum() else 0.0,
        "per_class": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(gold[i])}
            for i, label in enumerate(labels)
        },
        "labels": labels,
        "confusion_matrix": cm.tolist(),
    }


def bootstrap_intervals(
    y_true: list[str], y_pred: list[str], labels: list[str], seed: int, n_boot: int = 1000, level: float = 0.95
) -> dict[str, Any]:
    """Percentile bootstrap of accuracy and macro-F1. Resampling n documents with replacement is
    drawing the n (gold, predicted) cells from a multinomial over the observed cells: same
    distribution, without materialising n_boot x n indices."""
    _, t, p = confusion(y_true, y_pred, labels)
    k, n = len(labels), len(t)
    cells = np.bincount(t * (k + 1) + p, minlength=k * (k + 1))  # p == k: outside the label set
    rng = np.random.default_rng(seed)
    cms = rng.multinomial(n, cells / n, size=n_boot).reshape(n_boot, k, k + 1)
    acc = np.diagonal(cms[:, :, :k], axis1=1, axis2=2).sum(axis=1) / n
    macro = _macro_f1(cms)
    return {
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "method": "percentile, multinomial resampling of documents",
        "accuracy": _percentile_interval(acc, level),
        "macro_f1": _percentile_interval(macro, level),
    }


def _percentile_interval(values: np.ndarray, level: float) -> list[float]:
    return [float(np.percentile(values, (1 - level) / 2 * 100)), float(np.percentile(values, (1 + level) / 2 * 100))]


def _macro_f1(cms: np.ndarray) -> np.ndarray:
    """Macro-F1 of each (k x k+1) confusion matrix of `cms` (last column: predicted outside the labels)."""
    k = cms.shape[1]
    gold = cms.sum(axis=2)
    tp = np.diagonal(cms[:, :, :k], axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.nan_to_num(2 * tp / (cms[:, :, :k].sum(axis=1) + gold))
    present = gold > 0
    return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def paired_bootstrap_delta(
    y_true: list[str], pred_a: list[str], pred_b: list[str], labels: list[str], seed: int, n_boot: int = 1000, level: float = 0.95
) -> dict[str, Any]:
    """Macro-F1 of A minus macro-F1 of B on the same documents, with a percentile interval from
    resampling documents, the same resample for both (two overlapping intervals of the separate
    scores do not say whether A beats B; the interval of the paired difference does). As in
    bootstrap_intervals, resampling documents = drawing the (gold, A, B) cells from a multinomial."""
    k, m = len(labels), len(labels) + 1
    _, t, pa = confusion(y_true, pred_a, labels)
    _, _, pb = confusion(y_true, pred_b, labels)
    n = len(t)
    cells = np.bincount((t * m + pa) * m + pb, minlength=k * m * m)
    draws = np.random.default_rng(seed).multinomial(n, cells / n, size=n_boot).reshape(n_boot, k, m, m)
    deltas = _macro_f1(draws.sum(axis=3)) - _macro_f1(draws.sum(axis=2))
    observed = cells.reshape(1, k, m, m)
    point = float(_macro_f1(observed.sum(axis=3))[0] - _macro_f1(observed.sum(axis=2))[0])
    return {
        "delta_macro_f1": point,
        "ci95": _percentile_interval(deltas, level),
        "share_a_better": float((deltas > 0).mean()),
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
    }


def metrics_by_group(job: pd.DataFrame, y_pred: list[str], field: str, labels: list[str]) -> dict[str, Any]:
    out = {}
    pred = pd.Series(y_pred, index=job.index)
    for value, group in job.groupby(field, sort=True):
        m = classification_metrics(group["label"].tolist(), pred[group.index].tolist(), labels)
        out[str(value)] = {key: m[key] for key in ("n", "accuracy", "macro_f1", "weighted_f1", "per_class")}
    return out


def cluster_metrics(y_true: list[str], clusters: list[str], embedding: Any = None, seed: int = 0, sample: int = 5000) -> dict[str, Any]:
    from sklearn import metrics as skm

    out: dict[str, Any] = {
        "n": len(y_true),
        "n_clusters": len(set(clusters) - {"noise"}),
        "noise_fraction": float(np.mean([c == "noise" for c in clusters])) if clusters else 0.0,
        "ari": float(skm.adjusted_rand_score(y_true, clusters)),
        "nmi": float(skm.normalized_mutual_info_score(y_true, clusters)),
        "homogeneity": float(skm.homogeneity_score(y_true, clusters)),
        "completeness": float(skm.completeness_score(y_true, clusters)),
        "contingency": pd.crosstab(pd.Series(y_true, name="label"), pd.Series(clusters, name="cluster")).to_dict(),
    }
    n_distinct = len(set(clusters))
    if embedding is not None and 1 < n_distinct < len(clusters):
        out["silhouette"] = float(skm.silhouette_score(embedding, clusters, sample_size=min(sample, len(clusters)), random_state=seed))
    return out


def confusion_shares(cm: list[list[int]]) -> np.ndarray:
    """Each row of a confusion matrix as shares of its gold class (recall on the diagonal); a class
    with no gold document is a row of zeros, not NaN."""
    arr = np.asarray(cm, dtype=float)
    return arr / np.maximum(arr.sum(axis=1, keepdims=True), 1)


def confusion_figure_size(n_labels: int) -> tuple[float, float]:
    """(width, height) in inches: 0.9 in per class, plus room for the tick labels."""
    size = 1.2 + 0.9 * n_labels
    return size + 1.5, size


def plot_confusion(cm: list[list[int]], labels: list[str], target: Path, title: str) -> Path:
    from .plotting import save_png

    return save_png(confusion_figure(cm, labels, title), target)


def confusion_figure(cm: list[list[int]], labels: list[str], title: str) -> Any:
    """The confusion matrix as a matplotlib Figure: counts and shares of the gold class in each
    cell, shaded by share on a fixed 0-1 scale (so two models' plots compare by eye)."""
    from .plotting import figure

    arr = np.asarray(cm, dtype=float)
    norm = confusion_shares(cm)
    fig = figure(*confusion_figure_size(len(labels)), layout=None)
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(arr[i, j])}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    # no colour bar: every cell prints its share, and the bar was 40% of the drawing time
    fig.tight_layout()
    return fig
