"""The `tsv` format, a reference (spec: sklearn "reuses the TSV"): the families that read it (check,
sklearn, cluster) are given data/interim/<dataset>/<view>/{train,job}.tsv as they are: nothing is copied
(a capped family reads the first rows of train.tsv itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ResolvedParams
from ..paths import ProjectPaths
from . import reads


@reads()  # a reference: the families read the TSVs themselves
def tsv_reference(
    train: pd.DataFrame | None, job: pd.DataFrame | None, out_dir: Path, params: ResolvedParams, paths: ProjectPaths, labels: list[str]
) -> dict[str, Any]:
    view_dir = paths.view_dir(params.dataset_id, params.view)
    return {
        "format": "tsv",
        "train": paths.rel(view_dir / "train.tsv"),
        "job": paths.rel(view_dir / "job.tsv"),
        "text_column": "text",
        "label_column": "label",
    }
