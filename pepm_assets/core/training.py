"""Train and evaluate one model of models.yml on one dataset x view (spec §2.6-2.7).

`train_model` and `evaluate_model` are what the Dagster assets `model/<id>` and
`evaluation/<id>` call; each writes its outputs atomically and returns its meta dict.

With `split.repeats` N > 1, a supervised family that fits from train.tsv (check, sklearn) is also
fitted on repeats 1..N-1 of the split (<model>/repeats/r<k>/, each with its repeat's seed) and
scored on each repeat's job set: metrics.json reports the mean, sd and each split's score, with an
interval pooling the splits' bootstrap replicates (whole speakers resampled on a grouped split).
spaCy and transformers fit from the canonical split's pre-built files and are scored on it only.

A dataset with `merge_mode: separate` gets one model per corpus inside the model folder
(by_corpus/<corpus_id>/, each fitted on its corpus's train rows only); its evaluation scores each
job document with its own corpus's model and adds per-corpus reports and a comparison table.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import balance, diagnostics, families, formats, lineage, metrics, side_worker
from .atomic import atomic_dir, write_json, write_text
from .config import ModelSpec, ResolvedParams
from .locks import exclusive_lock
from .paths import ProjectPaths
from .prepare import REPEAT_SEEDS, REPEATS, effective_compare_by, read_repeat, read_tsv, write_tsv
from .split import split_kind

TOP_TERMS = 25
CONFUSION_PNG = "confusion_matrix.png"
RELIABILITY_PNG = "reliability_diagram.png"  # beside a metrics.json whose `calibration` has bins (class scores)
SCORE_PREFIX = "score_"  # predictions.tsv: one score_<class> column per class, for a family that scores every class
BY_CORPUS = "by_corpus"  # merge_mode separate: one model (and one report) per corpus, in this subfolder
COMPARISON = "comparison_by_corpus"  # merge_mode separate: the per-corpus table of an evaluation (.md, .tsv)
NOT_RECORDED = "not recorded"  # a fit whose family states no class_weight (or a model trained before it did)
BY_SPLIT = "predictions_by_split.tsv"  # split.repeats > 1: every split's job predictions (repeat, seed, doc_id, ...)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def now_iso() -> str:
    """UTC now to the ms (meta_model / meta_eval `started_at`, `ended_at`)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


# ---------------------------------------------------------------- the protocol stated with every score
def _fit_class_weight(fit: dict[str, Any], separate: bool) -> str:
    """The `class_weight` fact of one fit; with one model per corpus the corpora's value, or each
    corpus's when they differ."""
    if not separate:
        return str(fit.get("class_weight", NOT_RECORDED))
    values = {cid: str(facts.get("class_weight", NOT_RECORDED)) for cid, facts in fit.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{cid}: {value}" for cid, value in values.items())


def model_class_weight(meta_model: dict[str, Any]) -> str:
    """How the model's fit weighted classes: its family's `class_weight` fact; with one model per
    corpus (merge_mode separate) the corpora's value, or each corpus's when they differ. With
    repeated splits whose fits did not all weight alike (class_weight auto on train sets of other
    balance), the value of each split: "r0: balanced, r1: none, ..."."""
    separate = meta_model.get("merge_mode") == "separate"
    canonical = _fit_class_weight(meta_model.get("fit") or {}, separate)
    fitted = repeat_fits(meta_model)
    values = [canonical] + [_fit_class_weight(f.get("fit") or {}, separate) for f in fitted]
    if len(set(values)) == 1:
        return canonical
    return ", ".join(f"r{r}: {value}" for r, value in zip([0] + [f["repeat"] for f in fitted], values))


def repeat_fits(meta_model: dict[str, Any]) -> list[dict[str, Any]]:
    """The model's fits on repeats 1.. of its split (meta_model.json `repeats.fitted`; none for a
    model of one split, or one trained before repeats existed)."""
    return list((meta_model.get("repeats") or {}).get("fitted", []))


def protocol(params: ResolvedParams, meta_model: dict[str, Any]) -> dict[str, Any]:
    """How a score was obtained, stated beside it everywhere it is read (metrics.json, meta_eval.json,
    the report, reports/index.json and the leaderboard, MLflow, Dagster): the kind of split (a split
    that lets a speaker sit on both sides flatters every score), the seed, the class weighting and
    the number of splits the score is the mean of (split.repeats; 1 for a family that is fitted on
    the canonical split only)."""
    return {
        "split": split_kind(params.split),
        "seed": params.seed,
        "class_weight": model_class_weight(meta_model),
        "splits": 1 + len(repeat_fits(meta_model)),
    }


def protocol_note(p: dict[str, Any]) -> str:
    """A protocol as one line for readers: "split grouped by speaker · seed 42 · class weights balanced",
    with " · mean of 5 splits" after the seed when the score is a mean over repeated splits."""
    splits = int(p.get("splits") or 1)
    repeated = f" · mean of {splits} splits" if splits > 1 else ""
    return f"split {p['split']} · seed {p['seed']}{repeated} · class weights {p['class_weight']}"


def repeatable(family: families.Family) -> bool:
    """Whether split.repeats refits the family on every repeat: a supervised family that fits from
    train.tsv (check, sklearn), cheap to fit again in process. spaCy and transformers fit from
    files pre-built for the canonical split (formats/) and take minutes; a clustering is not
    ranked or compared: those are fitted and scored on the canonical split only, and say so."""
    return family.reads == "tsv" and family.supervised


def _single_split_note(spec: ModelSpec, family: families.Family, requested: int) -> str | None:
    """Why a model of a repeated split (split.repeats > 1) is fitted on the canonical split only."""
    if requested <= 1 or repeatable(family):
        return None
    if not family.supervised:
        return f"1 of {requested} splits: a clustering ({spec.family}) is scored on the canonical split only"
    return (
        f"1 of {requested} splits: {spec.family} fits from the {family.reads!r} files pre-built for the canonical split, "
        "not from train.tsv, so it is fitted and scored on the canonical split only (its interval has no between-split part)"
    )


def _train_columns(params: ResolvedParams, family: families.Family) -> set[str] | None:
    """What training reads of train.tsv: the family's columns (None: all), the document ids, the
    label, the dataset's source field (merge_mode separate) and the split's group_by (spaCy's dev slice)."""
    if family.train_columns is None:
        return None
    return {"doc_id", "label", params.dataset.source_field, *family.train_columns, *filter(None, [params.split.group_by])}


def train_model(params: ResolvedParams, model_id: str, spec: ModelSpec, root: Path) -> dict[str, Any]:
    """Fit `model_id` on train.tsv (capped by the hardware preset) into models/<ds>/<view>/<family>/<id>/."""
    paths = ProjectPaths(root)
    family = families.build(spec.family, spec.params)
    train = read_tsv(params, root, "train", _train_columns(params, family))  # the job set never reaches a fit
    view_stamp, _ = prepared_split(params, root)
    meta_view = _read_json(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    meta_formats = _read_json(paths.processed_dir(params.dataset_id, params.view) / "meta_formats.json")
    inputs = lineage.model_inputs(params, model_id, spec)
    cap = params.hardware.cap(spec.family)
    used = train.iloc[:cap] if cap is not None and len(train) > cap else train  # train.tsv is shuffled (seeded)
    labels = sorted(meta_formats["labels"])
    # merge_mode separate refuses a family that reads a pooled pre-built format before looking for it
    corpus_sets = _corpus_train_sets(params, spec, family, train, cap) if params.dataset.merge_mode == "separate" else None
    fmt = model_format(params, model_id, spec, family, meta_formats, len(train))
    read = lineage.format_version(view_stamp["version"], family.reads, lineage.rows_read(cap, len(train)))
    version = lineage.model_version(read, inputs)
    data = families.TrainData(
        train=used.reset_index(drop=True),
        labels=labels,
        seed=params.seed,
        hardware=params.hardware,
        root=root,
        formats=fmt,
        class_weights=meta_view["balance"]["class_weights"],
    )
    seed_everything(params.seed)
    target = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    started, started_at = time.perf_counter(), now_iso()
    seeds = (meta_view["split"].get("repeats") or {}).get("seeds", [params.seed])
    if family.ranks_terms:  # the evaluation's label-validity diagnostics, computed beside the fit
        diagnostics.view_diagnostics_ahead(params, root, len(train))
    with atomic_dir(target) as tmp:
        if corpus_sets is not None:
            info, by_corpus = _fit_by_corpus(params, family, data, corpus_sets, tmp)
        else:
            info, by_corpus = family.fit(data, tmp), None
        canonical_seconds = round(time.perf_counter() - started, 3)
        fitted = (
            [_fit_repeat(params, spec, family, data, cap, r, seed, tmp, root) for r, seed in enumerate(seeds) if r]
            if repeatable(family)
            else []
        )
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
            "split": split_kind(params.split),
            "repeats": {
                "requested": len(seeds),
                "seeds": seeds,
                "seed_derivation": REPEAT_SEEDS,
                "canonical_train_seconds": canonical_seconds,
                "fitted": fitted,
                "note": _single_split_note(spec, family, len(seeds)),
            },
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "started_at": started_at,  # the fit (every split's), to the ms: the MLflow run's span
            "ended_at": now_iso(),
            "training_id": uuid.uuid4().hex,  # this fit, whatever its version (evaluations name the fit they scored)
            "split_version": view_stamp["version"],
            "lineage": lineage.stamp(
                version,
                {"formats": read, "view": view_stamp["version"], "params_hash": params.params_hash, **inputs},
                [],
            ),
        }
        if by_corpus is not None:
            meta.update(
                merge_mode="separate",
                source_field=params.dataset.source_field,
                n_train_used=sum(f["n_train_used"] for f in by_corpus.values()),
                truncated=any(f["truncated"] for f in by_corpus.values()),
                by_corpus=by_corpus,
            )
            meta["lineage"]["files"] = [f"{BY_CORPUS}/{cid}" for cid in by_corpus]  # a deleted corpus model: missing
        meta["lineage"]["files"] += [f["model_dir"] for f in fitted]  # a deleted repeat model: missing
        meta["class_weight"] = model_class_weight(meta)  # the fit's, stated in every report of the model
        write_json(tmp / "meta_model.json", {k: v for k, v in meta.items() if k != "lineage"})
    return meta


def model_format(
    params: ResolvedParams, model_id: str, spec: ModelSpec, family: families.Family, meta_formats: dict[str, Any], n_train: int
) -> dict[str, Any]:
    """The entry of meta_formats.json for the format the model reads, if it holds the train rows the
    model reads (formats on demand: a format holds the rows of the caps it was written for); else a
    LineageError saying to prepare again (never fit on a format that lacks the model's documents)."""
    entry = families.input_format(family, meta_formats)
    n = formats.rows_needed(params, spec.family, n_train)
    if not formats.covers(entry, n):
        have = formats.held(entry)
        raise lineage.LineageError(
            f"{params.dataset_id}/{params.view}: the {family.reads} format on disk holds "
            f"{'an unknown number of' if have == 'unknown' else have if have is not None else 'all'} train docs, "
            f"{model_id} reads {'all ' + str(n_train) if n is None else n}; run the prepare stage of this profile first ({command('prepare', params)})"
        )
    return entry


def _fit_repeat(
    params: ResolvedParams,
    spec: ModelSpec,
    family: families.Family,
    data: families.TrainData,
    cap: int | None,
    repeat: int,
    seed: int,
    model_dir: Path,
    root: Path,
) -> dict[str, Any]:
    """The model fitted on repeat `repeat` of the split (its train.tsv under the view's repeats/),
    as the canonical fit is (the family's train-size cap on the shuffled rows, the balance
    strategy's class weights of that train set, one model per corpus for merge_mode separate), with
    the repeat's seed, into <model>/repeats/r<repeat>/. Returns its facts for meta_model.json."""
    started = time.perf_counter()
    own = params.model_copy(update={"seed": seed})  # the repeat is the split the profile gives with this seed
    train = read_repeat(params, root, repeat, "train", _train_columns(params, family))  # as the canonical fit reads it
    used = train.iloc[:cap] if cap is not None and len(train) > cap else train
    sub = model_dir / REPEATS / f"r{repeat}"
    sub.mkdir(parents=True)
    weights = balance.build(params.balance_strategy, params.balance).class_weights(train)
    repeat_data = replace(data, train=used.reset_index(drop=True), seed=seed, class_weights=weights)
    by_corpus = None
    seed_everything(seed)
    if params.dataset.merge_mode == "separate":
        info, by_corpus = _fit_by_corpus(own, family, repeat_data, _corpus_train_sets(own, spec, family, train, cap), sub)
    else:
        info = family.fit(repeat_data, sub)
    n_used = sum(f["n_train_used"] for f in by_corpus.values()) if by_corpus else len(used)
    return {
        "repeat": repeat,
        "seed": seed,
        "model_dir": f"{REPEATS}/r{repeat}",
        "n_train_available": len(train),
        "n_train_used": n_used,
        "truncated": n_used < len(train),
        "train_seconds": round(time.perf_counter() - started, 3),
        "fit": info,
        **({"by_corpus": by_corpus} if by_corpus is not None else {}),
    }


def _corpus_train_sets(
    params: ResolvedParams, spec: ModelSpec, family: families.Family, train: pd.DataFrame, cap: int | None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """merge_mode separate: (rows, rows used) of train.tsv for each corpus, the family's train-size
    cap applied per corpus; or an error, before any folder is written."""
    if family.reads != "tsv":
        # hf / spacy read files pre-built from the pooled train set, in its order (formats/): a
        # corpus's rows are not a prefix of them, so those families cannot fit one corpus alone
        raise ValueError(
            f"merge_mode separate: family {spec.family!r} trains from the pooled pre-built {family.reads!r} files, "
            f"which cannot be restricted to one corpus; use a family that reads train.tsv (check, sklearn, cluster) "
            f"or merge_mode juxtaposed for dataset {params.dataset_id!r}"
        )
    sets = {}
    for cid in params.dataset.corpus_ids:
        rows = train[train[params.dataset.source_field] == cid]  # train.tsv's (seeded, shuffled) order: a cap takes a random subset
        used = rows.iloc[:cap] if cap is not None and len(rows) > cap else rows
        present = sorted(set(used["label"]))
        if family.supervised and len(present) < 2:
            raise ValueError(
                f"merge_mode separate: corpus {cid!r} of dataset {params.dataset_id!r} has {len(used)} train documents "
                f"with labels {present} in view {params.view!r}: a classifier of its own needs two classes at least"
            )
        sets[cid] = (rows, used)
    return sets


def _fit_by_corpus(
    params: ResolvedParams,
    family: families.Family,
    data: families.TrainData,
    corpus_sets: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    model_dir: Path,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """merge_mode separate: one model per corpus in by_corpus/<corpus_id>/, each fitted on that
    corpus's train rows only (`_corpus_train_sets`), with the same seed for each fit. Returns
    (fit info, facts) per corpus, for meta_model.json."""
    strategy = balance.build(params.balance_strategy, params.balance)
    fits: dict[str, Any] = {}
    facts: dict[str, dict[str, Any]] = {}
    for cid, (rows, used) in corpus_sets.items():
        present = sorted(set(used["label"]))
        sub = model_dir / BY_CORPUS / cid
        sub.mkdir(parents=True)
        weights = strategy.class_weights(rows)
        seed_everything(params.seed)
        started = time.perf_counter()
        fits[cid] = family.fit(replace(data, train=used.reset_index(drop=True), class_weights=weights), sub)
        facts[cid] = {
            "n_train_available": len(rows),
            "n_train_used": len(used),
            "truncated": len(used) < len(rows),
            "labels": present,
            "label_counts": {str(k): int(v) for k, v in used["label"].value_counts().sort_index().items()},
            "class_weights": weights,
            "train_seconds": round(time.perf_counter() - started, 3),
            "model_dir": f"{BY_CORPUS}/{cid}",
        }
    return fits, facts


def evaluate_model(
    params: ResolvedParams,
    model_id: str,
    spec: ModelSpec,
    root: Path,
    eval_params: ResolvedParams | None = None,
    n_boot: int = 1000,
    plots: bool = True,
) -> dict[str, Any]:
    """Score the trained model on a job set: its own dataset's, or `eval_params`' (cross-dataset).
    A separate-mode model scores each document with the model of the document's corpus.
    `plots=False` leaves the confusion-matrix and reliability PNGs to `draw_confusions` (a sweep
    run: `pepm sweep` draws them, matplotlib loaded once per sweep rather than once per run)."""
    started_at = now_iso()  # the evaluation (reading, scoring, reports): the MLflow run's span
    paths = ProjectPaths(root)
    eval_params = eval_params or params
    if eval_params.view != params.view:
        raise ValueError(f"cross-dataset evaluation needs the same view ({params.view} vs {eval_params.view})")
    model_dir = paths.model_dir(params.dataset_id, params.view, spec.family, model_id)
    model_stamp, eval_view = trained_model(params, model_id, spec, root, eval_params)
    meta_model = _read_json(model_dir / "meta_model.json")
    job = read_tsv(eval_params, root, "job")
    family = families.build(spec.family, spec.params)
    texts = job["text"].tolist()
    groups = _corpus_groups(params, eval_params, meta_model, job)  # None unless one model per corpus
    started = time.perf_counter()
    pred, confidence, class_scores = (
        family.predict_scores(model_dir, texts) if groups is None else _predict_by_corpus(family, model_dir, job, groups)
    )
    canonical = ScoredSplit(0, eval_params.seed, job, list(pred), class_scores)
    splits = [canonical] + _score_repeats(params, eval_params, family, model_dir, meta_model, root)
    predict_seconds = time.perf_counter() - started
    validation = _validation_scores(params, eval_params, family, model_dir, meta_model, root)
    out_dir = paths.report_dir(params.dataset_id, params.view, spec.family, model_id, eval_params.dataset_id)
    title = f"{model_id} · trained on {params.dataset_id} · job of {eval_params.dataset_id} · {params.view}"
    proto = protocol(params, meta_model)
    with atomic_dir(out_dir) as tmp:
        scores, summary, by_corpus = _write_reports(
            tmp, params, eval_params, family, model_dir, meta_model, splits, groups, n_boot, title, proto, confidence, validation
        )
        figures = side_worker.call(draw_confusions, tmp) if plots else None  # `pepm run`: in its second process, meanwhile
        validity = diagnostics.evaluation_diagnostics(tmp, params, root)  # label validity: diagnostics.json, the report's WARNINGs
        if figures is not None:
            figures.result()
        meta_eval = {
            **_eval_facts(params, eval_params, model_id, spec, family, meta_model, len(job), predict_seconds, summary),
            **proto,
            **({"validation": validation} if validation is not None else {}),
            **_eval_versions(
                params,
                eval_params,
                model_id,
                spec,
                meta_model,
                model_stamp,
                eval_view,
                separate=groups is not None,
                repeated=len(splits) > 1,
            ),
            **({"merge_mode": "separate", "by_corpus": by_corpus} if by_corpus is not None else {}),
            "label_validity_warnings": [w["message"] for w in validity["warnings"]],
            "started_at": started_at,
            "ended_at": now_iso(),
        }
        unstamped = {k: v for k, v in meta_eval.items() if k != "lineage"}
        write_json(tmp / "meta_eval.json", unstamped)
        files = {name.name: paths.rel(out_dir / name.name) for name in sorted(tmp.iterdir())}
    entry = {**unstamped, "version": meta_eval["lineage"]["version"], "metrics": summary, "files": files, "model_dir": paths.rel(model_dir)}
    return {**meta_eval, "metrics": summary, "scores": scores, "report_dir": out_dir, "index_entry": entry}


@dataclass
class ScoredSplit:
    """One split's job set and the predictions of the model fitted on that split's train set:
    repeat 0 (the canonical split, the profile's seed) or a repeat of split.repeats."""

    repeat: int
    seed: int
    job: pd.DataFrame
    pred: list[str]
    scores: families.ClassScores | None = None  # every class's score per job row (the canonical split's; None: the family gives none)

    def part(self, rows: pd.Index) -> ScoredSplit:
        """The same split restricted to the job rows `rows` (one corpus's, merge_mode separate)."""
        keep = self.job.index.isin(rows)
        scores = self.scores.rows(keep) if self.scores is not None else None
        return ScoredSplit(self.repeat, self.seed, self.job[keep], [p for p, k in zip(self.pred, keep) if k], scores)


def _score_repeats(
    params: ResolvedParams, eval_params: ResolvedParams, family: families.Family, model_dir: Path, meta_model: dict[str, Any], root: Path
) -> list[ScoredSplit]:
    """Each repeat's model (meta_model.json `repeats.fitted`) on the job set of the repeat drawn
    with the same seed in the evaluated view (its own; for a cross-dataset evaluation, the other
    dataset's split prepared with the same profile, hence the same seeds)."""
    fitted = repeat_fits(meta_model)
    if not fitted:
        return []
    meta_view = _read_json(ProjectPaths(root).view_dir(eval_params.dataset_id, eval_params.view) / "meta_view.json")
    seeds = (meta_view["split"].get("repeats") or {}).get("seeds", [eval_params.seed])
    out = []
    for fit in fitted:
        if fit["seed"] not in seeds:
            raise lineage.LineageError(
                f"model {meta_model['model_id']} was fitted on a repeat of seed {fit['seed']}; the split of "
                f"{eval_params.dataset_id}/{eval_params.view} on disk has no repeat of that seed (its seeds: {seeds}): "
                f"prepare it with the same split.repeats and seed ({command('prepare', eval_params)})"
            )
        job = read_repeat(eval_params, root, seeds.index(fit["seed"]), "job")
        sub = model_dir / fit["model_dir"]
        groups = _corpus_groups(params, eval_params, {**meta_model, "by_corpus": fit.get("by_corpus")}, job)
        pred = family.predict(sub, job["text"].tolist()) if groups is None else _predict_by_corpus(family, sub, job, groups)[0]
        out.append(ScoredSplit(fit["repeat"], fit["seed"], job, [str(p) for p in pred]))
    return out


def _validation_scores(
    params: ResolvedParams, eval_params: ResolvedParams, family: families.Family, model_dir: Path, meta_model: dict[str, Any], root: Path
) -> dict[str, Any] | None:
    """The model's accuracy and macro-F1 on its own dataset's valid.tsv (split.validation_prop > 0),
    by the code that scores the job set: what a model selection compares, so that the job set
    scores the model chosen and never makes the choice. With one model per corpus (merge_mode
    separate), each validation document is scored by its corpus's model, like a job document.

    None for a clustering (no labels to select on) and for a cross-dataset evaluation: the
    validation set is the model's own dataset's, already in that dataset's evaluation; repeated in
    the report on another dataset it would read as a validation on that dataset, and that
    dataset's own valid.tsv must never select a model trained elsewhere (it would be fitted to the
    target domain, which the cross-dataset score is there to measure blind)."""
    if not family.supervised or params.split.validation_prop <= 0 or eval_params.dataset_id != params.dataset_id:
        return None
    valid = read_tsv(params, root, "valid")
    if valid.empty:  # a grouped split can hold out no whole group
        return {"accuracy": None, "macro_f1": None, "n": 0}
    groups = _corpus_groups(params, params, meta_model, valid)
    texts = valid["text"].tolist()
    pred = family.predict_scored(model_dir, texts)[0] if groups is None else _predict_by_corpus(family, model_dir, valid, groups)[0]
    labels = sorted(set(meta_model["labels"]) | set(valid["label"]))
    scores = metrics.classification_metrics(valid["label"].tolist(), list(pred), labels)
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"], "n": scores["n"]}


def _write_reports(
    out_dir: Path,
    params: ResolvedParams,
    eval_params: ResolvedParams,
    family: families.Family,
    model_dir: Path,
    meta_model: dict[str, Any],
    splits: list[ScoredSplit],
    groups: dict[str, pd.Index] | None,
    n_boot: int,
    title: str,
    proto: dict[str, Any],
    confidence: list[float] | None = None,
    validation: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, dict[str, Any]] | None]:
    """The report folder but meta_eval.json: the whole job set's report (and its scores by each
    compare_by field), predictions.tsv (with a `score` column, the model's confidence in each
    predicted label, when the family gives one, and the document's group_by value, e.g. `speaker`,
    when the split is grouped: the unit the intervals resample), predictions_by_split.tsv with
    repeated splits, and for one model per corpus each corpus's report and their comparison.
    `splits[0]` is the canonical split (job.tsv). Returns (metrics.json, its summary for the index,
    the per-corpus rows or None); `validation` (`_validation_scores`) goes into both metrics.json and
    the summary, `proto` (`protocol`) into every metrics.json and report. A family that scores
    every class (`families.ClassScores`) adds one `score_<class>` column per class (in `labels`
    order, after the others) to predictions.tsv, and its calibration to metrics.json."""
    job, pred = splits[0].job, splits[0].pred
    labels = sorted(set(meta_model["labels"]) | set().union(*(set(s.job["label"]) for s in splits)))
    cluster = cluster_field(eval_params, job)
    pooled_model = model_dir if groups is None else None
    plan = meta_model.get("repeats") or {}
    scores = _write_report(out_dir, family, pooled_model, splits, labels, proto, n_boot, title, cluster, validation, plan)
    if family.supervised:
        for field in _compare_fields(params, eval_params, job):
            write_json(out_dir / f"metrics_by_{field}.json", metrics.metrics_by_group(job, pred, field, labels))
    summary = _summary(scores, family.supervised)
    predictions = pd.DataFrame({"doc_id": job["doc_id"], "label": job["label"], "predicted": pred})
    if confidence is not None:
        predictions["score"] = [round(float(c), 6) for c in confidence]
    if cluster is not None and cluster not in predictions.columns:
        predictions[cluster] = job[cluster].to_numpy()
    by_corpus = None
    score_columns = _score_columns(splits[0].scores, labels) if family.supervised else None
    if groups is not None:
        predictions["predicted_by"] = _model_of_row(job, groups)
        source = eval_params.dataset.source_field
        by_corpus = _report_by_corpus(out_dir, family, model_dir, splits, labels, groups, meta_model, proto, n_boot, title, cluster, source)
        _write_comparison(out_dir, by_corpus, summary, family.supervised, title, len(job), proto)
    if score_columns is not None:
        predictions = pd.concat([predictions, score_columns], axis=1)
    write_tsv(predictions, out_dir / "predictions.tsv")
    if len(splits) > 1:
        write_tsv(predictions_by_split(splits, cluster), out_dir / BY_SPLIT)
    return scores, summary, by_corpus


def _score_columns(scores: families.ClassScores | None, labels: list[str]) -> pd.DataFrame | None:
    """predictions.tsv's `score_<class>` columns (labels order, rounded to 6 decimals; a class the
    model never saw: 0); None when the family gives no class scores."""
    if scores is None:
        return None
    matrix = np.round(scores.aligned(labels), 6)
    return pd.DataFrame({f"{SCORE_PREFIX}{label}": matrix[:, k] for k, label in enumerate(labels)})


def _calibration(family: families.Family, split: ScoredSplit, labels: list[str], repeated: bool) -> dict[str, Any]:
    """metrics.json's `calibration` of the canonical split's class scores (metrics.calibration_metrics),
    or why there is none (`available: false`, `reason`)."""
    if split.scores is None:
        return {"available": False, "reason": f"family {type(family).__name__} gives no class scores (no predict_scores)"}
    scored = metrics.calibration_metrics(split.job["label"].tolist(), split.pred, split.scores.aligned(labels), labels, split.scores.kind)
    if repeated:
        scored["split"] = "the canonical split (repeat 0, job.tsv): class scores are kept for it only"
    return scored


def cluster_field(eval_params: ResolvedParams, job: pd.DataFrame) -> str | None:
    """The column whose values the intervals resample as clusters: the split's group_by (speaker)
    when the split is grouped; None (documents are resampled) when it is stratified or random."""
    field = eval_params.split.group_by
    return field if field and field in job.columns else None


def predictions_by_split(splits: list[ScoredSplit], cluster: str | None) -> pd.DataFrame:
    """predictions_by_split.tsv: every split's job predictions, one row per (split, document):
    repeat, seed, doc_id, label, predicted and the cluster column (e.g. speaker) when grouped."""
    frames = []
    for s in splits:
        frame = pd.DataFrame(
            {
                "repeat": s.repeat,
                "seed": s.seed,
                "doc_id": s.job["doc_id"].to_numpy(),
                "label": s.job["label"].to_numpy(),
                "predicted": s.pred,
            }
        )
        if cluster is not None:
            frame[cluster] = s.job[cluster].to_numpy()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _write_report(
    out_dir: Path,
    family: families.Family,
    model: Path | None,
    splits: list[ScoredSplit],
    labels: list[str],
    proto: dict[str, Any],
    n_boot: int,
    title: str,
    cluster: str | None = None,
    validation: dict[str, Any] | None = None,
    plan: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """metrics.json and the readable report of one set of predictions (the whole job set's, or one
    corpus's), on one split or several (`splits`, the canonical first). `model`: the one model that
    scored them all, whose top terms or embedding describe them; None where each corpus's model
    scored its own documents (no pooled top terms, and no pooled silhouette: each corpus's model
    embeds in a space of its own). `proto`: how the scores were obtained (`protocol`: its seed also
    seeds the canonical split's bootstrap, each repeat's seed its own), under that key in
    metrics.json and the report's second line. `cluster`: the column resampled as clusters (None:
    documents). `validation`: the model's scores on the validation set, kept in metrics.json under
    that key. `plan`: meta_model.json's `repeats` (split.repeats requested, and why a family is
    fitted on the canonical split only).

    A classifier's accuracy, macro-F1 and weighted-F1 are the mean over the splits; `repeats` holds
    their mean, sd, each split's scores (with its seed and own interval) and the variance parts of
    the interval, `ci95` the interval (`metrics.repeated_scores`). per_class, confusion_matrix and n
    are the canonical split's (one concrete job set; each split's scores are in `repeats`)."""
    canonical = splits[0]
    gold, pred = canonical.job["label"].tolist(), canonical.pred
    if family.supervised:
        scores = metrics.classification_metrics(gold, pred, labels)
        scores.update(_repeated_scores(splits, labels, n_boot, cluster, proto["seed"], plan or {}, scores))
        scores["calibration"] = _calibration(family, canonical, labels, len(splits) > 1)
        scores["title"] = title  # what draw_confusions titles the PNGs with
        write_text(out_dir / "classification_report.txt", _report_text(scores, title, proto))
        terms = family.top_terms(model, TOP_TERMS) if model is not None else None
        if terms:
            write_json(out_dir / "top_terms.json", terms)
    else:
        embedding = family.embed(model, canonical.job["text"].tolist()) if model is not None else None
        scores = metrics.cluster_metrics(gold, pred, embedding, seed=proto["seed"])
        write_text(
            out_dir / "classification_report.txt",
            f"{title}\n{protocol_note(proto)}\n\nclustering: "
            + json.dumps({k: v for k, v in scores.items() if k != "contingency"}, indent=2)
            + "\n",
        )
    scores["protocol"] = proto
    if validation is not None:
        scores["validation"] = validation
    write_json(out_dir / "metrics.json", scores)
    return scores


SCORES = ("accuracy", "macro_f1", "weighted_f1")


def _repeated_scores(
    splits: list[ScoredSplit],
    labels: list[str],
    n_boot: int,
    cluster: str | None,
    seed: int,
    plan: dict[str, Any],
    canonical: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json's headline scores over the splits (`_write_report`): each split scored and
    bootstrapped (its own seed; the canonical split's bootstrap seed is the profile's), then mean,
    sd and the pooled interval (metrics.repeated_scores)."""
    per_split, reps = [], []
    for s in splits:
        split_gold = s.job["label"].tolist()
        m = canonical if s.repeat == 0 else metrics.classification_metrics(split_gold, s.pred, labels)
        clusters = s.job[cluster].tolist() if cluster is not None else None
        boot_seed = seed if s.repeat == 0 else s.seed
        r = metrics.bootstrap_replicates(split_gold, s.pred, labels, boot_seed, n_boot, clusters)
        entry = {"repeat": s.repeat, "seed": s.seed, "n": m["n"], **{k: m[k] for k in SCORES}}
        entry["ci95"] = {k: metrics._percentile_interval(r[k], 0.95) for k in ("accuracy", "macro_f1")}
        if clusters is not None:
            entry["n_clusters"] = len(set(map(str, clusters)))
        per_split.append(entry)
        reps.append({**entry, "replicates": r})
    combined = metrics.repeated_scores(reps)
    weighted = np.array([e["weighted_f1"] for e in per_split])
    n = len(per_split)
    method = metrics.DOCUMENT_METHOD if cluster is None else f"{metrics.CLUSTER_METHOD}: whole {cluster}s of the job set"
    ci95 = {
        "level": 0.95,
        "n_boot": n_boot,
        "seed": seed,
        "method": method if n == 1 else f"{metrics.POOLED_METHOD}; each split: {method}",
        "resampled": cluster or "document",
        **({"n_clusters": per_split[0]["n_clusters"]} if cluster is not None else {}),
        "accuracy": combined["interval"]["accuracy"],
        "macro_f1": combined["interval"]["macro_f1"],
        **({"variance": combined["variance"], "n_splits": n} if n > 1 else {}),
    }
    mean = {**combined["mean"], "weighted_f1": float(weighted.mean())}
    sd = {**combined["sd"], "weighted_f1": float(weighted.std(ddof=1))} if n > 1 else {k: None for k in SCORES}
    note = plan.get("note")
    repeats = {
        "n": n,
        "requested": int(plan.get("requested", n)),
        "seeds": [e["seed"] for e in per_split],
        "seed_derivation": REPEAT_SEEDS,
        "mean": mean,
        "sd": sd,
        "per_split": per_split,
        **({"note": note} if note else {}),
        **(
            {"canonical": "per_class, confusion_matrix, n, predictions.tsv and metrics_by_<field>.json: the canonical split (repeat 0)"}
            if n > 1
            else {}
        ),
    }
    return {**mean, "ci95": ci95, "repeats": repeats}


def draw_confusions(report_dir: Path) -> list[Path]:
    """The report figures not drawn yet beside each metrics.json under `report_dir` (the whole job
    set's, and each corpus's of a separate-mode model): confusion_matrix.png where it has a
    confusion matrix, reliability_diagram.png where it has calibration bins (class scores)."""
    drawn = []
    for path in sorted(Path(report_dir).rglob("metrics.json")):
        png, reliability = path.with_name(CONFUSION_PNG), path.with_name(RELIABILITY_PNG)
        if png.exists() and reliability.exists():
            continue
        scores = _read_json(path)
        if "confusion_matrix" in scores and not png.exists():
            drawn.append(metrics.plot_confusion(scores["confusion_matrix"], scores["labels"], png, scores.get("title", "")))
        calibration = scores.get("calibration") or {}
        if calibration.get("bins") and not reliability.exists():
            from .plotting import plot_reliability

            drawn.append(plot_reliability(calibration, reliability, scores.get("title", ""), len(scores["labels"])))
    return drawn


def _eval_facts(
    params: ResolvedParams,
    eval_params: ResolvedParams,
    model_id: str,
    spec: ModelSpec,
    family: families.Family,
    meta_model: dict[str, Any],
    n_job: int,
    predict_seconds: float,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """meta_eval.json's account of the run: what was scored on what, and whether the scores pass
    the model's early_stop thresholds."""
    quality_ok, quality_flags = spec.early_stop.judge(summary)
    return {
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
        "n_job": n_job,
        "predict_seconds": round(predict_seconds, 3),
        "model_created_at": meta_model["created_at"],
        "n_train_used": meta_model["n_train_used"],
        "truncated": meta_model["truncated"],
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quality_ok": quality_ok,
        "quality_flags": quality_flags,
    }


def _eval_versions(
    params: ResolvedParams,
    eval_params: ResolvedParams,
    model_id: str,
    spec: ModelSpec,
    meta_model: dict[str, Any],
    model_stamp: dict[str, Any],
    eval_view: dict[str, Any],
    separate: bool,
    repeated: bool = False,
) -> dict[str, Any]:
    """meta_eval.json's versions of what the scores come from, and its lineage stamp: the scores are
    stale once the model is fitted again or the job set changes."""
    fit = meta_model.get("training_id")
    version = lineage.evaluation_version(model_stamp["version"], eval_view["version"], fit)
    outputs = ["metrics.json", *([f"{COMPARISON}.tsv"] if separate else []), *([BY_SPLIT] if repeated else [])]
    return {
        "settings_hash": lineage.digest(params.settings_hash, eval_params.settings_hash, lineage.model_inputs(params, model_id, spec)),
        "model_version": model_stamp["version"],
        "split_version": model_stamp["inputs"]["view"],
        "eval_split_version": eval_view["version"],
        "lineage": lineage.stamp(
            version, {"model": model_stamp["version"], "eval_view": eval_view["version"], "training_id": fit}, outputs
        ),
    }


def _corpus_groups(
    params: ResolvedParams, eval_params: ResolvedParams, meta_model: dict[str, Any], job: pd.DataFrame
) -> dict[str, pd.Index] | None:
    """merge_mode separate: the job rows of each corpus, each to be scored by that corpus's model
    (by corpus id, also for another dataset's job set: a corpus without a model of its own is an
    error, never scored by another corpus's model); None for a model of the pooled train set."""
    if params.dataset.merge_mode != "separate":
        return None
    fitted = meta_model.get("by_corpus")
    if not fitted:
        raise lineage.LineageError(
            f"model {meta_model['model_id']} of {params.dataset_id}/{params.view} is one model of the pooled train set, "
            f"fitted before merge_mode separate trained one model per corpus; re-train it ({command('train', params)})"
        )
    source = eval_params.dataset.source_field
    groups = {str(cid): idx for cid, idx in job.groupby(source, sort=True).groups.items()}
    unknown = sorted(set(groups) - set(fitted))
    if unknown:
        raise ValueError(
            f"model {meta_model['model_id']} of {params.dataset_id} (merge_mode separate) has one model per corpus, for "
            f"{sorted(fitted)}; the job set of {eval_params.dataset_id} holds documents of {unknown} ({source}), which no "
            f"corpus model was trained for: evaluate it on a dataset of those corpora only"
        )
    return groups


def _predict_by_corpus(
    family: families.Family, model_dir: Path, job: pd.DataFrame, groups: dict[str, pd.Index]
) -> tuple[list[str], list[float] | None, families.ClassScores | None]:
    """Each corpus's job documents predicted (and scored, where the family scores) by that corpus's
    model; cluster ids are prefixed with the corpus (cluster 0 of one corpus's model is not cluster
    0 of another's). Class scores (where every corpus's model gives them) over the classes of all
    the corpus models, 0 for a class a corpus's model never saw."""
    pred = pd.Series("", index=job.index, dtype=object)
    confidence: pd.Series | None = pd.Series(0.0, index=job.index, dtype=float)
    parts: dict[str, families.ClassScores] | None = {}
    for cid, idx in groups.items():
        got, scores, by_class = family.predict_scores(model_dir / BY_CORPUS / cid, job.loc[idx, "text"].tolist())
        pred[idx] = got if family.supervised else [c if c == "noise" else f"{cid}:{c}" for c in got]
        if scores is None or confidence is None:
            confidence = None
        else:
            confidence[idx] = scores
        if by_class is None or parts is None:
            parts = None
        else:
            parts[cid] = by_class
    return pred.tolist(), None if confidence is None else confidence.tolist(), _join_class_scores(job, groups, parts)


def _join_class_scores(
    job: pd.DataFrame, groups: dict[str, pd.Index], parts: dict[str, families.ClassScores] | None
) -> families.ClassScores | None:
    """The corpus models' class scores as one matrix over the job rows (columns: every class of any of them)."""
    if not parts:
        return None
    classes = sorted(set().union(*(p.classes for p in parts.values())))
    matrix = np.zeros((len(job), len(classes)))
    position = pd.Series(np.arange(len(job)), index=job.index)
    for cid, idx in groups.items():
        matrix[position[idx].to_numpy()] = parts[cid].aligned(classes)
    kinds = {p.kind for p in parts.values()}
    return families.ClassScores(classes, matrix, kinds.pop() if len(kinds) == 1 else families.MARGIN_SOFTMAX)


def _model_of_row(job: pd.DataFrame, groups: dict[str, pd.Index]) -> list[str]:
    """predictions.tsv's `predicted_by`: the model folder (relative to the model's) that predicted each row."""
    owner = pd.Series("", index=job.index, dtype=object)
    for cid, idx in groups.items():
        owner[idx] = f"{BY_CORPUS}/{cid}"
    return owner.tolist()


def _report_by_corpus(
    out_dir: Path,
    family: families.Family,
    model_dir: Path,
    splits: list[ScoredSplit],
    labels: list[str],
    groups: dict[str, pd.Index],
    meta_model: dict[str, Any],
    proto: dict[str, Any],
    n_boot: int,
    title: str,
    cluster: str | None,
    source: str,
) -> dict[str, dict[str, Any]]:
    """merge_mode separate: by_corpus/<corpus_id>/ with each corpus's metrics.json and report
    (its job documents of every split, its own models' predictions, its model's class weighting);
    returns one summary row per corpus."""
    rows: dict[str, dict[str, Any]] = {}
    for cid, idx in groups.items():
        sub = out_dir / BY_CORPUS / cid
        sub.mkdir(parents=True)
        parts = [s.part(s.job.index[s.job[source] == cid]) if s.repeat else s.part(idx) for s in splits]
        sub_title = f"{title} · corpus {cid}, scored by its own model"
        own = {**proto, "class_weight": str(meta_model["fit"][cid].get("class_weight", NOT_RECORDED))}
        plan = meta_model.get("repeats") or {}
        scores = _write_report(sub, family, model_dir / BY_CORPUS / cid, parts, labels, own, n_boot, sub_title, cluster, plan=plan)
        fitted = meta_model["by_corpus"][cid]
        rows[cid] = {
            "n_train_used": fitted["n_train_used"],
            "truncated": fitted["truncated"],
            "n_job": len(idx),
            "metrics": _summary(scores, family.supervised),
        }
    return rows


def _write_comparison(
    out_dir: Path,
    by_corpus: dict[str, dict[str, Any]],
    pooled: dict[str, Any],
    supervised: bool,
    title: str,
    n_job: int,
    proto: dict[str, Any],
) -> None:
    """comparison_by_corpus.tsv (one row per corpus) and .md (the same, plus the pooled headline)."""
    names = ["accuracy", "macro_f1"] if supervised else ["ari", "nmi", "homogeneity", "completeness", "n_clusters"]

    def cells(m: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            out[name] = m.get(name, float("nan"))
            if f"{name}_ci95" in m:
                out[f"{name}_low"], out[f"{name}_high"] = m[f"{name}_ci95"]
        return out

    rows = [
        {"corpus_id": cid, "n_train_used": r["n_train_used"], "truncated": r["truncated"], "n_job": r["n_job"], **cells(r["metrics"])}
        for cid, r in by_corpus.items()
    ]
    write_tsv(pd.DataFrame(rows), out_dir / f"{COMPARISON}.tsv")

    def fmt(m: dict[str, Any], name: str) -> str:
        if name not in m:
            return ""
        if isinstance(m[name], int):  # n_clusters
            return str(m[name])
        ci = m.get(f"{name}_ci95")
        return f"{m[name]:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

    head = [
        "corpus",
        "train docs",
        "job docs",
        *({"accuracy": "accuracy [95% CI]", "macro_f1": "macro-F1 [95% CI]"}.get(n, n) for n in names),
    ]
    lines = [
        f"# {title}",
        "",
        protocol_note(proto),
        "",
        "merge_mode separate: one model per corpus, each trained on its corpus's train set and scored on its corpus's job documents.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for cid, r in by_corpus.items():
        train = f"{r['n_train_used']}{' (capped)' if r['truncated'] else ''}"
        lines.append("| " + " | ".join([cid, train, str(r["n_job"]), *(fmt(r["metrics"], n) for n in names)]) + " |")
    total = sum(r["n_train_used"] for r in by_corpus.values())
    lines.append("| all corpora (each by its own model) | " + " | ".join([str(total), str(n_job), *(fmt(pooled, n) for n in names)]) + " |")
    write_text(out_dir / f"{COMPARISON}.md", "\n".join(lines) + "\n")


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


def read_prepared_view(params: ResolvedParams, root: Path, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The stamp of the prepared split of `params` and its `names` TSVs (those present), read under
    the view's lock so that a concurrent prepare never hands over half of one split and half of
    another; LineageError when the view on disk is not this profile's."""
    from .locks import view_lock
    from .prepare import read_tsv_file

    view_dir = ProjectPaths(root).view_dir(params.dataset_id, params.view)
    with view_lock(root, params.dataset_id, params.view):
        stamp, _ = prepared_split(params, root)
        frames = {name: read_tsv_file(view_dir / f"{name}.tsv") for name in names if (view_dir / f"{name}.tsv").is_file()}
    return stamp, frames


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
    """An evaluation's headline for reports/index.json, the leaderboard, MLflow and Dagster: a
    classifier's mean scores over the splits with their interval, the number of splits, the sd of
    accuracy and macro-F1 over them (when several), each split's scores (`split_scores`, with its
    repeat and seed), the unit the intervals resample (`resampled`: the group_by field, e.g. speaker,
    or "document") and the note of a family fitted on the canonical split only."""
    if supervised:
        repeats = scores.get("repeats") or {}
        n_splits = int(repeats.get("n", 1))
        sd = repeats.get("sd") or {}
        return {
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            "weighted_f1": scores["weighted_f1"],
            "accuracy_ci95": scores["ci95"]["accuracy"],
            "macro_f1_ci95": scores["ci95"]["macro_f1"],
            "n_splits": n_splits,
            **({"accuracy_sd": sd["accuracy"], "macro_f1_sd": sd["macro_f1"]} if n_splits > 1 else {}),
            "resampled": scores["ci95"].get("resampled", "document"),
            "split_scores": [{k: e[k] for k in ("repeat", "seed", "accuracy", "macro_f1")} for e in repeats.get("per_split", [])],
            **({"splits_note": repeats["note"]} if repeats.get("note") else {}),
            **({"validation": scores["validation"]} if "validation" in scores else {}),
            **metrics.calibration_summary(scores.get("calibration")),
        }
    return {k: scores[k] for k in ("ari", "nmi", "homogeneity", "completeness", "n_clusters") if k in scores} | (
        {"silhouette": scores["silhouette"]} if "silhouette" in scores else {}
    )


def _report_text(scores: dict[str, Any], title: str, proto: dict[str, Any]) -> str:
    """A readable table of metrics.json's own numbers (macro-F1 over the classes present in the job
    set, as everywhere in pepm), with the bootstrap intervals, under the protocol they come from;
    with repeated splits, the per-class table is the canonical split's, the scores are the mean ±
    sd over the splits, and each split's scores follow."""
    repeats = scores.get("repeats") or {}
    n_splits = int(repeats.get("n", 1))
    width = max(12, *(len(label) for label in scores["labels"]))
    lines = [title, protocol_note(proto), ""]
    if n_splits > 1:
        lines.append(f"per class: the canonical split (repeat 0, seed {repeats['seeds'][0]}, job.tsv)")
    lines.append(f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}")
    for label, s in scores["per_class"].items():
        lines.append(f"{label:>{width}}  {s['precision']:9.4f}  {s['recall']:9.4f}  {s['f1']:9.4f}  {s['support']:9d}")
    ci = scores["ci95"]
    sd = repeats.get("sd") or {}

    def spread(name: str) -> str:
        return f" ± {sd[name]:.4f}" if n_splits > 1 and sd.get(name) is not None else ""

    unit = ci.get("resampled", "document")
    lines += [
        "",
        *([f"mean ± sd over {n_splits} splits (seeds {', '.join(map(str, repeats['seeds']))}):"] if n_splits > 1 else []),
        f"{'accuracy':>{width}}  {scores['accuracy']:.4f}{spread('accuracy')}  (95% CI {ci['accuracy'][0]:.4f}-{ci['accuracy'][1]:.4f})",
        f"{'macro-F1':>{width}}  {scores['macro_f1']:.4f}{spread('macro_f1')}  (95% CI {ci['macro_f1'][0]:.4f}-{ci['macro_f1'][1]:.4f})",
        f"{'weighted-F1':>{width}}  {scores['weighted_f1']:.4f}{spread('weighted_f1')}",
        f"{'documents':>{width}}  {scores['n']}; bootstrap n={ci['n_boot']}, seed={ci['seed']}"
        + (f", resampling whole {unit}s ({ci['n_clusters']} in the job set)" if unit != "document" else ""),
    ]
    if n_splits > 1:
        lines += ["", "interval: " + ci["method"], "", f"{'split':>{width}}  {'seed':>10}  {'n':>6}  {'accuracy':>9}  {'macro-F1':>9}"]
        for e in repeats["per_split"]:
            lines.append(f"{'r' + str(e['repeat']):>{width}}  {e['seed']:>10}  {e['n']:>6}  {e['accuracy']:9.4f}  {e['macro_f1']:9.4f}")
    if repeats.get("note"):
        lines += ["", repeats["note"]]
    lines += ["", *_calibration_lines(scores.get("calibration"), width)]
    return "\n".join(lines + [""])


def _calibration_lines(calibration: dict[str, Any] | None, width: int) -> list[str]:
    """The report's calibration lines: Brier (and the base-rate reference) and ECE, or why none."""
    if not calibration:
        return []
    if not calibration.get("available"):
        return [f"calibration: none ({calibration.get('reason', 'no class scores')})"]
    if calibration["brier"] is None:
        return ["calibration: no job document"]
    where = " (canonical split)" if calibration.get("split") else ""
    lines = [
        f"calibration{where}: scores are {calibration['scores'].replace('_', ' ')}",
        f"{'Brier':>{width}}  {calibration['brier']:.4f}  (job base rates for every document: {calibration['brier_base_rate']:.4f})",
        f"{'ECE':>{width}}  {calibration['ece']:.4f}  ({calibration['n_bins']} equal-width bins, top label; "
        f"mean score {calibration['mean_confidence']:.4f}, accuracy {calibration['accuracy']:.4f})",
    ]
    return lines + ([calibration["note"]] if calibration.get("note") else [])


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
