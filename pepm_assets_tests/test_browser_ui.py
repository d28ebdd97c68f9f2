"""What the user sees, in a real browser (headless Chromium, pepm_assets_tests/browser.py): the
Dagster UI of `pepm dev`, the MLflow UI of `pepm mlflow`, and the `pepm dashboard` page opened from
disk, on the tiny project after a real pipeline run (two fast models). The servers are pepm's own
commands, started as subprocesses on free ports; every page is saved as a full-page screenshot in
the test's tmp folder and in /tmp/browser_shots (or $PEPM_BROWSER_SHOTS)."""

from __future__ import annotations

import math
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests import browser
from pepm_assets_tests.browser import free_port, serve, shoot
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import REPO, make_project

browser_context, page = browser.browser_context, browser.page  # the browser's fixtures, for this module's tests

MODELS = ["check_default", "tfidf_svm_quick"]
PROFILE = "tiny_quick"
SHOWN_METADATA = ["n_train", "n_job", "params_hash"]  # view_split's materialization metadata checked on its partition page
UI_TIMEOUT_MS = 60_000  # first load of a page: the UI compiles its queries, the code server may still be loading


@dataclass
class Project:
    root: Path
    tmp: Path
    env: dict[str, str]  # what pepm's commands run with: this project, its instance, its MLflow store, this checkout's code
    defs: object
    partition: str  # view_split's partition the pipeline materialized
    split_metadata: dict[str, str]  # view_split's metadata there, as text
    mlflow_uri: str


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The tiny project after `pipeline` of tiny_quick with two fast models, on a temp Dagster
    instance and a temp MLflow SQLite store; what the UIs should show is read from them here."""
    import dagster as dg

    tmp = tmp_path_factory.mktemp("browser")
    root = make_project(tmp / "proj")
    (root / "workspace.yaml").write_bytes((REPO / "workspace.yaml").read_bytes())  # `pepm dev` loads <root>/workspace.yaml
    home = tmp / "dagster_home"
    mlflow_uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", mlflow_uri)
        with temporary_instance(home, mp) as instance:
            defs = build_definitions(root)
            runner.run_stage(root, "pipeline", PROFILE, [f"models=[{','.join(MODELS)}]"], instance, defs)
            records = instance.fetch_materializations(dg.AssetKey("view_split"), limit=1).records
            assert len(records) == 1, "the pipeline materialized no view_split"
            event = records[0]
            metadata = {k: str(v.value) for k, v in event.asset_materialization.metadata.items() if k in SHOWN_METADATA}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),  # this checkout's pepm
        "PEPM_ROOT": str(root),
        "DAGSTER_HOME": str(home),
        "PEPM_MLFLOW_URI": mlflow_uri,
    }
    return Project(root, tmp, env, defs, event.partition_key, metadata, mlflow_uri)


def _pepm(*args: str) -> list[str]:
    return [sys.executable, "-m", "pepm_assets.cli", *args]


# ----------------------------------------------------------------------------------- Dagster UI


@pytest.fixture(scope="class")
def dagster_ui(project: Project):
    """`pepm dev` on a free port, for the tests of one class (stopped before MLflow's start)."""
    port = free_port()
    with serve(
        _pepm("dev", "--port", str(port)), port, project.tmp / "logs", env=project.env, path="/server_info", name="pepm-dev"
    ) as server:
        yield server


def _dagster_page(page, server) -> None:
    # the "Join the Dagster community" dialog is shown once per browser on localhost: dismissed as its Skip button would
    page.add_init_script("window.localStorage.setItem('communityNux', '\"1\"')")
    page.set_default_timeout(UI_TIMEOUT_MS)


def _asset_url(key, **query: str) -> str:
    return "/assets/" + "/".join(urllib.parse.quote(p, safe="") for p in key.path) + ("?" + urllib.parse.urlencode(query) if query else "")


class TestDagsterUI:
    def test_asset_graph_shows_the_pipeline_assets(self, project: Project, dagster_ui, page, tmp_path: Path) -> None:
        """The lineage graph, filtered to corpus_docs, view_split and the two models' training and
        evaluation assets (whatever their keys are called in the Definitions), shows each one's node."""
        import dagster as dg
        from playwright.sync_api import expect

        graph = project.defs.resolve_asset_graph()
        keys = [dg.AssetKey("corpus_docs"), dg.AssetKey("view_split")]
        per_model = {m: [k for k in graph.get_all_asset_keys() if m in k.to_user_string()] for m in MODELS}
        for model, found in per_model.items():
            assert len(found) >= 2, f"{model}: expected its model and evaluation assets in the Definitions, found {found}"
            keys += sorted(found, key=lambda k: k.to_user_string())
        selection = " or ".join(f'key:"{k.to_user_string()}"' for k in keys)
        groups = sorted({graph.get(k).group_name for k in keys})
        # groups are drawn collapsed; the URL's `expanded` opens them (the id's form depends on a UI flag: both given)
        expanded = ",".join(f"{prefix}:{g}" for g in groups for prefix in ("global@global", "__repository__@pepm_assets"))
        _dagster_page(page, dagster_ui)
        page.goto(
            f"{dagster_ui.url}/asset-groups~{urllib.parse.quote(selection, safe='')}/?{urllib.parse.urlencode({'expanded': expanded})}"
        )
        labels: dict[str, int] = {}
        for key in keys:
            labels[key.path[-1]] = labels.get(key.path[-1], 0) + 1  # a node shows its key's last part
        nodes = page.locator("svg foreignObject")
        with dagster_ui.explained("asset graph nodes"):
            for label, n in labels.items():
                expect(nodes.get_by_text(label, exact=True)).to_have_count(n, timeout=UI_TIMEOUT_MS)
            for group in groups:
                expect(nodes.get_by_text(group, exact=True).first).to_be_visible()
            # the nodes' live data (latest event, checks) arrives after the layout: view_split's checks all passed
            n_checks = sum(1 for c in graph.asset_check_keys if c.asset_key == dg.AssetKey("view_split"))
            split_node = nodes.filter(has=page.get_by_text("view_split", exact=True))
            # (expect's own 5 s are not the page's timeout: a loaded machine took longer)
            expect(split_node.get_by_text(f"{n_checks} / {n_checks} Passed", exact=True)).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(nodes.get_by_text(re.compile(r"^Loading"))).to_have_count(0, timeout=UI_TIMEOUT_MS)
        shoot(page, tmp_path / "dagster_asset_graph.png")

    def test_partition_page_shows_the_materialization_metadata(self, project: Project, dagster_ui, page, tmp_path: Path) -> None:
        """view_split's page, on the partition the pipeline made: its metadata table holds the values
        pepm recorded (read back from the instance)."""
        import dagster as dg
        from playwright.sync_api import expect

        _dagster_page(page, dagster_ui)
        page.goto(dagster_ui.url + _asset_url(dg.AssetKey("view_split"), view="partitions", partition=project.partition))
        with dagster_ui.explained(f"view_split's metadata on partition {project.partition}"):
            expect(page.get_by_text(project.partition, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text("Metadata", exact=True).first).to_be_visible()
            for name in SHOWN_METADATA:
                row = page.locator("tr").filter(has=page.get_by_text(name, exact=True))
                expect(row).to_have_count(1)
                expect(row.locator("td").nth(1)).to_have_text(project.split_metadata[name])
        shoot(page, tmp_path / "dagster_view_split_partition.png")

    def test_check_result_names_its_partition(self, project: Project, dagster_ui, page, tmp_path: Path) -> None:
        """A check of view_split: its latest result says which partition it judged (its description
        and its `partition` metadata), which Dagster itself leaves blank for a partitioned asset."""
        import dagster as dg
        from playwright.sync_api import expect

        key = dg.AssetKey("view_split")
        checks = sorted(c.name for c in project.defs.resolve_asset_graph().asset_check_keys if c.asset_key == key)
        assert checks, "view_split has no asset check in the Definitions"
        _dagster_page(page, dagster_ui)
        page.goto(dagster_ui.url + _asset_url(key, view="checks"))
        with dagster_ui.explained(f"check {checks[-1]} of view_split"):
            page.get_by_text(checks[-1], exact=True).first.click(timeout=UI_TIMEOUT_MS)  # the one listed last, not the default
            expect(page.get_by_text("Latest execution", exact=True)).to_be_visible()
            expect(page.get_by_text(f"partition {project.partition}", exact=True).first).to_be_visible()
            row = page.locator("tr").filter(has=page.get_by_text("partition", exact=True))
            expect(row).to_have_count(1)
            expect(row.locator("td").nth(1)).to_have_text(project.partition)
        shoot(page, tmp_path / "dagster_view_split_check.png")


# ------------------------------------------------------------------------------------ MLflow UI


@pytest.fixture(scope="class")
def mlflow_ui(project: Project):
    """`pepm mlflow` on a free port. MLflow's job runner (GenAI scoring, six background consumers)
    is switched off: it has nothing to do with runs and metrics and costs seconds on 2 cores."""
    port = free_port()
    env = {**project.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with serve(_pepm("mlflow", "--port", str(port)), port, project.tmp / "logs", env=env, path="/health", name="pepm-mlflow") as server:
        yield server


def _mlflow_page(page) -> None:
    # the UI opens on its GenAI view and an assistant panel: the training runs view, as its toggle would
    page.add_init_script(
        "window.localStorage.setItem('mlflow.workflowType_v1', '\"machine_learning\"');"
        "window.localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');"
    )
    page.set_default_timeout(UI_TIMEOUT_MS)


class TestMlflowUI:
    def test_runs_are_listed_and_a_run_shows_its_metrics(self, project: Project, mlflow_ui, page, tmp_path: Path) -> None:
        """The experiment's page lists every run pepm logged (names read back from the store); an
        evaluation run's page shows macro_f1 with the value logged."""
        import mlflow
        from playwright.sync_api import expect

        client = mlflow.MlflowClient(project.mlflow_uri)
        experiment = client.get_experiment_by_name("pepm")
        assert experiment is not None, f"no experiment 'pepm' in {project.mlflow_uri}"
        runs = client.search_runs([experiment.experiment_id])
        evaluations = [r for r in runs if r.data.tags.get("stage") == "evaluate"]
        assert len(runs) >= 2 * len(MODELS) and len(evaluations) == len(MODELS), [r.info.run_name for r in runs]
        _mlflow_page(page)
        page.goto(f"{mlflow_ui.url}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning")
        with mlflow_ui.explained("the runs of experiment pepm"):
            for run in runs:
                expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_attached(timeout=UI_TIMEOUT_MS)
            expect(page.get_by_text(f"{len(runs)} matching runs")).to_be_visible()
        shoot(page, tmp_path / "mlflow_runs.png")

        run = next(r for r in evaluations if r.data.tags.get("model") == MODELS[0])
        page.goto(f"{mlflow_ui.url}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}")
        with mlflow_ui.explained(f"metrics of run {run.info.run_name}"):
            expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
            row = page.get_by_role("row").filter(has=page.get_by_text("macro_f1", exact=True))
            expect(row).to_have_count(1)
            name, value = row.inner_text().split()
        assert name == "macro_f1" and math.isclose(float(value), run.data.metrics["macro_f1"], rel_tol=1e-9), (name, value)
        shoot(page, tmp_path / "mlflow_run_metrics.png")


# ------------------------------------------------------------------------------------ dashboard


def test_dashboard_renders_offline_without_a_single_request(project: Project, page, tmp_path: Path, monkeypatch) -> None:
    """`pepm dashboard`'s page opened from disk: every section is drawn with its heading, the
    scores table names both models, every inlined image decodes, and the browser asks for nothing
    but the file itself: no request (each is recorded, and any but the page's own blocked) and no
    Content-Security-Policy refusal (a blocked load still means the page tried)."""
    from playwright.sync_api import expect

    from pepm_assets.core import dashboard

    monkeypatch.setenv("PEPM_ROOT", str(project.root))
    target = tmp_path / "dashboard.html"
    result = CliRunner().invoke(app, ["dashboard", "--output", str(target)])
    assert result.exit_code == 0, result.output
    url = target.as_uri()
    requests: list[str] = []
    blocked: list[str] = []
    console: list[str] = []

    def route(r) -> None:
        if r.request.url == url or r.request.url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    page.context.route("**/*", route)
    try:
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(url)
        page.wait_for_load_state("load")
        sections = dashboard.build(project.root)[1]
        for s in sections:
            expect(page.locator(f"section#{s.id} > h2")).to_have_text(s.title)
        scores = page.locator("section#scores")
        for model in MODELS:
            expect(scores.get_by_text(model, exact=True).first).to_be_visible()
        images = page.locator("img")
        assert images.count() >= len(MODELS), "no confusion matrix drawn"
        widths = images.evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert all(w > 0 for w in widths), f"images that did not decode: {widths}"
        shoot(page, tmp_path / "dashboard.png")
    finally:
        page.context.unroute("**/*")
    others = [u for u in requests if u != url and not u.startswith("data:")]
    assert others == [] and blocked == [], f"the dashboard asked for {others + blocked}"
    assert [c for c in console if c.startswith("error")] == [], console


def test_the_request_recorder_sees_a_page_that_loads_something(page, tmp_path: Path) -> None:
    """The probe of the test above, on a page that loads one image from a server: it is recorded
    (a recorder that sees nothing would pass any page)."""
    target = tmp_path / "leaky.html"
    port = free_port()  # nothing listens there: the request is made, and fails
    target.write_text(f'<!DOCTYPE html><html><body><img src="http://127.0.0.1:{port}/x.png"></body></html>', encoding="utf-8")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(target.as_uri())
    page.wait_for_load_state("load")
    assert requests == [target.as_uri(), f"http://127.0.0.1:{port}/x.png"], requests


# ------------------------------------------------------------------------- browser.py's server helper


def test_a_server_that_dies_fails_with_its_stderr(tmp_path: Path) -> None:
    """A server that exits before serving fails the test at once, with its exit code and stderr tail."""
    cmd = [sys.executable, "-c", "import sys; sys.stderr.write('no code location: boom\\n'); sys.exit(3)"]
    with pytest.raises(pytest.fail.Exception) as failed, serve(cmd, free_port(), tmp_path / "logs", name="dying", timeout=60):
        pass
    assert "dying exited with code 3" in str(failed.value) and "no code location: boom" in str(failed.value)


def test_a_server_and_its_children_are_stopped(tmp_path: Path) -> None:
    """Leaving serve() stops the whole process group, the server's children included (`dagster dev`
    and `mlflow ui` start several)."""
    from pepm_assets_tests.browser import _group_alive

    port = free_port()
    child = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {child}; exec {sys.executable} -m http.server {port} --bind 127.0.0.1"]
    with serve(cmd, port, tmp_path / "logs", name="http") as server:
        assert server.url == f"http://127.0.0.1:{port}"
        pid = int(child.read_text())
        assert _group_alive(server.process.pid)
    assert server.process.returncode is not None
    assert not _group_alive(server.process.pid)
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", (
        "sleep left running"
    )
