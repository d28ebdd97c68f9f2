"""Model formats: what each family reads, written from train.tsv / job.tsv.

One writer per format file (tsv.py, spacy.py, hf.py), registered under the families that read it.
To add a family with a new input format: write `formats/<name>.py`, register it, import it below.
`meta_formats.json` lists every path per family, so trainers never guess where their input is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_json
from ..config import ResolvedParams
from ..paths import ProjectPaths
from ..registry import Registry

# writer(train, job, out_dir, params, paths) -> {"train": ..., "job": ..., ...} (paths relative to root)
Writer = Callable[[pd.DataFrame, pd.DataFrame, Path, ResolvedParams, ProjectPaths], dict[str, Any]]
REGISTRY: Registry[Writer] = Registry("model format")


def write_formats(
    params: ResolvedParams, paths: ProjectPaths, train: pd.DataFrame, job: pd.DataFrame, stamp: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every family's files, then meta_formats.json (with the lineage `stamp`) last."""
    out_dir = paths.processed_dir(params.dataset_id, params.view)
    labels = sorted(set(train["label"]) | set(job["label"]))
    meta: dict[str, Any] = {
        "dataset_id": params.dataset_id,
        "view": params.view,
        "labels": labels,
        "params_hash": params.params_hash,
        "seed": params.seed,
        "n_train": len(train),
        "n_job": len(job),
        "families": {},
    }
    (out_dir / "meta_formats.json").unlink(missing_ok=True)  # its stamp goes first, comes back last
    for family in params.families:
        meta["families"][family] = REGISTRY.get(family)(train, job, out_dir, params, paths)
    if stamp:
        meta["lineage"] = stamp
    write_json(out_dir / "meta_formats.json", meta)
    return meta


from . import hf, spacy, tsv  # noqa: E402,F401
