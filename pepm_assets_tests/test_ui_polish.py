"""What the user sees in the Dagster UI and in MLflow, on a real tiny pipeline (two scikit-learn
models on tiny_quick, a real Dagster instance and a real MLflow store on SQLite): runs launched in
process belong to their job (the Runs tab's and the timeline's filters, then the real UI in a
headless Chromium), owners and kinds on every asset, rounded floats, the MLflow run as a link, the
per-class table and the confusion matrix of an evaluation, the `champion` alias of the best model."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from pepm_assets.core import asset_names as names
from pepm_assets.core import tracking
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets.defs.dagster_internals import REPOSITORY_LABEL_TAG
from pepm_assets.defs.jobs import REPORTS, VIEW_PIPELINE
from pepm_assets.defs.metadata import rounded
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import REPO, make_project

MODELS = ["tfidf_svm_quick", "tfidf_logreg"]
KEY = "tiny_mpt|left_right"
SHOTS = Path("/tmp/uipolish_shots")
LABEL = "__repository__@pepm_assets"  # the repository label of workspace.yaml's location, as the UI builds it


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    """(project, instance, the stage's report, MLflow URI) after tiny_quick's pipeline of two models."""
    tmp = tmp_path_factory.mktemp("uipolish")
    project = make_project(tmp / "proj")
    shutil.copy(REPO / "workspace.yaml", project / "workspace.yaml")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", uri)
        mp.delenv("PEPM_MLFLOW_UI_URL", raising=False)
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            report = runner.run_stage(
                project, "pipeline", "tiny_quick", [f"models=[{','.join(MODELS)}]"], instance, build_definitions(project)
            )
            yield project, instance, report, uri


def _materialization(instance: dg.DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(asset))
    assert event is not None, f"no materialization of {asset}"
    return event.asset_materialization.metadata


def test_runs_launched_in_process_carry_the_filters_of_their_job_runs_tab_and_of_the_timeline(pipeline) -> None:
    """The job's Runs tab asks for RunsFilter(job_name, tags={.dagster/repository: repo@location});
    the timeline keeps a run only with a repositoryOrigin (its location and repository name)."""
    _project, instance, report, _ = pipeline
    assert {job for job, _, _ in report.runs} >= {"prepare_corpus", VIEW_PIPELINE}, report.runs
    for job, _partition, run_id in report.runs:
        listed = instance.get_runs(filters=dg.RunsFilter(job_name=job, tags={REPOSITORY_LABEL_TAG: LABEL}))
        assert run_id in {r.run_id for r in listed}, f"run {run_id} of {job} is not under the job's Runs tab filter"
        run = instance.get_run_by_id(run_id)
        origin = run.remote_job_origin
        assert origin is not None, f"run {run_id} has no origin: the timeline drops it"
        assert (origin.repository_origin.repository_name, origin.location_name, origin.job_name) == ("__repository__", "pepm_assets", job)
        assert run.tags["pepm/profile"] == "tiny_quick"
        assert json.loads(run.tags["pepm/overrides"]) == [f"models=[{','.join(MODELS)}]"]
        assert run.tags["pepm/launched_by"] == "test"  # conftest's PEPM_LAUNCHED_BY


def test_the_code_location_is_the_one_the_workspace_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module: {module_name: other.defs, location_name: other}\n"
        "  - python_module: {module_name: pepm_assets.definitions, location_name: research}\n",
        encoding="utf-8",
    )
    assert runner.code_location(tmp_path) == "research"
    assert runner.job_origin(tmp_path, VIEW_PIPELINE).repository_origin.get_label() == "__repository__@research"
    assert runner.code_location(tmp_path / "none") == "pepm_assets"  # no workspace.yaml: the shipped location name
    monkeypatch.delenv("PEPM_LAUNCHED_BY")
    before = runner.launcher()  # a CLI command run earlier in this process (CliRunner) set it to cli
    runner.set_launcher("python")
    try:
        assert runner.launcher() == "python"
        runner.set_launcher("cli")
        assert runner.launcher() == "cli"
        monkeypatch.setenv("PEPM_LAUNCHED_BY", "make")
        assert runner.launcher() == "make"
    finally:
        runner.set_launcher(before)


def test_every_asset_has_owners_and_kinds(project: Path) -> None:
    specs = {s.key.to_user_string(): s for s in build_definitions(project).resolve_all_asset_specs()}
    assert {"raw_tei", "corpus_docs", "leaderboard", "model/tfidf_logreg", "model/spacy_bow", "model/hf_tiny"} <= set(specs)
    missing = {k: (sorted(s.kinds), list(s.owners)) for k, s in specs.items() if not s.kinds or not s.owners}
    assert not missing, f"assets without kinds or owners: {missing}"
    assert specs["corpus_docs"].kinds == {"python", "parquet"} and specs["corpus_docs"].owners == ["team:corpus"]
    assert specs["model/tfidf_logreg"].kinds == {"scikit-learn", "mlflow"}
    assert specs["evaluation/spacy_bow"].kinds == {"spacy", "mlflow"}
    assert "pytorch" in specs["model/hf_tiny"].kinds
    assert specs["model/hf_tiny"].owners == ["team:modelling"] and specs["drift_train_vs_job"].owners == ["team:monitoring"]


def test_per_model_asset_keys_have_two_parts_made_and_parsed_in_one_place(project: Path) -> None:
    assert names.model_asset("svm") == "model/svm" and names.evaluation_asset("svm") == "evaluation/svm"
    assert names.key_path("evaluation/svm") == ["evaluation", "svm"] and names.key_path("leaderboard") == ["leaderboard"]
    assert names.parse("model/svm") == ("model", "svm") and names.parse("evaluation__svm") == ("evaluation", "svm")
    assert names.parse("model_formats") is None and names.step_key("model/svm") == "model__svm"
    keys = {s.key for s in build_definitions(project).resolve_all_asset_specs()}
    assert {dg.AssetKey(["model", "tfidf_logreg"]), dg.AssetKey(["evaluation", "tfidf_logreg"])} <= keys
    assert not [k for k in keys if k.path[0].startswith(("model__", "evaluation__"))]


def test_floats_are_rounded_to_four_decimals() -> None:
    got = rounded({"a": 1 / 3, "b": dg.MetadataValue.float(2 / 3), "c": dg.MetadataValue.json({"x": [1 / 7, "t"]}), "n": 3, "s": "x"})
    assert got["a"] == 0.3333 and got["b"].value == 0.6667 and got["c"].data == {"x": [0.1429, "t"]}
    assert (got["n"], got["s"]) == (3, "x")


def _floats(metadata: dict) -> dict[str, float]:
    return {k: v.value for k, v in metadata.items() if isinstance(v, dg.FloatMetadataValue) and v.value is not None}


def test_model_and_evaluation_metadata_link_their_mlflow_run_and_round_their_floats(pipeline) -> None:
    _, instance, _, uri = pipeline
    import mlflow

    client = mlflow.MlflowClient(uri)
    for asset, stage in ((f"model/{MODELS[1]}", "train"), (f"evaluation/{MODELS[1]}", "evaluate")):
        meta = _materialization(instance, asset)
        run_id = meta["mlflow_run_id"].value
        run = client.get_run(run_id)
        assert run.data.tags["stage"] == stage
        assert isinstance(meta["mlflow_run"], dg.UrlMetadataValue)
        assert meta["mlflow_run"].url == f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        floats = _floats(meta)
        assert floats and all(round(v, 4) == v for v in floats.values()), floats
    assert "macro_f1" in _floats(_materialization(instance, f"evaluation/{MODELS[1]}"))


def test_run_url_follows_the_mlflow_ui_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_MLFLOW_UI_URL", "https://mlflow.example.org/")
    tracker = tracking.Tracker(tmp_path, f"sqlite:///{tmp_path / 'm.db'}")
    assert tracker.run_url("abc").startswith("https://mlflow.example.org/#/experiments/") and tracker.run_url("abc").endswith("/runs/abc")


def test_evaluation_metadata_has_the_per_class_table_and_the_confusion_matrix(pipeline) -> None:
    project, instance, _, _ = pipeline
    meta = _materialization(instance, f"evaluation/{MODELS[1]}")
    report_dir = project / meta["report_dir"].path
    per_class = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))["per_class"]
    table = meta["per_class"]
    assert isinstance(table, dg.TableMetadataValue)
    assert [c.name for c in table.schema.columns] == ["class", "precision", "recall", "f1", "support"]
    rows = {r.data["class"]: r.data for r in table.records}
    assert set(rows) == set(per_class) and len(rows) >= 2
    for label, scores in per_class.items():
        assert rows[label]["f1"] == round(scores["f1"], 4) and rows[label]["support"] == int(scores["support"])
    text = meta["confusion_matrix"].value
    prefix = "![confusion matrix](data:image/png;base64,"
    assert text.startswith(prefix) and text.endswith(")")
    assert base64.b64decode(text[len(prefix) : -1]) == (report_dir / "confusion_matrix.png").read_bytes()


def test_the_leaderboards_best_model_is_the_mlflow_champion(pipeline) -> None:
    project, instance, _, uri = pipeline
    import mlflow
    import pandas as pd

    table = pd.read_csv(project / "reports" / "leaderboard.tsv", sep="\t")
    rows = table[(table.dataset_id == "tiny_mpt") & (table.view == "left_right")]
    assert set(rows.model_id) == set(MODELS)
    best = rows.iloc[0].model_id
    client = mlflow.MlflowClient(uri)
    name = tracking.champion_name("tiny_mpt", "left_right")
    champion = client.get_model_version_by_alias(name, tracking.CHAMPION)
    assert champion.run_id == _materialization(instance, f"model/{best}")["mlflow_run_id"].value
    assert client.get_run(champion.run_id).data.tags["model"] == best
    assert "champions" in _materialization(instance, "leaderboard")
    before = len(client.search_model_versions(f"name = '{name}'"))
    runner._execute(build_definitions(project), REPORTS, instance, assets=["leaderboard"])  # rebuilt: the same champion, no new version
    assert len(client.search_model_versions(f"name = '{name}'")) == before
    assert client.get_model_version_by_alias(name, tracking.CHAMPION).version == champion.version


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Dagster UI did not answer at {url} within {seconds:.0f} s")


def _skip_welcome(page) -> None:
    """Dismiss the UI's first-visit "Join the Dagster community" dialog (it hides the page)."""
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.first.wait_for(timeout=10_000)
    except Exception:  # noqa: BLE001  (not shown: nothing to dismiss)
        return
    skip.first.click()


def test_the_dagster_ui_lists_the_cli_run_under_its_job_and_on_the_timeline(pipeline) -> None:
    """The real UI (dagster-webserver on the project's instance and workspace.yaml, as `pepm dev`
    serves it) in a headless Chromium: the job's Runs page lists the view_pipeline run, the
    Overview timeline has a view_pipeline row, the evaluation's page shows its MLflow link, its
    per-class table and, behind [Show Markdown], the confusion matrix image. Screenshots in
    /tmp/uipolish_shots/."""
    from playwright.sync_api import sync_playwright

    project, _instance, report, _ = pipeline
    run_id = next(r for job, _, r in report.runs if job == VIEW_PIPELINE)
    SHOTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "PEPM_ROOT": str(project), "PYTHONPATH": str(REPO)}
    home = Path(os.environ["DAGSTER_HOME"])
    cmd = [sys.executable, "-m", "dagster_webserver", "-w", str(project / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(cmd, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/server_info", 120)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(f"{base}/locations/pepm_assets/jobs/{VIEW_PIPELINE}/runs")
            page.get_by_text(run_id[:8]).first.wait_for(timeout=60_000)
            _skip_welcome(page)
            page.screenshot(path=str(SHOTS / "job_runs.png"))
            page.goto(f"{base}/overview/activity/timeline")
            page.get_by_role("link", name=VIEW_PIPELINE).first.wait_for(timeout=60_000)
            page.screenshot(path=str(SHOTS / "timeline.png"))
            # the evaluation's metadata: the per-class table, the MLflow link, the confusion matrix shown
            page.goto(f"{base}/assets/evaluation/{MODELS[1]}?view=partitions&partition={KEY.replace('|', '%7C')}")
            row = page.get_by_text("confusion_matrix", exact=True).first
            row.wait_for(timeout=60_000)
            assert page.locator("a[href^='http://127.0.0.1:5000/#/experiments/']").count() >= 1, "no mlflow_run link on the page"
            assert page.get_by_role("cell", name="precision").count() >= 1, "no per-class table on the page"
            row.locator("xpath=ancestor::tr[1]").get_by_text("[Show Markdown]").click()
            page.locator("img[src^='data:image/png;base64,']").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # the dialog fades in
            page.screenshot(path=str(SHOTS / "evaluation_confusion_matrix.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
