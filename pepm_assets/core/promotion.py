"""Promotion of a trained model in the MLflow registry, behind gates.

`pepm promote <model> --dataset D --view V --to staging|production` points the registered model's
alias (MLflow 3 has aliases, not stages) at the version that was fitted on the split now on disk,
only when every gate passes: the model is the one on disk, its evaluation scored that very fit,
its split is still the current one, early_stop did not flag it, and the drift checks of its data
pass (`drift_gates`: `pepm drift` writes them). A refusal names the failed gates. Either way
the decision is recorded twice: a tag on the model version (`pepm.promotion.<alias>`) and a row of
reports/promotions.tsv. `force` with a reason promotes anyway, recorded as forced.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import lineage
from .atomic import write_text
from .locks import exclusive_lock
from .paths import ProjectPaths

ALIASES = ("staging", "production")
LOG_COLUMNS = ["time", "registered_model", "version", "alias", "decision", "failed_gates", "reason", "model_version"]


class PromotionError(ValueError):
    """A promotion that cannot even be considered (unknown alias, no registered version)."""


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    registered_model: str
    alias: str
    version: str | None
    gates: list[Gate]
    forced: bool = False
    reason: str = ""
    failed: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.failed = [g.name for g in self.gates if not g.passed]

    @property
    def accepted(self) -> bool:
        return self.version is not None and (not self.failed or self.forced)


def registered_name(dataset_id: str, view: str, model_id: str) -> str:
    return f"pepm.{dataset_id}.{view}.{model_id}"


def model_gates(root: Path, dataset_id: str, view: str, family: str, model_id: str) -> tuple[dict[str, Any] | None, list[Gate]]:
    """(the model's lineage stamp, the gates on what is on disk) for one model of a dataset x view."""
    paths = ProjectPaths(root)
    model_dir = paths.model_dir(dataset_id, view, family, model_id)
    model = lineage.read_stamp(model_dir / "meta_model.json")
    if model is None:
        return None, [Gate("trained", False, f"no trained model at {paths.rel(model_dir)}")]
    gates = [Gate("trained", True, f"{paths.rel(model_dir)} (version {model['version']})")]
    view_stamp = lineage.read_stamp(paths.view_dir(dataset_id, view) / "meta_view.json")
    current = view_stamp is not None and view_stamp["version"] == model["inputs"].get("view")
    gates.append(
        Gate("split_current", current, "fitted on the split on disk" if current else "the split on disk is not the one it was fitted on")
    )
    report_dir = paths.report_dir(dataset_id, view, family, model_id)
    evaluation = lineage.read_stamp(report_dir / "meta_eval.json")
    scored = evaluation is not None and evaluation["inputs"].get("model") == model["version"]
    gates.append(Gate("evaluated", scored, f"{paths.rel(report_dir)}" if scored else "no evaluation of this fit: run the evaluate stage"))
    if scored:
        meta_eval = json.loads((report_dir / "meta_eval.json").read_text(encoding="utf-8"))
        flags = ", ".join(meta_eval.get("quality_flags", [])) or "none"
        gates.append(Gate("quality_ok", bool(meta_eval.get("quality_ok", True)), f"early_stop flags: {flags}"))
    return model, gates


def drift_gates(root: Path, dataset_id: str, view: str) -> list[Gate]:
    """The drift checks of the model's data (reports/drift, `pepm drift`): its split's train vs job
    report, of the split on disk, without an ERROR alert; each of its corpora's version report,
    where there is one, without an ERROR alert (WARN alerts inform, they do not block)."""
    from .drift import load_result, monitor

    paths = ProjectPaths(root)
    view_stamp = lineage.read_stamp(paths.view_dir(dataset_id, view) / "meta_view.json")
    folder = monitor.train_vs_job_dir(paths, dataset_id, view)
    if view_stamp is None or not (folder / "summary.json").is_file():
        return [Gate("drift_train_vs_job", False, f"no drift report of this split: run `pepm drift --dataset {dataset_id} --view {view}`")]
    result = load_result(folder)
    if view_stamp["version"] not in result.title:
        return [
            Gate(
                "drift_train_vs_job", False, f"the drift report is of another split: run `pepm drift --dataset {dataset_id} --view {view}`"
            )
        ]
    gates = [
        Gate(
            "drift_train_vs_job", result.passed, f"{result.severity or 'no'} alert, drifted: {', '.join(result.drifted_columns) or 'none'}"
        )
    ]
    meta_view = json.loads((paths.view_dir(dataset_id, view) / "meta_view.json").read_text(encoding="utf-8"))
    for cid in meta_view.get("source_corpora", []):
        folder = monitor.corpus_version_dir(paths, cid)
        if (folder / "summary.json").is_file():
            result = load_result(folder)
            gates.append(Gate(f"drift_corpus_version[{cid}]", result.passed, f"{result.severity or 'no'} alert: {result.title}"))
    return gates


def promote(
    root: Path,
    dataset_id: str,
    view: str,
    family: str,
    model_id: str,
    alias: str,
    force_reason: str | None = None,
    uri: str | None = None,
) -> Decision:
    """Set `alias` on the registered version of the model on disk when every gate passes (or when
    forced with a reason); record the decision either way."""
    if alias not in ALIASES:
        raise PromotionError(f"unknown alias {alias!r} (aliases: {', '.join(ALIASES)})")
    if force_reason is not None and not force_reason.strip():
        raise PromotionError("--force needs a reason (it is recorded)")
    from .tracking import Tracker, _retry

    model, gates = model_gates(root, dataset_id, view, family, model_id)
    gates += drift_gates(root, dataset_id, view)
    name = registered_name(dataset_id, view, model_id)
    tracker = Tracker(root, uri)
    mlflow, _ = tracker._mlflow()
    client = mlflow.MlflowClient(tracker.uri)
    version = None
    if model is not None:
        found = _retry(lambda: client.search_model_versions(f"name = '{name}' and tags.version = '{model['version']}'"))
        version = str(max(int(v.version) for v in found)) if found else None
        gates.append(Gate("registered", version is not None, f"{name} v{version}" if version else f"no version of {name} for this fit"))
    decision = Decision(name, alias, version, gates, forced=force_reason is not None, reason=force_reason or "")
    if decision.accepted:
        _retry(lambda: client.set_registered_model_alias(name, alias, decision.version))
    if version is not None:
        verdict = "accepted" if not decision.failed else ("forced: " + decision.reason if decision.forced else "refused")
        text = verdict + (f" (failed: {', '.join(decision.failed)})" if decision.failed else "")
        _retry(lambda: client.set_model_version_tag(name, version, f"pepm.promotion.{alias}", text))
    _log(ProjectPaths(root), decision, model["version"] if model else "")
    return decision


def _log(paths: ProjectPaths, decision: Decision, model_version: str) -> None:
    """One row per decision in reports/promotions.tsv (read, append, rewritten atomically)."""
    path = paths.reports / "promotions.tsv"
    verdict = "accepted" if decision.accepted and not decision.forced else ("forced" if decision.accepted else "refused")
    row = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "registered_model": decision.registered_model,
        "version": decision.version or "",
        "alias": decision.alias,
        "decision": verdict,
        "failed_gates": ",".join(decision.failed),
        "reason": decision.reason,
        "model_version": model_version,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.with_suffix(".lock")):
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")), delimiter="\t")) if path.is_file() else []
        out = io.StringIO()
        writer = csv.DictWriter(out, LOG_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        write_text(path, out.getvalue())
