"""One version chain from raw bytes to metrics (plain Python; the Dagster assets and the CLI use it).

Every output folder carries a stamp (`version` + the versions of the `inputs` it was built from) in
its meta file, written last, so a crash leaves the old stamp and the output reads as stale, never
as fresh. A version is a hash of exactly what determines the content:

    raw_tei[corpus]       the files the corpus's glob selects: names and bytes (DVC's directory hash)
    corpus_docs[corpus]   raw version + parse config (glob, dialect, dialect_options) + code version
    view_split[ds|view]   corpus_docs versions + resolved parameters (params_hash) + code version
    model_formats         view_split version + code version; each format it holds has a version of
                          its own: the split's version + code version + the train rows it holds
                          (the first n of train.tsv's seeded order, all of them when uncapped)
    model/<id>            the version of the rows it reads of its family's format (format_version
                          with the family's cap) + its models.yml entry + the family's code version
                          + the hardware values that change what that family fits
    evaluation/<id>       model version + the id of the fit on disk + the job set's view version + code version

`expected_*` compute what the version should be now, from the current files and configs; a stamp
that differs is stale, a stamp (or an output file) that is missing is missing. The runner skips
exactly the fresh ones, and an asset refuses inputs whose stamp is not the one its run expects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .asset_names import evaluation_asset, model_asset
from .atomic import write_json
from .config import CorpusConfig, ModelSpec, ResolvedParams
from .paths import ProjectPaths

CORPUS_CODE = "corpus-4"  # 4: a standard-TEI speaker's group is the affiliation in force on the document's date (from/to)
VIEW_CODE = "view-3"
FORMATS_CODE = "formats-6"  # 4: the spaCy format writes the validation split (spacy/valid) and records the split it was carved by; 5: formats on demand (only those the run's models read, each holding the train rows its capped families use); 6: no spaCy job shards (read by nothing: the spacy family scores job.tsv), its entry's `job` is job.tsv
MODEL_CODE = "model-3"
EVAL_CODE = "eval-6"  # 4: every report states its protocol; 5: repeated splits (mean ± sd), intervals resampling speakers on grouped splits; 6: class scores in predictions.tsv, calibration (Brier, ECE, reliability diagram)
HASH_CACHE = Path(".pepm") / "file_hashes.json"


class LineageError(RuntimeError):
    """An input on disk is not the version the run expects (it says what to re-run)."""


def digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


# ---------------------------------------------------------------- raw bytes
def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_cache(root: Path) -> dict[str, list]:
    try:
        return json.loads((root / HASH_CACHE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def raw_version(root: Path, corpus: CorpusConfig) -> str:
    """Content hash of the entries the corpus's glob selects, in DVC's `.dir` form (md5 of the
    sorted [{md5, relpath}] list) so it equals the DVC hash when the glob selects the whole tracked
    folder. Each file's md5 is cached by (size, mtime_ns, inode), as DVC's own state does; an entry
    that is not a readable file (a directory, a broken link, no permission) is listed by its kind,
    so adding or breaking one changes the version too."""
    folder = root / corpus.path
    if not folder.is_dir():
        return "missing"
    cache = _load_cache(root)
    changed = False
    entries = []
    for path in sorted(folder.glob(corpus.glob)):
        rel = path.relative_to(folder).as_posix()
        key = str(path.resolve()) if path.exists() else str(path)
        try:
            st = path.stat()
            if not path.is_file():
                entries.append({"md5": "not_a_file", "relpath": rel})
                continue
            sig = [st.st_size, st.st_mtime_ns, st.st_ino]
            hit = cache.get(key)
            if hit and hit[:3] == sig:
                md5 = hit[3]
            else:
                md5 = _md5(path)
                cache[key] = [*sig, md5]
                changed = True
        except OSError as exc:
            entries.append({"md5": f"unreadable:{type(exc).__name__}", "relpath": rel})
            continue
        entries.append({"md5": md5, "relpath": rel})
    if changed:
        try:
            write_json(root / HASH_CACHE, cache)
        except OSError:
            pass  # a read-only project still gets its versions, only slower
    blob = json.dumps(entries, sort_keys=True).encode("utf-8")
    return hashlib.md5(blob, usedforsecurity=False).hexdigest() + ".dir"


def corpus_config_version(corpus: CorpusConfig) -> str:
    """What of corpora.yml changes the parse (not the description, not the quality thresholds)."""
    return digest(corpus.path, corpus.glob, corpus.dialect, corpus.dialect_options)


# ---------------------------------------------------------------- versions of each asset
def corpus_docs_version(raw: str, config: str) -> str:
    return digest(CORPUS_CODE, raw, config)


def view_version(params: ResolvedParams, docs_versions: dict[str, str]) -> str:
    return digest(VIEW_CODE, params.params_hash, sorted(docs_versions.items()))


def formats_version(view: str) -> str:
    """The version of meta_formats.json's stamp: the formats are of this split, written by this code
    (what each format holds is versioned by `format_version`, in its entry)."""
    return digest(FORMATS_CODE, view)


def rows_read(cap: int | None, n_train: int | None) -> int | None:
    """How many first rows of train.tsv a family with train-size cap `cap` reads: None for all of
    them (no cap, or a cap the train set does not exceed; also when `n_train` is unknown and there
    is no cap)."""
    if cap is None or (n_train is not None and cap >= n_train):
        return None
    return cap


def format_version(view: str, name: str, n_train: int | None) -> str:
    """The version of format `name` of split `view` holding the first `n_train` rows of train.tsv
    (seeded order; None: all of them) and what it holds besides (formats/__init__.py). A model's `formats`
    input is this, with the rows it reads (`rows_read`): it changes when what the model reads
    changes, not when its format grows for another model."""
    return digest(FORMATS_CODE, view, name, n_train)


def model_inputs_of_spec(model_id: str, spec: ModelSpec) -> dict[str, Any]:
    """A model's models.yml entry (what changes the fit) and its family's code version."""
    from . import families

    return {
        "model_id": model_id,
        "spec": spec.model_dump(mode="json", exclude={"description", "early_stop", "resource_class"}),
        "family_code": families.REGISTRY.get(spec.family).code_version,
    }


def model_inputs(params: ResolvedParams, model_id: str, spec: ModelSpec) -> dict[str, Any]:
    """What, besides the split, decides a fitted model: its models.yml entry, its family's code
    version and the hardware values that family reads to fit (`Family.hardware_fields`)."""
    from . import families

    fields = families.REGISTRY.get(spec.family).hardware_fields
    hardware = {
        f"max_train_docs_{spec.family}": params.hardware.cap(spec.family),
        **{name: getattr(params.hardware, name) for name in fields},
    }
    inputs = {**model_inputs_of_spec(model_id, spec), "hardware": hardware}
    if params.dataset.merge_mode == "separate":  # one model per corpus: not what a pooled fit of the same split was
        inputs["per_corpus"] = params.dataset.source_field
    return inputs


def hardware_version(params: ResolvedParams) -> str:
    """The partition's hardware preset values: Dagster's `train_params` source, so that its UI shows
    the models stale after a preset edit (pepm's own status narrows this to the fields each
    family fits with)."""
    return digest(params.hardware.model_dump(mode="json"))


def model_version(formats: str, inputs: dict[str, Any]) -> str:
    return digest(MODEL_CODE, formats, inputs)


def evaluation_version(model: str, eval_view: str, training_id: str | None) -> str:
    """`training_id` names the fit the scores come from: a model trained again (even to the same
    version: a GPU fit need not be bit-identical) makes its evaluation stale."""
    return digest(EVAL_CODE, model, eval_view, training_id)


def training_id(model_meta: Path) -> str | None:
    """The id of the fit now on disk (meta_model.json), None when there is none."""
    try:
        return json.loads(model_meta.read_text(encoding="utf-8")).get("training_id")
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- stamps on disk
def stamp_file(
    paths: ProjectPaths,
    asset: str,
    params: ResolvedParams | None = None,
    corpus_id: str = "",
    model_id: str = "",
    spec: ModelSpec | None = None,
    eval_dataset_id: str | None = None,
) -> Path:
    """The meta file that carries an asset partition's stamp (for an evaluation on another
    dataset's job set, `eval_dataset_id`: the `<model>@<dataset>` report)."""
    if asset == "corpus_docs":
        return paths.corpus_dir(corpus_id) / "parse_stats.json"
    assert params is not None
    if asset == "view_split":
        return paths.view_dir(params.dataset_id, params.view) / "meta_view.json"
    if asset == "model_formats":
        return paths.processed_dir(params.dataset_id, params.view) / "meta_formats.json"
    assert spec is not None
    if asset == "model":
        return paths.model_dir(params.dataset_id, params.view, spec.family, model_id) / "meta_model.json"
    if asset == "evaluation":
        return paths.report_dir(params.dataset_id, params.view, spec.family, model_id, eval_dataset_id) / "meta_eval.json"
    raise ValueError(asset)


def read_stamp(path: Path) -> dict[str, Any] | None:
    """{"version", "inputs", "files"} of a meta file, or None when the file or any output it lists
    is missing (a deleted output is missing, not fresh)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    lineage = meta.get("lineage")
    if not isinstance(lineage, dict) or "version" not in lineage:
        return None
    if any(not (path.parent / name).exists() for name in lineage.get("files", [])):
        return None
    return lineage


def stamp(version: str, inputs: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """The `lineage` entry of a meta file; `files` are the outputs beside it that must exist."""
    return {"version": version, "inputs": inputs, "files": files}


def commit(path: Path, lineage: dict[str, Any]) -> None:
    """Write the stamp into an existing meta file (atomically): the last write of an asset."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["lineage"] = lineage
    write_json(path, meta)


def recorded_version(path: Path) -> str | None:
    found = read_stamp(path)
    return found["version"] if found else None


# ---------------------------------------------------------------- what a partition should be now
@dataclass
class Status:
    asset: str
    partition: str
    state: str  # FRESH | STALE | MISSING
    expected: str
    recorded: str | None
    why: list[str] = field(default_factory=list)


WHY = {
    "raw": "raw files changed",
    "config": "corpora.yml parse settings changed",
    "params_hash": "parameters changed",
    "corpus_docs": "parsed corpus changed",
    "view": "split changed",
    "formats": "model formats changed",
    "spec": "models.yml entry changed",
    "hardware": "hardware values changed",
    "family_code": "family code changed",
    "model": "model changed",
    "eval_view": "job set changed",
    "training_id": "model trained again",
}


def _status(asset: str, partition: str, expected: tuple[str, dict[str, Any]], path: Path) -> Status:
    """Compare the stamp at `path` with the expected (version, inputs); `why` names the inputs that differ."""
    version, inputs = expected
    found = read_stamp(path)
    if found is None:
        return Status(asset, partition, "MISSING", version, None, [f"not built ({path.name} or an output it lists is missing)"])
    if found["version"] == version:
        return Status(asset, partition, "FRESH", version, version)
    recorded = found.get("inputs", {})
    why = [WHY.get(k, f"{k} changed") for k in inputs if recorded.get(k) != inputs[k]]
    return Status(asset, partition, "STALE", version, found["version"], why or ["code version changed"])


def _formats_status(expected: tuple[str, dict[str, Any]], path: Path, params: ResolvedParams) -> Status:
    """model_formats is fresh when it is of the split on disk *and* holds every format the run's
    models read, with the train rows they read (formats.needed): a run that adds a spaCy model to
    a prepared split, or raises its cap, writes that format then."""
    from . import formats

    status = _status("model_formats", f"{params.dataset_id}|{params.view}", expected, path)
    if status.state != "FRESH":
        return status
    meta = json.loads(path.read_text(encoding="utf-8"))
    why = formats.shortfalls(params, meta)
    return replace(status, state="STALE", why=why) if why else status


class Expected:
    """Expected (version, inputs) of each asset partition for one project, from the current files
    and configs; the raw hash is computed once per corpus (hashing is the cost)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.paths = ProjectPaths(self.root)
        self._raw: dict[str, str] = {}

    def raw(self, corpus_id: str, corpus: CorpusConfig) -> str:
        if corpus_id not in self._raw:
            self._raw[corpus_id] = raw_version(self.root, corpus)
        return self._raw[corpus_id]

    def corpus_docs(self, corpus_id: str, corpus: CorpusConfig) -> tuple[str, dict[str, Any]]:
        inputs = {"raw": self.raw(corpus_id, corpus), "config": corpus_config_version(corpus)}
        return corpus_docs_version(inputs["raw"], inputs["config"]), inputs

    def view(self, params: ResolvedParams) -> tuple[str, dict[str, Any]]:
        docs = {cid: self.corpus_docs(cid, c)[0] for cid, c in params.corpora.items()}
        return view_version(params, docs), {"params_hash": params.params_hash, "corpus_docs": docs}

    def formats(self, params: ResolvedParams) -> tuple[str, dict[str, Any]]:
        view = self.view(params)[0]
        return formats_version(view), {"view": view}

    def n_train(self, params: ResolvedParams) -> int | None:
        """The number of train rows of the split on disk when it is the one `params` call for (else
        None: the split will be built again, and everything after it is stale anyway)."""
        path = stamp_file(self.paths, "view_split", params)
        found = read_stamp(path)
        if found is None or found["version"] != self.view(params)[0]:
            return None
        try:
            return int(json.loads(path.read_text(encoding="utf-8"))["split"]["n_train"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def model_formats(self, params: ResolvedParams, spec: ModelSpec) -> str:
        """The version of the rows the model reads of its family's format (`format_version`)."""
        from . import families

        n = rows_read(params.hardware.cap(spec.family), self.n_train(params))
        return format_version(self.view(params)[0], families.REGISTRY.get(spec.family).reads, n)

    def model(self, params: ResolvedParams, model_id: str, spec: ModelSpec) -> tuple[str, dict[str, Any]]:
        formats = self.model_formats(params, spec)
        inputs = model_inputs(params, model_id, spec)
        return model_version(formats, inputs), {
            "formats": formats,
            "view": self.view(params)[0],
            "params_hash": params.params_hash,
            **inputs,
        }

    def evaluation(
        self, params: ResolvedParams, model_id: str, spec: ModelSpec, eval_params: ResolvedParams | None = None
    ) -> tuple[str, dict[str, Any]]:
        model = self.model(params, model_id, spec)[0]
        view = self.view(eval_params or params)[0]
        fit = training_id(stamp_file(self.paths, "model", params, model_id=model_id, spec=spec))
        return evaluation_version(model, view, fit), {"model": model, "eval_view": view, "training_id": fit}

    def statuses(self, params: ResolvedParams, models: dict[str, ModelSpec], eval_params: ResolvedParams | None = None) -> list[Status]:
        """corpus_docs of each corpus, then the partition's view, formats, models and evaluations.
        With `eval_params` (a cross-dataset evaluation, spec §2.7.3), an evaluation is fresh only
        when its score on that dataset's job set is too."""
        part = f"{params.dataset_id}|{params.view}"
        out = [
            _status("corpus_docs", cid, self.corpus_docs(cid, c), stamp_file(self.paths, "corpus_docs", corpus_id=cid))
            for cid, c in params.corpora.items()
        ]
        out.append(_status("view_split", part, self.view(params), stamp_file(self.paths, "view_split", params)))
        out.append(_formats_status(self.formats(params), stamp_file(self.paths, "model_formats", params), params))
        for model_id, spec in models.items():
            out.append(
                _status(
                    model_asset(model_id),
                    part,
                    self.model(params, model_id, spec),
                    stamp_file(self.paths, "model", params, model_id=model_id, spec=spec),
                )
            )
            evaluation = _status(
                evaluation_asset(model_id),
                part,
                self.evaluation(params, model_id, spec),
                stamp_file(self.paths, "evaluation", params, model_id=model_id, spec=spec),
            )
            if eval_params is not None and evaluation.state == "FRESH":
                stamp = stamp_file(self.paths, "evaluation", params, model_id=model_id, spec=spec, eval_dataset_id=eval_params.dataset_id)
                cross = _status(evaluation.asset, part, self.evaluation(params, model_id, spec, eval_params), stamp)
                if cross.state != "FRESH":
                    evaluation = replace(cross, why=[f"on {eval_params.dataset_id}'s job set: {why}" for why in cross.why])
            out.append(evaluation)
        return out
