"""Compute logs (pepm_assets/defs/compute_logs.py, named in dagster.yaml): a step's output, whatever
writes it, lands in the files the UI reads and on the terminal, without a process started for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pepm_assets.defs import compute_logs

from .fixtures import REPO

STEP = """
import json, os, subprocess, sys
import dagster as dg

@dg.asset
def talky() -> None:
    print("one: print", flush=True)
    os.write(1, b"two: file descriptor 1\\n")
    subprocess.run([sys.executable, "-c", "print('three: a child process')"], check=True)
    os.write(2, b"four: file descriptor 2\\n")
    me = os.getpid()
    children = [c for t in os.listdir(f"/proc/{me}/task") for c in open(f"/proc/{me}/task/{t}/children").read().split()]
    print("children during the capture:", len(children), flush=True)

with dg.DagsterInstance.get() as instance:
    result = dg.materialize([talky], instance=instance)
    (captured,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    manager = instance.compute_log_manager
    key = manager.build_log_key_for_run(result.run_id, captured.dagster_event.event_specific_data.file_key)
    print("MANAGER", type(manager).__name__, file=sys.__stderr__)
    data = manager.get_log_data(key)
    print("UI-stdout", json.dumps(data.stdout.decode()), file=sys.__stderr__)
    print("UI-stderr", json.dumps(data.stderr.decode()), file=sys.__stderr__)
"""


def _run_step(home: Path, dagster_yaml: Path) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(dagster_yaml.read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", STEP], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads a process's children from /proc")
def test_a_steps_output_reaches_the_ui_files_and_the_terminal_and_no_process_is_started_for_it(tmp_path: Path) -> None:
    """Python's print, a write to fd 1 or 2 and a child process's output: each in the step's log
    files as the UI reads them (the instance's compute log manager) and, mirrored, on the
    process's own stdout / stderr, complete and in order. Dagster's LocalComputeLogManager starts
    a `tail -F` and a Python watcher per stream: four children of the step's process."""
    out = _run_step(tmp_path / "home", REPO / "dagster.yaml")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MANAGER ThreadMirroredComputeLogManager" in out.stderr
    expected = ["one: print", "two: file descriptor 1", "three: a child process", "children during the capture: 0"]
    ui_out = next(line for line in out.stderr.splitlines() if line.startswith("UI-stdout "))
    ui_err = next(line for line in out.stderr.splitlines() if line.startswith("UI-stderr "))
    assert json.loads(ui_out.removeprefix("UI-stdout ")).splitlines() == expected
    assert "four: file descriptor 2" in json.loads(ui_err.removeprefix("UI-stderr "))
    assert [line for line in out.stdout.splitlines() if line in expected] == expected  # mirrored, in order
    assert "four: file descriptor 2" in out.stderr.splitlines()


def test_the_mirror_survives_a_terminal_that_is_gone_and_the_file_keeps_everything(tmp_path: Path) -> None:
    """A closed pipe where the output went (`pepm run | head`) ends the mirroring, not the capture."""
    read, write = os.pipe()
    os.close(read)
    log = tmp_path / "step.out"
    with os.fdopen(write, "w") as stream, compute_logs.mirrored(stream, str(log)):
        for i in range(2000):
            os.write(stream.fileno(), f"line {i}\n".encode())
    assert log.read_text(encoding="utf-8").splitlines() == [f"line {i}" for i in range(2000)]


def test_a_stream_without_a_file_descriptor_is_left_alone(tmp_path: Path) -> None:
    import io

    stream = io.StringIO()
    with compute_logs.mirrored(stream, str(tmp_path / "logs" / "step.out")):
        stream.write("stays in the stream")
    assert stream.getvalue() == "stays in the stream" and (tmp_path / "logs" / "step.out").read_text() == ""


def test_the_log_folder_is_daggers_default_or_the_configured_one_and_otherwise_named(tmp_path: Path, monkeypatch) -> None:
    cls = compute_logs.ThreadMirroredComputeLogManager
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert Path(cls.from_config_value(None, {})._base_dir) == tmp_path / "home" / "storage"
    assert Path(cls.from_config_value(None, {"base_dir": str(tmp_path / "logs")})._base_dir) == tmp_path / "logs"
    monkeypatch.delenv("DAGSTER_HOME")
    with pytest.raises(dg.DagsterInvariantViolationError, match=r"compute_logs\.config\.base_dir"):
        cls.from_config_value(None, {})
