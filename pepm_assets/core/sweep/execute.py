"""One planned run, executed in its own folder (spec §7: the work of `run_single`).

superior/<exp_id>/runs/<run_id>/ is shaped like a project (data/interim/<ds>/<view>/,
data/processed/, models/, reports/, and `configs` linking to the project's), so the same core
functions that build the project's partitions build the run's, and two runs on one dataset x view
never write to the same file, nor to the user's own data/, models/ or reports/. What is truly
shared is read from the project: the parsed corpora (parsed once for the whole sweep, by
`pepm sweep`, before any run) and the configs. MLflow: one parent run per planned run, in the
experiment named after exp_id, with each training and evaluation as a nested run (the model of
dagster-mlflow, whose package pins pandas<3: see docs/sweeps.md); `tracker` is a Journal when the
logging is left to `pepm sweep`. The confusion-matrix PNGs are left to the caller too
(training.draw_confusions: `pepm sweep` draws them with matplotlib loaded once, not once per run).

The run's parameters are resolved again here from its overrides, and must hash as in plan.tsv:
configs edited since the plan fail the run ("re-plan") rather than silently run something else.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .. import stages, training
from ..atomic import write_json
from ..config import ResolvedParams, resolve_on_dataset, resolve_profile
from ..paths import ProjectPaths
from ..tracking import Journal, Tracker
from .plan import run_hash
from .spec import RunSpec, run_dir

SUMMARY = "summary.json"


class PlanChanged(RuntimeError):
    """The configs no longer resolve this run to the parameters it was planned with."""


def run_root(root: Path, spec: RunSpec) -> Path:
    """The run's project-shaped folder, created with its `configs` link."""
    out = run_dir(root, spec.exp_id, spec.run_id)
    out.mkdir(parents=True, exist_ok=True)
    link = out / "configs"
    if not link.exists():
        try:
            link.symlink_to(os.path.relpath(Path(root) / "configs", out), target_is_directory=True)
        except FileExistsError:  # a parallel attempt made it
            pass
    return out


def resolve_run(root: Path, spec: RunSpec, extra_overrides: list[str] | None = None) -> ResolvedParams:
    params = resolve_profile(root, spec.profile, [*spec.override_list, *(extra_overrides or [])])
    if not extra_overrides and spec.params_hash and run_hash(params) != spec.params_hash:
        raise PlanChanged(
            f"{spec.run_id}: the configs now resolve it to params {run_hash(params)}, planned as {spec.params_hash}; "
            "run `pepm sweep --exp-config … --resume` again: it plans anew"
        )
    return params


def run_one(
    root: Path,
    spec: RunSpec,
    tracker: Tracker | Journal | None = None,
    extra_overrides: list[str] | None = None,
    tags: dict[str, str] | None = None,
    on_step=None,
) -> dict[str, Any]:
    """Split, formats, then (stage train / evaluate / pipeline) every model of the run, then
    (evaluate / pipeline) every evaluation, all under the run's folder; returns the summary written
    to summary.json. `extra_overrides`: a backoff's smaller train caps."""
    root = Path(root)
    started = time.time()
    step = on_step or (lambda _name: None)
    params = resolve_run(root, spec, extra_overrides)
    eval_params = resolve_on_dataset(root, params, params.eval_dataset_id) if params.eval_dataset_id else None
    out = run_root(root, spec)
    project = ProjectPaths(root)
    for part in (params, *([eval_params] if eval_params else [])):
        step(f"split {part.dataset_id}/{part.view}")
        stages.build_split(part, out, project)
        stages.build_formats(part, out)
    tags = {**(tags or {}), "sweep": spec.exp_id, "sweep_run": spec.run_id, "seed": str(params.seed), "params_hash": params.params_hash}
    models: list[dict[str, Any]] = []
    if spec.stage != "prepare":
        for model_id in params.models:
            step(f"train {model_id}")
            models += _train_and_score(root, out, spec, params, eval_params, model_id, tracker, tags)
    summary = {
        "run_id": spec.run_id,
        "exp_id": spec.exp_id,
        "status": "success",
        "seed": params.seed,
        "repeat_index": spec.repeat_index,
        "combo": spec.combo,
        "axis_values": spec.axis_values,
        "make_vars": spec.make_vars,
        "params": _params_facts(params),
        "params_hash": params.params_hash,
        "extra_overrides": list(extra_overrides or []),
        "train_caps": {f: params.hardware.cap(f) for f in sorted({params.model_specs[m].family for m in params.models})},
        "duration_s": round(time.time() - started, 3),
        "models": models,
    }
    write_json(out / SUMMARY, summary)
    return summary


def _train_and_score(
    root: Path,
    out: Path,
    spec: RunSpec,
    params: ResolvedParams,
    eval_params,
    model_id: str,
    tracker: Tracker | Journal | None,
    tags: dict[str, str],
) -> list[dict[str, Any]]:
    """One model: fitted, then scored on its job set (and on eval_dataset_id's), each logged as a
    nested MLflow run; its summary entries (one per evaluation)."""
    model_spec = params.model_specs[model_id]
    paths = ProjectPaths(out)
    meta = training.train_model(params, model_id, model_spec, out)
    model_tags = {**tags, "model": model_id, "family": model_spec.family, "dataset": params.dataset_id, "view": params.view}
    if tracker:
        model_dir = paths.model_dir(params.dataset_id, params.view, model_spec.family, model_id)
        tracker.log_training(meta, params.model_dump(mode="json"), model_dir, model_tags, register=False)
    training.commit_model(out, meta)
    if spec.stage == "train":
        return [_entry(model_id, model_spec.family, params.dataset_id, meta, None, root)]
    entries = []
    for target in (None, *([eval_params] if eval_params else [])):
        result = training.evaluate_model(params, model_id, model_spec, out, eval_params=target, plots=False)  # drawn by pepm sweep
        if tracker:
            eval_tags = {**model_tags, "eval_dataset": result["eval_dataset_id"]}
            tracker.log_evaluation(result, result["metrics"], result["report_dir"], eval_tags)
        training.commit_evaluation(out, result)
        entries.append(_entry(model_id, model_spec.family, result["eval_dataset_id"], meta, result, root))
    return entries


def _entry(model_id: str, family: str, eval_dataset: str, meta: dict, result: dict | None, root: Path) -> dict[str, Any]:
    metrics = dict(result["metrics"]) if result else {}
    validation = metrics.pop("validation", None)
    return {
        "model_id": model_id,
        "family": family,
        "eval_dataset_id": eval_dataset,
        "n_job": result["n_job"] if result else None,
        "n_train_used": meta["n_train_used"],
        "train_seconds": meta["train_seconds"],
        "metrics": metrics,
        "validation": validation,
        "quality_ok": result.get("quality_ok", True) if result else True,
        "report_dir": os.path.relpath(result["report_dir"], root) if result else "",
    }


def _params_facts(params: ResolvedParams) -> dict[str, Any]:
    """The resolved values a curve or a report may put on an axis (TRAIN_PROP -> train_prop, …)."""
    dumped = params.model_dump(mode="json")
    keep = ("dataset_id", "view", "eval_dataset_id", "train_prop", "seed", "balance_strategy", "balance_preset", "hardware_preset")
    facts = {k: dumped.get(k) for k in keep}
    facts["split"] = dumped.get("split")
    facts["model_params"] = {m: params.model_specs[m].params for m in params.models}
    return facts


def load_summary(root: Path, spec: RunSpec) -> dict[str, Any] | None:
    path = run_dir(root, spec.exp_id, spec.run_id) / SUMMARY
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def summary_path(root: Path, exp_id: str, run_id: str) -> str:
    return str((run_dir(root, exp_id, run_id) / SUMMARY).relative_to(root))
