"""Safe first use (several commands at once on a fresh project) and recovery from killed runs.

The processes here are real: the first-use tests start several `pepm` processes (the `pepm` entry
point, `pepm_assets.cli:app`) that wait at a barrier after their imports, so that they all open the
fresh store within milliseconds of each other (without the lock: a broken Alembic stamp or "table
already exists" in most tries). The recovery test SIGKILLs a pipeline run at chosen points.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pepm_assets.core import atomic
from pepm_assets.defs import recovery
from pepm_assets_tests.fixtures import REPO, make_project

PYTHON = sys.executable
N_AT_ONCE = 4

BARRIER = """
import os, sys, time
from pathlib import Path
{imports}
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.joinpath(str(os.getpid())).touch()
while not go.exists():
    time.sleep(0.002)
{body}
"""

PEPM_STATUS = BARRIER.format(
    imports="import dagster, pepm_assets.cli as cli, pepm_assets.core.lineage, pepm_assets.defs.sqlite_storage",  # what status imports first
    body="sys.argv = ['pepm', 'status', '-p', 'tiny_an']\ncli.app()",
)

MLFLOW_LOG = BARRIER.format(
    imports="import mlflow\nfrom pepm_assets.core.tracking import Tracker",
    body="""
tracker = Tracker(Path(sys.argv[4]))
def log(mlflow, client, experiment_id):  # the client of the tracker's store
    run = client.create_run(experiment_id, tags={"n": sys.argv[3]})
    client.log_metric(run.info.run_id, "m", 1.0)
    client.set_terminated(run.info.run_id)
tracker._log(log)""",
)


def _project(tmp_path: Path) -> Path:
    project = make_project(tmp_path / "proj")
    shutil.copy(REPO / "dagster.yaml", project / "dagster.yaml")  # the project's storage (pepm_assets.defs.sqlite_storage)
    return project


def _env(project: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PEPM_MLFLOW_URI", "DAGSTER_HOME")}
    return {**env, "PEPM_ROOT": str(project), "DAGSTER_HOME": str(home)}


def _at_once(script: str, env: dict[str, str], tmp: Path, *args: str) -> list[subprocess.CompletedProcess]:
    """Start N_AT_ONCE processes of `script`, release them together once all are ready, wait for all."""
    ready, go = tmp / "ready", tmp / "go"
    ready.mkdir()
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", script, str(ready), str(go), str(i), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(N_AT_ONCE)
    ]
    deadline = time.monotonic() + 120
    while len(list(ready.iterdir())) < N_AT_ONCE and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.01)
    go.touch()
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


def _assert_all_ok(results: list[subprocess.CompletedProcess]) -> None:
    failed = [r.stderr[-1500:] for r in results if r.returncode != 0]
    assert not failed, f"{len(failed)} of {len(results)} failed:\n" + "\n---\n".join(failed)


def test_commands_started_together_on_a_fresh_project_all_work(tmp_path: Path) -> None:
    project = _project(tmp_path)
    env = _env(project, tmp_path / "dagster_home")
    _assert_all_ok(_at_once(PEPM_STATUS, env, tmp_path))
    after = subprocess.run([str(Path(PYTHON).with_name("pepm")), "status", "-p", "tiny_an"], env=env, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr[-1500:]
    # a later status reads the run index without Dagster (defs/run_peek.py): open the store through Dagster too
    opened = subprocess.run(
        [PYTHON, "-c", "import os, pathlib, pepm_assets.cli as cli; cli._instance(pathlib.Path(os.environ['PEPM_ROOT'])).get_runs()"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert opened.returncode == 0, opened.stderr[-1500:]


def test_mlflow_store_created_by_several_processes_at_once(tmp_path: Path) -> None:
    project = _project(tmp_path)
    env = _env(project, tmp_path / "dagster_home")
    _assert_all_ok(_at_once(MLFLOW_LOG, env, tmp_path, str(project)))
    (tmp_path / "go2").touch()
    after = subprocess.run(
        [PYTHON, "-c", MLFLOW_LOG, str(tmp_path / "ready"), str(tmp_path / "go2"), "after", str(project)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert after.returncode == 0, after.stderr[-1500:]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    assert [e.name for e in client.search_experiments()].count("pepm") == 1
    runs = client.search_runs([client.get_experiment_by_name("pepm").experiment_id])
    assert sorted(r.data.tags["n"] for r in runs) == ["0", "1", "2", "3", "after"]


# --- recovery ---------------------------------------------------------------------------------

PIPELINE = """
import os, sys, time
from pathlib import Path
from pepm_assets.core import atomic

root, point, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

def pause():  # the kill point: say so, then wait to be killed
    marker.write_text(str(os.getpid()))
    time.sleep(600)

PAUSE_AT = {"corpus": "docs.parquet", "split": "train.tsv", "model": "meta_model.json", "evaluation": "meta_eval.json"}
new_sibling_file = atomic.new_sibling_file
def new_sibling_file_or_pause(target):
    path = new_sibling_file(target)
    if PAUSE_AT.get(point) == target.name:
        pause()  # a temporary file (corpus, split) or folder (model, evaluation) exists
    return path
atomic.new_sibling_file = new_sibling_file_or_pause
if point == "mlflow":
    import mlflow
    mlflow.MlflowClient.log_artifacts = lambda *args, **kwargs: pause()  # an MLflow run is RUNNING (the tracker logs through MlflowClient)
if point == "parse":  # inside the parse workers (several processes), the parent waiting for them
    from pepm_assets.core import corpus
    corpus.PARALLEL_MIN_BYTES = 0
    def read_and_pause(paths):
        (marker.parent / f"worker_{os.getpid()}").touch()
        if len(list(marker.parent.glob("worker_*"))) >= 2:
            marker.write_text(str(os.getpid()))
        time.sleep(600)
    corpus._read_files = read_and_pause

from pepm_assets.defs import runner  # its runs carry recovery.process_tags()
from pepm_assets.defs.instance import get_instance
report = runner.run_stage(root, "pipeline", "tiny_an", [], get_instance(root))
print("ran", [job for job, _, _ in report.runs])
"""


def _temporaries(project: Path) -> list[Path]:
    return list(project.rglob(".*.tmp"))


def _pipeline(project: Path, env: dict[str, str], point: str, marker: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [PYTHON, "-c", PIPELINE, str(project), point, str(marker)],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at_marker(proc: subprocess.Popen, marker: Path) -> list[int]:
    """SIGKILL the run's process (only it) at its kill point; returns the processes of its session
    still alive 5 s later (orphans), then kills them."""
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), (
        f"never reached the kill point:\n{proc.communicate(timeout=60)[1][-2000:] if proc.poll() is not None else 'timeout'}"
    )
    session = _session_pids(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 5
    while (alive := [p for p in session if p != proc.pid and atomic.pid_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return alive


def _session_pids(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/<pid>/stat: the session id
            pids.append(int(stat.parent.name))
    return pids


def _running_mlflow_runs(project: Path, dagster_run_ids: list[str]) -> list[str]:
    import mlflow

    db = project / "mlruns" / "mlflow.db"
    if not db.is_file():
        return []
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("pepm")
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'") if experiment else []
    return [r.info.run_id for r in runs if r.data.tags.get("dagster_run_id") in dagster_run_ids]


def test_killed_runs_are_recovered_and_the_rerun_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed at six points of a pipeline run: inside the parse workers (they must die with it),
    while writing the corpus (a temporary file), the split, the model (a temporary folder), the
    evaluation, and while logging to MLflow (a RUNNING MLflow run): after each, the next command's
    recovery leaves no unfinished run, no RUNNING MLflow run, no temporary and no orphan process;
    then a run completes."""
    from pepm_assets.defs.instance import get_instance

    project = _project(tmp_path)
    home = tmp_path / "dagster_home"
    env = _env(project, home)
    for k, v in (("PEPM_ROOT", str(project)), ("DAGSTER_HOME", str(home))):
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PEPM_MLFLOW_URI", raising=False)
    corpora = project / "configs" / "common" / "corpora.yml"
    corpora.write_text(corpora.read_text() + "    parse_workers: 2\n")  # the an corpus: two files, two workers
    shutil.copy(project / "data" / "raw" / "an" / "an_2019-03.xml", project / "data" / "raw" / "an" / "an_2019-04.xml")
    killed: list[str] = []
    points = ("parse", "corpus", "split", "model", "evaluation", "mlflow")
    for point in points:
        (tmp_path / point).mkdir()
        marker = tmp_path / point / "at"
        orphans = _kill_at_marker(_pipeline(project, env, point, marker), marker)
        assert not orphans, f"{point}: processes of the killed run still alive 5 s later: {orphans}"
        if point == "corpus":
            assert any(p.is_file() and "data" in p.parts for p in _temporaries(project))
        if point == "model":
            assert any(p.is_dir() and "models" in p.parts for p in _temporaries(project))
        if point == "mlflow":
            with get_instance(project) as instance:
                assert _running_mlflow_runs(project, [r.run_id for r in instance.get_runs()])
        if point == "parse":  # through the CLI, as every command does it
            status = subprocess.run(
                [str(Path(PYTHON).with_name("pepm")), "status", "-p", "tiny_an"], env=env, capture_output=True, text=True
            )
            assert status.returncode == 0, status.stderr[-2000:]
            assert re.search(r"recovered:.*Dagster run \S+ \(prepare_corpus\): STARTED -> FAILURE", status.stderr), status.stderr
            assert "runs whose process died" in status.stdout and "prepare_corpus" in status.stdout, status.stdout
        else:
            with get_instance(project) as instance:
                done = recovery.recover(instance, project)
            assert any(line.startswith("Dagster run") for line in done), done
            if point == "mlflow":
                assert any(line.startswith("MLflow run") for line in done), done
        with get_instance(project) as instance:
            assert not instance.get_runs(dg.RunsFilter(statuses=recovery.UNFINISHED))
            crashed = recovery.crashed_runs(instance)
            new = [c.run_id for c in crashed if c.run_id not in killed]
            assert len(new) == 1 and instance.get_run_by_id(new[0]).status == dg.DagsterRunStatus.FAILURE
            killed += new
        assert not _running_mlflow_runs(project, killed)
        assert not _temporaries(project), _temporaries(project)

    done = subprocess.run([PYTHON, "-c", PIPELINE, str(project), "none", str(tmp_path / "never")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    with get_instance(project) as instance:  # every run but the killed ones succeeded
        assert {r.run_id for r in instance.get_runs() if r.status != dg.DagsterRunStatus.SUCCESS} == set(killed)
        assert len(recovery.crashed_runs(instance)) == len(points)
    assert (project / "reports" / "leaderboard.md").is_file()
    assert not _temporaries(project)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_only_runs_whose_process_died_are_marked_failed(dagster_instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """Our own (live) run and another host's run are left alone; a dead pid, and a live pid that now
    names another process (its start time differs), are marked failed."""
    from dagster._core.storage.dagster_run import DagsterRun

    mine = recovery.process_tags()
    cases = {
        "live": mine,
        "dead": {**mine, recovery.PID: str(_dead_pid())},
        "other_host": {**mine, recovery.PID: str(_dead_pid()), recovery.HOST: socket.gethostname() + "-elsewhere"},
        "pid_reused": {**mine, recovery.PID_START: "1"},
        "untagged": {},
    }
    for name, tags in cases.items():
        dagster_instance.add_run(DagsterRun(job_name=name, status=dg.DagsterRunStatus.STARTED, tags=tags))
    done = recovery.recover(dagster_instance, tmp_path)
    status = {r.job_name: r.status for r in dagster_instance.get_runs()}
    assert status == {
        "live": dg.DagsterRunStatus.STARTED,
        "other_host": dg.DagsterRunStatus.STARTED,
        "untagged": dg.DagsterRunStatus.STARTED,
        "dead": dg.DagsterRunStatus.FAILURE,
        "pid_reused": dg.DagsterRunStatus.FAILURE,
    }, done
    assert {c.job_name for c in recovery.crashed_runs(dagster_instance)} == {"dead", "pid_reused"}
    assert recovery.recover(dagster_instance, tmp_path) == []  # nothing left to do


def test_only_temporaries_of_dead_processes_are_removed(tmp_path: Path) -> None:
    """A dead process's temporary file and folder go; a live one's (ours) and another host's stay;
    a folder set aside before a swap is put back when the new one never replaced it."""
    models = tmp_path / "models" / "ds" / "view"
    models.mkdir(parents=True)
    dead, host = _dead_pid(), atomic.HOST
    other = "ffffff" if host != "ffffff" else "eeeeee"

    def temp(name: str, pid: int, kind: str = "0123abcd", on: str = host) -> Path:
        return models / f".{name}.{pid}-{on}-{kind}.tmp"

    temp("a.json", dead).write_text("half")
    (temp("model_a", dead) / "sub").mkdir(parents=True)
    temp("b.json", os.getpid()).write_text("being written")
    temp("c.json", dead, on=other).write_text("another host's")
    temp("model_b", dead, kind="old").mkdir()
    (temp("model_b", dead, kind="old") / "kept.txt").write_text("old")
    (models / "model_c").mkdir()
    temp("model_c", dead, kind="old").mkdir()
    (tmp_path / "data" / "raw" / "x").mkdir(parents=True)
    raw_temp = tmp_path / "data" / "raw" / "x" / f".f.xml.{dead}-{host}-0123abcd.tmp"
    raw_temp.write_text("not walked")
    done = recovery.remove_temporaries(tmp_path)
    assert len(done) == 4 and sum(line.startswith("restored") for line in done) == 1, done
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [temp("b.json", os.getpid()).name, temp("c.json", dead, on=other).name, "model_b", "model_c"]
    )
    assert (models / "model_b" / "kept.txt").read_text() == "old"
    assert raw_temp.exists()
