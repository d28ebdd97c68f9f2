"""`make run` with the spec's Make variables (issue: every variable but STAGE/PROFILE/OVERRIDES was
silently ignored, so `make run SEED=3` ran seed 42)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pepm_assets.core.config import ConfigError
from pepm_assets.core.make_vars import to_overrides
from pepm_assets.core.paths import ProjectPaths

from .fixtures import REPO


def test_make_variables_map_onto_profile_parameters() -> None:
    assert to_overrides(["SEED=3", "TRAIN_PROP=0.7", "FAMILY=spacy", "MODELS=a, b", "CORPUS_ID=mpt"]) == [
        "seed=3",
        "train_prop=0.7",
        "families=[spacy]",
        "models=[a,b]",
        "dataset_id=mpt",
    ]
    with pytest.raises(ConfigError, match="SEDD.*did you mean SEED"):
        to_overrides(["SEDD=7"])


def _make(project: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PEPM_ROOT": str(project), "DAGSTER_HOME": str(tmp_path / "dh")}
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "run", *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_make_run_applies_seed_and_train_prop_and_refuses_a_typo(project: Path, tmp_path: Path) -> None:
    """Through the real Makefile (README command 2 has made the repo's .venv)."""
    out = _make(project, tmp_path, "STAGE=prepare", "PROFILE=tiny_quick", "SEED=9", "TRAIN_PROP=0.5")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    meta = json.loads((ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text())
    assert meta["seed"] == 9 and meta["split"]["train_prop"] == 0.5
    bad = _make(project, tmp_path, "STAGE=prepare", "PROFILE=tiny_quick", "SEDD=7")
    assert bad.returncode != 0 and "SEDD" in bad.stdout + bad.stderr and "did you mean SEED" in bad.stdout + bad.stderr
