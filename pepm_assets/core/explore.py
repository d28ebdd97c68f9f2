"""`pepm explore`'s data (V4.1 §4, the corpus explorer), read from the files the stages wrote:

- what a project holds: the parsed corpora (data/interim/_corpora/<corpus>/docs.parquet), the
  prepared dataset x view splits (data/interim/<dataset>/<view>/{train,valid,job}.tsv +
  meta_view.json) and the evaluations with predictions (reports/index.json, each entry's
  predictions.tsv);
- the documents of some corpora, or of a dataset x view joined with their split (train, valid,
  job, or excluded: in the dataset's corpora but not in the view's split) and label, and with a
  model's prediction and score where it scored them (the job set of the canonical split);
- `filter_documents`: the explorer's filters, a pure function of a frame and a `Filters`.

pandas + pyarrow only (no Streamlit, no Dagster, no model code): the app (ui/explore_app.py) is a
thin page over this. Only the columns shown are read; texts are read per document, on demand.
Nothing is written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .paths import ProjectPaths

SPLITS = ("train", "valid", "job")  # the files of a prepared split, in display order
EXCLUDED = "excluded"  # a document of the dataset's corpora that the view left out (no label, excluded speaker, duplicate, balance)
DOC_COLUMNS = ("doc_id", "corpus_id", "speaker", "group", "date", "n_tokens")  # of docs.parquet, what the table shows
PREDICTION_COLUMNS = ("predicted", "score")  # of predictions.tsv (score: the confidence in the predicted label, where the family gives one)
NOT_DATASETS = {"_corpora", "_actors"}  # folders of data/interim/ that are not a dataset's
PREPARE_HINT = "`pepm prepare -p <profile>` (or `pepm run --stage pipeline -p <profile>`)"


class ExploreError(Exception):
    """Something the explorer needs is not on disk: the message names the file and the command that writes it."""


@dataclass(frozen=True)
class ViewSplit:
    """A prepared dataset x view: its split files and the version (meta_view.json's lineage) evaluations refer to."""

    dataset_id: str
    view: str
    folder: Path
    corpora: tuple[str, ...]
    files: dict[str, Path]  # split name -> its TSV
    version: str | None

    @property
    def key(self) -> str:
        return f"{self.dataset_id} / {self.view}"


@dataclass(frozen=True)
class Evaluation:
    """The latest evaluation of a model on a dataset x view (reports/index.json) and its predictions.tsv."""

    model_id: str
    family: str
    dataset_id: str  # trained on
    eval_dataset_id: str  # scored on (another dataset: a cross-dataset evaluation)
    view: str
    predictions: Path
    eval_split_version: str | None
    macro_f1: float | None = None
    supervised: bool = True  # a clustering's `predicted` is a cluster, never right or wrong

    @property
    def label(self) -> str:
        trained = f", trained on {self.dataset_id}" if self.dataset_id != self.eval_dataset_id else ""
        score = f", macro-F1 {self.macro_f1:.3f}" if self.macro_f1 is not None else ""
        return f"{self.model_id} ({self.family}{trained}{score})"


@dataclass(frozen=True)
class Inventory:
    root: Path
    corpora: dict[str, Path]  # corpus_id -> docs.parquet
    views: list[ViewSplit] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)

    def evaluations_on(self, view: ViewSplit) -> list[Evaluation]:
        """The models evaluated on this view's job set (this dataset's own models and cross-dataset ones)."""
        return [e for e in self.evaluations if e.eval_dataset_id == view.dataset_id and e.view == view.view]

    def is_current(self, evaluation: Evaluation, view: ViewSplit) -> bool:
        """Scored on the split now on disk (a split drawn again since leaves its predictions about other documents)."""
        return evaluation.eval_split_version is not None and evaluation.eval_split_version == view.version


@dataclass(frozen=True)
class Filters:
    """What the explorer narrows the documents to. An empty tuple or None: no filter on that column.
    Dates are ISO strings compared on their first 10 characters, bounds included; a bound leaves out
    documents without a date."""

    corpora: tuple[str, ...] = ()
    speakers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None


# ------------------------------------------------------------------------------------ inventory


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExploreError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise ExploreError(f"{path}: not a JSON object")
    return data


def inventory(root: Path) -> Inventory:
    """What the project holds now. No parsed corpus is an error that says what to run."""
    paths = ProjectPaths(Path(root))
    corpora_dir = paths.corpus_dir("x").parent
    corpora = {p.parent.name: p for p in sorted(corpora_dir.glob("*/docs.parquet"))}
    if not corpora:
        raise ExploreError(f"no parsed documents: {paths.rel(corpora_dir)}/<corpus>/docs.parquet is missing; run {PREPARE_HINT} first")
    return Inventory(paths.root, corpora, _views(paths), _evaluations(paths))


def _views(paths: ProjectPaths) -> list[ViewSplit]:
    views = []
    for meta_path in sorted((paths.root / "data" / "interim").glob("*/*/meta_view.json")):
        folder = meta_path.parent
        if folder.parent.name in NOT_DATASETS:
            continue
        files = {s: folder / f"{s}.tsv" for s in SPLITS if (folder / f"{s}.tsv").is_file()}
        if "train" not in files or "job" not in files:  # a split being rewritten or half deleted: not shown
            continue
        meta = _json(meta_path)
        version = (meta.get("lineage") or {}).get("version")
        corpora = tuple(meta.get("source_corpora") or ())
        views.append(ViewSplit(folder.parent.name, folder.name, folder, corpora, files, version))
    return views


def _evaluations(paths: ProjectPaths) -> list[Evaluation]:
    """The latest entry of each (dataset, view, model, eval dataset) of reports/index.json whose
    predictions.tsv is on disk (training.latest_entries, not imported: training loads the families)."""
    index = paths.reports / "index.json"
    if not index.is_file():
        return []
    latest: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for e in _json(index).get("entries", []):
        latest[(e["dataset_id"], e["view"], e["model_id"], e["eval_dataset_id"])] = e
    out = []
    for (dataset, view, model_id, eval_dataset), e in latest.items():
        rel = (e.get("files") or {}).get("predictions.tsv")
        if not rel or not (paths.root / rel).is_file():
            continue
        macro = (e.get("metrics") or {}).get("macro_f1")
        family, supervised = e.get("family", "?"), bool(e.get("supervised", True))
        out.append(
            Evaluation(model_id, family, dataset, eval_dataset, view, paths.root / rel, e.get("eval_split_version"), macro, supervised)
        )
    return sorted(out, key=lambda e: (e.eval_dataset_id, e.view, e.model_id, e.dataset_id))


# ------------------------------------------------------------------------------------ documents


def _read_tsv(path: Path, wanted: tuple[str, ...]) -> pd.DataFrame:
    """The `wanted` columns present in a TSV of prepare.write_tsv, as strings (the texts left unread)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    with open(path, encoding="utf-8") as fh:
        columns = fh.readline().rstrip("\n").split("\t")
    if "doc_id" not in columns:
        raise ExploreError(f"{path}: no doc_id column")
    include = [c for c in wanted if c in columns]
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(use_threads=False, block_size=max(1 << 20, path.stat().st_size + 1)),
        parse_options=pcsv.ParseOptions(delimiter="\t", newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={c: pa.float64() if c == "score" else pa.string() for c in include},
            include_columns=include,
            strings_can_be_null=False,
            null_values=[] if "score" not in include else [""],
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


def _read_docs(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    if "doc_id" not in present:
        raise ExploreError(f"{path}: no doc_id column")
    frame = pq.read_table(path, columns=[c for c in DOC_COLUMNS if c in present]).to_pandas()
    for column in DOC_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA if column == "n_tokens" else ""
    frame[["corpus_id", "speaker", "group", "date"]] = frame[["corpus_id", "speaker", "group", "date"]].fillna("")
    return frame[list(DOC_COLUMNS)]


def load_documents(inv: Inventory, view: ViewSplit | None = None, evaluation: Evaluation | None = None) -> pd.DataFrame:
    """One row per document: DOC_COLUMNS, then `split` and `label` (a view's; "" without a view,
    split `excluded` and no label for its corpora's documents outside the split), then with an
    evaluation its `predicted`, `score` and `correct` (empty outside the documents it scored)."""
    corpora = view.corpora if view is not None and view.corpora else tuple(inv.corpora)
    missing = [c for c in corpora if c not in inv.corpora]
    if missing:
        where = ProjectPaths(inv.root).rel(ProjectPaths(inv.root).corpus_dir(missing[0]) / "docs.parquet")
        raise ExploreError(f"{where} is missing (corpus {missing[0]!r} of {view.key if view else 'the project'}): run {PREPARE_HINT}")
    frame = pd.concat([_read_docs(inv.corpora[c]) for c in corpora], ignore_index=True)
    frame["split"] = ""
    frame["label"] = ""
    if view is not None:
        parts = []
        for name, path in view.files.items():
            part = _read_tsv(path, ("doc_id", "label"))
            part["split"] = name
            parts.append(part)
        assigned = pd.concat(parts, ignore_index=True).drop_duplicates("doc_id")  # oversampled copies: one row each
        frame = frame.drop(columns=["split", "label"]).merge(assigned, on="doc_id", how="left")
        frame["split"] = frame["split"].fillna(EXCLUDED)
        frame["label"] = frame["label"].fillna("")
    if evaluation is not None:
        predictions = _read_tsv(evaluation.predictions, ("doc_id", *PREDICTION_COLUMNS)).drop_duplicates("doc_id")
        if "score" not in predictions:
            predictions["score"] = float("nan")
        frame = frame.merge(predictions[["doc_id", "predicted", "score"]], on="doc_id", how="left")
        frame["predicted"] = frame["predicted"].fillna("")
        scored = frame["predicted"] != ""
        frame["correct"] = pd.Series(pd.NA, index=frame.index, dtype="boolean")
        if evaluation.supervised:
            frame.loc[scored, "correct"] = frame.loc[scored, "predicted"] == frame.loc[scored, "label"]
    extra = ["predicted", "score", "correct"] if evaluation is not None else []
    return frame[[*DOC_COLUMNS, "split", "label", *extra]]


def stamp(inv: Inventory, view: ViewSplit | None = None, evaluation: Evaluation | None = None) -> tuple[tuple[str, int], ...]:
    """(path, mtime_ns) of every file `load_documents` reads for these arguments: a cache key that
    changes when a stage rewrites one of them."""
    files = [inv.corpora[c] for c in (view.corpora if view is not None and view.corpora else inv.corpora) if c in inv.corpora]
    files += list(view.files.values()) if view is not None else []
    files += [evaluation.predictions] if evaluation is not None else []
    return tuple((str(f), f.stat().st_mtime_ns if f.exists() else 0) for f in files)


def read_texts(inv: Inventory, frame: pd.DataFrame) -> dict[str, str]:
    """doc_id -> text of the frame's documents, read from their corpora's docs.parquet (only those rows' texts kept)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: dict[str, str] = {}
    for corpus_id, ids in frame.groupby("corpus_id")["doc_id"]:
        if corpus_id not in inv.corpora:
            continue
        table = pq.read_table(inv.corpora[corpus_id], columns=["doc_id", "text"], filters=pc.field("doc_id").isin(list(ids)))
        out.update(zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist()))
    return out


# ------------------------------------------------------------------------------------ filters


def filter_documents(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """The rows of `frame` that pass every filter set, in their order."""
    keep = pd.Series(True, index=frame.index)
    for column, wanted in (
        ("corpus_id", filters.corpora),
        ("speaker", filters.speakers),
        ("group", filters.groups),
        ("label", filters.labels),
        ("split", filters.splits),
    ):
        if wanted:
            keep &= frame[column].isin(wanted)
    if filters.date_from is not None or filters.date_to is not None:
        day = frame["date"].astype(str).str[:10]
        dated = day.str.len() == 10
        keep &= dated
        if filters.date_from is not None:
            keep &= day >= filters.date_from[:10]
        if filters.date_to is not None:
            keep &= day <= filters.date_to[:10]
    if filters.min_tokens is not None or filters.max_tokens is not None:
        tokens = pd.to_numeric(frame["n_tokens"], errors="coerce")
        if filters.min_tokens is not None:
            keep &= (tokens >= filters.min_tokens).fillna(False)
        if filters.max_tokens is not None:
            keep &= (tokens <= filters.max_tokens).fillna(False)
    return frame[keep.astype(bool)]
