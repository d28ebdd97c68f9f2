"""`pepm report label-validity`: the label-validity diagnostics of a prepared view (core/diagnostics.py)
and the scores of one model with and without names masked, side by side.

`filters.mask_names` replaces party / group names and speakers' names in the texts before the split
(core/prepare.py). Preparing the view twice, with and without it, would replace the prepared split
of the partition (one split per dataset x view) and make its models stale; and the two splits would
not even hold the same documents (texts that differ by a name only become duplicates once masked).
So the report compares on the prepared split itself, in process: the model (default: the profile's
first scikit-learn model) is fitted twice as training fits it (the family's train-size cap on the
shuffled train.tsv, the view's class weights, the profile's seed), once on the texts as they are and
once on the same texts masked exactly as mask_names masks them, and both fits are scored on the same
job documents, their texts treated the same way. The difference is then the names' alone: same
documents, same split, same seed. (A view prepared with mask_names: the texts with names are read
back from the parsed corpora by doc_id.)

Reported, for each variant: accuracy and macro-F1 with 95% bootstrap intervals, the same on the job
texts that name a party or group and on the others, and the model's top terms judged (procedural
words, names); for the pair, macro-F1 kept minus masked with a 95% paired-bootstrap interval. With
the view's diagnostics (associations, name share, log-odds terms) in
reports/<dataset>/<view>/label_validity.{json,md,png}, each written atomically, the JSON last.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import diagnostics, families, metrics
from .atomic import write_json, write_text
from .config import CommonConfig, ConfigError, ModelSpec, ResolvedParams, load_common
from .paths import ProjectPaths

REPORT = "label_validity"
KEPT, MASKED = "names kept", "names masked"


class LabelValidityError(ValueError):
    """The report cannot be computed for these parameters (no prepared view, no such model, ...)."""


@dataclass(frozen=True)
class Settings:
    model_id: str | None = None  # None: the profile's first scikit-learn model
    n_boot: int = 1000

    def __post_init__(self) -> None:
        if self.n_boot < 1:
            raise LabelValidityError(f"n_boot must be at least 1 (got {self.n_boot})")


def report_paths(root: Path, params: ResolvedParams) -> dict[str, Path]:
    base = ProjectPaths(root).reports / params.dataset_id / params.view / REPORT
    return {ext: base.with_suffix(f".{ext}") for ext in ("json", "md", "png")}


def _model(params: ResolvedParams, settings: Settings, common: CommonConfig) -> tuple[str, ModelSpec]:
    from .polarization import PolarizationError, default_model, model_spec

    try:
        model_id = settings.model_id or default_model(params)
        return model_id, model_spec(params, model_id, common)
    except PolarizationError as exc:
        raise LabelValidityError(str(exc)) from None


def _split(params: ResolvedParams, root: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """(train, job, meta_view, stamp) of the prepared split of `params`, read under the view's lock."""
    from .lineage import LineageError
    from .training import read_prepared_view

    try:
        stamp, frames = read_prepared_view(params, root, ("train", "job"))
    except LineageError as exc:
        raise LabelValidityError(str(exc)) from None
    train, job = frames["train"], frames["job"]
    meta_view = json.loads((ProjectPaths(root).view_dir(params.dataset_id, params.view) / "meta_view.json").read_text(encoding="utf-8"))
    return train, job, meta_view, stamp


def _corpus_docs(params: ResolvedParams, root: Path) -> pd.DataFrame:
    """doc_id, speaker (and speaker_name), text of every document of the dataset's corpora."""
    import pyarrow.parquet as pq

    frames = []
    for cid in params.dataset.corpus_ids:
        path = diagnostics.corpora_paths(root).corpus_dir(cid) / "docs.parquet"
        if not path.is_file():
            raise LabelValidityError(
                f"corpus {cid!r} is not parsed ({ProjectPaths(root).rel(path)} missing): run `pepm prepare -p {params.profile}`"
            )
        columns = [c for c in ("doc_id", "speaker", "speaker_name", "text") if c in pq.read_schema(path).names]
        frames.append(pq.read_table(path, columns=columns).to_pandas())
    return pd.concat(frames, ignore_index=True)


def texts_both_ways(
    params: ResolvedParams, root: Path, train: pd.DataFrame, job: pd.DataFrame, corpus_docs: pd.DataFrame
) -> dict[str, tuple[list[str], list[str]]]:
    """{KEPT: (train texts, job texts), MASKED: (...)}: the split's texts with their names and masked
    as mask_names masks them (the same names: those params resolve, the persons of the corpora)."""
    from . import labels

    names = params.group_names
    if names is None:
        label_map = labels.load_label_map(root / "configs" / "label_maps" / params.label_map, root)
        names = diagnostics.group_names(diagnostics.load_config(root)[0], label_map)
    persons = diagnostics.masking_persons(corpus_docs)
    if params.filters.mask_names:  # the split is masked: its texts with names come from the parsed corpora
        original = corpus_docs.drop_duplicates("doc_id").set_index("doc_id")["text"]
        kept = tuple(original.reindex(df["doc_id"]).fillna("").tolist() for df in (train, job))
        masked = (train["text"].tolist(), job["text"].tolist())
    else:
        kept = (train["text"].tolist(), job["text"].tolist())
        both = diagnostics.mask_texts(kept[0] + kept[1], names, persons)
        masked = (both[: len(train)], both[len(train) :])
    return {KEPT: kept, MASKED: masked}


def fit_and_predict(
    params: ResolvedParams, spec: ModelSpec, root: Path, train: pd.DataFrame, job_texts: list[str], class_weights: Any, judge: Any
) -> tuple[list[str], dict[str, Any] | None]:
    """The model fitted on `train` as training fits it (cap on the shuffled rows, the view's class
    weights, seeded), its predictions on `job_texts`, and its top terms judged (None: the family
    ranks none)."""
    from .training import TOP_TERMS, seed_everything

    cap = params.hardware.cap(spec.family)
    used = train.iloc[:cap] if cap is not None and len(train) > cap else train
    family = families.build(spec.family, spec.params)
    data = families.TrainData(
        train=used.reset_index(drop=True),
        labels=sorted(set(train["label"])),
        seed=params.seed,
        hardware=params.hardware,
        root=root,
        class_weights=class_weights,
    )
    seed_everything(params.seed)
    with tempfile.TemporaryDirectory(prefix="pepm-label-validity-") as tmp:
        family.fit(data, Path(tmp))
        pred = [str(p) for p in family.predict(Path(tmp), job_texts)]
        terms = family.top_terms(Path(tmp), TOP_TERMS)
    return pred, (judge.judge(terms, diagnostics.load_config(root)[0].top_terms) if terms else None)


def _scores(gold: list[str], pred: list[str], labels: list[str], seed: int, n_boot: int, clusters: list[Any] | None) -> dict[str, Any]:
    if not gold:
        return {"n": 0}
    s = metrics.classification_metrics(gold, pred, labels)
    ci = metrics.bootstrap_intervals(gold, pred, labels, seed=seed, n_boot=n_boot, clusters=clusters)
    return {
        "n": s["n"],
        "accuracy": s["accuracy"],
        "accuracy_ci95": ci["accuracy"],
        "macro_f1": s["macro_f1"],
        "macro_f1_ci95": ci["macro_f1"],
    }


def label_validity(params: ResolvedParams, root: Path, settings: Settings, common: CommonConfig | None = None) -> dict[str, Any]:
    """The report as data (what label_validity.json holds)."""
    from . import labels as labels_module

    started = time.perf_counter()
    common = common or load_common(root)
    model_id, spec = _model(params, settings, common)
    train, job, meta_view, stamp = _split(params, root)
    view = diagnostics.view_diagnostics(params, root, with_terms=True)
    config, _ = diagnostics.load_config(root)
    corpus_docs = _corpus_docs(params, root)
    texts = texts_both_ways(params, root, train, job, corpus_docs)
    label_map = labels_module.load_label_map(root / "configs" / "label_maps" / params.label_map, root)
    names = diagnostics.group_names(config, label_map)
    all_texts = texts[KEPT][0] + texts[KEPT][1]
    judge = diagnostics.TermJudge(config.procedural_terms, names, view.get("persons", []), texts=lambda: all_texts)
    gold = job["label"].astype(str).tolist()
    labels = sorted(set(train["label"].astype(str)) | set(gold))
    naming = diagnostics.group_finder(names).contains(texts[KEPT][1])
    weights = meta_view["balance"]["class_weights"]
    # a split grouped by speaker drew speakers: the intervals resample them (cluster bootstrap), as the evaluation's do
    group_by = params.split.group_by
    clusters = np.asarray(job[group_by].astype(str), dtype=object) if group_by and group_by in job.columns else None

    def part(mask: np.ndarray | None) -> list[Any] | None:
        return None if clusters is None else list(clusters if mask is None else clusters[mask])

    variants, preds = {}, {}
    for variant, (train_texts, job_texts) in texts.items():
        pred, terms = fit_and_predict(params, spec, root, train.assign(text=train_texts), job_texts, weights, judge)
        preds[variant] = pred
        pred_arr, gold_arr = np.asarray(pred, dtype=object), np.asarray(gold, dtype=object)
        variants[variant] = {
            "all": _scores(gold, pred, labels, params.seed, settings.n_boot, part(None)),
            "job texts naming a group": _scores(
                list(gold_arr[naming]), list(pred_arr[naming]), labels, params.seed, settings.n_boot, part(naming)
            ),
            "other job texts": _scores(
                list(gold_arr[~naming]), list(pred_arr[~naming]), labels, params.seed, settings.n_boot, part(~naming)
            ),
            **({"terms": {"source": "the model's top terms", **terms}} if terms else {}),
        }
    delta = metrics.paired_bootstrap_delta(
        gold, preds[KEPT], preds[MASKED], labels, seed=params.seed, n_boot=settings.n_boot, clusters=part(None)
    )
    # texts that differ by a name only are one text once masked: the split, deduplicated with names,
    # may then hold the same masked text in train and job (counted; mask_names in prepare dedups after masking)
    from .split import text_key

    masked_train = set(text_key(pd.Series(texts[MASKED][0])))
    shared = int(text_key(pd.Series(texts[MASKED][1])).isin(masked_train).sum())
    return {
        "report": REPORT,
        "dataset_id": params.dataset_id,
        "view": params.view,
        "profile": params.profile,
        "overrides": params.overrides,
        "params_hash": params.params_hash,
        "split_version": stamp["version"],
        "model_id": model_id,
        "family": spec.family,
        "model_params": spec.params,
        "protocol": {
            "split": meta_view["split"]["kind"],
            "seed": params.seed,
            "n_train": len(train),
            "n_job": len(job),
            "view_masked": bool(params.filters.mask_names),
            "comparison": "the prepared split fitted twice in process, texts with names and masked as filters.mask_names masks them "
            "(same documents, same seed, same class weights); both scored on the same job documents",
            "interval": f"95% percentile bootstrap of the job {f'{group_by}s (cluster bootstrap)' if clusters is not None else 'documents'} "
            f"({settings.n_boot} draws, seed {params.seed})",
            "masked_job_texts_also_in_train": shared,
            # split.repeats > 1: the prepared split is repeat 0 (the profile's seed), the others are not refitted here
            **({"repeats_used": "repeat 0 of " + str(params.split.repeats)} if getattr(params.split, "repeats", 1) > 1 else {}),
            "chance": float(pd.Series(gold).value_counts(normalize=True).max()) if gold else None,
        },
        "settings": asdict(settings) | {"model_id": model_id},
        "diagnostics": {k: v for k, v in view.items() if k not in ("persons", "key")},
        "job_texts_naming_a_group": int(naming.sum()),
        "scores": variants,
        "delta_macro_f1_kept_minus_masked": delta,
        "seconds": round(time.perf_counter() - started, 3),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(params: ResolvedParams, root: Path, settings: Settings, common: CommonConfig | None = None) -> dict[str, Any]:
    """Compute the report, write its PNG, Markdown and JSON (last); returns its data with `paths`."""
    try:
        result = label_validity(params, root, settings, common)
    except (ConfigError, diagnostics.DiagnosticsError) as exc:
        raise LabelValidityError(str(exc)) from None
    paths = report_paths(root, params)
    result["files"] = {ext: ProjectPaths(root).rel(p) for ext, p in paths.items()}
    plot(result, paths["png"])
    write_text(paths["md"], markdown(result))
    write_json(paths["json"], result)
    return {**result, "paths": paths}


def _cell(s: dict[str, Any], name: str) -> str:
    if not s.get("n"):
        return "–"
    low, high = s[f"{name}_ci95"]
    return f"{s[name]:.3f} [{low:.3f}, {high:.3f}]"


def markdown(result: dict[str, Any]) -> str:
    diag = result["diagnostics"]
    proto = result["protocol"]
    delta = result["delta_macro_f1_kept_minus_masked"]
    repeat = f" ({proto['repeats_used']})" if "repeats_used" in proto else ""
    lines = [
        f"# Label validity · {result['dataset_id']} / {result['view']} · {result['model_id']}",
        "",
        f"split {proto['split']}{repeat} · seed {proto['seed']} · {proto['n_train']} train / {proto['n_job']} job documents · "
        f"profile {result['profile']} (params {result['params_hash']})",
        "",
        *diagnostics.section_lines(diag, markdown=True),
        "### Associations with the label",
        "",
        "| column | kind | Cramér's V (bias-corrected) | NMI | values | most frequent per label |",
        "|---|---|---|---|---|---|",
    ]
    for r in diag["associations"]:
        if "cramers_v" not in r:
            lines.append(f"| {r['column']} | not tested: {r['reason']} | | | {r['n_levels']} | |")
            continue
        table = "; ".join(f"{label}: " + ", ".join(f"{k} {c}" for k, c in list(v.items())[:3]) for label, v in r["table"].items())
        lines.append(
            f"| {r['column']} | {r['kind']} | {r['cramers_v']:.3f} ({r['strength']}) | {r['nmi']:.3f} | {r['n_levels']} | {table} |"
        )
    speaker = diag.get("speaker")
    if speaker:
        lines += ["", f"speaker: {speaker['note']} (Cramér's V {speaker['cramers_v']:.3f}, {speaker['n_levels']} speakers)."]
    names = diag["names"]
    lines += [
        "",
        "### Names of parties and groups in the texts",
        "",
        f"{names['n_naming']} of {names['n']} texts ({names['share']:.1%}) name a party or group.",
        "",
        "| label | texts | naming a group | naming a group of its own side | naming a group of another side |",
        "|---|---|---|---|---|",
    ]
    for label, row in names["by_label"].items():
        own = f"{row['own_side_share']:.1%}" if "own_side_share" in row else ""
        other = f"{row['other_side_share']:.1%}" if "other_side_share" in row else ""
        lines.append(f"| {label} | {row['n']} | {row['share']:.1%} | {own} | {other} |")
    lines += ["", "Most named (first name of each text): " + ", ".join(f"{m['name']} ({m['texts']})" for m in names["most_named"]), ""]
    lines += [
        "## Scores with and without names",
        "",
        f"{proto['comparison']}. Names masked: party and group names -> {diagnostics.GROUP_PLACEHOLDER}, speakers' names -> "
        f"{diagnostics.PERSON_PLACEHOLDER}. Intervals: {proto['interval']}.",
        "",
        "| texts | job documents | accuracy, names kept | accuracy, names masked | macro-F1, names kept | macro-F1, names masked |",
        "|---|---|---|---|---|---|",
    ]
    for subset in ("all", "job texts naming a group", "other job texts"):
        kept, masked = result["scores"][KEPT][subset], result["scores"][MASKED][subset]
        lines.append(
            f"| {subset} | {kept.get('n', 0)} | {_cell(kept, 'accuracy')} | {_cell(masked, 'accuracy')} | "
            f"{_cell(kept, 'macro_f1')} | {_cell(masked, 'macro_f1')} |"
        )
    lo, hi = delta["ci95"]
    lines += [
        "",
        f"macro-F1 with names minus masked: {delta['delta_macro_f1']:+.3f} [95% paired bootstrap {lo:+.3f}, {hi:+.3f}]"
        + (" (the names raise the score)" if lo > 0 else " (the names lower the score)" if hi < 0 else " (no difference shown)"),
        "",
    ]
    placeholders = {diagnostics.GROUP_PLACEHOLDER.lower(), diagnostics.PERSON_PLACEHOLDER.lower()}
    masked_terms = (result["scores"][MASKED].get("terms") or {}).get("by_label", {})
    leaning = sorted({t["term"] for rows in masked_terms.values() for t in rows if placeholders & set(t["term"].split())})
    if leaning:
        lines += [
            f"With names masked the model still ranks {', '.join(repr(t) for t in leaning)} among its top terms: the placeholder keeps "
            "the fact that a text names a group or a person, and that alone (a signature, an address) still tells the sides apart.",
            "",
        ]
    terms_blocks = [(v, result["scores"][v].get("terms")) for v in (KEPT, MASKED)]
    terms_blocks = [(v, t) for v, t in terms_blocks if t] + (
        [("the view (log-odds of the train texts)", diag["terms"])] if diag.get("terms") else []
    )
    if terms_blocks:
        lines += ["## Top terms (procedural words and names in bold)", ""]
        for variant, terms in terms_blocks:
            lines.append(f"{variant}: {terms['n_flagged']} of {terms['n_terms']} flagged")
            lines.append("")
            for label, rows in terms["by_label"].items():
                shown = ", ".join(f"**{t['term']}**" if t["flags"] else t["term"] for t in rows)
                lines.append(f"- {label}: {shown}")
            lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], target: Path) -> Path:
    """Left: Cramér's V of every tested column with the warning threshold (label sources grey).
    Right: accuracy with names kept and masked, on every job text and on those naming a group or
    not, with 95% intervals."""
    from .plotting import figure, save_png

    diag = result["diagnostics"]
    fig = figure(11, 4.6)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.15])
    rows = [r for r in diag["associations"] if "cramers_v" in r]
    if diag.get("speaker"):
        rows.append({**diag["speaker"], "kind": "speaker"})
    colors = {"confound": "C3", "label source": "0.7", "speaker": "0.7"}
    y = np.arange(len(rows))[::-1]
    left.barh(y, [r["cramers_v"] for r in rows], color=[colors[r["kind"]] for r in rows], height=0.6)
    kinds = {"confound": "", "label source": "\n(label source)", "speaker": "\n(by construction)"}
    left.set_yticks(y, [r["column"] + kinds[r["kind"]] for r in rows], fontsize=8)
    for yi, r in zip(y, rows):
        left.text(r["cramers_v"] + 0.01, yi, f"{r['cramers_v']:.2f}", va="center", fontsize=7)
    threshold = diag["config"]["association_warning"]
    left.axvline(threshold, color="k", ls="--", lw=1, label=f"warning at V ≥ {threshold:g}")
    left.legend(fontsize=7, loc="lower right")
    left.set_xlim(0, 1.1)
    left.set_xlabel("Cramér's V with the label (bias-corrected)")
    left.set_title("Association of the label with other metadata", fontsize=9)
    subsets = ("all", "job texts naming a group", "other job texts")
    x = np.arange(len(subsets))
    for i, (variant, color) in enumerate(((KEPT, "C0"), (MASKED, "C1"))):
        scores = [result["scores"][variant][s] for s in subsets]
        acc = np.array([s.get("accuracy", np.nan) for s in scores])
        err = np.array([[a - s["accuracy_ci95"][0], s["accuracy_ci95"][1] - a] if s.get("n") else [0, 0] for a, s in zip(acc, scores)]).T
        right.bar(x + (i - 0.5) * 0.36, acc, width=0.36, color=color, label=variant, yerr=np.maximum(err, 0), capsize=3)
        for xi, a in zip(x + (i - 0.5) * 0.36, acc):
            if not np.isnan(a):
                right.text(xi, 0.02, f"{a:.3f}", ha="center", va="bottom", fontsize=7, color="white", rotation=90)
    chance = result["protocol"].get("chance")
    if chance is not None:
        right.axhline(chance, color="0.3", ls=":", lw=1, label=f"chance (majority class of job: {chance:.3f})")
    right.set_xticks(x, [f"{s}\n({result['scores'][KEPT][s].get('n', 0)} docs)" for s in subsets], fontsize=8)
    right.set_ylim(0, 1.05)
    right.set_ylabel(f"accuracy of {result['model_id']} (95% CI)")
    right.set_title("Scores with names kept and masked (same split, same seed)", fontsize=9)
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    right.grid(axis="y", color="0.9")
    right.set_axisbelow(True)
    fig.suptitle(f"Label validity · {result['dataset_id']} / {result['view']}", fontsize=10)
    return save_png(fig, target)
