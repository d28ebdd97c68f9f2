"""The drift suite on a project's files: what is compared with what, and where the reports go.

    reports/drift/<dataset>/<view>/train_vs_job/      a split's train vs its job set (expected: no drift)
    reports/drift/_corpora/<corpus>/corpus_version/   a corpus's parsed version vs the one before it
    reports/drift/_between/<a>__vs__<b>/              one corpus vs another (2013 debates vs 2024 amendements)
    reports/drift/<dataset>/<view>/predictions/<model>@<eval_dataset>/
                                                      a model's scores and predicted labels on its own job
                                                      set vs on another dataset's (cross-dataset evaluation)
    reports/drift/alerts.{json,csv}                   every drift above threshold, over all reports

The previous version of a corpus is kept by `keep_corpus_version` (a copy of docs.parquet per
parsed version, the newest `keep_versions`), since parsing replaces data/interim/_corpora/<corpus>/.
Each report is read from files whose lineage stamp says what they are; the version compared is
recorded in the report's summary. No Dagster here: defs/assets/drift.py calls these.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from .. import lineage
from ..atomic import atomic_path
from ..paths import ProjectPaths
from .config import DriftConfig
from .report import DriftResult, compare, load_result, prediction_drift, write_alerts


class NothingToCompare(ValueError):
    """An input of a report is not there (no split, no parsed corpus): the message says what to run."""


def drift_root(paths: ProjectPaths) -> Path:
    return paths.reports / "drift"


def train_vs_job_dir(paths: ProjectPaths, dataset_id: str, view: str) -> Path:
    return drift_root(paths) / dataset_id / view / "train_vs_job"


def corpus_version_dir(paths: ProjectPaths, corpus_id: str) -> Path:
    return drift_root(paths) / "_corpora" / corpus_id / "corpus_version"


def between_dir(paths: ProjectPaths, first: str, second: str) -> Path:
    return drift_root(paths) / "_between" / f"{first}__vs__{second}"


def predictions_dir(paths: ProjectPaths, dataset_id: str, view: str, model_id: str, eval_dataset_id: str) -> Path:
    return drift_root(paths) / dataset_id / view / "predictions" / f"{model_id}@{eval_dataset_id}"


def history_dir(paths: ProjectPaths, corpus_id: str) -> Path:
    return paths.root / "data" / "interim" / "_corpora_history" / corpus_id


def _read_split(paths: ProjectPaths, dataset_id: str, view: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from ..prepare import read_tsv_file

    folder = paths.view_dir(dataset_id, view)
    stamp = lineage.read_stamp(folder / "meta_view.json")
    if stamp is None:
        raise NothingToCompare(f"{dataset_id}/{view}: no prepared split (data/interim/{dataset_id}/{view}/); prepare it first")
    return read_tsv_file(folder / "train.tsv"), read_tsv_file(folder / "job.tsv"), stamp["version"]


def _corpus_docs(paths: ProjectPaths, corpus_id: str) -> tuple[Path, str]:
    folder = paths.corpus_dir(corpus_id)
    stamp = lineage.read_stamp(folder / "parse_stats.json")
    if stamp is None:
        raise NothingToCompare(f"corpus {corpus_id}: not parsed (or its quality gate failed); run its corpus_docs first")
    return folder / "docs.parquet", stamp["version"]


def train_vs_job(root: Path, dataset_id: str, view: str, cfg: DriftConfig) -> DriftResult:
    """The split on disk: its train set (oversampled copies dropped) vs its job set."""
    paths = ProjectPaths(root)
    train, job, version = _read_split(paths, dataset_id, view)
    return compare(
        train,
        job,
        train_vs_job_dir(paths, dataset_id, view),
        cfg,
        check="train_vs_job",
        title=f"{dataset_id}/{view} (split {version}): train vs job",
        reference_name="train",
        current_name="job",
    )


def keep_corpus_version(root: Path, corpus_id: str, cfg: DriftConfig) -> tuple[Path, Path | None]:
    """Keep a copy of the parsed corpus under its version; return (this version's copy, the most
    recent other version's copy or None). Only the newest `keep_versions` copies stay."""
    paths = ProjectPaths(root)
    docs, version = _corpus_docs(paths, corpus_id)
    folder = history_dir(paths, corpus_id)
    folder.mkdir(parents=True, exist_ok=True)
    current = folder / f"{version}.parquet"
    if not current.is_file():
        with atomic_path(current) as tmp:
            shutil.copyfile(docs, tmp)
    current.touch()  # newest first by mtime: a version parsed again is the current one
    kept = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kept[cfg.keep_versions :]:
        old.unlink(missing_ok=True)
    previous = next((p for p in kept[1 : cfg.keep_versions] if p != current), None)
    return current, previous


def corpus_version(root: Path, corpus_id: str, cfg: DriftConfig) -> DriftResult | None:
    """This parsed version of the corpus vs the one before it (None for a first version)."""
    paths = ProjectPaths(root)
    current, previous = keep_corpus_version(root, corpus_id, cfg)
    if previous is None:
        return None
    return compare(
        pd.read_parquet(previous),
        pd.read_parquet(current),
        corpus_version_dir(paths, corpus_id),
        cfg,
        check="corpus_version",
        title=f"corpus {corpus_id}: version {current.stem} vs {previous.stem}",
        reference_name=previous.stem,
        current_name=current.stem,
    )


def between_corpora(root: Path, first: str, second: str, cfg: DriftConfig) -> DriftResult:
    """Two parsed corpora side by side (their text, groups and years)."""
    paths = ProjectPaths(root)
    (a, _), (b, _) = _corpus_docs(paths, first), _corpus_docs(paths, second)
    return compare(
        pd.read_parquet(a),
        pd.read_parquet(b),
        between_dir(paths, first, second),
        cfg,
        check="dataset_vs_dataset",
        title=f"corpus {first} vs corpus {second}",
        reference_name=first,
        current_name=second,
    )


def _scored_predictions(folder: Path) -> bool:
    """predictions.tsv there, with a `score` column (its header only is read)."""
    path = folder / "predictions.tsv"
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as fh:
        return "score" in fh.readline().rstrip("\n").split("\t")


def scored_cross_evaluations(paths: ProjectPaths, dataset_id: str, view: str) -> list[tuple[str, str, str]]:
    """(family, model_id, eval_dataset_id) of every model of this dataset|view evaluated both on its
    own job set and on another dataset's, both reports' predictions.tsv with scores: what
    prediction_drift_of compares."""
    found = []
    for cross in sorted((paths.reports / dataset_id / view).glob("*/*@*/predictions.tsv")):
        model_id, _, eval_dataset_id = cross.parent.name.rpartition("@")
        own = cross.parent.parent / model_id
        if model_id and eval_dataset_id != dataset_id and _scored_predictions(cross.parent) and _scored_predictions(own):
            found.append((cross.parent.parent.name, model_id, eval_dataset_id))
    return found


def prediction_drift_of(
    root: Path, dataset_id: str, view: str, family: str, model_id: str, eval_dataset_id: str, cfg: DriftConfig
) -> DriftResult:
    """A model's confidence scores and predicted labels on its own job set (reference) vs on
    `eval_dataset_id`'s job set (current), read from the two evaluations' predictions.tsv (the
    `prediction` check: K-S on `score`, chi-square on `predicted_label`)."""
    from ..prepare import read_tsv_file

    paths = ProjectPaths(root)
    folders = {
        side: paths.report_dir(dataset_id, view, family, model_id, None if side == dataset_id else side)
        for side in (dataset_id, eval_dataset_id)
    }
    for side, folder in folders.items():
        if not _scored_predictions(folder):
            raise NothingToCompare(
                f"{family}/{model_id} of {dataset_id}/{view}: no predictions.tsv with scores on the job set of {side} "
                f"({paths.rel(folder)}/); evaluate it there (a family with scores) first"
            )
    models = {side: _read_model_version(folder) for side, folder in folders.items()}
    if len(set(models.values())) > 1:
        raise NothingToCompare(
            f"{family}/{model_id} of {dataset_id}/{view}: its evaluations on {dataset_id} and {eval_dataset_id} are of "
            f"different fits of the model ({models}); evaluate it again on both"
        )
    own, other = (read_tsv_file(folders[side] / "predictions.tsv") for side in (dataset_id, eval_dataset_id))
    return prediction_drift(
        own["score"].astype(float),
        other["score"].astype(float),
        predictions_dir(paths, dataset_id, view, model_id, eval_dataset_id),
        cfg,
        reference_labels=own["predicted"].astype(str),
        current_labels=other["predicted"].astype(str),
        title=f"{family}/{model_id} (trained on {dataset_id}/{view}): predictions on the job set of {dataset_id} vs of {eval_dataset_id}",
        reference_name=dataset_id,
        current_name=eval_dataset_id,
    )


def _read_model_version(folder: Path) -> str | None:
    meta = folder / "meta_eval.json"
    return json.loads(meta.read_text(encoding="utf-8")).get("model_version") if meta.is_file() else None


def suite_alerts(root: Path) -> tuple[Path, Path]:
    """reports/drift/alerts.{json,csv}: every alert of every report written so far."""
    paths = ProjectPaths(root)
    results = [load_result(p.parent) for p in sorted(drift_root(paths).rglob("summary.json"))]
    return write_alerts(results, drift_root(paths))


def on_disk(paths: ProjectPaths) -> tuple[list[str], list[str]]:
    """(corpora parsed on disk, dataset|view splits prepared on disk): what the drift suite covers."""
    interim = paths.root / "data" / "interim"
    corpora = sorted(p.parent.name for p in (interim / "_corpora").glob("*/parse_stats.json"))
    views = sorted(
        f"{p.parent.parent.name}|{p.parent.name}" for p in interim.glob("*/*/meta_view.json") if not p.parent.parent.name.startswith("_")
    )
    return corpora, views
