"""Atomic writes: a killed run never leaves half a file, only the old one or the new one.

Temporary files and folders get the modes a plain `open` / `mkdir` would give (0666 / 0777 less the
umask), not tempfile's private 0600 / 0700: outputs of a shared project stay readable by the team.

A temporary sibling is named `.<name>.<pid>-<host>-<random>.tmp` (the folder set aside while a new
one is swapped in: `.<name>.<pid>-<host>-old.tmp`), <pid> being the process that will rename it and
<host> a short hash of its host name: what a killed process leaves behind can then be told apart
from what a live one (on this host or another sharing the folder) is still writing, and removed
(`stale_temporaries`, used by defs/recovery.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})-(?P<kind>[0-9a-f]{8}|old)\.tmp$")


def _sibling(target: Path, kind: str | None = None) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{HOST}-{kind or uuid.uuid4().hex[:8]}.tmp")


def new_sibling_file(target: Path) -> Path:
    """A new, empty, uniquely named file beside `target`, with a plain `open`'s mode."""
    path = _sibling(target)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = new_sibling_file(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a whole folder in a temporary sibling, then swap it in (old folder removed after; a
    process killed between the two renames leaves it set aside, and recovery puts it back)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target)
    tmp.mkdir(mode=0o777)
    try:
        yield tmp
        old = None
        if target.exists():
            old = _sibling(target, "old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike[str], data: Any) -> Path:
    return write_text(target, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=False, default=str) + "\n")


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat, field 22): with the pid
    it names one process (a pid is reused, the pair is not). None when the process is gone or there
    is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]  # fields from the 3rd on, after "(comm)"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:  # a killed child that its parent has not reaped yet is dead too
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] != "Z"
    except (OSError, ValueError, IndexError):
        return True


def stale_temporaries(folder: Path, skip: tuple[str, ...] = ()) -> list[tuple[Path, Path]]:
    """(temporary sibling, its target) for every temporary left under `folder` by a dead process of
    this host; `skip` = names of sub-folders not to walk (never written atomically, or huge)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        if dirpath == str(folder):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for name in dirnames + filenames:
            match = _TEMP_NAME.match(name)
            if match and match["host"] == HOST and not pid_alive(int(match["pid"])):
                found.append((Path(dirpath) / name, Path(dirpath) / match["name"]))
        dirnames[:] = [d for d in dirnames if not _TEMP_NAME.match(d)]  # removed as a whole
    return found


def remove_stale_temporary(tmp: Path, target: Path) -> str:
    """Remove what a dead process left; the old folder it had set aside is put back if the new one
    never took its place (it was killed between the two renames). Returns what was done."""
    if tmp.name.endswith("-old.tmp") and not target.exists():
        os.replace(tmp, target)
        return f"restored {target} (set aside by a killed run)"
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.unlink(missing_ok=True)
    return f"removed {tmp} (left by a killed run)"
