"""Drift monitoring through Dagster (issue 16): the assets and their checks, the sensor on a real
instance, the daily schedule, `pepm drift`, and the promotion gate fed by the drift checks."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core import dvc
from pepm_assets.core.drift import load_result, monitor
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets.defs.jobs import DRIFT_CORPUS, DRIFT_VIEW
from pepm_assets.defs.resources import PepmProject
from pepm_assets.defs.schedules import daily_requests, drift_requests
from pepm_assets_tests.fixtures import REPO, make_project

SK = ["families=[sklearn]", "models=[tfidf_svm_quick]"]
# a split stratified by label: a random draw of documents, whose train and job must not drift (the
# default, grouped by speaker, moves whole speakers and with them their party's share: WARN alerts)
STRATIFIED = "split.group_by=null"


@pytest.fixture
def bigger(tmp_path: Path) -> Path:
    """The tiny project with enough documents per side for a report (drift.yml min_docs: 20)."""
    return make_project(tmp_path / "proj", n_per_speaker=20)


def _requested(requests: list[dg.RunRequest]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(r.job_name, r.partition_key or "", tuple(sorted(k.to_user_string() for k in r.asset_selection or []))) for r in requests}


def test_the_sensor_requests_exactly_the_affected_drift_runs(bigger: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(bigger)
    runner.run_stage(bigger, "prepare", "tiny_quick", SK, dagster_instance, defs)
    sensor = defs.get_sensor_def("drift_on_new_data")
    first = sensor(dg.build_sensor_context(instance=dagster_instance, definitions=defs))
    assert first.run_requests == []  # turned on now: the past is not replayed
    runner.run_stage(bigger, "prepare", "tiny_an", SK, dagster_instance, defs)  # corpus an parsed, tiny_an split built
    second = sensor(dg.build_sensor_context(instance=dagster_instance, cursor=first.cursor, definitions=defs))
    assert _requested(second.run_requests) == {
        (DRIFT_CORPUS, "an", ("drift_between_corpora", "drift_corpus_version")),
        (DRIFT_VIEW, "tiny_an|left_right", ()),
    }
    third = sensor(dg.build_sensor_context(instance=dagster_instance, cursor=second.cursor, definitions=defs))
    assert third.run_requests == []  # no change, nothing requested
    # a split prepared again (other seed) -> its drift again, and nothing for the corpora
    runner.run_stage(bigger, "prepare", "tiny_quick", [*SK, "seed=8"], dagster_instance, defs)
    requests, _ = drift_requests(dagster_instance, third.cursor)
    assert _requested(requests) == {(DRIFT_VIEW, "tiny_mpt|left_right", ())}


def test_drift_assets_checks_and_corpus_versions(bigger: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(bigger)
    runner.run_stage(bigger, "prepare", "tiny_quick", [*SK, STRATIFIED], dagster_instance, defs)
    checks = runner.drift(bigger, dagster_instance, ["mpt"], ["tiny_mpt|left_right"], defs)
    assert checks["drift_train_vs_job[tiny_mpt|left_right].no_drift"] is True
    assert checks["drift_corpus_version[mpt].no_drift"] is True  # a first version: nothing to compare yet
    paths = ProjectPaths(bigger)
    report = monitor.train_vs_job_dir(paths, "tiny_mpt", "left_right")
    assert {"report.html", "report.json", "summary.json", "alerts.json", "alerts.csv", "label.png"} <= {p.name for p in report.iterdir()}
    assert (paths.reports / "drift" / "alerts.json").is_file()

    # a new version of the corpus: the second sitting gone, every text of the first cut to its first word
    raw = bigger / "data" / "raw" / "mpt"
    (raw / "20130102.xml").unlink()
    first = raw / "20130101.xml"
    first.write_text(re.sub(r"<p>(\S+)[^<]*</p>", r"<p>\1 fin</p>", first.read_text(encoding="utf-8")), encoding="utf-8")
    runner._execute(defs, runner.PREPARE_CORPUS, dagster_instance, "mpt")  # the corpus parsed again (its view would have no labels left)
    checks = runner.drift(bigger, dagster_instance, ["mpt"], [], defs)
    assert checks["drift_corpus_version[mpt].no_drift"] is False
    summary = json.loads((monitor.corpus_version_dir(paths, "mpt") / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_reference"] > summary["n_current"] and {"n_chars", "n_tokens"} <= set(summary["drifted_columns"])
    assert len(list(monitor.history_dir(paths, "mpt").glob("*.parquet"))) == 2


def test_daily_schedule_covers_what_is_on_disk(bigger: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(bigger)
    runner.run_stage(bigger, "prepare", "tiny_multi", SK, dagster_instance, defs)
    runs = daily_requests(ProjectPaths(bigger), "2026-12-02")
    assert _requested(runs[DRIFT_CORPUS]) == {
        (DRIFT_CORPUS, "an", ("drift_between_corpora", "drift_corpus_version")),
        (DRIFT_CORPUS, "mpt", ("drift_corpus_version",)),
    }
    assert _requested(runs[DRIFT_VIEW]) == {(DRIFT_VIEW, "tiny_multi|left_right", ())}
    assert {s.name for s in defs.schedules} >= {"drift_daily_corpora", "drift_daily_views"}


def test_pepm_drift_on_the_shipped_corpora(tmp_path: Path, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch) -> None:
    """MPT train vs job, split stratified by label: no drift; MPT vs AN amendements: drift (the
    acceptance pair); MPT grouped by speaker (the default): no ERROR, so no promotion refused."""
    root = tmp_path / "pepm"
    shutil.copytree(REPO / "configs", root / "configs")
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", root / "data" / "raw", ["mpt", "an_amendements"])
    defs = build_definitions(root)
    runner.run_stage(root, "prepare", "ideo_quick", [STRATIFIED], dagster_instance, defs)
    runner.run_stage(root, "prepare", "an_amendements_lr", [], dagster_instance, defs)
    monkeypatch.setenv("PEPM_ROOT", str(root))
    result = CliRunner().invoke(app, ["drift"])
    assert result.exit_code == 0, result.output
    assert "drift_between_corpora[an_amendements].no_drift" in result.output  # the one that fails
    checks = runner.drift(root, dagster_instance, [], ["mpt|left_right"], defs)
    assert checks == {"drift_train_vs_job[mpt|left_right].no_drift": True, "drift_predictions[mpt|left_right].no_drift": True}
    between = json.loads((monitor.between_dir(ProjectPaths(root), "an_amendements", "mpt") / "summary.json").read_text(encoding="utf-8"))
    assert between["dataset_drift"] is True
    runner.run_stage(root, "prepare", "ideo_quick", [], dagster_instance, defs)
    runner.drift(root, dagster_instance, [], ["mpt|left_right"], defs)
    grouped = load_result(monitor.train_vs_job_dir(ProjectPaths(root), "mpt", "left_right"))
    assert grouped.passed and not grouped.dataset_drift  # at most column WARNs, which the promotion gate lets through


def test_prediction_drift_of_a_cross_dataset_evaluation(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    """A model scored on its own job set and on another dataset's: predictions.tsv carries its
    confidence, and drift_predictions compares the two distributions. 40 documents per speaker:
    tiny_an's job set reaches drift.yml's min_docs (20; it holds 12 at 20 per speaker)."""
    bigger = make_project(tmp_path / "proj", n_per_speaker=40)
    defs = build_definitions(bigger)
    runner.run_stage(bigger, "pipeline", "tiny_an", [*SK, "eval_dataset_id=tiny_mpt"], dagster_instance, defs)
    paths = ProjectPaths(bigger)
    for eval_id in (None, "tiny_mpt"):
        predictions = pd.read_csv(
            paths.report_dir("tiny_an", "left_right", "sklearn", "tfidf_svm_quick", eval_id) / "predictions.tsv", sep="\t"
        )
        assert list(predictions.columns[:4]) == ["doc_id", "label", "predicted", "score"]
        assert predictions["score"].between(0, 1).all()
    assert monitor.scored_cross_evaluations(paths, "tiny_an", "left_right") == [("sklearn", "tfidf_svm_quick", "tiny_mpt")]
    checks = runner.drift(bigger, dagster_instance, [], ["tiny_an|left_right"], defs)
    assert "drift_predictions[tiny_an|left_right].no_drift" in checks
    report = monitor.predictions_dir(paths, "tiny_an", "left_right", "tfidf_svm_quick", "tiny_mpt")
    assert report == paths.reports / "drift" / "tiny_an" / "left_right" / "predictions" / "tfidf_svm_quick@tiny_mpt"
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert summary["check"] == "prediction" and {c["column"] for c in summary["columns"]} == {"score", "predicted_label"}
    assert (summary["reference_name"], summary["current_name"]) == ("tiny_an", "tiny_mpt")


def test_changed_raw_files_are_parsed_again_then_their_drift_reported(bigger: Path, dagster_instance: dg.DagsterInstance) -> None:
    """The user journey of the issue: new raw data -> the daemon re-parses -> the drift of the new version."""
    defs = build_definitions(bigger)
    runner.run_stage(bigger, "prepare", "tiny_quick", SK, dagster_instance, defs)
    reparse = defs.get_sensor_def("reparse_on_new_raw")
    drift = defs.get_sensor_def("drift_on_new_data")

    def tick(sensor, cursor):
        return sensor(
            dg.build_sensor_context(
                instance=dagster_instance, cursor=cursor, definitions=defs, resources={"project": PepmProject(root=str(bigger))}
            )
        )

    quiet = tick(reparse, None)
    assert quiet.run_requests == []  # parsed from the files as they are
    drift_cursor = tick(drift, None).cursor
    (bigger / "data" / "raw" / "mpt" / "20130102.xml").unlink()  # a new version of the corpus
    changed = tick(reparse, quiet.cursor)
    assert _requested(changed.run_requests) == {(runner.PREPARE_CORPUS, "mpt", ())}
    assert tick(reparse, changed.cursor).run_requests == []  # requested once
    request = changed.run_requests[0]
    runner._execute(defs, request.job_name, dagster_instance, request.partition_key)  # what the daemon launches
    after = tick(drift, drift_cursor)
    assert _requested(after.run_requests) == {(DRIFT_CORPUS, "mpt", ("drift_between_corpora", "drift_corpus_version"))}
    assert tick(reparse, changed.cursor).run_requests == []  # the parse is current again
