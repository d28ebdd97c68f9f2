"""Polarization over time: held-out classification accuracy per period, as a measure of how far
apart the sides speak (Peterson & Spirling 2018, "Classification Accuracy as a Substantive
Quantity of Interest: Measuring Polarization in Westminster Systems", Political Analysis 26(1)).

For one prepared dataset x view and one model (default: the profile's first scikit-learn model),
the view's labelled documents (train, valid and job of the prepared split: labelled, filtered,
deduplicated, balanced by the view's pool-stage strategy, each document once) are cut by period
(`year`, or `legislature` from configs/common/legislatures.yml; core/periods.py), and in each period:

- `repeats` speaker-grouped splits with the profile's train_prop, seeded as the view's repeated
  splits are (`split.repeat_seeds`: the profile's own seed first, then independent streams); the model is fitted on the train side (the view's train-stage
  balancing and class weights applied, as in training) and scored on the job side;
- accuracy and macro-F1: the mean over the splits, their sd, and a 95% interval from a bootstrap of
  the period's speakers (the same draw applied to every split's job set, each split's score
  recomputed, the mean taken; percentile interval): documents of one speaker are not independent,
  so speakers are resampled, not documents;
- chance: the majority class's share of the job set (mean over the splits), the accuracy of always
  answering the most frequent side;
- a period is skipped, with its reason, when it has one class, or a class with fewer than
  `min_docs_per_class` documents or `min_speakers_per_class` speakers, or when no split puts every
  class on both sides.

Always grouped by speaker, whatever the profile's split: a speaker on both sides would measure
how well the model recognises speakers, not how distinct the sides are.

Writes reports/<dataset>/<view>/polarization_over_time.{json,md,png} (`--by legislature`:
polarization_over_time_by_legislature.*), each atomically, the JSON last. Plain Python: the CLI
(`pepm report polarization`) calls `write_report`.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import balance, families, metrics, periods, split
from .atomic import write_json, write_text
from .config import CommonConfig, ConfigError, Legislature, ModelSpec, ResolvedParams, did_you_mean, load_common
from .paths import ProjectPaths

REPORT = "polarization_over_time"
BY = ("year", "legislature")
GROUP = "speaker"
REFERENCE = (
    "Peterson, A. & Spirling, A. (2018). Classification Accuracy as a Substantive Quantity of Interest: "
    "Measuring Polarization in Westminster Systems. Political Analysis 26(1), 120-128."
)


class PolarizationError(ValueError):
    """The report cannot be computed for these parameters (no such model, no prepared view, ...)."""


@dataclass(frozen=True)
class Settings:
    """How the report is computed (all recorded in its JSON)."""

    by: str = "year"
    model_id: str | None = None  # None: the profile's first scikit-learn model
    repeats: int = 10  # speaker-grouped splits per period (seeds: split.repeat_seeds(seed, repeats))
    n_boot: int = 1000  # speaker bootstrap draws of the 95% interval
    min_docs_per_class: int = 5
    min_speakers_per_class: int = 3

    def __post_init__(self) -> None:
        if self.by not in BY:
            raise PolarizationError(f"--by {self.by!r}: periods are one of {list(BY)}")
        for name in ("repeats", "n_boot", "min_docs_per_class"):
            if getattr(self, name) < 1:
                raise PolarizationError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.min_speakers_per_class < 2:
            raise PolarizationError("min_speakers_per_class must be at least 2: a class needs a speaker on each side of the split")


def report_stem(by: str) -> str:
    return REPORT if by == "year" else f"{REPORT}_by_{by}"


def report_paths(root: Path, params: ResolvedParams, by: str = "year") -> dict[str, Path]:
    """Where the report of `by` goes: beside the view's model folders, reports/<dataset>/<view>/."""
    base = ProjectPaths(root).reports / params.dataset_id / params.view / report_stem(by)
    return {ext: base.with_suffix(f".{ext}") for ext in ("json", "md", "png")}


def default_model(params: ResolvedParams) -> str:
    """The profile's first scikit-learn model, else its first supervised model that reads train.tsv."""
    for model_id in params.models:
        if params.model_specs[model_id].family == "sklearn":
            return model_id
    for model_id in params.models:
        family = families.REGISTRY.get(params.model_specs[model_id].family)
        if family.supervised and family.reads == "tsv" and params.model_specs[model_id].family != "check":
            return model_id
    raise PolarizationError(
        f"profile {params.profile!r} runs no scikit-learn model (models: {params.models}); name one with --model (e.g. tfidf_svm_quick)"
    )


def model_spec(params: ResolvedParams, model_id: str, common: CommonConfig) -> ModelSpec:
    """The model's entry (with the profile's params when the profile runs it); a family that fits
    from train.tsv and predicts labels: the report fits it many times on subsets of the documents."""
    spec = params.model_specs.get(model_id) or common.models.get(model_id)
    if spec is None:
        raise PolarizationError(f"unknown model {model_id!r}{did_you_mean(model_id, common.models)} (configs/common/models.yml)")
    family = families.REGISTRY.get(spec.family)
    if not family.supervised or family.reads != "tsv":
        raise PolarizationError(
            f"model {model_id!r} is of family {spec.family!r}, which "
            + ("is not a classifier" if not family.supervised else f"trains from pre-built {family.reads!r} files")
            + ": the report fits the model on each period's documents, so it needs a classifier that reads train.tsv (sklearn)"
        )
    return spec


def legislature_table(params: ResolvedParams, common: CommonConfig) -> dict[int, Legislature]:
    table = params.legislatures or common.legislatures
    if not table:
        raise PolarizationError("--by legislature needs the table of configs/common/legislatures.yml, which is missing or empty")
    return dict(table)


# ---------------------------------------------------------------- documents and periods
def labelled_documents(params: ResolvedParams, root: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The prepared view's documents (train, valid, job), each once, and the stamp of that split;
    a PolarizationError saying what to run when the view on disk is not this profile's."""
    from .lineage import LineageError
    from .training import read_prepared_view

    try:
        stamp, frames = read_prepared_view(params, root, ("train", "valid", "job"))
    except LineageError as exc:
        raise PolarizationError(str(exc)) from None
    parts = list(frames.values())
    docs = pd.concat(parts, ignore_index=True)
    return docs.drop_duplicates("doc_id").reset_index(drop=True), stamp  # over-sampling (train stage) repeats documents


def with_periods(docs: pd.DataFrame, by: str, legislatures: dict[int, Legislature] | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The documents that have a period and a speaker, with the period in column `period`; and
    how many were left out, by reason."""
    docs = docs.drop(columns=[c for c in periods.PERIOD_COLUMNS if c in docs.columns])  # the TSV's own, read back as text
    docs = periods.add_period_columns(docs, legislatures if by == "legislature" else None)
    excluded: Counter = Counter()
    dates = docs["date"].fillna("").astype(str).str.strip()
    no_period = docs[by].isna()
    excluded["no_date"] = int((no_period & dates.eq("")).sum())
    excluded["unreadable_date"] = int((no_period & ~dates.eq("") & docs["year"].isna()).sum())
    if by == "legislature":
        excluded["outside_legislatures"] = int((no_period & docs["year"].notna()).sum())
    no_speaker = ~no_period & split.missing_groups(docs, GROUP)
    excluded["no_speaker"] = int(no_speaker.sum())
    kept = docs[~no_period & ~no_speaker].copy()
    kept["period"] = kept[by].astype(int)
    return kept, {k: v for k, v in excluded.items() if v}


def skip_reason(docs: pd.DataFrame, settings: Settings) -> str | None:
    """Why a period cannot be measured, or None."""
    counts = docs["label"].value_counts().sort_index()
    if len(counts) < 2:
        return f"one class only ({counts.index[0]}: {int(counts.iloc[0])} documents)" if len(counts) else "no documents"
    few_docs = {str(k): int(v) for k, v in counts.items() if v < settings.min_docs_per_class}
    if few_docs:
        return f"too few documents ({_pairs(few_docs)}; at least {settings.min_docs_per_class} per class)"
    speakers = docs.groupby("label")[GROUP].nunique()
    few_speakers = {str(k): int(v) for k, v in speakers.items() if v < settings.min_speakers_per_class}
    if few_speakers:
        return f"too few speakers ({_pairs(few_speakers)}; at least {settings.min_speakers_per_class} per class)"
    return None


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


# ---------------------------------------------------------------- one period
def measure_period(
    docs: pd.DataFrame, params: ResolvedParams, spec: ModelSpec, settings: Settings, root: Path, boot_seed: int
) -> dict[str, Any]:
    """The period's row: its facts, then either its scores or why it was skipped."""
    labels = sorted(docs["label"].unique())
    row: dict[str, Any] = {
        "n_docs": len(docs),
        "n_speakers": int(docs[GROUP].nunique()),
        "label_counts": {str(k): int(v) for k, v in docs["label"].value_counts().sort_index().items()},
        "speakers_per_label": {str(k): int(v) for k, v in docs.groupby("label")[GROUP].nunique().sort_index().items()},
    }
    reason = skip_reason(docs, settings)
    if reason is not None:
        return {**row, "status": "skipped", "reason": reason}
    splits, job_sets = [], []
    for seed in split.repeat_seeds(params.seed, settings.repeats):
        train, job = split.split_train_job(docs, params.train_prop, seed, True, GROUP)
        if set(train["label"]) != set(labels) or set(job["label"]) != set(labels):
            continue  # a class on one side only: this split measures nothing about it
        pred = _fit_predict(train, job, labels, params, spec, seed, root)
        scores = metrics.classification_metrics(job["label"].tolist(), pred, labels)
        shares = job["label"].value_counts(normalize=True)
        splits.append(
            {
                "seed": seed,
                "n_train": len(train),
                "n_job": len(job),
                "n_job_speakers": int(job[GROUP].nunique()),
                "accuracy": scores["accuracy"],
                "macro_f1": scores["macro_f1"],
                "chance": float(shares.max()),
                "majority_label": str(shares.idxmax()),
            }
        )
        job_sets.append((job, pred))
    if not splits:
        reason = f"none of {settings.repeats} speaker-grouped splits put every class in both train and job"
        return {**row, "status": "skipped", "reason": reason}
    acc = np.array([s["accuracy"] for s in splits])
    f1 = np.array([s["macro_f1"] for s in splits])
    boot = speaker_bootstrap(docs, job_sets, labels, settings.n_boot, boot_seed)
    return {
        **row,
        "status": "ok",
        "accuracy": float(acc.mean()),
        "accuracy_sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "accuracy_ci95": boot["accuracy"],
        "macro_f1": float(f1.mean()),
        "macro_f1_sd": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0,
        "macro_f1_ci95": boot["macro_f1"],
        "chance": float(np.mean([s["chance"] for s in splits])),
        "majority_label": Counter(s["majority_label"] for s in splits).most_common(1)[0][0],
        "n_splits": len(splits),
        "splits": splits,
    }


def _fit_predict(
    train: pd.DataFrame, job: pd.DataFrame, labels: list[str], params: ResolvedParams, spec: ModelSpec, seed: int, root: Path
) -> list[str]:
    """Fit the model on `train` as training does (the view's train-stage balancing and class
    weights, the family's train-size cap on the shuffled rows, seeded), predict `job`."""
    from .training import seed_everything

    strategy = balance.build(params.balance_strategy, params.balance)
    if strategy.stage == "train":
        train = strategy.resample(train, np.random.default_rng([seed, 2, 0]))
    train = train.sample(frac=1.0, random_state=seed)
    cap = params.hardware.cap(spec.family)
    used = train.iloc[:cap] if cap is not None else train
    family = families.build(spec.family, spec.params)
    data = families.TrainData(
        train=used.reset_index(drop=True),
        labels=labels,
        seed=seed,
        hardware=params.hardware,
        root=root,
        class_weights=strategy.class_weights(train),
    )
    seed_everything(seed)
    with tempfile.TemporaryDirectory(prefix="pepm-polarization-") as tmp:
        family.fit(data, Path(tmp))
        return [str(p) for p in family.predict(Path(tmp), job["text"].tolist())]


def speaker_bootstrap(
    docs: pd.DataFrame, job_sets: list[tuple[pd.DataFrame, list[str]]], labels: list[str], n_boot: int, seed: int, level: float = 0.95
) -> dict[str, list[float]]:
    """95% percentile intervals of the mean accuracy and macro-F1 over the splits, from resampling
    the period's speakers with replacement: each draw weights every speaker (how many times it was
    drawn), each split's job confusion matrix is recomputed with those weights, and the splits'
    scores are averaged (a split whose job speakers were all left out of a draw does not count in it)."""
    speakers = {s: i for i, s in enumerate(sorted(docs[GROUP].unique()))}
    k = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    per_split = np.zeros((len(job_sets), len(speakers), k, k + 1))  # speaker x gold x predicted (k: outside the labels)
    for r, (job, pred) in enumerate(job_sets):
        s = job[GROUP].map(speakers).to_numpy()
        t = job["label"].map(index).to_numpy()
        p = np.array([index.get(y, k) for y in pred])
        np.add.at(per_split[r], (s, t, p), 1)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(speakers), np.full(len(speakers), 1 / len(speakers)), size=n_boot).astype(float)
    cms = np.einsum("bs,rsij->brij", weights, per_split)  # draw x split x gold x predicted
    totals = cms.sum(axis=(2, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.trace(cms[:, :, :, :k], axis1=2, axis2=3) / totals
    macro = metrics._macro_f1(cms.reshape(-1, k, k + 1)).reshape(n_boot, len(job_sets))
    counted = totals > 0
    n_counted = counted.sum(axis=1)
    keep = n_counted > 0  # a draw that left out every split's job speakers says nothing
    acc_mean = np.where(counted, acc, 0.0).sum(axis=1)[keep] / n_counted[keep]
    f1_mean = np.where(counted, macro, 0.0).sum(axis=1)[keep] / n_counted[keep]
    return {
        "accuracy": metrics._percentile_interval(acc_mean, level),
        "macro_f1": metrics._percentile_interval(f1_mean, level),
    }


# ---------------------------------------------------------------- the report
def polarization_over_time(
    params: ResolvedParams, root: Path, settings: Settings, common: CommonConfig | None = None, docs: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The report as data (what the JSON holds). `docs`: the labelled documents to use instead of
    the prepared view's (tests); then no split stamp is recorded."""
    started = time.perf_counter()
    common = common or load_common(root)
    model_id = settings.model_id or default_model(params)
    spec = model_spec(params, model_id, common)
    table = legislature_table(params, common) if settings.by == "legislature" else None
    stamp = None
    if docs is None:
        docs, stamp = labelled_documents(params, root)
    dated, excluded = with_periods(docs, settings.by, table)
    rows = []
    for i, (period, group) in enumerate(dated.groupby("period", sort=True)):
        row = measure_period(group, params, spec, settings, root, boot_seed=params.seed + 1000 + i)
        rows.append({"period": int(period), **_period_span(int(period), settings.by, table), **row})
    return {
        "report": REPORT,
        "reference": REFERENCE,
        "dataset_id": params.dataset_id,
        "view": params.view,
        "profile": params.profile,
        "overrides": params.overrides,
        "params_hash": params.params_hash,
        "split_version": stamp["version"] if stamp else None,
        "model_id": model_id,
        "family": spec.family,
        "model_params": spec.params,
        "by": settings.by,
        "protocol": {
            "split": f"grouped by {GROUP}",
            "train_prop": params.train_prop,
            "seeds": split.repeat_seeds(params.seed, settings.repeats),
            "balance_strategy": params.balance_strategy,
            "score": "mean over the speaker-grouped splits of the period (sd: their spread)",
            "interval": f"95% percentile bootstrap of the period's speakers ({settings.n_boot} draws, seeded), the same draw for every split",
            "chance": "majority class share of the job set (mean over the splits)",
        },
        "settings": asdict(settings) | {"model_id": model_id},
        **({"legislatures": {str(n): leg.model_dump(mode="json") for n, leg in table.items()}} if table else {}),
        "n_docs": len(docs),
        "n_docs_with_period": len(dated),
        "excluded": excluded,
        "periods": rows,
        "n_periods_measured": sum(r["status"] == "ok" for r in rows),
        "seconds": round(time.perf_counter() - started, 3),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _period_span(period: int, by: str, table: dict[int, Legislature] | None) -> dict[str, Any]:
    if by != "legislature" or table is None:
        return {}
    leg = table[period]
    return {"start": leg.start.isoformat(), "end": leg.end.isoformat() if leg.end else None}


def write_report(params: ResolvedParams, root: Path, settings: Settings, common: CommonConfig | None = None) -> dict[str, Any]:
    """Compute the report and write its PNG, Markdown and JSON (last), each atomically; returns
    the report's data with `paths` added."""
    try:
        result = polarization_over_time(params, root, settings, common)
    except ConfigError as exc:
        raise PolarizationError(str(exc)) from None
    paths = report_paths(root, params, settings.by)
    rel = ProjectPaths(root).rel
    result["files"] = {ext: rel(p) for ext, p in paths.items()}
    plot(result, paths["png"])
    write_text(paths["md"], markdown(result))
    write_json(paths["json"], result)
    return {**result, "paths": paths}


def period_label(row: dict[str, Any], by: str) -> str:
    if by != "legislature":
        return str(row["period"])
    end = row.get("end")
    return f"{row['period']} ({row['start'][:4]}–{end[:4] if end else ''})"


def markdown(result: dict[str, Any]) -> str:
    proto = result["protocol"]
    seeds = proto["seeds"]
    lines = [
        f"# Polarization over time · {result['dataset_id']} / {result['view']} · {result['model_id']}",
        "",
        "Held-out classification accuracy per "
        + result["by"]
        + " as a measure of polarization (Peterson & Spirling 2018): the better a classifier tells the sides apart "
        "from what their speakers say, the further apart they speak. Read each period against its chance level.",
        "",
        f"split {proto['split']} · train_prop {proto['train_prop']} · {len(seeds)} splits per period (seed {seeds[0]} and {len(seeds) - 1} derived from it) · "
        f"balance {proto['balance_strategy']} · profile {result['profile']} (params {result['params_hash']})",
        "",
        f"score: {proto['score']}; interval: {proto['interval']}; chance: {proto['chance']}.",
        "",
        "| " + result["by"] + " | documents | speakers | accuracy [95% CI] | sd | macro-F1 [95% CI] | chance | splits | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["periods"]:
        head = f"| {period_label(row, result['by'])} | {row['n_docs']} | {row['n_speakers']} | "
        if row["status"] != "ok":
            lines.append(head + "| | | | | skipped: " + row["reason"] + " |")
            continue
        acc, f1 = row["accuracy_ci95"], row["macro_f1_ci95"]
        lines.append(
            head
            + f"{row['accuracy']:.3f} [{acc[0]:.3f}, {acc[1]:.3f}] | {row['accuracy_sd']:.3f} | "
            + f"{row['macro_f1']:.3f} [{f1[0]:.3f}, {f1[1]:.3f}] | {row['chance']:.3f} ({row['majority_label']}) | {row['n_splits']} | |"
        )
    excluded = result["excluded"]
    lines += [
        "",
        f"{result['n_docs_with_period']} of the view's {result['n_docs']} labelled documents have a {result['by']}"
        + (f"; left out: {_pairs(excluded)}" if excluded else "")
        + f". {result['n_periods_measured']} of {len(result['periods'])} periods measured.",
        "",
        f"Reference: {result['reference']}",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict[str, Any], target: Path) -> Path:
    """Accuracy by period: the mean over splits with its 95% speaker-bootstrap interval, each
    split's accuracy as a faint dot, the period's chance level as a dashed step, the documents and
    speakers of each period along the bottom; a skipped period keeps its place, marked."""
    from .plotting import figure, save_png

    rows = result["periods"]
    by = result["by"]
    x = np.arange(len(rows))
    width = max(7.0, 0.75 * len(rows) + 2.5)
    wide = width >= 10  # the legend on one row, the subtitle on one line
    fig = figure(width, 4.6 if wide else 5.2)
    ax = fig.subplots()
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok"]
    if ok:
        means = np.array([rows[i]["accuracy"] for i in ok])
        low = means - np.array([rows[i]["accuracy_ci95"][0] for i in ok])
        high = np.array([rows[i]["accuracy_ci95"][1] for i in ok]) - means
        jitter = np.random.default_rng(0)
        for i in ok:
            values = [s["accuracy"] for s in rows[i]["splits"]]
            ax.scatter(i + jitter.uniform(-0.12, 0.12, len(values)), values, s=9, color="0.65", alpha=0.6, lw=0, zorder=2)
        ax.scatter([], [], s=9, color="0.65", label="one speaker-grouped split")
        ax.errorbar(
            ok,
            means,
            yerr=[np.maximum(low, 0), np.maximum(high, 0)],
            fmt="o",
            color="C0",
            ms=6,
            capsize=4,
            lw=1.5,
            zorder=3,
            label="accuracy: mean of the splits, 95% CI (speaker bootstrap)",
        )
        for j, i in enumerate(ok):
            ax.hlines(
                rows[i]["chance"],
                i - 0.32,
                i + 0.32,
                colors="C3",
                linestyles="--",
                lw=1.4,
                zorder=2,
                label="chance (majority share of the job set)" if j == 0 else None,
            )
    for i, row in enumerate(rows):
        ax.text(i, 0.015, f"{row['n_docs']} docs\n{row['n_speakers']} spk", ha="center", va="bottom", fontsize=7, color="0.3")
        if row["status"] != "ok":
            ax.text(i, 0.5, "skipped:\n" + _short_reason(row["reason"]), ha="center", va="center", fontsize=7, color="0.45", rotation=90)
    ax.set_xticks(x, [period_label(r, by) for r in rows], rotation=0 if by == "year" else 20)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1.04)
    ax.set_ylabel("held-out accuracy")
    ax.set_xlabel(by)
    ax.grid(axis="y", color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    seeds = result["protocol"]["seeds"]
    ax.set_title(
        f"Polarization over time · {result['dataset_id']} / {result['view']} · {result['model_id']}\n"
        f"split grouped by speaker, train_prop {result['protocol']['train_prop']}, {len(seeds)} splits per period "
        f"(seed {seeds[0]} + derived){' · ' if wide else chr(10)}Peterson & Spirling (2018)",
        fontsize=9,
    )
    fig.legend(loc="outside lower center", fontsize=7.5, frameon=False, ncols=3 if wide else 1)
    return save_png(fig, target)


def _short_reason(reason: str) -> str:
    return reason.split(" (")[0]
