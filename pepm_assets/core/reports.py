"""Cross-model reports from reports/index.json: the leaderboard and the cross-corpus matrix.

A model of a `merge_mode: separate` dataset is one model per corpus: its leaderboard row is the
pooled score (each job document scored by its own corpus's model), and leaderboard.md adds its
per-corpus rows (also in leaderboard_by_corpus.tsv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import diagnostics, labels, metrics, side_worker
from .atomic import atomic_path, write_json, write_text
from .paths import ProjectPaths
from .training import BY_SPLIT, COMPARISON, NOT_RECORDED, latest_entries, protocol_note, read_index, slot

REFERENCE_MODEL = "tfidf_svm_quick"  # the spec's baseline: every other model is compared with it, paired
BASELINE_FAMILY = "check"  # the majority-class control: every model is also compared with it, paired
LEVEL = 0.95  # comparisons: Holm-adjusted p below 1 - LEVEL is "better" / "worse"


def _over_seeds(history: list[dict[str, Any]]) -> dict[tuple, dict[int, float]]:
    """(slot, settings hash) -> seed -> macro-F1 of the latest evaluation of each seed run with those settings."""
    by_seed: dict[tuple, dict[int, float]] = {}
    for e in history:
        if e.get("settings_hash") and "macro_f1" in e["metrics"]:
            by_seed.setdefault((slot(e), e["settings_hash"]), {})[e["seed"]] = e["metrics"]["macro_f1"]
    return by_seed


def leaderboard_table(paths: ProjectPaths) -> pd.DataFrame:
    """The latest in-domain evaluation of each supervised model, best macro-F1 first within each
    dataset x view: macro-F1 and accuracy as the mean over the evaluation's splits (split.repeats)
    with their sd over the splits (`*_split_sd`, `n_splits`, `split_seeds`) and the interval (a
    speaker bootstrap on a grouped split, pooled over the splits); mean ± sd of macro-F1 over the
    seeds evaluated with the same settings (`n_seeds`, `macro_f1_mean`, `macro_f1_sd`); and the
    protocol of the score (split kind, seed, class weighting; "not recorded" for an evaluation older
    than these fields)."""
    rows = []
    history = read_index(paths)
    repeats = _over_seeds(history)
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
                "n_splits": int(m.get("n_splits", 1)),
                "macro_f1_split_sd": _rounded(m.get("macro_f1_sd")),
                "accuracy_split_sd": _rounded(m.get("accuracy_sd")),
                "split_seeds": ",".join(str(s["seed"]) for s in m.get("split_scores", [])) or str(e["seed"]),
                "resampled": m.get("resampled", "document"),
                "splits_note": m.get("splits_note", ""),
                "predictions_by_split": e["files"].get(BY_SPLIT, ""),
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


def _rounded(value: Any) -> float:
    return round(float(value), 4) if value is not None else float("nan")


def _split_predictions(paths: ProjectPaths, row: Any) -> dict[int, pd.DataFrame]:
    """A leaderboard row's job predictions per split seed: predictions_by_split.tsv (split.repeats),
    else predictions.tsv as the split of the row's seed; {} without predictions."""
    if row["predictions_by_split"]:
        frame = pd.read_csv(paths.root / row["predictions_by_split"], sep="\t", dtype=str, keep_default_na=False)
        return {int(seed): part.drop(columns=["repeat", "seed"]) for seed, part in frame.groupby("seed", sort=False)}
    if row["predictions"]:
        return {int(row["seed"]): pd.read_csv(paths.root / row["predictions"], sep="\t", dtype=str, keep_default_na=False)}
    return {}


def compare_models(paths: ProjectPaths, a: Any, b: Any, n_boot: int = 1000) -> dict[str, Any] | None:
    """Model `a` vs model `b` (two leaderboard rows of one dataset x view), paired on the splits both
    were scored on (same seed) and on each split's job documents (metrics.paired_comparison: the
    mean difference of macro-F1, its interval and p-value from the pooled paired bootstrap, whole
    speakers resampled when the split is grouped). None when no split has the same job set for both
    (another split, or no predictions)."""
    mine, theirs = _split_predictions(paths, a), _split_predictions(paths, b)
    unit = a["resampled"] if a["resampled"] == b["resampled"] else "document"
    splits = []
    for seed in sorted(set(mine) & set(theirs)):
        both = mine[seed].merge(theirs[seed], on=["doc_id", "label"], suffixes=("", "_b"))
        if len(both) != len(mine[seed]) or len(both) != len(theirs[seed]):
            continue  # not the same job set (another split): no paired comparison on it
        clusters = both[unit].tolist() if unit != "document" and unit in both.columns else None
        splits.append(
            {
                "gold": both["label"].tolist(),
                "pred_a": both["predicted"].tolist(),
                "pred_b": both["predicted_b"].tolist(),
                "seed": seed,
                "clusters": clusters,
            }
        )
    if not splits:
        return None
    labels = sorted(set().union(*(set(s["gold"]) for s in splits)))
    return {"seeds": [s["seed"] for s in splits], **metrics.paired_comparison(splits, labels, n_boot=n_boot, level=LEVEL)}


def comparisons_table(table: pd.DataFrame, paths: ProjectPaths, reference: str = REFERENCE_MODEL, n_boot: int = 1000) -> pd.DataFrame:
    """The paired comparisons of each dataset x view: every model vs `reference` (the spec's
    baseline, tfidf_svm_quick) and every model vs each majority-class control (family check),
    each pair once, on the same splits (`compare_models`). p-values are Holm-adjusted over the
    comparisons of that dataset x view (`m` of them): `better` / `worse` when the adjusted p is
    below 0.05, else `no difference shown`."""
    rows = []
    for (dataset_id, view), group in table.groupby(["dataset_id", "view"], sort=True):
        by_id = {r["model_id"]: r for _, r in group.iterrows()}
        anchors = [reference] if reference in by_id else []
        anchors += [r["model_id"] for _, r in group.iterrows() if r["family"] == BASELINE_FAMILY and r["model_id"] != reference]
        pairs: list[tuple[str, str]] = []
        for anchor in anchors:
            for model_id in by_id:
                if model_id != anchor and (anchor, model_id) not in pairs:
                    pairs.append((model_id, anchor))
        found = []
        for model_id, anchor in pairs:
            result = compare_models(paths, by_id[model_id], by_id[anchor], n_boot)
            if result is not None:
                found.append((model_id, anchor, result))
        adjusted = metrics.holm([r["p_value"] for _, _, r in found])
        for (model_id, anchor, r), p_holm in zip(found, adjusted):
            low, high = r["ci95"]
            verdict = "no difference shown" if p_holm >= 1 - LEVEL else "better" if r["delta_macro_f1"] > 0 else "worse"
            rows.append(
                {
                    "dataset_id": dataset_id,
                    "view": view,
                    "model_id": model_id,
                    "vs": anchor,
                    "delta_macro_f1": round(r["delta_macro_f1"], 4),
                    "delta_low": round(low, 4),
                    "delta_high": round(high, 4),
                    "delta_split_sd": round(r["delta_sd"], 4) if r["n_splits"] > 1 else float("nan"),
                    "n_splits": r["n_splits"],
                    "split_seeds": ",".join(map(str, r["seeds"])),
                    "resampled": r["resampled"],
                    "p_value": r["p_value"],
                    "p_holm": p_holm,
                    "m": len(found),
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def with_reference_deltas(table: pd.DataFrame, comparisons: pd.DataFrame, reference: str = REFERENCE_MODEL) -> pd.DataFrame:
    """Add to each leaderboard row its comparison with `reference` (columns delta_*: the paired
    difference of macro-F1, its interval, Holm-adjusted p and the number of splits it rests on)
    and with the majority-class control (baseline_*); empty where there is no such comparison."""
    table = table.assign(
        delta_vs=pd.Series(dtype=object),
        delta_macro_f1=float("nan"),
        delta_low=float("nan"),
        delta_high=float("nan"),
        delta_p_holm=float("nan"),
        delta_n_splits=float("nan"),
        baseline_vs=pd.Series(dtype=object),
        baseline_delta=float("nan"),
        baseline_low=float("nan"),
        baseline_high=float("nan"),
        baseline_p_holm=float("nan"),
    )
    if comparisons.empty:
        return table
    for i, row in table.iterrows():
        mine = comparisons[
            (comparisons["dataset_id"] == row["dataset_id"])
            & (comparisons["view"] == row["view"])
            & (comparisons["model_id"] == row["model_id"])
        ]
        for _, c in mine.iterrows():
            if c["vs"] == reference:
                table.loc[i, ["delta_vs", "delta_macro_f1", "delta_low", "delta_high", "delta_p_holm", "delta_n_splits"]] = [
                    reference,
                    c["delta_macro_f1"],
                    c["delta_low"],
                    c["delta_high"],
                    c["p_holm"],
                    c["n_splits"],
                ]
            elif pd.isna(table.loc[i, "baseline_vs"]):
                table.loc[i, ["baseline_vs", "baseline_delta", "baseline_low", "baseline_high", "baseline_p_holm"]] = [
                    c["vs"],
                    c["delta_macro_f1"],
                    c["delta_low"],
                    c["delta_high"],
                    c["p_holm"],
                ]
        if row["model_id"] == reference and pd.isna(table.loc[i, "baseline_vs"]):
            # the reference vs a control is the control's comparison with the reference, turned round
            control = comparisons[
                (comparisons["dataset_id"] == row["dataset_id"]) & (comparisons["view"] == row["view"]) & (comparisons["vs"] == reference)
            ]
            control = control[control["model_id"].isin(table.loc[table["family"] == BASELINE_FAMILY, "model_id"])]
            if not control.empty:
                c = control.iloc[0]
                table.loc[i, ["baseline_vs", "baseline_delta", "baseline_low", "baseline_high", "baseline_p_holm"]] = [
                    c["model_id"],
                    -c["delta_macro_f1"],
                    -c["delta_high"],
                    -c["delta_low"],
                    c["p_holm"],
                ]
    return table


def _verdict(delta: float, p_holm: float) -> str:
    if p_holm >= 1 - LEVEL:
        return ""
    return " (better)" if delta > 0 else " (worse)"


def _delta_cell(r: Any) -> str:
    if pd.isna(r.delta_macro_f1):
        return "reference" if r.model_id == REFERENCE_MODEL else ""
    return _signed(r.delta_macro_f1, r.delta_low, r.delta_high, r.delta_p_holm)


def _baseline_cell(r: Any) -> str:
    if pd.isna(r.baseline_delta):
        return "control" if r.family == BASELINE_FAMILY else ""
    return _signed(r.baseline_delta, r.baseline_low, r.baseline_high, r.baseline_p_holm)


def _signed(delta: float, low: float, high: float, p_holm: float) -> str:
    """ "+0.0123 [-0.0100, +0.0350] p=0.42": a paired difference, its interval and Holm-adjusted p
    (+ 0.0: no "-0.0000")."""
    return f"{delta + 0.0:+.4f} [{low + 0.0:+.4f}, {high + 0.0:+.4f}] p={p_holm:.3g}{_verdict(delta, p_holm)}"


def _score_cell(r: Any, name: str) -> str:
    """mean ± sd (n splits) [95% CI] of a repeated evaluation; score [95% CI] of one split."""
    value, low, high = getattr(r, name), getattr(r, f"{name}_low"), getattr(r, f"{name}_high")
    sd = getattr(r, f"{name}_split_sd")
    spread = f" ± {sd:.4f} ({r.n_splits} splits)" if r.n_splits > 1 and not pd.isna(sd) else ""
    return f"{value:.4f}{spread} [{low:.4f}, {high:.4f}]"


def _seeds_cell(r: Any) -> str:
    return f"{r.macro_f1_mean:.4f} ± {r.macro_f1_sd:.4f} ({r.n_seeds})" if r.n_seeds > 1 else "one seed"


def _protocol_cell(r: Any) -> str:
    return protocol_note({"split": r.split, "seed": r.seed, "class_weight": r.class_weight, "splits": r.n_splits})


def write_leaderboard(paths: ProjectPaths) -> dict[str, Any]:
    """reports/leaderboard.{tsv,md,png}, and the paired comparisons behind its Δ columns in
    reports/comparisons.{tsv,json} (every model vs the reference and vs the majority-class control,
    Holm-adjusted within each dataset x view)."""
    table = leaderboard_table(paths)
    comparisons = comparisons_table(table, paths) if not table.empty else pd.DataFrame()
    if not table.empty:
        table = with_reference_deltas(table, comparisons)
    out = paths.reports
    tsv, md, png = out / "leaderboard.tsv", out / "leaderboard.md", out / "leaderboard.png"
    drawing = side_worker.call(_plot_leaderboard, table, png) if not table.empty else None  # meanwhile, the tables
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    _write_comparisons(paths, comparisons)
    clusters = clustering_table(paths)
    clustering = write_clustering(paths, clusters)
    per_corpus = by_corpus_table(paths)
    if not per_corpus.empty:
        with atomic_path(out / "leaderboard_by_corpus.tsv") as tmp:
            per_corpus.to_csv(tmp, sep="\t", index=False)
    lines = [
        "# pepm leaderboard",
        "",
        "In-domain evaluation on each view's job set. Scores: the mean over the evaluation's splits "
        "(split.repeats) ± their sd, or one split's score; 95% intervals from a bootstrap that resamples "
        "whole speakers of the job set when the split is grouped by speaker (documents otherwise), the "
        "replicates of every split pooled so that the interval holds both the uncertainty within a split "
        f"and the variance between splits. Δ: macro-F1 minus {REFERENCE_MODEL}'s, and minus the "
        "majority-class control's, paired on the same splits and the same job documents, with the 95% "
        "interval of the paired bootstrap and its p-value Holm-adjusted over the comparisons of the "
        "table (better / worse when the adjusted p < 0.05; reports/comparisons.tsv lists them). "
        "Protocol: the split (grouped by <field>: no value of the field, e.g. no speaker, on both "
        "sides; stratified or random: the same speaker may be in train and job, which flatters the "
        "score), the seed of the canonical split, the number of splits, and how the fit weighted classes.",
        "",
        "Plot: reports/leaderboard.png (bars coloured by family, whiskers the 95% intervals, the majority-class control a dashed line).",
        "",
        *(
            [
                f"**Clusterings** ({clustering['rows']}: family cluster) predict no label, so they have no macro-F1 and are "
                f"not ranked here: their agreement with the labels (ARI, NMI, homogeneity, completeness) is in "
                f"{clustering['md']} ({clustering['tsv']}, {clustering['png']}).",
                "",
            ]
            if clustering["rows"]
            else []
        ),
    ]
    for (dataset_id, view), group in table.groupby(["dataset_id", "view"], sort=True) if not table.empty else []:
        mine = (
            comparisons[(comparisons["dataset_id"] == dataset_id) & (comparisons["view"] == view)] if not comparisons.empty else comparisons
        )
        lines += [
            f"## {dataset_id} / {view}",
            "",
            *diagnostics.leaderboard_lines(paths, dataset_id, view),  # the view's label-validity WARNINGs
            f"| rank | model | family | macro-F1 [95% CI] | accuracy [95% CI] | Δ macro-F1 vs {REFERENCE_MODEL} [95% CI] Holm p | Δ macro-F1 vs control [95% CI] Holm p | over seeds: mean ± sd (n) | n job | train docs | protocol |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for rank, r in enumerate(group.itertuples(index=False), start=1):
            lines.append(
                f"| {rank} | {r.model_id}{f' (flagged: {r.quality_flags})' if r.quality_flags else ''} | {r.family} | {_score_cell(r, 'macro_f1')} | "
                f"{_score_cell(r, 'accuracy')} | {_delta_cell(r)} | {_baseline_cell(r)} | {_seeds_cell(r)} | {r.n_job} | {r.n_train_used}{' (capped)' if r.truncated else ''} | {_protocol_cell(r)} |"
            )
        lines.append("")
        if not mine.empty:
            on = mine["n_splits"].value_counts().sort_index(ascending=False)
            lines += [
                f"Paired comparisons in this table: m = {len(mine)}, p-values Holm-adjusted over the {len(mine)} "
                "(family-wise error 5%), each on the splits both models were scored on ("
                + ", ".join(f"{count} on {n} split{'s' if n > 1 else ''}" for n, count in on.items())
                + "): reports/comparisons.tsv.",
                "",
            ]
        notes = [f"{r.model_id}: {r.splits_note}" for r in group.itertuples(index=False) if r.splits_note]
        notes += labels.exclusion_notes(paths.view_dir(dataset_id, view) / "meta_view.json")  # shared by every row of the table
        lines += [*(f"- {note}" for note in notes), *([""] if notes else [])]
        lines += _by_corpus_lines(per_corpus, dataset_id, view)
        lines += _clustering_pointer(clusters, dataset_id, view)
    write_text(md, "\n".join(lines) + "\n")
    if drawing is not None:
        drawing.result()
    return {
        "rows": len(table),
        "tsv": paths.rel(tsv),
        "md": paths.rel(md),
        "png": paths.rel(png) if not table.empty else None,
        "clustering": clustering,
    }


def _clustering_pointer(table: pd.DataFrame, dataset_id: str, view: str) -> list[str]:
    """A dataset x view section's line naming its clusterings and where their scores are."""
    if table.empty:
        return []
    mine = table[(table["dataset_id"] == dataset_id) & (table["view"] == view)]
    if mine.empty:
        return []
    scores = ", ".join(f"{r.model_id} ARI {r.ari:.3f}" for r in mine.itertuples(index=False))
    return [f"Clusterings of this view (not ranked above: no macro-F1): {scores}; all their scores in reports/clustering.md.", ""]


def _write_comparisons(paths: ProjectPaths, comparisons: pd.DataFrame) -> None:
    """reports/comparisons.tsv (one row per paired comparison) and comparisons.json (the same rows,
    with the correction, its level and the number of comparisons of each dataset x view stated)."""
    out = paths.reports
    with atomic_path(out / "comparisons.tsv") as tmp:
        comparisons.to_csv(tmp, sep="\t", index=False)
    tables = {}
    for (dataset_id, view), group in comparisons.groupby(["dataset_id", "view"], sort=True) if not comparisons.empty else []:
        tables[f"{dataset_id}/{view}"] = {"m": len(group), "comparisons": json.loads(group.to_json(orient="records"))}
    write_json(
        out / "comparisons.json",
        {
            "correction": "holm",
            "family_wise_error": round(1 - LEVEL, 4),
            "family": "the comparisons of one dataset x view: every model vs "
            f"{REFERENCE_MODEL} and vs each majority-class control (family {BASELINE_FAMILY}), each pair once",
            "test": "paired bootstrap of the macro-F1 difference on the splits both models were scored on (same seeds) "
            "and the same job documents, whole speakers resampled on a grouped split, replicates of the splits pooled; "
            "p = min(1, 2 (min(#delta*<=0, #delta*>=0) + 1) / (R + 1))",
            "tables": tables,
        },
    )


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


FAMILY_COLOURS = {"sklearn": "#4c72b0", "spacy": "#55a868", "hf": "#dd8452", "cluster": "#8172b3", BASELINE_FAMILY: "#8c8c8c"}
OTHER_COLOURS = ("#c44e52", "#937860", "#da8bc3", "#ccb974", "#64b5cd", "#2a9d8f")
ROW_IN = 0.34  # one model's row, inches: a bar is 0.6 of it in every panel, one model or twenty
HEAD_IN, FOOT_IN, LEGEND_IN = 0.42, 0.62, 0.55  # a panel's title above, its x axis and label below; the legend on top
AXES_IN, LABELS_IN = 5.0, 1.9  # the 0-1 axis; room right of it for a label beyond a whisker near 1
VALUE_GID, CONTROL_GID = "value_label", "control_line"  # what tests look the artists up by


def family_colours(families: Any) -> dict[str, str]:
    """A colour per family, the same in every panel and run: the known families theirs, others in
    turn (sorted)."""
    out, others = {}, iter(OTHER_COLOURS * 4)
    for family in sorted(set(families)):
        out[family] = FAMILY_COLOURS.get(family) or next(others)
    return out


def _value_label(r: Any) -> str:
    """ "0.682 (sd 0.035, 5 splits)" or "0.627": the bar's value, and its spread over the splits."""
    spread = f" (sd {r.macro_f1_split_sd:.3f}, {r.n_splits} splits)" if r.n_splits > 1 and not pd.isna(r.macro_f1_split_sd) else ""
    return f"{r.macro_f1:.3f}{spread}"


def leaderboard_figure(table: pd.DataFrame):
    """leaderboard.png's figure: one panel per dataset x view, a horizontal bar per model (macro-F1,
    the mean over the splits), coloured by family (legend on top), its 95% interval as a whisker and
    its value right of the whisker's end (never on it); the majority-class control (family check) a
    dashed vertical line with its interval shaded, not a bar; axis labels on every panel. Sizes are
    in inches: a bar is as thick in a one-model panel as in a ten-model one."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .plotting import figure

    groups = list(table.groupby(["dataset_id", "view"], sort=True))
    colours = family_colours(table["family"])
    names = [_tick_label(r) for r in table.itertuples(index=False)]
    left_in = 0.55 + 0.068 * max(len(n) for n in names)
    width = left_in + AXES_IN + LABELS_IN
    panels = [(key, g, g[g["family"] != BASELINE_FAMILY], g[g["family"] == BASELINE_FAMILY]) for key, g in groups]
    heights = [HEAD_IN + (max(1, len(bars)) + 0.4) * ROW_IN + FOOT_IN for _, _, bars, _ in panels]
    height = LEGEND_IN + sum(heights)
    fig = figure(width, height, layout=None)
    top = height - LEGEND_IN
    for ((dataset_id, view), g, bars, controls), panel in zip(panels, heights):
        axes_h = panel - HEAD_IN - FOOT_IN
        top -= panel
        ax = fig.add_axes((left_in / width, (top + FOOT_IN) / height, AXES_IN / width, axes_h / height))
        bars = bars.iloc[::-1]  # best on top
        ys = np.arange(len(bars))
        if not bars.empty:
            ax.barh(ys, bars["macro_f1"], height=0.6, color=[colours[f] for f in bars["family"]], zorder=2)
            err = [bars["macro_f1"] - bars["macro_f1_low"], bars["macro_f1_high"] - bars["macro_f1"]]
            ax.errorbar(bars["macro_f1"], ys, xerr=err, fmt="none", ecolor="#222222", elinewidth=1, capsize=3, zorder=3)
        for y, r in zip(ys, bars.itertuples(index=False)):  # right of the whisker's end, never on it
            ax.text(
                r.macro_f1_high + 0.012,
                y,
                _value_label(r),
                va="center",
                ha="left",
                fontsize=8,
                clip_on=False,
                zorder=4,
                gid=VALUE_GID,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.85},  # legible over the control's line
            )
        for i, c in enumerate(controls.itertuples(index=False)):
            style = ("--", ":", "-.")[i % 3]
            ax.axvspan(c.macro_f1_low, c.macro_f1_high, color=colours[BASELINE_FAMILY], alpha=0.12, zorder=1, linewidth=0)
            ax.axvline(c.macro_f1, color="#555555", linestyle=style, linewidth=1.3, zorder=3, gid=CONTROL_GID, label=c.model_id)
        ax.set_yticks(ys, [_tick_label(r) for r in bars.itertuples(index=False)], fontsize=8.5)
        ax.set_ylim(-0.7, max(1, len(bars)) - 0.3)
        ax.set_xlim(0, 1)
        ax.set_xticks(np.linspace(0, 1, 6))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
        ax.set_xlabel("macro-F1 on the job set (bar: mean over the splits; whisker: 95% interval)", fontsize=8.5)
        ax.set_ylabel("model", fontsize=8.5)
        n_job = int(g["n_job"].iloc[0])
        control = "".join(f" · control {c.model_id} {c.macro_f1:.3f}" for c in controls.itertuples(index=False))
        ax.set_title(f"{dataset_id} / {view} · {n_job} job documents · {g['split'].iloc[0]}{control}", fontsize=9.5, loc="left", y=1.0)
        if bars.empty:
            ax.text(0.5, 0, "only the control was evaluated", ha="center", va="center", fontsize=8, color="#555555")
    handles = [Patch(color=colours[f], label=f) for f in sorted(set(table["family"]) - {BASELINE_FAMILY})]
    if (table["family"] == BASELINE_FAMILY).any():
        handles.append(Line2D([], [], color="#555555", linestyle="--", label="majority-class control (shaded: its 95% interval)"))
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.06 / height),
        ncol=min(len(handles), 5),
        fontsize=8,
        title="family",
        title_fontsize=8,
        frameon=False,
    )
    return fig


def _tick_label(r: Any) -> str:
    return f"{r.model_id}{' (reference)' if r.model_id == REFERENCE_MODEL else ''}{' (flagged)' if r.quality_flags else ''}"


def _plot_leaderboard(table: pd.DataFrame, target: Path) -> None:
    from .plotting import save_png

    save_png(leaderboard_figure(table), target)


# ---------------------------------------------------------------- clusterings
CLUSTER_SCORES = ("ari", "nmi", "homogeneity", "completeness")  # agreement of the clusters with the view's labels


def clustering_table(paths: ProjectPaths) -> pd.DataFrame:
    """The latest in-domain evaluation of each clustering (an evaluation with ARI and no macro-F1:
    family cluster), one row each: its agreement with the view's labels on the job set (ARI, NMI,
    homogeneity, completeness), the number of clusters, the share of documents left as noise, the
    silhouette, the cluster x label counts and its protocol."""
    rows = []
    for e in latest_entries(read_index(paths)):
        m = e["metrics"]
        if e["eval_dataset_id"] != e["dataset_id"] or "macro_f1" in m or "ari" not in m:
            continue
        report = e["files"].get("metrics.json", "")
        full = _read_json(paths.root / report) if report else {}
        rows.append(
            {
                "dataset_id": e["dataset_id"],
                "view": e["view"],
                "model_id": e["model_id"],
                "family": e["family"],
                **{k: _rounded(m.get(k)) for k in CLUSTER_SCORES},
                "n_clusters": int(m.get("n_clusters", full.get("n_clusters", 0))),
                "noise_fraction": _rounded(full.get("noise_fraction")),
                "silhouette": _rounded(m.get("silhouette")),
                "contingency": json.dumps(full.get("contingency", {}), ensure_ascii=False, sort_keys=True),
                "n_job": e["n_job"],
                "n_train_used": e["n_train_used"],
                "truncated": e["truncated"],
                "seed": e["seed"],
                "split": e.get("split", NOT_RECORDED),
                "profile": e["profile"],
                "report": report,
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values(["dataset_id", "view", "ari"], ascending=[True, True, False], ignore_index=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _contingency_cell(text: str) -> str:
    """ "c0: left 182, right 891 · c1: ..." (up to 6 clusters; more: see the report)."""
    data = json.loads(text or "{}")
    if not data or len(data) > 6:
        return f"{len(data)} clusters: see metrics.json" if data else ""
    return " · ".join(f"{c}: " + ", ".join(f"{label} {n}" for label, n in sorted(counts.items())) for c, counts in data.items())


def write_clustering(paths: ProjectPaths, table: pd.DataFrame | None = None) -> dict[str, Any]:
    """reports/clustering.{tsv,md,png}: the clusterings' scores (`clustering_table`), which the
    leaderboard (macro-F1 of classifiers) cannot rank; leaderboard.md points here. Nothing is
    written when there is none."""
    table = clustering_table(paths) if table is None else table
    out = paths.reports
    tsv, md, png = out / "clustering.tsv", out / "clustering.md", out / "clustering.png"
    if table.empty:
        return {"rows": 0, "tsv": None, "md": None, "png": None}
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    lines = [
        "# pepm clusterings",
        "",
        "Clusterings (family cluster) are fitted without the labels and predict no label, so they have no "
        "macro-F1 and are not ranked in leaderboard.md. Each is scored on its view's job set by how far its "
        "clusters agree with the labels: ARI (adjusted Rand index: 0 = no more than chance, 1 = the clusters "
        "are the labels, negative = less than chance), NMI (normalised mutual information, 0-1), homogeneity "
        "(each cluster holds one label) and completeness (each label falls in one cluster). Noise: the share "
        "of documents a density clustering (HDBSCAN) leaves in no cluster (counted as one cluster, `noise`, "
        "in the scores). Silhouette: how well separated the clusters are in the model's own space "
        "(-1 to 1), whatever the labels. One split (the canonical one), no interval.",
        "",
    ]
    for (dataset_id, view), group in table.groupby(["dataset_id", "view"], sort=True):
        lines += [
            f"## {dataset_id} / {view}",
            "",
            "| model | ARI | NMI | homogeneity | completeness | clusters | noise | silhouette | clusters x labels (job set) | n job | train docs | protocol |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group.itertuples(index=False):
            noise = "" if pd.isna(r.noise_fraction) else f"{r.noise_fraction:.1%}"
            silhouette = "" if pd.isna(r.silhouette) else f"{r.silhouette:.3f}"
            lines.append(
                f"| {r.model_id} | {r.ari:.4f} | {r.nmi:.4f} | {r.homogeneity:.4f} | {r.completeness:.4f} | {r.n_clusters} | {noise} | "
                f"{silhouette} | {_contingency_cell(r.contingency)} | {r.n_job} | {r.n_train_used}{' (capped)' if r.truncated else ''} | "
                f"{r.split} · seed {r.seed} |"
            )
        lines.append("")
    lines += ["Each model's report: its metrics.json (`reports/<dataset>/<view>/cluster/<model>/`).", ""]
    write_text(md, "\n".join(lines))
    from .plotting import save_png

    save_png(clustering_figure(table), png)
    return {"rows": len(table), "tsv": paths.rel(tsv), "md": paths.rel(md), "png": paths.rel(png)}


def clustering_figure(table: pd.DataFrame):
    """clustering.png: one panel per dataset x view, a group of four bars per clustering (ARI, NMI,
    homogeneity, completeness: agreement with the labels), each value at its bar's end; the tick
    label gives the number of clusters, the noise share and the silhouette."""
    from matplotlib.patches import Patch

    from .plotting import figure

    groups = list(table.groupby(["dataset_id", "view"], sort=True))
    colours = dict(zip(CLUSTER_SCORES, ("#4c72b0", "#55a868", "#dd8452", "#8172b3")))
    labels = {"ari": "ARI", "nmi": "NMI", "homogeneity": "homogeneity", "completeness": "completeness"}
    row_in = 0.95  # four bars of 0.19 each per clustering
    heights = [HEAD_IN + len(g) * row_in + 0.1 + FOOT_IN for _, g in groups]
    left_in = 0.6 + 0.062 * max(len(line) for r in table.itertuples(index=False) for line in _cluster_tick(r))
    width = left_in + AXES_IN + 0.9
    height = LEGEND_IN + sum(heights)
    fig = figure(width, height, layout=None)
    top = height - LEGEND_IN
    low = min(0.0, float(table["ari"].min()) - 0.05)
    for ((dataset_id, view), g), panel in zip(groups, heights):
        top -= panel
        ax = fig.add_axes((left_in / width, (top + FOOT_IN) / height, AXES_IN / width, (panel - HEAD_IN - FOOT_IN) / height))
        g = g.iloc[::-1]
        centres = np.arange(len(g))
        for k, score in enumerate(CLUSTER_SCORES):
            ys = centres + (1.5 - k) * 0.19
            values = g[score].to_numpy(dtype=float)
            ax.barh(ys, values, height=0.17, color=colours[score], zorder=2)
            for y, v in zip(ys, values):
                ax.text(max(v, 0) + 0.01, y, f"{v:.3f}", va="center", ha="left", fontsize=7, zorder=3, gid=VALUE_GID)
        ax.set_yticks(centres, ["\n".join(_cluster_tick(r)) for r in g.itertuples(index=False)], fontsize=8)
        ax.set_ylim(-0.5, len(g) - 0.5)
        ax.set_xlim(low, 1)
        ax.axvline(0, color="#555555", linewidth=0.8, zorder=1)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=0)
        ax.set_xlabel(
            "agreement of the clusters with the labels on the job set (0: none beyond chance; 1: the clusters are the labels)", fontsize=8
        )
        ax.set_ylabel("clustering", fontsize=8.5)
        ax.set_title(f"{dataset_id} / {view} · {int(g['n_job'].iloc[0])} job documents", fontsize=9.5, loc="left")
    fig.legend(
        handles=[Patch(color=colours[s], label=labels[s]) for s in CLUSTER_SCORES],
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.06 / height),
        ncol=4,
        fontsize=8,
        frameon=False,
    )
    return fig


def _cluster_tick(r: Any) -> tuple[str, str]:
    noise = "" if pd.isna(r.noise_fraction) or not r.noise_fraction else f", {r.noise_fraction:.0%} noise"
    silhouette = "" if pd.isna(r.silhouette) else f", silhouette {r.silhouette:.2f}"
    return r.model_id, f"{r.n_clusters} clusters{noise}{silhouette}"


def write_cross_matrix(
    paths: ProjectPaths, view: str, model_id: str, datasets: list[str], cells: dict[tuple[str, str], dict[str, Any]]
) -> dict[str, Any]:
    """cells[(trained on, evaluated on)] = a cell of core/cross_corpus.py (own_cell / whole_cell)
    -> matrix.json (every cell in full, and each score as a rows x columns matrix), matrix.tsv (one
    row per cell: score, interval, baselines, documents scored and left out) and matrix.png (the
    heat map, each cell printing score [interval], the two baselines and n). The diagonal is the
    held-out job set, the rest every labelled document of the column's dataset: matrix.json says so
    (`documents`), with the protocol of each row's model (split kind and seed of its training set,
    class weighting): a cross-corpus score is read with it."""
    out_dir = paths.reports / "cross_corpus" / view / model_id

    def grid(get: Any) -> list[list[Any]]:
        return [[get(cells[(a, b)]) for b in datasets] for a in datasets]

    def rounded(value: float) -> float:
        return round(float(value), 4)

    data = {
        "view": view,
        "model_id": model_id,
        "rows_trained_on": datasets,
        "columns_evaluated_on": datasets,
        "documents": {
            "diagonal": "the row dataset's job set (held out), as its own evaluation scores it",
            "off_diagonal": "every labelled document of the column dataset's view (its train, valid and job files, each "
            "document once, not re-balanced), minus those whose normalised text is in the row model's train or valid set",
        },
        "metric": "macro_f1",
        "macro_f1": grid(lambda c: rounded(c["macro_f1"])),
        "macro_f1_ci95": grid(lambda c: [rounded(v) for v in c["macro_f1_ci95"]]),
        "accuracy": grid(lambda c: rounded(c["accuracy"])),
        "accuracy_ci95": grid(lambda c: [rounded(v) for v in c["accuracy_ci95"]]),
        "majority_macro_f1": grid(lambda c: rounded(c["baselines"]["majority"]["macro_f1"])),
        "majority_accuracy": grid(lambda c: rounded(c["baselines"]["majority"]["accuracy"])),
        "chance_macro_f1": grid(lambda c: rounded(c["baselines"]["stratified_chance"]["macro_f1"])),
        "chance_accuracy": grid(lambda c: rounded(c["baselines"]["stratified_chance"]["accuracy"])),
        "n": grid(lambda c: int(c["n"])),
        "n_dropped_seen_in_training": grid(lambda c: int(c["n_dropped_seen_in_training"])),
        "protocol": {a: cells[(a, a)].get("protocol", NOT_RECORDED) for a in datasets},
        "cells": [cells[(a, b)] for a in datasets for b in datasets],
    }
    write_json(out_dir / "matrix.json", data)
    table = pd.DataFrame([_cross_row(cells[(a, b)]) for a in datasets for b in datasets])
    with atomic_path(out_dir / "matrix.tsv") as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    _plot_cross_matrix(data, out_dir / "matrix.png")
    return {
        "json": paths.rel(out_dir / "matrix.json"),
        "tsv": paths.rel(out_dir / "matrix.tsv"),
        "png": paths.rel(out_dir / "matrix.png"),
        "macro_f1": data["macro_f1"],
    }


def _cross_row(c: dict[str, Any]) -> dict[str, Any]:
    """matrix.tsv's row of one cell."""
    interval, majority, chance = c["interval"], c["baselines"]["majority"], c["baselines"]["stratified_chance"]
    return {
        "trained_on": c["trained_on"],
        "evaluated_on": c["evaluated_on"],
        "documents": c["documents"],
        "n": c["n"],
        "n_dropped_seen_in_training": c["n_dropped_seen_in_training"],
        "macro_f1": round(c["macro_f1"], 4),
        "macro_f1_low": round(c["macro_f1_ci95"][0], 4),
        "macro_f1_high": round(c["macro_f1_ci95"][1], 4),
        "accuracy": round(c["accuracy"], 4),
        "accuracy_low": round(c["accuracy_ci95"][0], 4),
        "accuracy_high": round(c["accuracy_ci95"][1], 4),
        "n_splits": c.get("n_splits", 1),
        "majority_label": majority["label"],
        "majority_macro_f1": round(majority["macro_f1"], 4),
        "majority_accuracy": round(majority["accuracy"], 4),
        "chance_macro_f1": round(chance["macro_f1"], 4),
        "chance_accuracy": round(chance["accuracy"], 4),
        "resampled": interval.get("resampled", "document"),
        "n_clusters": interval.get("n_clusters", ""),
        "n_boot": interval.get("n_boot", ""),
        "boot_seed": interval.get("seed", ""),
        "split": c["protocol"].get("split", "") if isinstance(c["protocol"], dict) else "",
    }


def _plot_cross_matrix(data: dict[str, Any], target: Path) -> None:
    """The heat map: colour = macro-F1 on a fixed 0-1 scale; each cell prints the score with its
    interval, the majority and chance macro-F1 of the row's train set on the same documents, and n."""
    from .plotting import figure, save_png

    datasets = data["rows_trained_on"]
    k = len(datasets)
    fig = figure(2.6 * k + 2.4, 1.9 * k + 1.6)
    ax = fig.subplots()
    im = ax.imshow(data["macro_f1"], cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(k), datasets, rotation=30, ha="right")
    ax.set_yticks(range(k), datasets)
    ax.set_xlabel("evaluated on (diagonal: job set; elsewhere: all labelled documents)")
    ax.set_ylabel("trained on")
    ax.set_title(f"{data['model_id']}, view {data['view']}: macro-F1 [95% CI]; majority / chance baselines", fontsize=10)
    for i in range(k):
        for j in range(k):
            v, (low, high) = data["macro_f1"][i][j], data["macro_f1_ci95"][i][j]
            text = (
                f"{v:.3f}\n[{low:.3f}, {high:.3f}]\nmaj {data['majority_macro_f1'][i][j]:.3f} · "
                f"chance {data['chance_macro_f1'][i][j]:.3f}\nn={data['n'][i][j]}"
            )
            dropped = data["n_dropped_seen_in_training"][i][j]
            text += f" (−{dropped} seen)" if dropped else ""
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    save_png(fig, target)
