"""A view of a dataset: parsed corpora -> labels -> quality filters -> balance -> split -> TSV files
(train.tsv, job.tsv, and valid.tsv with `split.validation_prop`; with `split.repeats` N > 1 the
same for repeats 1..N-1 under repeats/r<k>/, each drawn with its own seed from the same pool).

`build_view` is the whole prepare stage for one dataset x view, as one plain function: the Dagster
asset `view_split` and the tests call it the same way.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from . import balance, diagnostics, labels, periods, quality, split
from .atomic import atomic_path, write_json
from .config import ResolvedParams
from .paths import ProjectPaths

TSV_BASE = ["doc_id", "label", "speaker", "group", "date", "n_tokens"]
REPEATS = "repeats"  # split.repeats > 1: the folder of repeats 1..N-1 in the view folder
REPEAT_SEEDS = "repeat 0: the profile seed; repeat r >= 1: numpy SeedSequence(seed, spawn_key=(r,)).generate_state(1)[0]"


class ViewError(ValueError):
    """The view cannot be built from this data (e.g. no document gets a label)."""


@dataclass
class ViewResult:
    train: pd.DataFrame
    job: pd.DataFrame
    meta: dict[str, Any]
    train_path: Path
    job_path: Path
    meta_path: Path
    valid: pd.DataFrame | None = None  # split.validation_prop > 0: held out of train for model selection
    valid_path: Path | None = None


def tsv_columns(params: ResolvedParams) -> list[str]:
    # text_key (dedup hash of the normalised text) lets anyone, and the leakage check, verify that
    # no text is on both sides without normalising every text again
    # the group_by column too: the leakage gate checks from the files that no group is on both sides
    key = ["text_key"] if params.filters.dedup else []
    group = [params.split.group_by] if params.split.group_by else []
    cols = [*TSV_BASE[:2], params.dataset.source_field, *TSV_BASE[2:], *params.compare_by, *group, *key, "text"]
    return list(dict.fromkeys(cols))


def effective_compare_by(params: ResolvedParams) -> list[str]:
    """compare_by, with the source field first when corpora are compared (juxtaposed, separate)."""
    fields = list(params.compare_by)
    if params.dataset.merge_mode in ("juxtaposed", "separate") and params.dataset.source_field not in fields:
        fields.insert(0, params.dataset.source_field)
    return fields


TEXT = "text"
TEXT_BATCH_ROWS = 16_384  # texts read per Parquet batch: ~10 MB of MPT speeches, whatever the corpus size


@dataclass
class Docs:
    """The documents of a dataset's corpora without their texts (`frame`: one row per document, in
    the order of `dataset.corpus_ids`, capped by filters.max_docs_per_corpus), and where each row's
    text is, so that a view reads the texts of the rows it labels only (`texts`): on MPT 44 % of
    the documents are excluded (chair, government, ...) before any text is needed, and a text read
    is memory held until the split is written."""

    frame: pd.DataFrame
    files: list[Path]
    rows: list[np.ndarray]  # per corpus: the docs.parquet row of each of its rows in `frame`, ascending
    columns: list[str]  # the columns of `frame` with `text`, in the order of `load_docs`' frame
    batch_rows: int = TEXT_BATCH_ROWS

    def texts(self, positions: np.ndarray) -> pa.Array:
        """The texts of `frame`'s rows at `positions` (ascending), one Arrow array: read batch by
        batch, the others' never leave the batch they were read in."""
        out, start = [], 0
        for file, rows in zip(self.files, self.rows):
            end = start + len(rows)
            lo, hi = np.searchsorted(positions, [start, end])
            out += _take_rows(file, rows[positions[lo:hi] - start], self.batch_rows)
            start = end
        return pa.concat_arrays(out) if out else pa.array([], type=pa.large_string())

    def lowercase_words(self) -> set[str]:
        """diagnostics.lowercase_words of every row's text (filters.mask_names), batch by batch."""
        words: set[str] = set()
        for file, rows in zip(self.files, self.rows):
            for chunk in _take_rows(file, rows, self.batch_rows):
                words |= diagnostics.lowercase_words(chunk.fill_null(""))
        return words

    def with_texts(self, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
        """`frame` (rows of `self.frame` at `positions`, ascending) with its `text` column, where
        `load_docs` has it: the same values and dtype as if the texts had been read with the rest."""
        text = pa.table({TEXT: self.texts(positions)}).to_pandas()[TEXT]
        out = frame.assign(**{TEXT: text.set_axis(frame.index)})
        return out[[c for c in self.columns if c in out.columns] + [c for c in out.columns if c not in self.columns]]


def _take_rows(file: Path, rows: np.ndarray, batch_rows: int) -> list[pa.Array]:
    """The texts of `file` at `rows` (ascending), read `batch_rows` at a time: only these
    become the returned arrays (one per batch that holds any), as large strings: what pandas
    holds (no copy to convert them) and with room for more than 2 GiB of a dataset's texts."""
    out, start = [], 0
    if not len(rows):
        return out
    for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=[TEXT], use_threads=False):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(rows, [start, end])
        if hi > lo:
            column = batch.column(0)
            out.append((column if hi - lo == batch.num_rows else column.take(pa.array(rows[lo:hi] - start))).cast(pa.large_string()))
        start = end
        if hi == len(rows):
            break
    return out


def read_docs(params: ResolvedParams, docs_files: dict[str, Path], batch_rows: int = TEXT_BATCH_ROWS) -> Docs:
    """The dataset's documents but their texts (`Docs`); `load_docs` is this with every text."""
    frames, rows, order = [], [], []
    for i, cid in enumerate(params.dataset.corpus_ids):
        names = pq.read_schema(docs_files[cid]).names
        # one chunk per column: filtering pandas' Arrow-backed columns is 5-10x slower across the
        # Parquet row groups' chunks, and a view is filtered several times (labels, length, dedup)
        df = pq.read_table(docs_files[cid], columns=[c for c in names if c != TEXT]).combine_chunks().to_pandas()
        kept = np.arange(len(df))
        cap = params.filters.max_docs_per_corpus
        if cap is not None and len(df) > cap:
            rng = np.random.default_rng([params.seed, 7, i])
            kept = np.sort(rng.choice(len(df), size=cap, replace=False))
            df = df.iloc[kept]
        df[params.dataset.source_field] = cid
        frames.append(df)
        rows.append(kept)
        order = list(dict.fromkeys([*order, *names, params.dataset.source_field]))
    # year (and legislature, when the view uses it) from the date: derived here, not at parse time,
    # so the parsed corpora and their versions stay as they are (core/periods.py)
    frame = periods.add_period_columns(pd.concat(frames, ignore_index=True), params.legislatures)
    order = list(dict.fromkeys([*order, *frame.columns]))
    return Docs(frame=frame, files=[docs_files[cid] for cid in params.dataset.corpus_ids], rows=rows, columns=order, batch_rows=batch_rows)


def load_docs(params: ResolvedParams, docs_files: dict[str, Path]) -> pd.DataFrame:
    """Every column of every document of the dataset, texts included (build_view reads only the
    texts of the documents it labels: `read_docs`)."""
    docs = read_docs(params, docs_files)
    return docs.with_texts(docs.frame, np.arange(len(docs.frame)))


def _balance_and_split(pool: pd.DataFrame, params: ResolvedParams, salt: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, job). The order: pool-stage balancing (down-sampling, which the job set
    shares), the train/job split, the validation set carved out of the train side, then
    train-stage balancing (over-sampling) of what is left to fit. So the validation set is drawn
    like the job set, from the balanced pool, and never resampled; and no copy of a validation
    document can sit in the fit set, as it would if over-sampling came before the carve.
    `validation_prop` 0 draws nothing: train comes out as it did before validation sets existed."""
    strategy = balance.build(params.balance_strategy, params.balance)
    if strategy.stage == "pool":
        pool = strategy.resample(pool, np.random.default_rng([params.seed, 1, salt]))
    train, job = split.split_train_job(pool, params.train_prop, params.seed + salt, params.split.stratify, params.split.group_by)
    train, valid = split.split_validation(
        train, params.split.validation_prop, [params.seed, 3, salt], params.split.stratify, params.split.group_by
    )
    if strategy.stage == "train":
        train = strategy.resample(train, np.random.default_rng([params.seed, 2, salt]))
    return train, valid, job


def build_view(params: ResolvedParams, root: Path, docs_files: dict[str, Path], stamp: dict[str, Any] | None = None) -> ViewResult:
    """`stamp` (core/lineage.py) is written into meta_view.json, which is written last."""
    started = time.perf_counter()
    paths = ProjectPaths(root)
    label_map = _current_label_map(params, root)
    pool, excluded, checked, n_in = _labelled_pool(params, docs_files, label_map)
    _check_groups(params, pool)
    before = _counts(pool)
    train, valid, job = _split_pool(pool, params, excluded)
    train_path, job_path, meta_path, valid_path = _write_split(params, paths, train, job, valid)
    repeats = _write_repeats(params, paths, pool, excluded)
    if stamp:
        # a deleted valid.tsv or repeat file: the split is missing
        extra = [valid_path.name] if valid_path is not None else []
        extra += [f for r in repeats for f in r["files"]]
        stamp = {**stamp, "files": list(dict.fromkeys([*stamp["files"], *extra]))}
    meta = {
        **_view_meta(params, label_map, n_in, before, excluded, train, job, valid if valid_path else None),
        "paths": {"train": paths.rel(train_path), "job": paths.rel(job_path), **({"valid": paths.rel(valid_path)} if valid_path else {})},
        "dates": periods.describe(pool),  # the labelled documents without a date, year or legislature
        "seconds": round(time.perf_counter() - started, 3),
        **({"lineage": stamp} if stamp else {}),
    }
    if checked.meta():  # filters.procedural / languages / near_duplicates: what they did
        meta["quality"] = checked.meta()
        if checked.near_duplicates is not None:
            meta["leakage"]["near_duplicate_pairs_across_split"] = quality.pairs_across(checked.near_pairs, train, job, valid)
    if repeats:
        meta["split"]["repeats"] = {
            "n": params.split.repeats,
            "seeds": split.repeat_seeds(params.seed, params.split.repeats),
            "seed_derivation": REPEAT_SEEDS,
            "splits": [{k: v for k, v in r.items() if k != "files"} for r in repeats],
        }
    write_json(meta_path, meta)
    return ViewResult(
        train=train,
        job=job,
        meta=meta,
        train_path=train_path,
        job_path=job_path,
        meta_path=meta_path,
        valid=valid if valid_path else None,
        valid_path=valid_path,
    )


def _current_label_map(params: ResolvedParams, root: Path) -> labels.LabelMap:
    """The label map, if it is still the one `params` were resolved from: its fingerprint is in the
    params hash, so labels from an edited map would pass for those of the old one."""
    label_map = labels.load_label_map(root / "configs" / "label_maps" / params.label_map, root)
    if label_map.fingerprint != params.label_map_sha256:
        raise ViewError(f"label map {params.label_map} changed since the parameters were resolved; resolve again")
    return label_map


def _check_columns(params: ResolvedParams, columns: list[str]) -> None:
    """A misspelt compare_by / group_by field fails the view, naming the columns there are, rather
    than the split with a KeyError or the evaluation by leaving out its per-field metrics."""
    for field in effective_compare_by(params) + ([params.split.group_by] if params.split.group_by else []):
        if field not in columns:
            raise ViewError(
                f"analysis.compare_by / split.group_by: column {field!r} does not exist in dataset {params.dataset_id!r} (columns: {sorted(columns)})"
            )


def _check_groups(params: ResolvedParams, pool: pd.DataFrame) -> None:
    """A grouped split needs a group for every labelled document. One without (no speaker) is
    refused rather than guessed: all of them as one group would tie unrelated documents together,
    each as a group of its own would let a speaker nobody named sit on both sides, and either way
    the split could not be called "grouped by <field>" without a caveat."""
    field = params.split.group_by
    if not field:
        return
    missing = split.missing_groups(pool, field)
    if missing.any():
        examples = ", ".join(map(str, pool.loc[missing, "doc_id"].head(3)))
        raise ViewError(
            f"split.group_by: {int(missing.sum())} of the {len(pool)} labelled documents of dataset {params.dataset_id!r} "
            f"(view {params.view!r}) have no {field!r} (e.g. {examples}), so a split grouped by {field} cannot place them: "
            f"give them one in the corpus, or set `split: {{group_by: null}}` in the profile for a split stratified by label "
            f"(the same {field} may then be on both sides)"
        )


def _labelled_pool(
    params: ResolvedParams, docs_files: dict[str, Path], label_map: labels.LabelMap
) -> tuple[pd.DataFrame, Counter, quality.QualityReport, int]:
    """The documents the view gives a label and the quality filters keep, with the count of the
    others by reason (meta_view.json, and the errors that say why a view is empty), what the
    data-quality filters did (core/quality.py) and the number of documents read. Labels and
    exclusions are read from the metadata, then only the labelled documents' texts
    (`Docs.with_texts`); each frame is let go as soon as the next is made (every one holds texts)."""
    docs = read_docs(params, docs_files)
    _check_columns(params, docs.columns)
    n_in = len(docs.frame)
    labelled = labels.assign_labels(docs.frame, label_map, params.view)
    excluded = labels.Exclusions.of(labelled)  # by reason, and by reason x group
    has_label = labelled["label"].notna().to_numpy()
    pool = docs.with_texts(labelled[has_label].drop(columns=["exclusion"]), np.flatnonzero(has_label))
    del labelled
    persons = diagnostics.person_names(docs.frame, docs.lowercase_words()) if params.filters.mask_names else None
    del docs
    # stage directions stripped, procedural and foreign documents out: before masking, length and dedup
    pool, checked = quality.clean(pool, params.filters, params.procedural_patterns, excluded)
    if params.filters.mask_names:  # before dedup: texts that differ by a name only are one text once masked
        pool = pool.assign(text=_masked(pool["text"], persons or [], params).set_axis(pool.index))
    short = pool["n_tokens"] < params.filters.min_tokens
    if short.any():
        excluded.add("too_short", pool[short])
        pool = pool[~short]
    if params.filters.dedup:
        kept, _ = split.drop_duplicates(pool)
        excluded.add_duplicates(pool, kept)
        pool = kept
        del kept
    pool = quality.drop_near_duplicates(pool, params.filters.near_duplicates, excluded, checked)
    if pool.empty:
        raise ViewError(f"view {params.view!r} gives no labelled document for dataset {params.dataset_id!r} (exclusions: {dict(excluded)})")
    return pool, excluded, checked, n_in


def _masked(texts: pd.Series, persons: list[str], params: ResolvedParams) -> pd.Series:
    """filters.mask_names: group and party names (params.group_names) -> NOM_GROUPE, the names of
    every person who speaks in the dataset's documents (`persons`: diagnostics.person_names, with
    the common words of every document's text, read batch by batch) -> NOM_PERSONNE. Kept in
    Arrow to the column: the texts never all become Python strings."""
    if params.group_names is None:
        raise ViewError("filters.mask_names: the parameters name no group to mask (resolve them with resolve_profile)")
    masked = diagnostics.mask_texts(texts, params.group_names, persons, arrow=True)
    return pa.table({TEXT: masked}).to_pandas()[TEXT]


def _split_pool(pool: pd.DataFrame, params: ResolvedParams, excluded: Counter) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, valid, job): balanced and split (per corpus for merge_mode separate), then shuffled
    (seeded): corpus order is time order, and a family that caps its train set (hardware
    max_train_docs_*) takes the first rows."""
    if params.dataset.merge_mode == "separate":
        parts = _split_each_corpus(pool, params, excluded)
    else:
        parts = _balance_and_split(pool, params, salt=0)
    parts = list(parts)
    for i in range(len(parts)):  # each part let go as soon as it is shuffled: a shuffle copies the texts
        parts[i] = parts[i].sample(frac=1.0, random_state=params.seed)
    train, valid, job = parts
    return train, valid, job


def _split_each_corpus(pool: pd.DataFrame, params: ResolvedParams, excluded: Counter) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """merge_mode separate: each corpus balanced and split on its own (salt = its rank among the
    sorted corpus ids): training fits one model per corpus on its rows of train.tsv (core/training.py)
    and each corpus's validation documents are scored by its own model, like its job documents."""
    source = params.dataset.source_field
    missing = sorted(set(params.dataset.corpus_ids) - set(pool[source]))
    if missing:
        raise ViewError(
            f"merge_mode separate: corpus {missing} has no labelled document in view {params.view!r} of dataset "
            f"{params.dataset_id!r}, so it can have no model of its own (exclusions: {dict(excluded)})"
        )
    parts = [_balance_and_split(g, params, salt=i) for i, (_, g) in enumerate(pool.groupby(source, sort=True))]
    return pd.concat([p[0] for p in parts]), pd.concat([p[1] for p in parts]), pd.concat([p[2] for p in parts])


def repeat_dir(view_dir: Path, repeat: int) -> Path:
    """Where repeat r >= 1 of a split lives (split.repeats): <view>/repeats/r<r>/{train,job,valid}.tsv."""
    return view_dir / REPEATS / f"r{repeat}"


def _write_repeats(params: ResolvedParams, paths: ProjectPaths, pool: pd.DataFrame, excluded: Counter) -> list[dict[str, Any]]:
    """split.repeats N > 1: repeats 1..N-1 of the split, each drawn from the same labelled pool as
    the canonical one (repeat 0, train.tsv / job.tsv) by the same code with the repeat's seed
    (`split.repeat_seeds`): the split the profile would give with `seed` set to it. Returns, per
    repeat, its facts for meta_view.json (sizes, class counts, leakage, paths) and its `files`
    (relative to the view folder, for the lineage stamp)."""
    view_dir = paths.view_dir(params.dataset_id, params.view)
    cols = tsv_columns(params)
    out = []
    for r, seed in enumerate(split.repeat_seeds(params.seed, params.split.repeats)[1:], start=1):
        train, valid, job = _split_pool(pool, params.model_copy(update={"seed": seed}), excluded)
        folder = repeat_dir(view_dir, r)
        folder.mkdir(parents=True, exist_ok=True)
        named = {"train": train, "job": job, **({"valid": valid} if params.split.validation_prop > 0 else {})}
        for name, df in named.items():
            write_tsv(df[cols], folder / f"{name}.tsv")
        out.append(
            {
                "repeat": r,
                "seed": seed,
                **_split_sizes(train, job, valid if "valid" in named else None),
                "leakage": split.leakage(train, job, params.split.group_by, valid if "valid" in named else None),
                "paths": {name: paths.rel(folder / f"{name}.tsv") for name in named},
                "files": [(folder / f"{name}.tsv").relative_to(view_dir).as_posix() for name in named],
            }
        )
    return out


def read_repeat(params: ResolvedParams, root: Path, repeat: int, name: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """train.tsv, job.tsv or valid.tsv of repeat r of a prepared view (0: the canonical split's;
    `columns`: only those the file has)."""
    if repeat == 0:
        return read_tsv(params, root, name, columns)
    return read_tsv_file(repeat_dir(ProjectPaths(root).view_dir(params.dataset_id, params.view), repeat) / f"{name}.tsv", columns)


def _write_split(
    params: ResolvedParams, paths: ProjectPaths, train: pd.DataFrame, job: pd.DataFrame, valid: pd.DataFrame
) -> tuple[Path, Path, Path, Path | None]:
    """train.tsv, job.tsv and, with split.validation_prop, valid.tsv (its path returned, else None);
    meta_view.json (returned, for the caller to write last) is removed first, since its stamp says
    the view is fresh: a crash leaves the view missing, never half-new and "fresh". A valid.tsv of
    an earlier split is removed when this one has none: it would hold documents now in train; the
    repeats of an earlier split (repeats/) always are (`_write_repeats` writes this one's)."""
    view_dir = paths.view_dir(params.dataset_id, params.view)
    cols = tsv_columns(params)
    train_path, job_path, meta_path = view_dir / "train.tsv", view_dir / "job.tsv", view_dir / "meta_view.json"
    valid_path = view_dir / "valid.tsv" if params.split.validation_prop > 0 else None
    meta_path.unlink(missing_ok=True)
    shutil.rmtree(view_dir / REPEATS, ignore_errors=True)
    if valid_path is None:
        (view_dir / "valid.tsv").unlink(missing_ok=True)
    for df, target in ((train, train_path), (job, job_path), (valid, valid_path)):
        if target is not None:
            write_tsv(df[cols], target)
    return train_path, job_path, meta_path, valid_path


def _view_meta(
    params: ResolvedParams,
    label_map: labels.LabelMap,
    n_in: int,
    before: dict[str, int],
    excluded: Counter,
    train: pd.DataFrame,
    job: pd.DataFrame,
    valid: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """meta_view.json but for its paths, time and stamp: what a reader of the split needs to judge
    it without building it again (where the documents went, class balance, leakage). `valid`: the
    validation set, when the split has one (its sizes and leakage against train and job)."""
    strategy = balance.build(params.balance_strategy, params.balance)
    both = pd.concat([train, job] + ([valid] if valid is not None else []))
    separate = params.dataset.merge_mode == "separate"
    return {
        "dataset_id": params.dataset_id,
        "view": params.view,
        "profile": params.profile,
        "overrides": params.overrides,
        "source_corpora": params.dataset.corpus_ids,
        "source_field": params.dataset.source_field,
        "merge_mode": params.dataset.merge_mode,
        "compare_by": effective_compare_by(params),
        "label_map": {
            "file": params.label_map,
            "fingerprint": label_map.fingerprint,
            "view": label_map.views[params.view].model_dump(),
            "coalitions": labels.coalition_summary(label_map, params.dataset.corpus_ids),  # the rule each corpus was labelled with
        },
        "n_docs_in": n_in,
        "n_docs_labelled": sum(before.values()),
        "excluded_by_reason": dict(excluded.most_common()),
        "excluded_by_group": labels.exclusions_by_group(excluded),  # reason -> group -> n, the same totals
        "label_counts_before_balance": before,
        "label_counts_after_balance": _counts(both),
        "balance": {
            "strategy": params.balance_strategy,
            "preset": params.balance_preset,
            "params": params.balance,
            "stage": strategy.stage,
            "class_weights": strategy.class_weights(train),
        },
        "split": {
            "kind": split.split_kind(params.split),
            "train_prop": params.train_prop,
            "stratify": params.split.stratify,
            "group_by": params.split.group_by,
            **({"validation_prop": params.split.validation_prop} if valid is not None else {}),
            **_split_sizes(train, job, valid),
            "by_source": _counts(both, params.dataset.source_field),
        },
        "leakage": split.leakage(train, job, params.split.group_by, valid),
        **({"by_corpus": _by_corpus(train, job, params, strategy, valid)} if separate else {}),
        "seed": params.seed,
        "params_hash": params.params_hash,
        "params": params.model_dump(mode="json"),
    }


def _counts(df: pd.DataFrame, column: str = "label") -> dict[str, int]:
    return {str(k): int(v) for k, v in df[column].value_counts().sort_index().items()}


def _split_sizes(train: pd.DataFrame, job: pd.DataFrame, valid: pd.DataFrame | None = None) -> dict[str, Any]:
    """The same facts for the whole split and for each corpus's (merge_mode separate)."""
    sizes = {"n_train": len(train), "n_job": len(job), "train_label_counts": _counts(train), "job_label_counts": _counts(job)}
    if valid is not None:
        sizes.update(n_valid=len(valid), valid_label_counts=_counts(valid))
    return sizes


def _by_corpus(
    train: pd.DataFrame, job: pd.DataFrame, params: ResolvedParams, strategy: Any, valid: pd.DataFrame | None = None
) -> dict[str, Any]:
    """merge_mode separate: each corpus's split, as its own model sees it (sizes, classes, class
    weights, leakage within the corpus)."""
    source = params.dataset.source_field
    out = {}
    for cid in sorted(set(train[source]) | set(job[source])):
        tr, jb = train[train[source] == cid], job[job[source] == cid]
        vd = valid[valid[source] == cid] if valid is not None else None
        out[str(cid)] = {
            **_split_sizes(tr, jb, vd),
            "class_weights": strategy.class_weights(tr),
            "leakage": split.leakage(tr, jb, params.split.group_by, vd),
        }
    return out


def write_tsv(df: pd.DataFrame, target: Path) -> Path:
    """Atomically, with Arrow's C++ CSV writer (30x pandas.to_csv on 100k texts); fields are quoted
    only where needed, the header never, so the file reads the same with pandas, csv or cut."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(("\t".join(map(str, df.columns)) + "\n").encode("utf-8"))
        pcsv.write_csv(table, fh, write_options=pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="needed"))
    return target


TSV_INT_COLUMNS = ("n_tokens", "source_line")


def read_tsv(params: ResolvedParams, root: Path, split: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """train.tsv, job.tsv or valid.tsv of a prepared view (`columns`: only those the file has)."""
    return read_tsv_file(ProjectPaths(root).view_dir(params.dataset_id, params.view) / f"{split}.tsv", columns)


def _tsv_options(path: Path, block_size: int, wanted: Iterable[str] | None = None) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        columns = fh.readline().rstrip("\n").split("\t")
    types = {name: pa.int64() if name in TSV_INT_COLUMNS else pa.string() for name in columns}
    keep = None if wanted is None else set(wanted)
    include = [] if keep is None else [name for name in columns if name in keep]  # []: every column
    return {
        "read_options": pcsv.ReadOptions(use_threads=False, block_size=block_size),
        "parse_options": pcsv.ParseOptions(delimiter="\t", newlines_in_values=True),
        "convert_options": pcsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, null_values=[], quoted_strings_can_be_null=False, include_columns=include
        ),
    }


def read_tsv_file(path: Path, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A TSV of `write_tsv`: every column a string (an empty field is "", never NaN; a date stays
    text) except the counts. Parsed by Arrow's C++ reader (3x pandas' own), on this thread, with
    quoted newlines allowed and the whole file as one block (a text is never split between two).
    `columns`: only those of them the file has, in the file's order (the others are not converted)."""
    return pcsv.read_csv(path, **_tsv_options(path, max(1 << 20, path.stat().st_size + 1), columns)).to_pandas()


HEAD_BLOCK = 1 << 22  # bytes Arrow parses at a time when only the first rows of a TSV are read


def read_tsv_head(path: Path, n: int | None) -> pd.DataFrame:
    """The first `n` rows of a TSV of `write_tsv` (None: all), the same frame as
    `read_tsv_file(path).iloc[:n]`, parsing no more of the file than the blocks that hold them: a
    capped family's format reads 4,000 rows of a train.tsv that holds 342,841 at 40x MPT (2.2 s)."""
    if n is None:
        return read_tsv_file(path)
    reader = pcsv.open_csv(path, **_tsv_options(path, HEAD_BLOCK))
    batches, got = [], 0
    for batch in reader:
        if got >= n:
            break
        batches.append(batch)
        got += batch.num_rows
    return pa.Table.from_batches(batches, schema=reader.schema).slice(0, n).to_pandas()


@dataclass
class SplitOnDisk:
    """A prepared split's train.tsv / job.tsv, read only when asked and only as far as asked; its
    sizes and labels come from meta_view.json (`split`: the counts of the files it was written with)."""

    train_path: Path
    job_path: Path
    n_train: int
    n_job: int
    labels: list[str]

    @classmethod
    def of(cls, params: ResolvedParams, root: Path) -> SplitOnDisk:
        import json

        view_dir = ProjectPaths(root).view_dir(params.dataset_id, params.view)
        sizes = json.loads((view_dir / "meta_view.json").read_text(encoding="utf-8"))["split"]
        labels = sorted(set(sizes["train_label_counts"]) | set(sizes["job_label_counts"]))
        return cls(view_dir / "train.tsv", view_dir / "job.tsv", sizes["n_train"], sizes["n_job"], labels)

    def train(self, n: int | None = None) -> pd.DataFrame:
        """The first n rows of train.tsv (None: all)."""
        return read_tsv_head(self.train_path, n)

    def job(self) -> pd.DataFrame:
        return read_tsv_file(self.job_path)


def read_split(params: ResolvedParams, root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return read_tsv(params, root, "train"), read_tsv(params, root, "job")
