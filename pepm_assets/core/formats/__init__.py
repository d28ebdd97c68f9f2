"""Model formats: what the families read, written from train.tsv / job.tsv.

One writer per format, one file each (tsv.py, spacy.py, hf.py), registered by format name: a family
names the format it reads (`Family.reads`), and prepare writes each format that the profile's
families read, once. A new format is one module plus one registry entry (a line in `BUILTIN`, or
an entry point of the group `pepm.formats` in a package of your own), like a family.
`meta_formats.json` lists every path per format (`formats`) and the format each family reads
(`families`), so trainers never guess where their input is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from .. import families
from ..atomic import write_json
from ..config import ResolvedParams
from ..paths import ProjectPaths
from ..registry import Registry

# writer(train, job, out_dir, params, paths) -> {"format": <its name>, "train": ..., "job": ..., ...} (paths relative to root)
Writer = Callable[[pd.DataFrame, pd.DataFrame, Path, ResolvedParams, ProjectPaths], dict[str, Any]]
BUILTIN = {  # one line per format: name -> "module:writer", imported at first use
    "tsv": f"{__name__}.tsv:tsv_reference",
    "spacy_docbin": f"{__name__}.spacy:spacy_shards",
    "hf_jsonl": f"{__name__}.hf:hf_jsonl",
}
REGISTRY: Registry[Writer] = Registry("model format", BUILTIN, group="pepm.formats")


def write_formats(
    params: ResolvedParams, paths: ProjectPaths, train: pd.DataFrame, job: pd.DataFrame, stamp: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each format the profile's families read, once, then meta_formats.json (with the lineage `stamp`) last."""
    out_dir = paths.processed_dir(params.dataset_id, params.view)
    labels = sorted(set(train["label"]) | set(job["label"]))
    reads = {family: families.REGISTRY.get(family).reads for family in params.families}
    meta: dict[str, Any] = {
        "dataset_id": params.dataset_id,
        "view": params.view,
        "labels": labels,
        "params_hash": params.params_hash,
        "seed": params.seed,
        "n_train": len(train),
        "n_job": len(job),
        "families": reads,
        "formats": {},
    }
    (out_dir / "meta_formats.json").unlink(missing_ok=True)  # its stamp goes first, comes back last
    for name in sorted(set(reads.values())):
        meta["formats"][name] = REGISTRY.get(name)(train, job, out_dir, params, paths)
    if stamp:
        meta["lineage"] = stamp
    write_json(out_dir / "meta_formats.json", meta)
    return meta
