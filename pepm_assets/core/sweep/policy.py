"""oom_policy and early_stop (spec §8.5-8.6) as pure decisions on the plan and the ledger.

The ledger is runs.tsv read as {run_id: row}, every value a string (RUNS_COLUMNS); a run of the
plan missing from it has not been submitted yet. Nothing here writes, submits or cancels: the
functions say which runs get which status, and the caller (defs/sweep.py) records it and cancels
the Dagster runs among them that are queued or running. Keeping the decisions pure keeps them
testable without Dagster and identical whether a sweep runs or is resumed.
"""

from __future__ import annotations

from typing import Any

from ..config.schema import EarlyStop
from .config import EarlyStopConfig, OomPolicy
from .spec import ABORTED_OOM, FINAL, PLANNED, QUEUED, SKIPPED_OOM, RunSpec


def _status(ledger: dict[str, dict[str, str]], run_id: str) -> str:
    return ledger.get(run_id, {}).get("status") or PLANNED


def after_oom(policy: OomPolicy | str, plan: list[RunSpec], ledger: dict[str, dict[str, str]], run_id: str) -> list[tuple[str, str, str]]:
    """(run_id, status, note) for the runs an oom of `run_id` decides, by `on_oom`:
    skip: the later runs of its combination not final yet -> skipped_oom (they would run out of
    memory too); stop: every run not final -> aborted_oom_policy; backoff: nothing here (the run is
    planned again with smaller caps, `backoff_overrides`)."""
    on_oom = policy.on_oom if isinstance(policy, OomPolicy) else policy
    ids = [run.run_id for run in plan]
    if run_id not in ids:
        raise KeyError(f"{run_id} is not in the plan")
    position = ids.index(run_id)
    if on_oom == "skip":
        combo = plan[position].combo
        note = f"oom_policy skip: {run_id} ({combo or 'no axes'}) ran out of memory"
        return [(r.run_id, SKIPPED_OOM, note) for r in plan[position + 1 :] if r.combo == combo and _status(ledger, r.run_id) not in FINAL]
    if on_oom == "stop":
        note = f"oom_policy stop: {run_id} ran out of memory"
        return [(r.run_id, ABORTED_OOM, note) for r in plan if r.run_id != run_id and _status(ledger, r.run_id) not in FINAL]
    if on_oom == "backoff":
        return []
    raise ValueError(f"unknown on_oom {on_oom!r}")


def backoff_overrides(caps: dict[str, int | None], families: list[str], n_train: int | None, factor: float) -> list[str] | None:
    """Overrides `hardware.max_train_docs.<family>=<n>` that shrink what each family of the run
    trains on by `factor`: from its cap, or from n_train (the train set's size) when uncapped or
    when the cap is above it (a cap of 4000 on 1000 documents cuts nothing); at least 1.
    None when nothing can shrink: every family already at 1 document, or uncapped with n_train
    unknown; the caller then records the oom as final instead of re-planning the run."""
    out = []
    for family in families:
        known = [n for n in (caps.get(family), n_train) if n is not None]
        if not known:
            continue
        current = min(known)
        smaller = max(1, int(current * factor))
        if smaller < current:
            out.append(f"hardware.max_train_docs.{family}={smaller}")
    return out or None


def judge_early_stop(cfg: EarlyStopConfig, models: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """(quality_ok, quality_flags) of a run from its models' scores ({"family", "metrics"} each),
    with EarlyStop.judge's semantics (a model is flagged when every threshold set is missed), for
    the models of `apply_to_families` (every model when empty). The run is flagged when one of its
    models is; the flags are those of the flagged models, each once ("low_accuracy,low_macro_f1")."""
    judge = EarlyStop(enabled=cfg.enabled, min_accuracy=cfg.min_accuracy, min_macro_f1=cfg.min_macro_f1)
    ok, flags = True, []
    for model in models:
        if cfg.apply_to_families and model.get("family") not in cfg.apply_to_families:
            continue
        model_ok, model_flags = judge.judge(model.get("metrics") or {})
        if not model_ok:
            ok = False
            flags += [f for f in model_flags if f not in flags]
    return ok, flags


def to_prune(plan: list[RunSpec], ledger: dict[str, dict[str, str]], run_id: str, cfg: EarlyStopConfig | None = None) -> list[str]:
    """The repeats of `run_id`'s combination not started yet (planned or queued) once the ledger
    says it was flagged (quality_ok false); none when `cfg` is given and pruning is off
    (early_stop.enabled and early_stop.prune both needed)."""
    if cfg is not None and not (cfg.enabled and cfg.prune):
        return []
    if ledger.get(run_id, {}).get("quality_ok", "").strip().lower() not in ("false", "0", "no"):
        return []
    combo = next(run.combo for run in plan if run.run_id == run_id)
    return [r.run_id for r in plan if r.combo == combo and r.run_id != run_id and _status(ledger, r.run_id) in (PLANNED, QUEUED)]
