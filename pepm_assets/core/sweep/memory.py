"""The hard RAM limit of a sweep run (spec §7.3, §11): a process tree's RSS, watched, from /proc.

Off by default; a sweep enables it with `safety.enable_hard_ram_limit` and `hard_limit_mb`. The run's
process and all its descendants are summed (a `make run` or a Dagster step does its work in
children: the parent's own RSS would say nothing); over the limit the whole tree gets SIGTERM,
deepest first, then SIGKILL after a grace period, and the run is recorded as `oom` (the spec's code 99).

Linux only, without psutil: RSS is VmRSS of /proc/<pid>/status, children come from
/proc/<pid>/task/*/children where the kernel has it (CONFIG_PROC_CHILDREN), else from the parent
pid of every /proc/<pid>/stat. A process that exits during a scan is skipped, never an error.
Sizes are MB of 2**20 bytes.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..atomic import pid_alive, start_time

OOM_RETURNCODE = 99  # spec §7.3: the exit code a run stopped by the hard limit reports
GRACE_S = 2.0  # between SIGTERM and SIGKILL

log = logging.getLogger(__name__)
_PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:  # the process is gone (or was never ours to read)
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses):
    [state, ppid, pgrp, ...]; None when the process is gone."""
    text = _read(_PROC / str(pid) / "stat")
    return text[text.rfind(")") + 2 :].split() if text else None


def _memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of one process: its resident size now and its highest since its last exec
    (0, 0 when it is gone or a zombie, which has no such lines)."""
    found = {"VmRSS:": 0.0, "VmHWM:": 0.0}
    for line in (_read(_PROC / str(pid) / "status") or "").splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            found[line[:6]] = int(line.split()[1]) / 1024  # kB
    return found["VmRSS:"], found["VmHWM:"]


def rss_mb(pid: int) -> float:
    """VmRSS of one process (0 when it is gone or a zombie)."""
    return _memory_mb(pid)[0]


def _children_files_supported() -> bool:
    return any((_PROC / "self" / "task").glob("*/children"))


_HAS_CHILDREN_FILES = _children_files_supported()


def _parent_map() -> dict[int, list[int]]:
    """ppid -> pids, from every /proc/<pid>/stat (kernels without the children files)."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_pids(pid: int) -> list[int]:
    """`pid` and its living descendants, parents before their children (empty when `pid` is gone)."""
    if _stat_fields(pid) is None:
        return []
    parents = None if _HAS_CHILDREN_FILES else _parent_map()
    found, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        found.append(current)
        if parents is not None:
            kids = parents.get(current, [])
        else:
            kids = [int(k) for f in (_PROC / str(current) / "task").glob("*/children") for k in (_read(f) or "").split()]
        queue.extend(k for k in kids if k not in found and k not in queue)
    return found


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and all its descendants, in MB (shared pages count once per process, as `ps`
    adds them: an upper bound, which is the safe side for a limit)."""
    return sum(rss_mb(p) for p in tree_pids(pid))


class RamWatch:
    """Watch the process tree of a running `pid` from a thread, every `interval` seconds: `peak_mb`
    is the largest tree RSS seen, or the largest high-water mark (VmHWM) of one process of the
    tree when that is larger (a peak between two samples). With `limit_mb`, a tree over it is
    stopped (SIGTERM to every process, children first so a parent cannot respawn them, then SIGKILL
    to what is left after `grace_s`) and `exceeded`, `rss_at_kill_mb` are set. Without a limit it
    only records the peak. Processes are told apart by pid and start time: a pid reused once its
    process is gone is never counted, nor killed.

        with RamWatch(proc.pid, 2000) as watch:
            proc.wait()
        if watch.exceeded: ...
    """

    def __init__(self, pid: int, limit_mb: float | None, interval: float = 0.5, grace_s: float = GRACE_S) -> None:
        self.pid, self.limit_mb, self.interval, self.grace_s = pid, limit_mb, interval, grace_s
        self.peak_mb = 0.0
        self.exceeded = False
        self.rss_at_kill_mb: float | None = None
        self._seen: dict[int, str] = {}  # pid -> start time of every process seen in the tree
        self._root_start = start_time(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ram-watch-{pid}", daemon=True)

    def __enter__(self) -> RamWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        return tree_pids(self.pid) if start_time(self.pid) == self._root_start else []

    def sample(self) -> float:
        """One measure of the tree (also remembers its members, for the kill)."""
        pids = self._tree()
        for p in pids:
            if p not in self._seen and (start := start_time(p)) is not None:
                self._seen[p] = start
        sizes = [_memory_mb(p) for p in pids]
        rss = sum(current for current, _ in sizes)
        self.peak_mb = max(self.peak_mb, rss, *(highest for _, highest in sizes))
        return rss

    def _run(self) -> None:
        while True:
            rss = self.sample()
            if self.limit_mb is not None and rss > self.limit_mb:
                self.exceeded, self.rss_at_kill_mb = True, rss
                self.kill_tree()
                return
            if self._stop.wait(self.interval):
                return

    def _members(self) -> list[int]:
        """The living tree, deepest first, plus any process seen in it before that has since been
        re-parented away (a grandchild whose parent exited) and is still the same process."""
        current = self._tree()
        strays = [p for p, start in self._seen.items() if p not in current and start_time(p) == start]
        return list(reversed(current)) + strays

    def kill_tree(self) -> None:
        """SIGTERM to the tree, deepest first; SIGKILL to what still runs `grace_s` later."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in self._members():
                try:
                    os.kill(p, sig)
                except (ProcessLookupError, PermissionError):
                    pass
            deadline = time.monotonic() + (self.grace_s if sig == signal.SIGTERM else 0)
            while time.monotonic() < deadline and any(pid_alive(p) for p in self._members()):
                time.sleep(0.05)


@dataclass(frozen=True)
class WatchedResult:
    returncode: int  # OOM_RETURNCODE when the watch stopped it
    oom: bool
    peak_mb: float
    rss_at_kill_mb: float | None
    seconds: float


def run_watched(
    cmd: list[str],
    limit_mb: float | None,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    interval: float = 0.5,
    grace_s: float = GRACE_S,
) -> WatchedResult:
    """Run `cmd` with stdout and stderr appended to `log_path`, its process tree watched (`RamWatch`).

    The command gets a session of its own, so that after the tree is killed its process group is
    killed too (a descendant that escaped the parent links is still in it); if this process is
    interrupted meanwhile (Ctrl-C, a Dagster run terminated), the tree is stopped before the error
    goes on. `peak_mb` is the watch's: sampled, so a run shorter than one `interval` may show less
    than it used. (The kernel's ru_maxrss of the waited child is no better: it starts from the RSS
    of this process when the child was spawned, gigabytes in a Dagster worker.)"""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=None if env is None else dict(env), cwd=cwd, start_new_session=True
        )
        watch = RamWatch(proc.pid, limit_mb, interval, grace_s)
        try:
            with watch:
                proc.wait()
        except BaseException:
            watch.kill_tree()
            _kill_group(proc.pid)
            proc.wait()
            raise
    if watch.exceeded:
        _kill_group(proc.pid)
        line = f"pepm: hard RAM limit: process tree RSS {watch.rss_at_kill_mb:.0f} MB > {limit_mb:.0f} MB, stopped"
        with open(log_path, "a", encoding="utf-8") as fh:
            fh.write(f"\n{line}\n")
        log.warning("%s (%s)", line, " ".join(cmd))
    return WatchedResult(
        returncode=OOM_RETURNCODE if watch.exceeded else proc.returncode,
        oom=watch.exceeded,
        peak_mb=round(watch.peak_mb, 1),
        rss_at_kill_mb=None if watch.rss_at_kill_mb is None else round(watch.rss_at_kill_mb, 1),
        seconds=round(time.perf_counter() - started, 3),
    )


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def peak_rss_mb_self() -> float:
    """Peak RSS of a run executed in this process: the larger of this process's high-water mark and
    that of its largest finished (waited) child, in MB (Linux reports ru_maxrss in kB). The larger,
    not the sum: the two peaks need not have been at the same time, and RUSAGE_CHILDREN is itself
    the largest single child, not a total (a child's also counts this process's RSS at its spawn,
    which is never above this process's own peak)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024
