"""The `spacy_docbin` format: spaCy DocBin shards, `shard_size` docs per file (spec: no giant DocBin,
which fails with E870).

Only the tokenizer of a blank pipeline is used (spacy.blank(lang), `make_doc`: no other component):
the trainer adds the rest. `train` is the rows the format holds (the first rows of train.tsv: the
spacy cap's, formats/__init__.py), `labels` every label of the split (each doc's `cats` has them all,
also those of rows not written). Docs keep the order of train.tsv / valid.tsv (doc ids are not
stored per doc: user_data serialisation made writing 4x slower).

The job set is not tokenized here: the spacy family scores job.tsv's texts through the trained
model's own pipeline (families/spacy.py, `predict_scores`), so job shards were read by nothing (at
40x MPT, 86k job documents cost ~30 s to tokenize on two cores, and the capped train set ~2 s).
The entry's `job` names the view's job.tsv (what every family scores), and `job_note` says so.

With `split.validation_prop` > 0 the view's valid.tsv (read from the view folder beside train.tsv)
is written too, as `valid` shards: spaCy's dev corpus, the only documents it picks `model-best`
on (families/spacy.py). The entry also records what the family needs to carve a dev slice of its own
when there is no validation set: the split's `group_by` and `stratify` (`split`), so that the slice
is drawn like the split (whole speakers on a split grouped by speaker). `valid` is [] when the
view has no validation set (or an empty one: a grouped split can hold out no whole group).

Speed: each shard is written as soon as its docs are made (one DocBin in memory at a time). A set
of `PARALLEL_MIN_DOCS` docs or more is written by `hardware.threads` forked worker processes, one
whole shard per task (each worker tokenizes its shard's texts and writes the file; nothing but
texts and file names crosses processes). Measured on MPT texts (~390 characters) on 2 busy cores:
one process ~2,700-4,700 docs/s; `nlp.pipe(n_process=2)` 3-5x slower at 1k-20k docs (every Doc is
serialised in the worker and rebuilt in the parent, which then still adds it to the DocBin); two
forked workers writing whole shards 0.29 s vs 0.21 s at 1k, 1.74 s vs 1.33 s at 4k, 6.6 s vs 7.4 s
at 20k docs (spawned workers: +5-8 s of start-up and spaCy import). So the small preset's 4,000
capped train docs are written in one process. Before any doc, spaCy's import and the blank French
pipeline took 5-7 s here, once per process, of which 3.4-3.7 s compiling the French tokenizer's
exceptions regex: regex_cache.py keeps it compiled across processes (then ~0.1 s). The CLI runs a
run's steps in one process, where the spaCy model's training then finds spaCy loaded. The entry
records it (`seconds_load`; `seconds`, the whole writer's, is set by write_formats).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_dir
from ..config import ResolvedParams
from ..paths import ProjectPaths
from . import reads

PARALLEL_MIN_DOCS = 20_000  # docs of one set from which worker processes pay (module docstring: the measurement)
JOB_NOTE = (
    "job documents are not tokenized into shards: the spacy family scores job.tsv's texts through the "
    "trained model's own pipeline at prediction time"
)


_forked_nlp = None  # the blank pipeline the forked workers of write_shards inherit (set around its pool)


def _write_shard(nlp: Any, texts: list[str], golds: list[str], labels: list[str], path: Path) -> str:
    """One shard: the texts tokenized (`make_doc`: the tokenizer only), each doc's `cats` one-hot on
    `labels`, written to `path`."""
    from spacy.tokens import DocBin

    bin_ = DocBin(attrs=["ORTH", "SPACY"])
    for text, gold in zip(texts, golds):
        doc = nlp.make_doc(text)
        doc.cats = {label: float(label == gold) for label in labels}
        bin_.add(doc)
    bin_.to_disk(path)
    return path.name


def _worker_shard(task: tuple[list[str], list[str], list[str], Path]) -> str:
    return _write_shard(_forked_nlp, *task)


def _processes(n_docs: int, n_shards: int, threads: int) -> int:
    """Worker processes for a set of `n_docs` docs in `n_shards` shards: 1 (the calling process)
    below PARALLEL_MIN_DOCS or where processes cannot be forked; else the preset's threads, at most
    the cores this process may use and the shards."""
    if n_docs < PARALLEL_MIN_DOCS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(threads, cores, n_shards))


def write_shards(df: pd.DataFrame, folder: Path, nlp: Any, size: int, labels: list[str], threads: int) -> list[Path]:
    """`df`'s texts as DocBin shards of `size` docs in `folder` (part-0001.spacy, ..., in df's order;
    one empty shard for an empty set), tokenized by `nlp` (a blank pipeline), by `threads` forked
    worker processes when that pays (`_processes`), each shard written as it fills."""
    global _forked_nlp
    texts, golds = df["text"].tolist(), df["label"].tolist()
    starts = range(0, max(len(texts), 1), size)
    tasks = [(texts[s : s + size], golds[s : s + size], labels, folder / f"part-{i:04d}.spacy") for i, s in enumerate(starts, 1)]
    n_proc = _processes(len(texts), len(tasks), threads)
    if n_proc == 1:
        return [folder / _write_shard(nlp, *task) for task in tasks]
    _forked_nlp = nlp
    try:
        with ProcessPoolExecutor(n_proc, mp_context=multiprocessing.get_context("fork")) as pool:
            return [folder / name for name in pool.map(_worker_shard, tasks)]
    finally:
        _forked_nlp = None


@reads("train")  # the job texts are tokenized by the trained model's pipeline when scored (JOB_NOTE)
def spacy_shards(
    train: pd.DataFrame, job: pd.DataFrame | None, out_dir: Path, params: ResolvedParams, paths: ProjectPaths, labels: list[str]
) -> dict[str, Any]:
    started = time.perf_counter()
    import spacy  # heavy: imported only when this format is written

    from ..prepare import read_tsv_file
    from ..regex_cache import spacy_language

    spacy_language(params.formats.spacy_language)  # French: its tokenizer exceptions regex, compiled once per machine
    nlp = spacy.blank(params.formats.spacy_language)
    load_seconds = time.perf_counter() - started
    size = params.formats.spacy_shard_size
    split = params.split
    view_dir = paths.view_dir(params.dataset_id, params.view)
    valid = None
    if split.validation_prop > 0:
        valid = read_tsv_file(view_dir / "valid.tsv")
        unknown = sorted(set(valid["label"]) - set(labels))
        if unknown:
            raise ValueError(f"valid.tsv has labels {unknown} that neither train.tsv nor job.tsv has: spaCy could not score them")
    result: dict[str, Any] = {
        "format": "spacy_docbin",
        "shard_size": size,
        "labels": labels,
        "order": "as in train.tsv / valid.tsv",
        "split": {"group_by": split.group_by, "stratify": split.stratify, "validation_prop": split.validation_prop},
        "n_valid": 0 if valid is None else len(valid),
        "job": paths.rel(view_dir / "job.tsv"),
        "job_note": JOB_NOTE,
        "seconds_load": round(load_seconds, 2),  # spaCy's import and the blank pipeline (information)
    }
    shutil.rmtree(out_dir / "spacy" / "job", ignore_errors=True)  # job shards of an earlier version: read by nothing
    sets = [("train", train)]
    if valid is not None and not valid.empty:
        sets.append(("valid", valid))
    else:  # none: shards of an earlier split with a validation set would be another split's documents
        shutil.rmtree(out_dir / "spacy" / "valid", ignore_errors=True)
        result["valid"] = []
    for name, df in sets:
        target = out_dir / "spacy" / name
        with atomic_dir(target) as tmp:
            shards = write_shards(df, tmp, nlp, size, labels, params.hardware.threads)
        result[name] = [paths.rel(target / shard.name) for shard in shards]
    return result
