"""The TSV reference format (spec: sklearn "reuses the TSV"): check, sklearn and cluster read
data/interim/<dataset>/<view>/{train,job}.tsv directly, so nothing is copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..config import ResolvedParams
from ..paths import ProjectPaths
from . import REGISTRY


def tsv_reference(train: pd.DataFrame, job: pd.DataFrame, out_dir: Path, params: ResolvedParams, paths: ProjectPaths) -> dict[str, Any]:
    view_dir = paths.view_dir(params.dataset_id, params.view)
    return {
        "format": "tsv",
        "train": paths.rel(view_dir / "train.tsv"),
        "job": paths.rel(view_dir / "job.tsv"),
        "text_column": "text",
        "label_column": "label",
    }


for _family in ("check", "sklearn", "cluster"):
    REGISTRY.register(_family)(tsv_reference)
