"""Promotion gate (issue 16, item 5): an MLflow registered-model alias is set only when the model
on disk passes its gates; every decision is recorded (model-version tag + reports/promotions.tsv)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core import promotion
from pepm_assets.core.drift import monitor
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.fixtures import make_project

RUN = ["families=[check,sklearn]", "models=[check_default,tfidf_svm_quick]"]
VIEW = ("tiny_mpt", "left_right")


@pytest.fixture
def trained(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> Path:
    project = make_project(tmp_path / "proj", n_per_speaker=20)  # enough documents for a drift report
    models = project / "configs" / "common" / "models.yml"
    # the control model gets thresholds it cannot reach: early_stop flags it
    models.write_text(
        models.read_text(encoding="utf-8").replace(
            "check_default: {family: check}", "check_default: {family: check, early_stop: {min_accuracy: 0.99, min_macro_f1: 0.99}}"
        ),
        encoding="utf-8",
    )
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", RUN, dagster_instance, defs)
    runner.drift(project, dagster_instance, ["mpt"], ["tiny_mpt|left_right"], defs)
    return project


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")


def _log(project: Path) -> list[dict[str, str]]:
    with open(project / "reports" / "promotions.tsv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_a_passing_model_is_promoted_and_a_flagged_one_refused(trained: Path) -> None:
    ok = promotion.promote(trained, *VIEW, "sklearn", "tfidf_svm_quick", "staging")
    assert ok.accepted and not ok.failed
    name = promotion.registered_name(*VIEW, "tfidf_svm_quick")
    aliased = _client(trained).get_model_version_by_alias(name, "staging")
    assert str(aliased.version) == ok.version
    # the aliased version is the fit on disk (its lineage version), not merely the latest
    stamp, _ = promotion.model_gates(trained, *VIEW, "sklearn", "tfidf_svm_quick")
    assert aliased.tags["version"] == stamp["version"]
    assert aliased.tags["pepm.promotion.staging"] == "accepted"

    refused = promotion.promote(trained, *VIEW, "check", "check_default", "production")
    assert not refused.accepted and refused.failed == ["quality_ok"]
    control = promotion.registered_name(*VIEW, "check_default")
    with pytest.raises(mlflow.exceptions.MlflowException):
        _client(trained).get_model_version_by_alias(control, "production")
    assert _client(trained).get_model_version(control, refused.version).tags["pepm.promotion.production"].startswith("refused")

    forced = promotion.promote(trained, *VIEW, "check", "check_default", "production", force_reason="the control, for a demo")
    assert forced.accepted and forced.forced
    assert str(_client(trained).get_model_version_by_alias(control, "production").version) == forced.version
    rows = _log(trained)
    assert [(r["registered_model"], r["alias"], r["decision"], r["failed_gates"]) for r in rows] == [
        (name, "staging", "accepted", ""),
        (control, "production", "refused", "quality_ok"),
        (control, "production", "forced", "quality_ok"),
    ]
    assert rows[-1]["reason"] == "the control, for a demo"


def test_a_model_whose_split_moved_on_is_refused(trained: Path, dagster_instance: dg.DagsterInstance) -> None:
    runner.run_stage(trained, "prepare", "tiny_quick", [*RUN, "seed=8"], dagster_instance, build_definitions(trained))
    decision = promotion.promote(trained, *VIEW, "sklearn", "tfidf_svm_quick", "staging")
    assert not decision.accepted and {"split_current", "drift_train_vs_job"} <= set(decision.failed)
    assert "another split" in next(g.detail for g in decision.gates if g.name == "drift_train_vs_job")


def test_no_promotion_without_the_drift_checks_of_its_data(trained: Path, dagster_instance: dg.DagsterInstance) -> None:
    """The drift gate: no report of the split -> refused; a corpus version that drifted (ERROR) -> refused."""
    shutil.rmtree(monitor.train_vs_job_dir(ProjectPaths(trained), *VIEW))
    decision = promotion.promote(trained, *VIEW, "sklearn", "tfidf_svm_quick", "staging")
    assert decision.failed == ["drift_train_vs_job"] and "pepm drift --dataset tiny_mpt" in decision.gates[-2].detail
    runner.drift(trained, dagster_instance, [], ["tiny_mpt|left_right"], build_definitions(trained))
    summary = monitor.corpus_version_dir(ProjectPaths(trained), "mpt") / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    fake = json.loads((monitor.train_vs_job_dir(ProjectPaths(trained), *VIEW) / "summary.json").read_text(encoding="utf-8"))
    fake["alerts"] = [{**a, "severity": "ERROR"} for a in fake["alerts"]] or [_error_alert()]
    summary.write_text(json.dumps(fake), encoding="utf-8")
    decision = promotion.promote(trained, *VIEW, "sklearn", "tfidf_svm_quick", "staging")
    assert decision.failed == ["drift_corpus_version[mpt]"]


def _error_alert() -> dict:
    fields = ["severity", "check", "title", "reference", "current", "scope", "column", "method", "statistic", "value", "threshold"]
    return {**dict.fromkeys(fields, ""), "severity": "ERROR", "value": 1.0, "threshold": 0.1, "p_value": None,
            "p_value_threshold": None, "message": "drift", "report": ""}  # fmt: skip


def test_the_cli_refuses_with_exit_1_and_names_the_gate(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_ROOT", str(trained))
    refused = CliRunner().invoke(app, ["promote", "check_default", "--dataset", "tiny_mpt", "--view", "left_right", "--to", "staging"])
    assert refused.exit_code == 1 and "refused: quality_ok failed" in refused.output
    no_reason = CliRunner().invoke(
        app, ["promote", "check_default", "--dataset", "tiny_mpt", "--view", "left_right", "--to", "staging", "--force"]
    )
    assert no_reason.exit_code == 2 and "needs a reason" in no_reason.output
    bad_alias = CliRunner().invoke(app, ["promote", "tfidf_svm_quick", "--dataset", "tiny_mpt", "--view", "left_right", "--to", "prod"])
    assert bad_alias.exit_code == 2 and "unknown alias 'prod'" in bad_alias.output
    ok = CliRunner().invoke(app, ["promote", "tfidf_svm_quick", "--dataset", "tiny_mpt", "--view", "left_right", "--to", "staging"])
    assert ok.exit_code == 0 and "promoted" in ok.output
