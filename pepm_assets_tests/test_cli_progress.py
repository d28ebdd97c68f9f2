"""Live progress of `pepm run`: the assets of the view's run are announced one by one as they start
(models i/N), and the bar keeps refreshing on the terminal while Dagster captures the process's
output (its compute-log capture points file descriptor 1 at a file during every step)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import dagster as dg

from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner

from .fixtures import REPO


def test_each_asset_of_the_view_run_is_announced_as_it_starts(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    seen: list[tuple[int, int, str]] = []
    steps: list[str] = []
    runner.run_stage(
        project,
        "pipeline",
        "tiny_quick",
        ["models=[tfidf_svm_quick,tfidf_logreg]"],
        dagster_instance,
        build_definitions(project),
        on_step=steps.append,
        on_asset=lambda i, n, what: seen.append((i, n, what)),
    )
    assert [i for i, _, _ in seen] == list(range(1, 8)) and {n for _, n, _ in seen} == {7}
    whats = [w for _, _, w in seen]
    assert whats[:2] == ["view_split", "model_formats"] and whats[-1] == "leaderboard"
    assert sorted(whats[2:6]) == ["evaluate tfidf_logreg", "evaluate tfidf_svm_quick", "train tfidf_logreg", "train tfidf_svm_quick"]
    for model in ("tfidf_logreg", "tfidf_svm_quick"):  # an evaluation is announced after its model's training
        assert whats.index(f"train {model}") < whats.index(f"evaluate {model}")
    assert "7 assets of tiny_mpt/left_right" in steps


PROBE = """
import os
import sys
from dagster._core.execution.compute_logs import redirect_to_file
from rich.progress import TextColumn
from pepm_assets import cli

with cli._progress(TextColumn("{task.description}")) as progress:
    task = progress.add_task("START")
    with redirect_to_file(sys.stdout, sys.argv[1]):  # what Dagster does around every step
        progress.update(task, description="INSIDE-THE-STEP")
        progress.refresh()
        os.write(1, b"written to fd 1 by the step\\n")
    progress.update(task, description="AFTER")
"""


def test_the_bar_reaches_the_terminal_while_dagster_captures_stdout(tmp_path: Path) -> None:
    captured = tmp_path / "compute.log"
    controller, terminal = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-c", PROBE, str(captured)], stdout=terminal, stderr=terminal, cwd=REPO, env=env)
    os.close(terminal)
    out = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    assert "INSIDE-THE-STEP" in text, f"the bar did not reach the terminal during the step: {text!r}"
    assert "AFTER" in text
    log = captured.read_text(encoding="utf-8")
    assert "written to fd 1 by the step" in log and "INSIDE-THE-STEP" not in log  # the step's output is captured, the bar is not


def test_check_results_name_their_partition(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Dagster records the checks of a partitioned asset's materialization without the partition: each
    result carries it in its metadata and description, so the UI's check history says which one."""
    runner.run_stage(project, "pipeline", "tiny_quick", ["models=[tfidf_svm_quick]"], dagster_instance, build_definitions(project))
    for asset, check, partition in (
        ("corpus_docs", "reject_rate_under_threshold", "mpt"),
        ("view_split", "no_train_job_leakage", "tiny_mpt|left_right"),
        ("evaluation/tfidf_svm_quick", "label_validity", "tiny_mpt|left_right"),
    ):
        key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), check)
        (record,) = dagster_instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
        evaluation = record.event.dagster_event.event_specific_data
        assert evaluation.metadata["partition"].value == partition, (asset, check, evaluation.metadata)
        assert partition in (evaluation.description or ""), (asset, check, evaluation.description)
