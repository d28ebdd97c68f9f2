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


def bootstrap_replicates(
    y_true: list[str], y_pred: list[str], labels: list[str], seed: int, n_boot: int = 1000, clusters: list[Any] | None = None
) -> dict[str, np.ndarray]:
    """Accuracy and macro-F1 of `n_boot` resamples of the scored documents, as arrays.

    `clusters` None: documents are resampled, n with replacement, i.e. the n (gold, predicted) cells
    are drawn from a multinomial over the observed cells (same distribution, without materialising
    n_boot x n indices). `clusters` given (one value per document: its speaker when the split is
    grouped by speaker): whole clusters are resampled, C with replacement among the C of the job
    set, each drawn cluster bringing all its documents (a cluster bootstrap: documents of one
    speaker are not independent, and the split drew speakers, not documents). With one document
    per cluster both draw from the same distribution."""
    _, t, p = confusion(y_true, y_pred, labels)
    k, n = len(labels), len(t)
    rng = np.random.default_rng(seed)
    if n == 0:
        return {"accuracy": np.zeros(n_boot), "macro_f1": np.zeros(n_boot)}
    codes = t * (k + 1) + p  # p == k: outside the label set
    if clusters is None:
        cells = np.bincount(codes, minlength=k * (k + 1))
        cms = rng.multinomial(n, cells / n, size=n_boot).reshape(n_boot, k, k + 1)
    else:
        cms = _cluster_draws(codes, clusters, k * (k + 1), rng, n_boot).reshape(n_boot, k, k + 1)
    sizes = cms.sum(axis=(1, 2))
    acc = np.diagonal(cms[:, :, :k], axis1=1, axis2=2).sum(axis=1) / np.maximum(sizes, 1)
    return {"accuracy": acc, "macro_f1": _macro_f1(cms)}


def _cluster_draws(codes: np.ndarray, clusters: list[Any], n_cells: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, n_cells) cell counts of cluster resamples: each replicate draws C clusters with
    replacement (multinomial counts of each cluster) and adds up their documents' cells."""
    if len(clusters) != len(codes):
        raise ValueError(f"clusters: {len(clusters)} values for {len(codes)} documents")
    _, cluster_codes = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    n_clusters = int(cluster_codes.max()) + 1
    per_cluster = np.zeros((n_clusters, n_cells), dtype=np.int64)
    np.add.at(per_cluster, (cluster_codes, codes), 1)
    weights = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=n_boot)
    return weights @ per_cluster


def bootstrap_intervals(
    y_true: list[str],
    y_pred: list[str],
    labels: list[str],
    seed: int,
    n_boot: int = 1000,
    level: float = 0.95,
    clusters: list[Any] | None = None,
) -> dict[str, Any]:
    """Percentile bootstrap of accuracy and macro-F1 (`bootstrap_replicates`: documents, or whole
    clusters when `clusters` is given)."""
    reps = bootstrap_replicates(y_true, y_pred, labels, seed, n_boot, clusters)
    return {
        "level": level,
        "n_boot": n_boot,
        "seed": seed,
        "method": DOCUMENT_METHOD if clusters is None else CLUSTER_METHOD,
        **({"n_clusters": len(set(map(str, clusters)))} if clusters is not None else {}),
        "accuracy": _percentile_interval(reps["accuracy"], level),
        "macro_f1": _percentile_interval(reps["macro_f1"], level),
    }


DOCUMENT_METHOD = "percentile, multinomial resampling of documents"
CLUSTER_METHOD = "percentile, resampling of whole clusters (cluster bootstrap)"
POOLED_METHOD = (
    "percentile of the bootstrap replicates of every split pooled: within-split uncertainty "
    "(each split's replicates) and between-split variance (their spread across splits) together"
)


def repeated_scores(splits: list[dict[str, Any]], level: float = 0.95, names: tuple[str, ...] = ("accuracy", "macro_f1")) -> dict[str, Any]:
    """Mean, sd and the combined interval of scores measured on several splits of the same view.

    `splits`: one dict per split with each name's point score and `replicates` (name -> the split's
    bootstrap replicates, `bootstrap_replicates`). The interval is the percentile interval of all
    splits' replicates pooled: its spread is that of a score on one split drawn at random, i.e.
    within-split variance (mean over splits of each split's bootstrap variance) plus between-split
    variance (the variance of the splits' scores). It is not narrowed by the number of splits: the
    splits share their documents, so their mean is not N independent measurements (Nadeau & Bengio
    2003). With one split it is that split's bootstrap interval. `variance` states the two parts."""
    out: dict[str, Any] = {"n_splits": len(splits), "level": level, "mean": {}, "sd": {}, "interval": {}, "variance": {}}
    for name in names:
        points = np.array([s[name] for s in splits], dtype=float)
        reps = [np.asarray(s["replicates"][name], dtype=float) for s in splits]
        within = float(np.mean([r.var(ddof=1) if len(r) > 1 else 0.0 for r in reps]))
        between = float(points.var(ddof=1)) if len(points) > 1 else 0.0
        out["mean"][name] = float(points.mean())
        out["sd"][name] = float(points.std(ddof=1)) if len(points) > 1 else 0.0
        out["interval"][name] = _percentile_interval(np.concatenate(reps), level)
        out["variance"][name] = {
            "within_split": within,
            "between_split": between,
            "between_share": between / (within + between) if within + between > 0 else 0.0,
        }
    return out


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


def paired_delta_replicates(
    y_true: list[str],
    pred_a: list[str],
    pred_b: list[str],
    labels: list[str],
    seed: int,
    n_boot: int = 1000,
    clusters: list[Any] | None = None,
) -> tuple[float, np.ndarray]:
    """(macro-F1 of A minus macro-F1 of B on the same documents, that difference on `n_boot`
    resamples): the same resample for both models (documents, or whole clusters with `clusters`,
    as in `bootstrap_replicates`; resampling documents = drawing the (gold, A, B) cells from a
    multinomial)."""
    k, m = len(labels), len(labels) + 1
    _, t, pa = confusion(y_true, pred_a, labels)
    _, _, pb = confusion(y_true, pred_b, labels)
    n = len(t)
    codes = (t * m + pa) * m + pb
    cells = np.bincount(codes, minlength=k * m * m)
    observed = cells.reshape(1, k, m, m)
    point = float(_macro_f1(observed.sum(axis=3))[0] - _macro_f1(observed.sum(axis=2))[0])
    rng = np.random.default_rng(seed)
    if n == 0:
        return point, np.zeros(n_boot)
    if clusters is None:
        draws = rng.multinomial(n, cells / n, size=n_boot)
    else:
        draws = _cluster_draws(codes, clusters, k * m * m, rng, n_boot)
    draws = draws.reshape(n_boot, k, m, m)
    return point, _macro_f1(draws.sum(axis=3)) - _macro_f1(draws.sum(axis=2))


def paired_bootstrap_delta(
    y_true: list[str],
    pred_a: list[str],
    pred_b: list[str],
    labels: list[str],
    seed: int,
    n_boot: int = 1000,
    level: float = 0.95,
    clusters: list[Any] | None = None,
) -> dict[str, Any]:
    """Macro-F1 of A minus macro-F1 of B on the same documents, with a percentile interval from
    resampling documents (or whole clusters), the same resample for both (two overlapping intervals
    of the separate scores do not say whether A beats B; the interval of the paired difference does)."""
    point, deltas = paired_delta_replicates(y_true, pred_a, pred_b, labels, seed, n_boot, clusters)
    return {
        "delta_macro_f1": point,
        "ci95": _percentile_interval(deltas, level),
        "share_a_better": float((deltas > 0).mean()),
        "p_value": bootstrap_p_value(deltas),
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
    }


def bootstrap_p_value(deltas: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap replicates of a difference: twice the
    share of replicates on the far side of 0 (ties counted on both sides), with the +1 of a
    resampling test so that it is never 0: p = min(1, 2 (min(#<=0, #>=0) + 1) / (R + 1)). It is
    the smallest 1 - level whose percentile interval excludes 0 (up to that +1)."""
    deltas = np.asarray(deltas, dtype=float)
    below, above = int((deltas <= 0).sum()), int((deltas >= 0).sum())
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(deltas) + 1)))


def paired_comparison(splits: list[dict[str, Any]], labels: list[str], n_boot: int = 1000, level: float = 0.95) -> dict[str, Any]:
    """Model A vs model B on the same splits, paired by split and by job document.

    `splits`: one dict per split both were scored on: `gold`, `pred_a`, `pred_b` (aligned on the
    split's job documents), `seed` (its bootstrap seed) and `clusters` (None: documents are
    resampled). The difference is the mean over splits of each split's macro-F1 difference; its
    interval and p-value come from every split's paired bootstrap replicates pooled (within- and
    between-split variance, as in `repeated_scores`)."""
    points, reps = [], []
    for s in splits:
        point, deltas = paired_delta_replicates(s["gold"], s["pred_a"], s["pred_b"], labels, s["seed"], n_boot, s.get("clusters"))
        points.append(point)
        reps.append(deltas)
    pooled = np.concatenate(reps)
    return {
        "delta_macro_f1": float(np.mean(points)),
        "delta_sd": float(np.std(points, ddof=1)) if len(points) > 1 else 0.0,
        "per_split": [float(p) for p in points],
        "ci95": _percentile_interval(pooled, level),
        "share_a_better": float((pooled > 0).mean()),
        "p_value": bootstrap_p_value(pooled),
        "n_splits": len(splits),
        "n_boot": n_boot,
        "level": level,
        "resampled": "documents" if all(s.get("clusters") is None for s in splits) else "clusters",
    }


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values (family-wise error rate): the i-th smallest is
    multiplied by m - i + 1 (i from 1), capped at 1, and made non-decreasing in that order.
    Reject where the adjusted value is below the level. Same values as statsmodels'
    multipletests(method="holm")."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return [float(v) for v in adjusted]


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
    from .plotting import figure, wrap_title

    arr = np.asarray(cm, dtype=float)
    norm = confusion_shares(cm)
    width, height = confusion_figure_size(len(labels))
    fig = figure(width, height, layout=None)
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(wrap_title(title, width, 10), fontsize=10, y=1.0)  # placed, not searched for (see plotting.figure)
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


# ---------------------------------------------------------------- calibration of class scores
CALIBRATION_BINS = 10
BRIER_DEFINITION = (
    "mean over documents and classes of (score - one-hot gold)^2; for two classes it equals "
    "scikit-learn's brier_score_loss of the positive class; the sum over classes (Brier 1950) is K times it"
)
ECE_DEFINITION = (
    "top-label expected calibration error: documents binned by their score for the predicted label, "
    "10 equal-width bins [i/10, (i+1)/10) (the last closed), sum over bins of bin share x |accuracy - mean score|"
)
MARGIN_NOTE = (
    "scores are a softmax of LinearSVC decision_function margins (binary: a sigmoid of the margin), "
    "fitted for a hinge loss, never to frequencies: Brier and ECE measure that arbitrary scale, not a "
    "calibration the model claims; reported under other names (brier_margin_softmax, ece_margin_softmax)"
)


def one_hot(y_true: list[str], labels: list[str]) -> np.ndarray:
    """(n, k) one-hot gold matrix in `labels` order (a gold label outside `labels`: a row of zeros)."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(y_true), len(labels)))
    for row, y in enumerate(y_true):
        if y in index:
            out[row, index[y]] = 1.0
    return out


def brier_scores(y_true: list[str], proba: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Brier score of class probabilities `proba` ((n, k), columns in `labels` order): overall (the
    mean over documents and classes of the squared error on the one-hot gold, BRIER_DEFINITION)
    and per class (the mean over documents of that class's column, i.e. the binary Brier of
    "is it this class"; the overall score is their mean)."""
    p = np.asarray(proba, dtype=float).reshape(len(y_true), len(labels))
    if not len(y_true):
        return {"brier": None, "per_class": {label: None for label in labels}}
    sq = (p - one_hot(y_true, labels)) ** 2
    return {"brier": float(sq.mean()), "per_class": {label: float(v) for label, v in zip(labels, sq.mean(axis=0))}}


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Equal-width bins of [0, 1] ([i/n, (i+1)/n), the last closed) over `confidence`: each bin's
    edges, count, mean confidence and accuracy (share of `correct`; None in an empty bin)."""
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    which = np.clip(np.floor(conf * n_bins).astype(int), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "n": n,
                "confidence": float(conf[inside].mean()) if n else None,
                "accuracy": float(ok[inside].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = CALIBRATION_BINS) -> float | None:
    """Sum over `reliability_bins` of the bin's share of documents x |accuracy - mean confidence|:
    0 for scores that are right as often as they say; None without documents."""
    bins = reliability_bins(confidence, correct, n_bins)
    total = sum(b["n"] for b in bins)
    if not total:
        return None
    return float(sum(b["n"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["n"]))


def calibration_metrics(
    y_true: list[str], y_pred: list[str], proba: np.ndarray, labels: list[str], kind: str = "probability", n_bins: int = CALIBRATION_BINS
) -> dict[str, Any]:
    """metrics.json's `calibration` of class scores `proba` ((n, k), columns in `labels` order) of
    predictions `y_pred`: Brier (overall and per class, and the Brier of the job set's own base
    rates given to every document, the no-skill reference), top-label ECE and the reliability bins
    (the score of the predicted label against how often it is right). `kind`: "probability", or
    "margin_softmax" for squashed margins (same figures, with MARGIN_NOTE)."""
    p = np.asarray(proba, dtype=float).reshape(len(y_true), len(labels))
    index = {label: i for i, label in enumerate(labels)}
    rows = np.arange(len(y_pred))
    cols = np.array([index.get(y, -1) for y in y_pred], dtype=np.int64)
    confidence = np.where(cols >= 0, p[rows, np.maximum(cols, 0)], 0.0) if len(rows) else np.zeros(0)
    correct = np.array([t == q for t, q in zip(y_true, y_pred)], dtype=float)
    brier = brier_scores(y_true, p, labels)
    gold = one_hot(y_true, labels)
    base = brier_scores(y_true, np.tile(gold.mean(axis=0), (len(y_true), 1)), labels)["brier"] if len(y_true) else None
    out: dict[str, Any] = {
        "available": True,
        "scores": kind,
        "n": len(y_true),
        "brier": brier["brier"],
        "brier_per_class": brier["per_class"],
        "brier_base_rate": base,
        "ece": expected_calibration_error(confidence, correct, n_bins),
        "n_bins": n_bins,
        "mean_confidence": float(confidence.mean()) if len(rows) else None,
        "accuracy": float(correct.mean()) if len(rows) else None,
        "bins": reliability_bins(confidence, correct, n_bins),
        "definitions": {"brier": BRIER_DEFINITION, "ece": ECE_DEFINITION},
    }
    if kind != "probability":
        out["note"] = MARGIN_NOTE
    return out


def calibration_summary(calibration: dict[str, Any] | None) -> dict[str, float]:
    """The calibration headline for the index, the leaderboard's rows and MLflow: `brier`, `ece`
    for probabilities; `brier_margin_softmax`, `ece_margin_softmax` for squashed margins (never
    read as a probability's); nothing without class scores."""
    if not calibration or not calibration.get("available"):
        return {}
    suffix = "" if calibration["scores"] == "probability" else f"_{calibration['scores']}"
    return {f"{name}{suffix}": float(calibration[name]) for name in ("brier", "ece") if calibration.get(name) is not None}
