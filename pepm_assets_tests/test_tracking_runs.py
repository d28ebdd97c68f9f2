"""What an MLflow run of pepm tells a reader: it spans the fit (or the evaluation) it records, not the
few ms of logging it afterwards; an evaluation carries each class's precision, recall and F1; every
run links back to its Dagster run; an evaluation names the dataset the model was trained on and the
one it was scored on; no tag is left empty for a step without a partition."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from pepm_assets.core import asset_names as names
from pepm_assets.core import collector, stages, training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families.sklearn import SklearnFamily
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.tracking import Tracker, span_ms, with_links
from pepm_assets_tests.fixtures import build_stamped_view, make_project

MODEL = "tfidf_svm_quick"
FIT_PAUSE, PREDICT_PAUSE = 0.8, 0.5  # seconds a slowed fit / prediction lasts at least
EPSILON_MS = 5


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory):
    """tiny_quick's SVM fitted and evaluated with a fit and a prediction slowed down (a real fit's
    length, which the logging after it must not shrink to a few ms)."""
    root = make_project(tmp_path_factory.mktemp("tracking") / "proj")
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, ProjectPaths(root).corpus_dir("mpt"))
    params, _ = build_stamped_view(root, "tiny_quick", ["families=[sklearn]", f"models=[{MODEL}]"])
    stages.build_formats(params, root)
    spec = params.model_specs[MODEL]
    fit, predict = SklearnFamily.fit, SklearnFamily.predict_scores

    def slow_fit(self, data, model_dir):
        time.sleep(FIT_PAUSE)
        return fit(self, data, model_dir)

    def slow_predict(self, model_dir, texts):
        time.sleep(PREDICT_PAUSE)
        return predict(self, model_dir, texts)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SklearnFamily, "fit", slow_fit)
        mp.setattr(SklearnFamily, "predict_scores", slow_predict)
        meta = training.train_model(params, MODEL, spec, root)
        training.commit_model(root, meta)
        result = training.evaluate_model(params, MODEL, spec, root, n_boot=100)
    training.commit_evaluation(root, result)
    return root, params, meta, result


def _client(tracker: Tracker):
    import mlflow

    return mlflow.MlflowClient(tracker.uri)


def test_a_training_run_spans_the_fit(slow_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, params, meta, _ = slow_model
    monkeypatch.delenv("PEPM_DAGSTER_URL", raising=False)
    tracker = Tracker(tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    model_dir = ProjectPaths(root).model_dir(params.dataset_id, params.view, "sklearn", MODEL)
    time.sleep(0.3)  # logged a while after the fit ended: the run still ends when the fit did
    logged = tracker.log_training(meta, params.model_dump(mode="json"), model_dir, {"dagster_run_id": "r1"}, register=False)
    run = _client(tracker).get_run(logged["run_id"])
    duration = run.info.end_time - run.info.start_time
    assert meta["train_seconds"] >= FIT_PAUSE
    assert duration >= meta["train_seconds"] * 1000 - EPSILON_MS  # not the 20-30 ms of logging
    assert (run.info.start_time, run.info.end_time) == span_ms(meta, "train_seconds")
    assert run.info.end_time < time.time() * 1000 - 250  # the fit's end, not the moment it was logged
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "train"


def test_an_evaluation_run_spans_the_evaluation_and_has_per_class_scores(slow_model, tmp_path: Path) -> None:
    _, _, _, result = slow_model
    tracker = Tracker(tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), {"dagster_run_id": "r2"})
    run = _client(tracker).get_run(run_id)
    assert run.info.end_time - run.info.start_time >= max(PREDICT_PAUSE * 1000, result["predict_seconds"] * 1000) - EPSILON_MS
    per_class = json.loads((Path(result["report_dir"]) / "metrics.json").read_text(encoding="utf-8"))["per_class"]
    assert set(per_class) == {"left", "right"}
    for label, scores in per_class.items():
        for key in ("precision", "recall", "f1", "support"):
            assert run.data.metrics[f"{key}_{label}"] == pytest.approx(scores[key])
    tags = run.data.tags
    assert (tags["train_dataset_id"], tags["eval_dataset_id"]) == (result["dataset_id"], result["eval_dataset_id"])


def test_runs_link_back_to_their_dagster_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_DAGSTER_URL", "http://localhost:3000/")
    assert with_links({"dagster_run_id": "abc", "partition": ""}) == {
        "dagster_run_id": "abc",
        "dagster_run_url": "http://localhost:3000/runs/abc",
    }  # and no empty partition tag
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text(json.dumps({"per_class": {"extrême gauche": {"f1": 0.5}}}), encoding="utf-8")
    meta = {"model_id": "m", "dataset_id": "a", "eval_dataset_id": "b", "view": "v", "params_hash": "h", "seed": 1}
    tracker = Tracker(tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = _client(tracker).get_run(tracker.log_evaluation(meta, {"macro_f1": 0.5}, report, {"dagster_run_id": "abc", "partition": ""}))
    assert run.data.tags["dagster_run_url"] == "http://localhost:3000/runs/abc" and "partition" not in run.data.tags
    assert (run.data.tags["train_dataset_id"], run.data.tags["eval_dataset_id"]) == ("a", "b")
    assert run.data.metrics["f1_extrême gauche"] == 0.5  # a class name as it is (letters, spaces)
    monkeypatch.delenv("PEPM_DAGSTER_URL")
    assert "dagster_run_url" not in with_links({"dagster_run_id": "abc"})  # no UI configured: no link invented


def test_a_meta_without_its_times_still_lasts_its_seconds() -> None:
    start, end = span_ms({"train_seconds": 2.5}, "train_seconds")
    assert end - start == 2500 and abs(end - time.time() * 1000) < 1000


def test_an_evaluation_is_logged_once(slow_model, tmp_path: Path) -> None:
    """The cross-corpus matrix logs a diagonal cell whose evaluation was stale; evaluation/<model>
    scoring that same fit on the same job set later must not log it a second time."""
    _, _, _, result = slow_model
    tracker = Tracker(tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    tags = {"version": result["lineage"]["version"], "dagster_run_id": "r3"}
    first = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), {**tags, "cross_corpus": "true"})
    again = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), tags)
    client = _client(tracker)
    runs = client.search_runs([client.get_run(first).info.experiment_id], filter_string="tags.stage = 'evaluate'")
    assert again == first and len(runs) == 1
    untagged = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), {"dagster_run_id": "r4"})
    assert untagged != first  # without a version (a sweep's runs) nothing is taken for the same evaluation


WORKER_CLI = """
import runpy, sys
sys.argv = ["pepm", "run", "--stage", "pipeline", "-p", "tiny_quick", "-o", "models=[tfidf_svm_quick]"]
try:
    runpy.run_module("pepm_assets.cli", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
print("MAIN_IMPORTED_MLFLOW", "mlflow" in sys.modules)
print("MAIN_IMPORTED_MATPLOTLIB", "matplotlib" in sys.modules)
"""


def test_pepm_run_logs_through_the_side_worker_with_the_same_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pepm run` imports MLflow in its side worker, not in the main process (core/side_worker.py),
    and the runs it logs there are the ones the Dagster materializations name, spanning their work."""
    import os
    import subprocess
    import sys

    import dagster as dg
    import mlflow

    root = make_project(tmp_path / "proj")
    env = {
        **os.environ,
        "PEPM_ROOT": str(root),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PEPM_MLFLOW_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "COLUMNS": "200",
    }
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text(), encoding="utf-8")
    out = subprocess.run([sys.executable, "-c", WORKER_CLI], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "MAIN_IMPORTED_MLFLOW False" in out.stdout
    assert "MAIN_IMPORTED_MATPLOTLIB False" in out.stdout  # the figures were drawn in the worker, and are there:
    report = next((root / "reports").rglob("metrics.json")).parent
    assert all((report / name).stat().st_size > 5_000 for name in ("confusion_matrix.png", "reliability_diagram.png"))
    assert (root / "reports" / "leaderboard.png").stat().st_size > 5_000
    client = mlflow.MlflowClient(env["PEPM_MLFLOW_URI"])
    runs = {r.data.tags["mlflow.runName"].split()[0]: r for r in client.search_runs([client.get_experiment_by_name("pepm").experiment_id])}
    assert set(runs) == {"train", "evaluate"} and all(r.info.status == "FINISHED" for r in runs.values())
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        named = {}
        for kind in names.KINDS:
            key = dg.AssetKey(names.key_path(names.asset_name(kind, MODEL)))
            named[kind] = instance.get_latest_materialization_event(key).asset_materialization.metadata["mlflow_run_id"].value
    assert named == {"model": runs["train"].info.run_id, "evaluation": runs["evaluate"].info.run_id}
    meta = json.loads(next((root / "models").rglob("meta_model.json")).read_text(encoding="utf-8"))
    assert (runs["train"].info.start_time, runs["train"].info.end_time) == span_ms(meta, "train_seconds")
    assert (root / "mlruns" / "side_worker.log").is_file()


def test_the_side_worker_runs_below_the_commands_priority_and_never_walks_its_warm_up(tmp_path: Path) -> None:
    """Its MLflow import takes the CPU the command leaves (core/side_worker.py): niced by 10. What
    its warm-up (which resolves a run's tags once) built (MLflow, SQLAlchemy, matplotlib) is frozen out of the collector: a full
    collection over it doubled the first report figures' time (0.2 -> 0.5 s at 1x)."""
    import subprocess
    import sys

    root = make_project(tmp_path / "proj")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    code = (
        "import gc, os, sys\nfrom pathlib import Path\nfrom pepm_assets.core import side_worker as w\n"
        f"assert w.start(Path({str(root)!r}), {uri!r})\n"
        "pool = next(iter(w._POOLS.values()))\npid = pool.submit(os.getpid).result()\n"
        "print('NICE', os.getpriority(os.PRIO_PROCESS, pid) - os.getpriority(os.PRIO_PROCESS, 0))\n"
        "print('FROZEN', pool.submit(gc.get_freeze_count).result(), 'YOUNG', pool.submit(gc.get_threshold).result()[0])\n"
        "print('GIT', pool.submit(eval, \"'git' in __import__('sys').modules\").result())\nw.stop()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "NICE 10" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    frozen, young = re.search(r"FROZEN (\d+) YOUNG (\d+)", out.stdout).groups()
    assert int(frozen) > 100_000, out.stdout  # MLflow's and matplotlib's objects: a few hundred thousand
    assert int(young) == collector.YOUNG_THRESHOLD
    assert "GIT True" in out.stdout  # a run's tags resolved once at the warm-up (GitPython's import), not in the first log


def _where(tag: str) -> tuple[str, int]:
    import os

    return tag, os.getpid()


def _broken() -> None:
    raise ValueError("a figure that fails")


def test_call_runs_in_the_worker_and_else_here(tmp_path: Path) -> None:
    """side_worker.call: in the worker's process when one was started (a function sent by name, its
    error raised to the caller), else in the caller's when the result is asked for; a worker that
    died leaves the work to the caller."""
    import os
    import subprocess
    import sys

    from pepm_assets.core import side_worker

    assert side_worker.call(_where, "here").result() == ("here", os.getpid())  # no worker in this process
    root = make_project(tmp_path / "proj")
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    code = (
        "import os, signal\nfrom pathlib import Path\nfrom pepm_assets.core import side_worker as w\n"
        "from pepm_assets_tests.test_tracking_runs import _where, _broken\n"
        f"assert w.start(Path({str(root)!r}), {uri!r})\n"
        "tag, pid = w.call(_where, 'there').result()\nassert tag == 'there' and pid != os.getpid(), pid\n"
        "try:\n    w.call(_broken).result()\nexcept ValueError as exc:\n    assert 'fails' in str(exc)\nelse:\n    raise AssertionError\n"
        "os.kill(pid, signal.SIGKILL)\n"
        "assert w.call(_where, 'after').result() == ('after', os.getpid())\n"
        f"forwarded = w.tracker(Path({str(root)!r}), {uri!r})\nassert type(forwarded).__name__ == '_Forwarded'\n"
        "assert forwarded.run_url('abc').endswith('abc')  # logged here once the worker is gone\nw.stop()\nprint('OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert out.returncode == 0 and "OK" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_logging_leaves_the_callers_mlflow_settings_alone(slow_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pepm called from a notebook or a benchmark must not point that process's own MLflow (and,
    through MLFLOW_TRACKING_URI, every process it starts afterwards) at pepm's store: the runs land
    in the tracker's store, while the caller's tracking URI and environment stay as they were."""
    import os

    import mlflow

    root, params, meta, _ = slow_model
    own = f"sqlite:///{tmp_path / 'callers_own.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", own)  # the caller's own store, as MLflow's docs set it
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)  # what set_tracking_uri sets
    tracker = Tracker(tmp_path / "pepm", uri=f"sqlite:///{tmp_path / 'pepm' / 'mlflow.db'}")
    model_dir = ProjectPaths(root).model_dir(params.dataset_id, params.view, "sklearn", MODEL)
    logged = tracker.log_training(meta, params.model_dump(mode="json"), model_dir, {"dagster_run_id": "r1", "version": "v1"})
    assert _client(tracker).get_run(logged["run_id"]).data.tags["stage"] == "train"  # in pepm's store
    assert tracker.set_champion(params.dataset_id, params.view, MODEL, "v1")["run_id"] == logged["run_id"]  # its registry too
    assert mlflow.get_tracking_uri() == own
    assert os.environ["MLFLOW_TRACKING_URI"] == own
