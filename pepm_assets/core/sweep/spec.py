"""What a planned run is, and the columns of the sweep's files (spec §4.1, §6.1): the one place
that plan.py, ledger.py, policy.py, hooks.py and defs/sweep.py agree on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# run statuses in runs.tsv
PLANNED = "planned"  # in plan.tsv, not submitted yet
QUEUED = "queued"  # submitted to Dagster's run queue
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
OOM = "oom"  # stopped by the hard RAM limit (safety.enable_hard_ram_limit)
SKIPPED_OOM = "skipped_oom"  # oom_policy skip: a run of the same axis combination ran out of memory
ABORTED_OOM = "aborted_oom_policy"  # oom_policy stop: every remaining run after an oom
PRUNED = "pruned_early_stop"  # early_stop: a repeat of a combination already flagged low quality
CANCELED = "canceled"
FINAL = (SUCCESS, FAILED, OOM, SKIPPED_OOM, ABORTED_OOM, PRUNED, CANCELED)
NOT_RUN = (SKIPPED_OOM, ABORTED_OOM, PRUNED)  # decided by a policy, never executed

PLAN_COLUMNS = [
    "run_id",
    "combo",  # the axis combination, "axis=label|axis=label": repeats of one combination share it
    "repeat_index",
    "seed",
    "stage",
    "profile",
    "resource_class",
    "families",  # comma-separated families the run trains
    "models",  # comma-separated model ids
    "axis_values_json",
    "make_vars_json",
    "overrides_json",
    "override_list_json",  # the profile overrides the run resolves with (make_vars mapped, seed included)
    "params_hash",  # of the resolved parameters: a resumed run whose hash changed runs again
]

RUNS_COLUMNS = [
    "run_id",
    "status",
    "attempt",  # 1, 2 … (a resumed run, a backoff re-plan)
    "start",
    "end",
    "duration_s",
    "max_rss_mb",
    "seed",
    "combo",
    "resource_class",
    "axis_values_json",
    "dagster_run_id",
    "mlflow_run_id",
    "metrics_path",  # superior/<exp_id>/runs/<run_id>/summary.json, relative to the project root
    "quality_ok",
    "quality_flags",
    "train_caps_json",  # max_train_docs per family actually used (a backoff shrinks them)
    "params_hash",
    "note",  # why: the error's first line, the oom's RSS, the policy that skipped it
]


@dataclass(frozen=True)
class RunSpec:
    """One planned run (spec §6.1), resolved: `override_list` is what `pepm run -o` would get."""

    run_id: str  # "run_0001"
    exp_id: str
    profile: str
    stage: str  # pipeline | prepare | train | evaluate
    make_vars: dict[str, str]
    overrides: dict[str, Any]
    repeat_index: int
    axis_values: dict[str, str]  # axis name -> value label
    resource_class: str  # light | medium | heavy
    seed: int
    combo: str
    families: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    override_list: list[str] = field(default_factory=list)
    params_hash: str = ""


def exp_dir(root: Path, exp_id: str) -> Path:
    return Path(root) / "superior" / exp_id


def run_dir(root: Path, exp_id: str, run_id: str) -> Path:
    """A run's own project-shaped folder: data/interim/<ds>/<view>, data/processed, models, reports."""
    return exp_dir(root, exp_id) / "runs" / run_id


def partition_key(exp_id: str, run_id: str) -> str:
    """The run's key in Dagster's dynamic `sweep_run` partitions."""
    return f"{exp_id}.{run_id}"
