"""The hard RAM limit (core/sweep/memory.py) on real processes: Python children that allocate
step by step (bytearray filled with ones, so every page is touched and counts in RSS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pepm_assets.core.sweep import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# allocate TOTAL MB in STEP MB steps, PAUSE s apart, hold it HOLD s, exit with CODE
ALLOC = """
import os, sys, time
step, total, pause, code, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print("allocating", os.getpid(), flush=True)
keep = []
while sum(map(len, keep)) < total << 20:
    keep.append(bytearray(b"\\x01") * (step << 20))
    time.sleep(pause)
print("done", flush=True)
time.sleep(hold)
sys.exit(code)
"""

# a parent that starts an allocating child (its pid into PIDFILE), then waits for it
PARENT = """
import subprocess, sys
pidfile, alloc, *args = sys.argv[1:]
child = subprocess.Popen([sys.executable, "-c", alloc, *args])
open(pidfile, "w").write(str(child.pid))
sys.exit(child.wait())
"""

FAST = {"interval": 0.05, "grace_s": 0.5}
REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _alloc(step: int, total: int, pause: float = 0.05, code: int = 0, hold: float = 0.0) -> list[str]:
    return [sys.executable, "-c", ALLOC, str(step), str(total), str(pause), str(code), str(hold)]


def test_a_child_over_the_limit_is_stopped_and_reported_oom(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    # the child holds its 300 MB for 30 s once allocated: stopped within 5 s, it was stopped by the
    # watch, whether during the allocation or after it (a watch thread that the machine delays
    # past the 0.75 s of allocating, seen once in CI, must not fail the test)
    result = memory.run_watched(_alloc(20, 300, hold=30), 150, log, **FAST)
    assert result.oom and result.returncode == memory.OOM_RETURNCODE == 99
    assert result.rss_at_kill_mb is not None and result.rss_at_kill_mb > 150
    assert result.peak_mb >= result.rss_at_kill_mb and result.seconds < 5
    text = log.read_text()
    assert text.startswith("allocating")  # the child's own output, then ours
    assert text.rstrip().endswith(f"pepm: hard RAM limit: process tree RSS {result.rss_at_kill_mb:.0f} MB > 150 MB, stopped")


def test_a_grandchild_counts_in_the_tree_and_is_killed_with_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    cmd = [sys.executable, "-c", PARENT, str(pidfile), ALLOC, "20", "300", "0.05", "0", "60"]  # holds 60 s unless killed
    result = memory.run_watched(cmd, 150, tmp_path / "run.log", **FAST)
    assert result.oom and result.returncode == 99 and result.rss_at_kill_mb > 150
    grandchild = int(pidfile.read_text())
    # the parent alone (~10 MB) never reaches the limit: only the grandchild's memory can have
    deadline = time.monotonic() + 10  # SIGKILLed: it is gone once the kernel has freed its 300 MB
    while memory.pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not memory.pid_alive(grandchild)


def test_a_stubborn_process_gets_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    stubborn = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + ALLOC
    started = time.monotonic()
    result = memory.run_watched([sys.executable, "-c", stubborn, "20", "300", "0.05", "0", "0"], 100, tmp_path / "run.log", **FAST)
    assert result.oom and result.returncode == 99
    assert 0.5 <= time.monotonic() - started < 4


def test_a_child_under_the_limit_finishes_with_its_returncode_and_peak(tmp_path: Path) -> None:
    result = memory.run_watched(_alloc(20, 60, code=3, hold=0.2), 500, tmp_path / "run.log", **FAST)
    assert (result.returncode, result.oom, result.rss_at_kill_mb) == (3, False, None)
    assert 55 <= result.peak_mb < 200
    assert (tmp_path / "run.log").read_text().splitlines()[-1] == "done"


def test_without_a_limit_nothing_is_killed(tmp_path: Path) -> None:
    result = memory.run_watched(_alloc(50, 200, pause=0.01, hold=0.2), None, tmp_path / "run.log", **FAST)
    assert (result.returncode, result.oom) == (0, False) and result.peak_mb >= 195


def test_tree_rss_sums_the_descendants_and_skips_the_gone() -> None:
    child = subprocess.Popen(_alloc(40, 80, pause=0.0, hold=30), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().startswith("allocating") and child.stdout.readline() == "done\n"
        assert child.pid in memory.tree_pids(os.getpid())
        assert memory.tree_rss_mb(child.pid) >= 80
        assert memory.tree_rss_mb(os.getpid()) >= memory.rss_mb(os.getpid()) + 80
    finally:
        child.kill()
        child.wait()
    assert memory.tree_rss_mb(child.pid) == 0.0 and memory.tree_pids(child.pid) == []


def test_ram_watch_without_limit_records_the_peak_only() -> None:
    child = subprocess.Popen(_alloc(30, 90, pause=0.02, hold=0.2))
    with memory.RamWatch(child.pid, None, interval=0.02) as watch:
        child.wait()
    assert not watch.exceeded and watch.rss_at_kill_mb is None and watch.peak_mb >= 60


def test_peak_rss_of_this_process_and_its_finished_children(tmp_path: Path) -> None:
    now = memory.rss_mb(os.getpid())
    assert memory.peak_rss_mb_self() >= 0.95 * now > 0  # RSS counters are synced lazily: a little slack
    # in a fresh interpreter (this one's peak would hide the child's): a waited child's peak counts
    script = f"import subprocess, sys\nfrom pepm_assets.core.sweep import memory\nsubprocess.run({_alloc(50, 150)!r}, check=True, stdout=subprocess.DEVNULL)\n"
    script += "print(memory.peak_rss_mb_self(), memory.rss_mb(__import__('os').getpid()))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path, env=_env())
    peak, own = map(float, out.stdout.split())
    assert peak >= 150 > own
