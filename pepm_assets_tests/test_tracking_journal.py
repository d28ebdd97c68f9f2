"""The MLflow journal of a sweep run (core/tracking.Journal, replay): what a worker records and
`pepm sweep` logs later must land in MLflow exactly as the direct Tracker would have logged it,
nested under its parent; a journal cut short by a killed worker still ends its parent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pepm_assets.core.tracking import Journal, Tracker, replay

META_MODEL = {
    "dataset_id": "d",
    "view": "v",
    "model_id": "m",
    "model_params": {"C": 1.0},
    "train_seconds": 0.25,
    "n_train_used": 30,
    "lineage": {"not": "logged"},
}
META_EVAL = {"model_id": "m", "dataset_id": "d", "eval_dataset_id": "e", "view": "v", "params_hash": "h1", "seed": 7, "scores": [0.1]}
SUMMARY = {"macro_f1": np.float64(0.625), "accuracy": 0.75, "macro_f1_ci95": [0.5, 0.7], "validation": {"macro_f1": 0.6, "accuracy": None}}


def _log_a_run(tracker, tmp_path: Path, end: bool = True) -> str:
    model_dir, report_dir = tmp_path / "model", tmp_path / "report"
    for folder, name in ((model_dir, "model.joblib"), (report_dir, "metrics.json")):
        folder.mkdir(exist_ok=True)
        (folder / name).write_text("x", encoding="utf-8")
    parent = tracker.start_parent("exp/run_0001", {"sweep": "exp", "seed": "7"}, {"seed": 7, "axis": {"train_prop": 0.5}})
    child = {"mlflow.parentRunId": parent, "model": "m"}
    tracker.log_training(META_MODEL, {"seed": 7, "split": {"train_prop": 0.5}}, model_dir, child, register=False)
    tracker.log_evaluation(META_EVAL, SUMMARY, report_dir, {**child, "eval_dataset": "e"})
    if end:
        tracker.end_parent(parent, "FINISHED", {"m.e.macro_f1": 0.625}, {"status": "success"})
    return parent


def _runs(uri: str, experiment: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], order_by=["attributes.start_time ASC"])
    return sorted(found, key=lambda r: r.info.run_name)


def _shape(run, parent_id: str) -> tuple:
    """A run as a reader of MLflow sees it, ids aside (the parent's id replaced by 'PARENT')."""
    tags = {
        k: ("PARENT" if v == parent_id else v) for k, v in run.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.parentRunId"
    }
    return run.info.run_name, run.info.status, tags, run.data.params, run.data.metrics


def test_a_replayed_journal_logs_what_the_tracker_logs_directly(tmp_path: Path) -> None:
    direct_uri, journal_uri = f"sqlite:///{tmp_path / 'direct.db'}", f"sqlite:///{tmp_path / 'journal.db'}"
    direct_parent = _log_a_run(Tracker(tmp_path, direct_uri, experiment="exp"), tmp_path)

    journal = Journal(tmp_path / "run" / "mlflow_journal.jsonl", fresh=True)
    assert _log_a_run(journal, tmp_path) == Journal.PARENT
    assert not _runs_exist(journal_uri), "a journal must not log anything by itself"
    parent = replay(journal.path, Tracker(tmp_path, journal_uri, experiment="exp"))

    direct, replayed = _runs(direct_uri, "exp"), _runs(journal_uri, "exp")
    assert [_shape(r, parent) for r in replayed] == [_shape(r, direct_parent) for r in direct]
    assert len(replayed) == 3 and replayed[0].info.status == "FINISHED"
    by_name = {r.info.run_name.split()[0]: r for r in replayed}
    assert by_name["evaluate"].data.metrics["macro_f1"] == 0.625  # a numpy scalar stays a number
    assert by_name["train"].data.tags["mlflow.parentRunId"] == parent
    import mlflow

    artifacts = mlflow.MlflowClient(journal_uri).list_artifacts(by_name["train"].info.run_id, "model")
    assert [a.path for a in artifacts] == ["model/model.joblib"]


def _runs_exist(uri: str) -> bool:
    return Path(uri.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize("unfinished", ["FAILED", "KILLED"])
def test_a_journal_cut_by_a_killed_worker_still_ends_its_parent(tmp_path: Path, unfinished: str) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    journal = Journal(tmp_path / "mlflow_journal.jsonl", fresh=True)
    _log_a_run(journal, tmp_path, end=False)
    with journal.path.open("a", encoding="utf-8") as fh:
        fh.write('{"op": "log_evaluation", "meta_ev')  # the line the kill cut short

    parent = replay(journal.path, Tracker(tmp_path, uri, experiment="exp"), unfinished=unfinished)

    runs = _runs(uri, "exp")
    assert len(runs) == 3  # the parent and both complete children; the cut line is skipped
    top = next(r for r in runs if r.info.run_id == parent)
    assert top.info.status == unfinished and "ended without ending" in top.data.tags["pepm.failure"]


def test_a_fresh_journal_forgets_an_older_attempt(tmp_path: Path) -> None:
    path = tmp_path / "mlflow_journal.jsonl"
    _log_a_run(Journal(path, fresh=True), tmp_path)
    Journal(path, fresh=True).start_parent("exp/run_0001", {"attempt": "2"}, {})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    replay(path, Tracker(tmp_path, uri, experiment="exp"))
    runs = _runs(uri, "exp")
    assert [r.data.tags.get("attempt") for r in runs] == ["2"] and runs[0].info.status == "FAILED"


def test_confusions_left_to_the_sweep_are_drawn_once_each(tmp_path: Path) -> None:
    """A sweep run's evaluation writes no PNG (plots=False); draw_confusions draws one beside every
    metrics.json with a matrix (a separate-mode model's per-corpus reports included), titled as
    the step would have, and never redraws one that exists."""
    import json

    from pepm_assets.core.training import draw_confusions

    scores = {"labels": ["left", "right"], "confusion_matrix": [[5, 1], [2, 4]], "title": "m · trained on d"}
    report = tmp_path / "reports" / "d" / "v" / "sklearn" / "m" / "on_d"
    for folder in (report, report / "by_corpus" / "c1"):
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(scores), encoding="utf-8")
    (tmp_path / "reports" / "cluster").mkdir()
    (tmp_path / "reports" / "cluster" / "metrics.json").write_text('{"ari": 0.1}', encoding="utf-8")  # no matrix: no PNG

    drawn = draw_confusions(tmp_path / "reports")

    assert sorted(p.parent for p in drawn) == sorted([report, report / "by_corpus" / "c1"])
    assert all(p.name == "confusion_matrix.png" and p.read_bytes()[:4] == b"\x89PNG" for p in drawn)
    assert draw_confusions(tmp_path / "reports") == []
