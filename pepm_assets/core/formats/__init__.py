"""Model formats: what the families read, written from train.tsv / job.tsv, on demand.

One writer per format, one file each (tsv.py, spacy.py, hf.py), registered by format name: a family
names the format it reads (`Family.reads`). Prepare writes the formats that the run's models read
(`params.models`, their families' `reads`), not those of every family of the profile, and each one
holds what those models use: a family with a train-size cap (`hardware.max_train_docs`) reads the
first rows of the shuffled (seeded) train.tsv, so its format holds those rows only (the largest
cap among the run's families that read it; all rows when one of them has no cap), plus what its
families score: the whole job set for hf (job.jsonl); spaCy's entry names job.tsv (its models
tokenize the job texts themselves when they score them, formats/spacy.py) and holds the validation
set. A later run that needs a format not written yet, or more train rows than it holds, writes that
format then and keeps the others (`write_formats`).

`meta_formats.json` lists every path per format (`formats`), the format each family reads
(`families`) and, per format, what it `holds` (the train rows, the caps it was written for, their
order), the `seconds` its writer took (imports included) and its `version` (lineage.format_version: the split's version + what it holds), so trainers
never guess where their input is, nor whether it holds their documents.

A new format is one module plus one registry entry (a line in `BUILTIN`, or an entry point of the
group `pepm.formats` in a package of your own), like a family. Its writer is
`writer(train, job, out_dir, params, paths, labels)`: `train` is the rows the format must hold (the
first rows of train.tsv, in order), `labels` every label of the split (train.tsv's and job.tsv's,
also those of rows not written). A writer says which of the split's sets it reads (`@reads("train")`;
one that does not say reads both): the others are not read from disk for it and it is given None
(the tsv reference reads neither, spaCy's shards the train rows only: at 40x MPT job.tsv is 0.2 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import families, lineage
from ..atomic import write_json
from ..config import ResolvedParams
from ..paths import ProjectPaths
from ..registry import Registry

if TYPE_CHECKING:  # annotations only; the writers import it (CLI start-up, docs/internals.md)
    import pandas as pd

    from ..prepare import SplitOnDisk

# writer(train, job, out_dir, params, paths, labels) -> {"format": <its name>, "train": ..., "job": ..., ...} (paths relative to root;
# "job": the format's job file(s), or job.tsv for a format whose families read the job texts from it)
Writer = Callable[["pd.DataFrame | None", "pd.DataFrame | None", Path, ResolvedParams, ProjectPaths, list[str]], dict[str, Any]]
BUILTIN = {  # one line per format: name -> "module:writer", imported at first use
    "tsv": f"{__name__}.tsv:tsv_reference",
    "spacy_docbin": f"{__name__}.spacy:spacy_shards",
    "hf_jsonl": f"{__name__}.hf:hf_jsonl",
}
REGISTRY: Registry[Writer] = Registry("model format", BUILTIN, group="pepm.formats")
SETS = frozenset({"train", "job"})


def reads(*sets: str) -> Callable[[Writer], Writer]:
    """Declares the split's sets ("train", "job") a writer reads; write_formats gives it None for the others."""
    unknown = set(sets) - SETS
    if unknown:
        raise ValueError(f"a format writer reads {sorted(SETS)}, not {sorted(unknown)}")

    def mark(writer: Writer) -> Writer:
        writer.reads = frozenset(sets)  # type: ignore[attr-defined]
        return writer

    return mark


def _reads(writer: Writer) -> frozenset[str]:
    declared = getattr(writer, "reads", None)  # set by @reads; anything else there is not a declaration
    return declared if isinstance(declared, frozenset) and declared <= SETS else SETS


PATH_KEYS = ("train", "job", "valid", "label2id")  # the entry keys that name files (a path or a list of paths)


def run_families(params: ResolvedParams) -> dict[str, str]:
    """{family: the format it reads} for the families of the models the run trains or evaluates
    (`params.models`), not every family of the profile."""
    fams = sorted({params.model_specs[m].family for m in params.models})
    return {family: families.REGISTRY.get(family).reads for family in fams}


def rows_needed(params: ResolvedParams, family: str, n_train: int | None) -> int | None:
    """The first rows of train.tsv a model of `family` reads from its format (None: all of them).
    merge_mode separate: all (each corpus's cap takes that corpus's first rows, anywhere in the file)."""
    if params.dataset.merge_mode == "separate":
        return None
    return lineage.rows_read(params.hardware.cap(family), n_train)


def needed(params: ResolvedParams, n_train: int | None) -> dict[str, int | None]:
    """{format: the train rows it must hold (None: all)} for this run: the largest number that one
    of the run's families reading it reads."""
    out: dict[str, int | None] = {}
    for family, name in run_families(params).items():
        n = rows_needed(params, family, n_train)
        if name not in out:
            out[name] = n
        elif out[name] is not None:
            out[name] = None if n is None else max(out[name], n)
    return out


def held(entry: dict[str, Any]) -> int | str | None:
    """The train rows a format entry holds (None: all); "unknown" for an entry without `holds`."""
    holds = entry.get("holds")
    return holds.get("train_rows") if isinstance(holds, dict) else "unknown"


def covers(entry: dict[str, Any], n: int | None) -> bool:
    """Whether a format entry holds the first `n` train rows (None: all of them)."""
    have = held(entry)
    if have == "unknown":
        return False
    return have is None or (n is not None and have >= n)


def _files_exist(entry: dict[str, Any], root: Path) -> bool:
    for key in PATH_KEYS:
        value = entry.get(key)
        for rel in [value] if isinstance(value, str) else value or []:
            if not (root / rel).exists():
                return False
    return True


def _describe(n: int | None) -> str:
    return "all" if n is None else f"{n:,}"


def shortfalls(params: ResolvedParams, meta: dict[str, Any]) -> list[str]:
    """Why the formats in `meta` (meta_formats.json of the split on disk) do not serve this run:
    a format its models read that is not written, or holds fewer train rows than they read."""
    written = meta.get("formats", {})
    missing, short = [], []
    reads = run_families(params)
    for name, n in needed(params, meta.get("n_train")).items():
        entry = written.get(name)
        if entry is None:
            missing.append(name)
        elif not covers(entry, n):
            readers = ", ".join(f for f, r in reads.items() if r == name)
            have = held(entry)
            short.append(
                f"{name} holds {'an unknown number of' if have == 'unknown' else _describe(have)} train docs, "
                f"the run's {readers} models read {_describe(n)}"
            )
    return ([f"formats missing: {', '.join(sorted(missing))}"] if missing else []) + short


def _read_meta(path: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_formats(params: ResolvedParams, paths: ProjectPaths, split: SplitOnDisk, stamp: dict[str, Any] | None = None) -> dict[str, Any]:
    """Each format the run's models read that meta_formats.json does not hold yet (or holds with too
    few train rows), with the rows they read; the others it holds for this split (same `stamp`
    version) are kept. meta_formats.json (with the lineage `stamp`) is written before, listing the
    kept formats only (a crash leaves the ones being written missing, never half-written and
    listed), and after, with every format. The split's files are read only when a format is written,
    and only the train rows the formats written hold (`split`: sizes and labels from meta_view.json)."""
    out_dir = paths.processed_dir(params.dataset_id, params.view)
    meta_path = out_dir / "meta_formats.json"
    labels, n_train, n_job = split.labels, split.n_train, split.n_job
    view = (stamp or {}).get("inputs", {}).get("view")
    old = _read_meta(meta_path)
    same_split = bool(stamp) and old is not None and (old.get("lineage") or {}).get("version") == stamp["version"]
    kept = {
        name: entry
        for name, entry in ((old or {}).get("formats") or {}).items()
        if same_split and "version" in entry and _files_exist(entry, paths.root)
    }
    need = needed(params, n_train)
    todo = {name: n for name, n in sorted(need.items()) if name not in kept or not covers(kept[name], n)}
    written = {name: entry for name, entry in kept.items() if name not in todo}
    reads = {f: r for f, r in ((old or {}).get("families") or {}).items() if same_split and r in written}
    reads.update(run_families(params))
    meta: dict[str, Any] = {
        "dataset_id": params.dataset_id,
        "view": params.view,
        "labels": labels,
        "params_hash": params.params_hash,
        "seed": params.seed,
        "n_train": n_train,
        "n_job": n_job,
        "families": dict(sorted(reads.items())),
        "formats": written,
    }
    if todo or not same_split:  # the formats being written are not listed until they are
        meta_path.unlink(missing_ok=True)
        if stamp and written:
            write_json(meta_path, {**meta, "lineage": stamp})
    writers = {name: REGISTRY.get(name) for name in todo}
    train_rows = [n for name, n in todo.items() if "train" in _reads(writers[name])]
    most = None if any(n is None for n in train_rows) else max(train_rows, default=0)
    train = split.train(most) if train_rows else None
    job = split.job() if any("job" in _reads(writer) for writer in writers.values()) else None
    for name, n in todo.items():
        writer = writers[name]
        rows = None if "train" not in _reads(writer) else train if n is None else train.iloc[:n]
        started = time.perf_counter()
        entry = writer(rows, job if "job" in _reads(writer) else None, out_dir, params, paths, labels)
        entry["seconds"] = round(time.perf_counter() - started, 2)  # the writer's (information: benchmarks/bench_scale.py)
        caps = {f: params.hardware.cap(f) for f, r in run_families(params).items() if r == name}
        entry["holds"] = {
            "train_rows": n,  # the first n rows of train.tsv (None: all of them)
            "n_train": n_train if n is None else min(n, n_train),
            "n_train_split": n_train,
            "n_job": n_job,
            "max_train_docs": caps,  # the caps of the run's families that read it, when it was written
            "order": f"train.tsv's order (shuffled with seed {params.seed}): a capped family reads its first rows",
        }
        entry["version"] = lineage.format_version(view, name, n) if view else None
        written[name] = entry
    meta["formats"] = dict(sorted(written.items()))
    if stamp:
        meta["lineage"] = stamp
    write_json(meta_path, meta)
    return meta
