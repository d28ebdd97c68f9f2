"""Cross-model reports from reports/index.json: the leaderboard and the cross-corpus matrix.

A model of a `merge_mode: separate` dataset is one model per corpus: its leaderboard row is the
pooled score (each job document scored by its own corpus's model), and leaderboard.md adds its
per-corpus rows (also in leaderboard_by_corpus.tsv)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import metrics
from .atomic import atomic_path, write_json, write_text
from .paths import ProjectPaths
from .training import COMPARISON, NOT_RECORDED, latest_entries, protocol_note, read_index, slot

REFERENCE_MODEL = "tfidf_svm_quick"  # the spec's baseline: every other model is compared with it, paired


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _repeats(history: list[dict[str, Any]]) -> dict[tuple, dict[int, float]]:
    """(slot, settings hash) -> seed -> macro-F1 of the latest evaluation of each seed run with those settings."""
    by_seed: dict[tuple, dict[int, float]] = {}
    for e in history:
        if e.get("settings_hash") and "macro_f1" in e["metrics"]:
            by_seed.setdefault((slot(e), e["settings_hash"]), {})[e["seed"]] = e["metrics"]["macro_f1"]
    return by_seed


def leaderboard_table(paths: ProjectPaths) -> pd.DataFrame:
    """The latest in-domain evaluation of each supervised model, best macro-F1 first within each
    dataset x view, with mean ± sd of macro-F1 over the seeds evaluated with the same settings, and
    the protocol of the score (split kind, seed, class weighting; "not recorded" for an evaluation
    older than these fields)."""
    rows = []
    history = read_index(paths)
    repeats = _repeats(history)
    for e in latest_entries(history):
        m = e["metrics"]
        if e["eval_dataset_id"] != e["dataset_id"] or "macro_f1" not in m:
            continue
        by_seed = repeats.get((slot(e), e.get("settings_hash")), {})
        seeds = list(by_seed.values())
        rows.append(
            {
                "dataset_id": e["dataset_id"],
                "view": e["view"],
                "model_id": e["model_id"],
                "family": e["family"],
                "macro_f1": round(m["macro_f1"], 4),
                "macro_f1_low": round(m["macro_f1_ci95"][0], 4),
                "macro_f1_high": round(m["macro_f1_ci95"][1], 4),
                "accuracy": round(m["accuracy"], 4),
                "accuracy_low": round(m["accuracy_ci95"][0], 4),
                "accuracy_high": round(m["accuracy_ci95"][1], 4),
                "n_job": e["n_job"],
                "n_train_used": e["n_train_used"],
                "truncated": e["truncated"],
                "seed": e["seed"],
                "split": e.get("split", NOT_RECORDED),
                "class_weight": e.get("class_weight", NOT_RECORDED),
                "profile": e["profile"],
                "params_hash": e["params_hash"],
                "report": e["files"].get("metrics.json", ""),
                "predictions": e["files"].get("predictions.tsv", ""),
                "quality_flags": ",".join(e.get("quality_flags", [])) if not e.get("quality_ok", True) else "",
                "per_corpus": e["files"].get(f"{COMPARISON}.md", ""),  # separate: one model per corpus
                "n_seeds": len(seeds),
                "seeds": ",".join(str(seed) for seed in sorted(by_seed)),
                "macro_f1_mean": round(float(np.mean(seeds)), 4) if seeds else float("nan"),
                "macro_f1_sd": round(float(np.std(seeds, ddof=1)), 4) if len(seeds) > 1 else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["dataset_id", "view", "macro_f1"], ascending=[True, True, False], ignore_index=True)


def by_corpus_table(paths: ProjectPaths) -> pd.DataFrame:
    """One row per corpus of the latest in-domain evaluation of each separate-mode model (its
    meta_eval's by_corpus: each corpus's model on that corpus's job documents)."""
    rows = []
    for e in latest_entries(read_index(paths)):
        if e["eval_dataset_id"] != e["dataset_id"] or not e.get("by_corpus") or "macro_f1" not in e["metrics"]:
            continue
        for cid, r in e["by_corpus"].items():
            m = r["metrics"]
            rows.append(
                {
                    "dataset_id": e["dataset_id"],
                    "view": e["view"],
                    "model_id": e["model_id"],
                    "corpus_id": cid,
                    "macro_f1": round(m["macro_f1"], 4),
                    "macro_f1_low": round(m["macro_f1_ci95"][0], 4),
                    "macro_f1_high": round(m["macro_f1_ci95"][1], 4),
                    "accuracy": round(m["accuracy"], 4),
                    "n_job": r["n_job"],
                    "n_train_used": r["n_train_used"],
                    "truncated": r["truncated"],
                    "seed": e["seed"],
                }
            )
    return pd.DataFrame(rows)


def with_reference_deltas(table: pd.DataFrame, paths: ProjectPaths, reference: str = REFERENCE_MODEL, seed: int = 0) -> pd.DataFrame:
    """Add each model's macro-F1 minus the reference model's on the same job set, with the paired
    bootstrap interval (columns delta_*; empty where there is no reference or no predictions)."""
    table = table.assign(delta_vs=pd.Series(dtype=object), delta_macro_f1=float("nan"), delta_low=float("nan"), delta_high=float("nan"))
    for _, group in table.groupby(["dataset_id", "view"], sort=True):
        ref = group[group["model_id"] == reference]
        if ref.empty or not ref.iloc[0]["predictions"]:
            continue
        ref_pred = pd.read_csv(paths.root / ref.iloc[0]["predictions"], sep="\t", dtype=str, keep_default_na=False)
        for i, row in group.iterrows():
            if row["model_id"] == reference or not row["predictions"]:
                continue
            pred = pd.read_csv(paths.root / row["predictions"], sep="\t", dtype=str, keep_default_na=False)
            both = ref_pred.merge(pred, on=["doc_id", "label"], suffixes=("_ref", ""))
            if len(both) != len(ref_pred):
                continue  # not the same job set (another seed or split): no paired comparison
            labels = sorted(set(both["label"]))
            delta = metrics.paired_bootstrap_delta(
                both["label"].tolist(), both["predicted"].tolist(), both["predicted_ref"].tolist(), labels, seed
            )
            table.loc[i, ["delta_vs", "delta_macro_f1", "delta_low", "delta_high"]] = [
                reference,
                round(delta["delta_macro_f1"], 4),
                round(delta["ci95"][0], 4),
                round(delta["ci95"][1], 4),
            ]
    return table


def _delta_cell(r: Any) -> str:
    if pd.isna(r.delta_macro_f1):
        return "reference" if r.model_id == REFERENCE_MODEL else ""
    verdict = " (better)" if r.delta_low > 0 else " (worse)" if r.delta_high < 0 else ""
    return f"{r.delta_macro_f1:+.4f} [{r.delta_low:+.4f}, {r.delta_high:+.4f}]{verdict}"


def _seeds_cell(r: Any) -> str:
    return f"{r.macro_f1_mean:.4f} ± {r.macro_f1_sd:.4f} ({r.n_seeds})" if r.n_seeds > 1 else "one seed"


def _protocol_cell(r: Any) -> str:
    return protocol_note({"split": r.split, "seed": r.seed, "class_weight": r.class_weight})


def write_leaderboard(paths: ProjectPaths) -> dict[str, Any]:
    table = leaderboard_table(paths)
    if not table.empty:
        table = with_reference_deltas(table, paths)
    out = paths.reports
    tsv, md, png = out / "leaderboard.tsv", out / "leaderboard.md", out / "leaderboard.png"
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    per_corpus = by_corpus_table(paths)
    if not per_corpus.empty:
        with atomic_path(out / "leaderboard_by_corpus.tsv") as tmp:
            per_corpus.to_csv(tmp, sep="\t", index=False)
    lines = [
        "# pepm leaderboard",
        "",
        "In-domain evaluation on each view's job set; 95% bootstrap intervals. Δ: macro-F1 minus "
        f"{REFERENCE_MODEL}'s on the same documents, with the 95% interval of the paired bootstrap "
        "(better / worse when it excludes 0). Protocol: the split (grouped by <field>: no value of the "
        "field, e.g. no speaker, on both sides; stratified or random: the same speaker may be in train "
        "and job, which flatters the score), the seed of the score shown, and how the fit weighted classes.",
        "",
    ]
    for (dataset_id, view), group in table.groupby(["dataset_id", "view"], sort=True) if not table.empty else []:
        lines += [
            f"## {dataset_id} / {view}",
            "",
            f"| rank | model | family | macro-F1 [95% CI] | accuracy [95% CI] | Δ macro-F1 vs {REFERENCE_MODEL} [95% CI] | over seeds: mean ± sd (n) | n job | train docs | protocol |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rank, r in enumerate(group.itertuples(index=False), start=1):
            lines.append(
                f"| {rank} | {r.model_id}{f' (flagged: {r.quality_flags})' if r.quality_flags else ''} | {r.family} | {r.macro_f1:.4f} [{r.macro_f1_low:.4f}, {r.macro_f1_high:.4f}] | "
                f"{r.accuracy:.4f} [{r.accuracy_low:.4f}, {r.accuracy_high:.4f}] | {_delta_cell(r)} | {_seeds_cell(r)} | {r.n_job} | {r.n_train_used}{' (capped)' if r.truncated else ''} | {_protocol_cell(r)} |"
            )
        lines.append("")
        lines += _by_corpus_lines(per_corpus, dataset_id, view)
    write_text(md, "\n".join(lines) + "\n")
    if not table.empty:
        _plot_leaderboard(table, png)
    return {"rows": len(table), "tsv": paths.rel(tsv), "md": paths.rel(md), "png": paths.rel(png) if not table.empty else None}


def _by_corpus_lines(per_corpus: pd.DataFrame, dataset_id: str, view: str) -> list[str]:
    """The per-corpus rows of a dataset x view's separate-mode models, as a markdown table."""
    if per_corpus.empty:
        return []
    rows = per_corpus[(per_corpus["dataset_id"] == dataset_id) & (per_corpus["view"] == view)]
    if rows.empty:
        return []
    lines = [
        "merge_mode separate: one model per corpus; the rows above score each job document with its own corpus's model.",
        "",
        "| model | corpus | macro-F1 [95% CI] | accuracy | n job | train docs |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows.itertuples(index=False):
        lines.append(
            f"| {r.model_id} | {r.corpus_id} | {r.macro_f1:.4f} [{r.macro_f1_low:.4f}, {r.macro_f1_high:.4f}] | {r.accuracy:.4f} | "
            f"{r.n_job} | {r.n_train_used}{' (capped)' if r.truncated else ''} |"
        )
    return [*lines, ""]


def _plot_leaderboard(table: pd.DataFrame, target: Path) -> None:
    plt = _plt()
    groups = list(table.groupby(["dataset_id", "view"], sort=True))
    height = sum(max(2.0, 0.45 * len(g) + 1.0) for _, g in groups)
    fig, axes = plt.subplots(len(groups), 1, figsize=(8, height), squeeze=False)
    for ax, ((dataset_id, view), g) in zip(axes[:, 0], groups):
        g = g.iloc[::-1]
        err = [g["macro_f1"] - g["macro_f1_low"], g["macro_f1_high"] - g["macro_f1"]]
        ax.barh(g["model_id"], g["macro_f1"], xerr=err, color="#4C72B0", capsize=3)
        ax.set_xlim(0, 1)
        ax.set_title(f"{dataset_id} / {view}: macro-F1 with 95% bootstrap interval", fontsize=10)
        for y, (v, high) in enumerate(zip(g["macro_f1"], g["macro_f1_high"])):  # right of the interval, not on it
            ax.text(min(high + 0.015, 0.93), y, f"{v:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_cross_matrix(
    paths: ProjectPaths, view: str, model_id: str, datasets: list[str], cells: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """cells[(train dataset, eval dataset)] = metrics summary (+ its `protocol`, training/protocol)
    -> matrix.json + heat map PNG. matrix.json states the protocol of each row's model (split kind
    and seed of its training set, class weighting): a cross-corpus score is read with it."""
    out_dir = paths.reports / "cross_corpus" / view / model_id
    matrix = [[round(cells[(a, b)]["macro_f1"], 4) for b in datasets] for a in datasets]
    data = {
        "view": view,
        "model_id": model_id,
        "rows_trained_on": datasets,
        "columns_evaluated_on": datasets,
        "metric": "macro_f1",
        "macro_f1": matrix,
        "accuracy": [[round(cells[(a, b)]["accuracy"], 4) for b in datasets] for a in datasets],
        "macro_f1_ci95": [[cells[(a, b)]["macro_f1_ci95"] for b in datasets] for a in datasets],
        "protocol": {a: cells[(a, a)].get("protocol", NOT_RECORDED) for a in datasets},
    }
    write_json(out_dir / "matrix.json", data)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 * len(datasets) + 2.5, 1.3 * len(datasets) + 1.5))
    im = ax.imshow(matrix, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(datasets)), datasets)
    ax.set_xlabel("evaluated on (job set)")
    ax.set_ylabel("trained on")
    ax.set_title(f"{model_id}, view {view}: macro-F1", fontsize=10)
    for i in range(len(datasets)):
        for j in range(len(datasets)):
            ax.text(j, i, f"{matrix[i][j]:.3f}", ha="center", va="center", color="white" if matrix[i][j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(out_dir / "matrix.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return {"json": paths.rel(out_dir / "matrix.json"), "png": paths.rel(out_dir / "matrix.png"), "macro_f1": matrix}
