"""The parts of `pepm sweep` that need no Dagster: the experiment read and planned (plan.tsv),
the runs a resume keeps, and the analysis hooks (run again only when what they read changed).
A resume of a finished sweep ends here, without opening the instance: it costs the plan only."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import write_text
from . import hooks
from .config import ExpConfig, load_experiment
from .ledger import Ledger
from .plan import build_plan, write_plan
from .spec import SUCCESS, RunSpec, exp_dir

HOOKS_STAMP = ".hooks_stamp"


@dataclass
class Sweep:
    cfg: ExpConfig
    plan: list[RunSpec]
    exp_root: Path


def open_sweep(
    root: Path, exp_config: Path, parallel: int | None = None, max_ram_gb: float | None = None, max_runs: int | None = None
) -> Sweep:
    """The experiment with the command line's scheduler values, planned (every run resolved: a
    broken experiment fails here), plan.tsv written."""
    root = Path(root).resolve()
    cfg = load_experiment(Path(exp_config), root)
    updates = {k: v for k, v in {"parallel": parallel, "max_ram_gb": max_ram_gb}.items() if v is not None}
    if updates:
        cfg = cfg.model_copy(update={"scheduler": cfg.scheduler.model_copy(update=updates)})
    plan = build_plan(cfg, root, os.path.relpath(Path(exp_config).resolve(), root))
    plan = plan[:max_runs] if max_runs is not None else plan
    sweep = Sweep(cfg, plan, exp_dir(root, cfg.exp_id))
    write_plan(sweep.exp_root / "plan.tsv", plan)
    return sweep


def kept(plan: list[RunSpec], ledger: Ledger) -> list[str]:
    """The runs a resume does not run again: success, with the parameters planned now, summary on disk."""
    out = []
    for spec in plan:
        row = ledger.rows.get(spec.run_id)
        if row and row["status"] == SUCCESS and row["params_hash"] == spec.params_hash and row["metrics_path"]:
            out.append(spec.run_id)
    return out


def finish(sweep: Sweep, root: Path) -> dict[str, Any]:
    """The analysis hooks (metrics_global.tsv, plots, report.md), unless runs.tsv, plan.tsv and the
    hooks' config are those they last ran on and their outputs are there."""
    configured = [h.model_dump() for h in sweep.cfg.analysis_hooks.after_experiment]
    digest = hashlib.sha256()
    for name in ("runs.tsv", "plan.tsv"):
        path = sweep.exp_root / name
        digest.update(path.read_bytes() if path.is_file() else b"")
    digest.update(json.dumps([configured, sweep.cfg.description], sort_keys=True).encode())
    stamp_path = sweep.exp_root / HOOKS_STAMP
    try:
        last = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        last = {}
    outputs = last.get("result", {})
    if last.get("digest") == digest.hexdigest() and all((Path(root) / p).exists() for p in _paths(outputs)):
        return {**outputs, "skipped": True}
    result = hooks.run_hooks(sweep.exp_root, Path(root), configured, sweep.cfg.description)
    write_text(stamp_path, json.dumps({"digest": digest.hexdigest(), "result": result}))
    return result


def _paths(result: dict[str, Any]) -> list[str]:
    return [p for p in [result.get("metrics_global"), result.get("report"), *result.get("plots", [])] if p]
