"""Cost proportional to what is asked: `pepm --help` imports typer and rich (and typer's pydantic)
only, `pepm validate` reads configs without Dagster or pandas, `pepm status` reads the run index
without Dagster (defs/run_peek.py). Each command runs in a fresh interpreter, which then lists the heavy
libraries it imported; a module-level import that comes back fails here."""

from __future__ import annotations

import ast
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pepm_assets.core import registry
from pepm_assets.defs import recovery, run_peek
from pepm_assets_tests.fixtures import REPO, make_project

HEAVY = {
    "dagster",
    "sqlalchemy",
    "alembic",
    "mlflow",
    "spacy",
    "torch",
    "transformers",
    "evidently",
    "matplotlib",
    "sklearn",
    "scipy",
    "pandas",
    "numpy",
    "pyarrow",
}
# what reading configs needs: pydantic (schemas), yaml, and lxml (checking a corpus's dialect_options
# imports its dialect's module, which imports the TEI reader; ~20 ms)
CONFIG_LIBRARIES = {"pydantic", "yaml", "lxml"}
WATCHED = HEAVY | CONFIG_LIBRARIES

RUN = """
import sys
from pepm_assets.cli import app
sys.argv = ["pepm", *sys.argv[1:]]
try:
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("IMPORTED", sorted({name.split(".")[0] for name in sys.modules} & WATCHED))
sys.exit(code)
"""


def _pepm(project: Path | None, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `pepm *args` in a fresh interpreter; (the process, the watched libraries it imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PEPM_ROOT", "DAGSTER_HOME", "PEPM_MLFLOW_URI")}
    if project is not None:
        env.update(PEPM_ROOT=str(project), DAGSTER_HOME=str(project / ".dagster"), PEPM_MLFLOW_URI=f"sqlite:///{project / 'mlflow.db'}")
    code = f"WATCHED = set({sorted(WATCHED)!r})\n{RUN}"
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("IMPORTED ")), None)
    assert line is not None, out.stdout[-2000:] + out.stderr[-2000:]
    return out, set(ast.literal_eval(line.removeprefix("IMPORTED ")))


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    project = make_project(tmp_path / "proj")
    shutil.copy(REPO / "dagster.yaml", project / "dagster.yaml")  # the project's storage (pepm_assets.defs.sqlite_storage)
    return project


def test_importing_the_cli_and_its_help_import_typer_and_rich_only() -> None:
    code = f"import sys, pepm_assets.cli\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(WATCHED)!r})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    for args in (["--help"], ["status", "--help"], ["sweep", "--help"], ["report", "polarization", "--help"]):
        result, imported = _pepm(None, *args)
        assert result.returncode == 0 and "Usage" in result.stdout, result.stderr
        assert imported <= {"pydantic"}, (args, imported)  # typer's own parameter adapters (typer/_adapters.py) import pydantic


def test_validate_reads_configs_without_dagster_or_pandas(project: Path) -> None:
    result, imported = _pepm(project, "validate", "-p", "tiny_quick")
    assert result.returncode == 0 and "ok tiny_quick" in result.stdout, result.stdout + result.stderr
    assert {"pydantic", "yaml"} <= imported <= CONFIG_LIBRARIES, imported  # it did read the configs, and imported nothing else


def _script(project: Path, code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter, in the repository, on `project`."""
    env = {**os.environ, "PEPM_ROOT": str(project), "DAGSTER_HOME": str(project / ".dagster")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_pepm_run_starts_its_side_worker_before_it_imports_dagster(project: Path) -> None:
    """The worker imports MLflow on the other core while this process imports Dagster
    (core/side_worker.py): checking the stage name must not import Dagster first."""
    code = (
        "import sys\nfrom pepm_assets.core import side_worker\n"
        "def start(root, uri=None):\n    print('DAGSTER_IMPORTED', 'dagster' in sys.modules)\n    sys.exit(0)\n"
        "side_worker.start = start\nfrom pepm_assets.cli import app\n"
        "sys.argv = ['pepm', 'run', '--stage', 'pipeline', '-p', 'tiny_quick']\napp()\n"
    )
    out = _script(project, code)
    assert out.returncode == 0 and "DAGSTER_IMPORTED False" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_pepm_run_imports_dagster_without_collecting_and_freezes_it(project: Path) -> None:
    """Dagster's import and the instance build only objects that live to the command's end
    (core/collector.py `long_lived`): no collection walks them while they are built, and the stage
    starts with them frozen, with the collector on."""
    code = (
        "import gc, sys\nimport pepm_assets.cli as cli\nduring = []\n"
        "def seen(phase, info):\n"
        "    if phase == 'start' and 'dagster' in sys.modules and 'pepm_assets.defs.instance' not in sys.modules:\n"
        "        during.append(info['generation'])\n"
        "gc.callbacks.append(seen)\nreal = cli._instance\n"
        "def instance(root):\n    got = real(root)\n    runner = sys.modules['pepm_assets.defs.runner']\n"
        "    def run_stage(*a, **k):\n"
        "        print('DURING', len(during), 'FROZEN', gc.get_freeze_count(), 'ENABLED', gc.isenabled())\n        sys.exit(0)\n"
        "    runner.run_stage = run_stage\n    return got\n"
        "cli._instance = instance\nsys.argv = ['pepm', 'run', '--stage', 'prepare', '-p', 'tiny_quick']\ncli.app()\n"
    )
    out = _script(project, code)
    got = re.search(r"DURING (\d+) FROZEN (\d+) ENABLED (\w+)", out.stdout)
    assert out.returncode == 0 and got, out.stdout[-2000:] + out.stderr[-2000:]
    assert got.group(1) == "0"  # not one collection while Dagster was imported
    assert int(got.group(2)) > 200_000 and got.group(3) == "True"  # Dagster's objects frozen; collecting again


def test_status_reads_the_run_index_without_dagster_once_the_store_exists(project: Path) -> None:
    first, imported_first = _pepm(project, "status", "-p", "tiny_quick")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "dagster" in imported_first  # a fresh project: the store is created through Dagster (under its lock)
    assert (project / ".dagster" / "history" / "runs.db").is_file()

    again, imported = _pepm(project, "status", "-p", "tiny_quick")
    assert again.returncode == 0, again.stderr[-2000:]
    assert imported <= CONFIG_LIBRARIES, imported & HEAVY
    assert "corpus_docs" in again.stdout and "missing:" in again.stdout  # the same table as the Dagster path
    table = [line for line in again.stdout.splitlines() if not line.startswith("IMPORTED ")]
    assert table == [line for line in first.stdout.splitlines() if not line.startswith("IMPORTED ")]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_run_index_read_without_dagster_answers_as_the_instance_does(dagster_instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """run_peek reads Dagster's run tables with sqlite3: compared here with the instance's own answers,
    so a Dagster upgrade that changes them fails this test (and `pepm status` would open Dagster)."""
    from dagster._core.storage.dagster_run import DagsterRun

    assert tuple(s.value for s in recovery.UNFINISHED) == run_peek.UNFINISHED_STATUSES
    home = Path(os.environ["DAGSTER_HOME"])
    assert run_peek.peek(home) == run_peek.Peek(False, [])  # the store exists, no run yet

    mine = recovery.process_tags()
    cases = {
        "live": mine,
        "dead": {**mine, recovery.PID: str(_dead_pid()), "dagster/partition": "tiny_mpt|left_right"},
        "other_host": {**mine, recovery.PID: str(_dead_pid()), recovery.HOST: socket.gethostname() + "-elsewhere"},
        "untagged": {},
    }
    for name, tags in cases.items():
        dagster_instance.add_run(DagsterRun(job_name=name, status=dg.DagsterRunStatus.STARTED, tags=tags))
    dagster_instance.add_run(DagsterRun(job_name="done", status=dg.DagsterRunStatus.SUCCESS, tags={**mine, recovery.PID: str(_dead_pid())}))
    assert run_peek.peek(home) == run_peek.Peek(True, [])  # "dead" is to recover: status opens Dagster

    recovery.recover(dagster_instance, tmp_path)
    found = run_peek.peek(home)
    assert found is not None and not found.to_recover
    assert found.crashed == recovery.crashed_runs(dagster_instance)
    assert [(c.job_name, c.partition) for c in found.crashed] == [("dead", "tiny_mpt|left_right")]


def test_the_run_index_is_read_only_for_the_embedded_sqlite_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Postgres (or any other storage) and a store not created yet: None, and status opens Dagster."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert run_peek.run_index(home) == home / "history" / "runs.db"
    assert run_peek.peek(home) is None  # not created yet
    (home / "dagster.yaml").write_text("storage:\n  postgres:\n    postgres_url: {env: PG}\n", encoding="utf-8")
    assert run_peek.run_index(home) is None
    (home / "dagster.yaml").write_text("storage:\n  sqlite:\n    base_dir: /somewhere\n", encoding="utf-8")
    assert run_peek.run_index(home) == Path("/somewhere/history/runs.db")


def test_an_entry_point_installed_after_a_lookup_is_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points are cached, but read again when a folder of sys.path changes (a package installed)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: registry.Registry[object] = registry.Registry("thing", group="pepm.test_things")
    assert reg.names() == []
    time.sleep(0.05)  # the folder's modification time must be able to move
    dist = tmp_path / "things-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: things\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[pepm.test_things]\nwidget = json:dumps\n", encoding="utf-8")
    assert reg.names() == ["widget"] and reg.get("widget") is __import__("json").dumps


def test_loading_the_code_location_imports_no_model_library(project: Path) -> None:
    """Every sweep worker, `pepm dev` and the UI's forkserver load the definitions: Dagster and pandas
    (which the steps use at once) are paid there, the model, tracking and plotting libraries are not."""
    code = (
        "import sys\nfrom pepm_assets.definitions import build_definitions\n"
        f"build_definitions({str(project)!r}).resolve_asset_graph()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    imported = set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))
    assert "dagster" in imported  # it did load the definitions
    assert not imported & {"mlflow", "spacy", "torch", "transformers", "evidently", "matplotlib", "sklearn", "scipy"}, imported
