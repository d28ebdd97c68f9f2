"""DVC, called as a command-line tool.

DVC 3.67 and Dagster 1.13 cannot share one environment (hydra-core pins antlr4 4.9, Dagster's
selection parser needs 4.13), so DVC lives in its own virtual environment (`.venv-dvc`, made by
`make setup`) and pepm calls its executable with argument lists, never a shell string.
Override the executable with PEPM_DVC.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import yaml

from . import settings


class DvcError(RuntimeError):
    pass


def executable(root: Path) -> str:
    candidates = [settings.DVC.get(), str(root / ".venv-dvc" / "bin" / "dvc"), shutil.which("dvc")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise DvcError("dvc not found: run `make setup` (creates .venv-dvc) or set PEPM_DVC")


def run(root: Path, *args: str) -> str:
    cmd = [executable(root), *args]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DvcError(f"`dvc {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def pointer_hash(pointer: Path) -> str | None:
    """The content hash DVC records for a tracked folder (`outs[0].md5` of <path>.dvc)."""
    if not pointer.is_file():
        return None
    data = yaml.safe_load(pointer.read_text(encoding="utf-8")) or {}
    outs = data.get("outs") or [{}]
    return outs[0].get("md5")


def unpack_shipped(archive: Path, raw_dir: Path, corpus_ids: list[str]) -> list[Path]:
    """Unpack the shipped corpora archive into raw_dir/<corpus_id> (only missing folders)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for cid in corpus_ids:
            target = raw_dir / cid
            if target.exists():
                continue
            tmp = raw_dir / f".{cid}.unpacking"
            shutil.rmtree(tmp, ignore_errors=True)
            wanted = [m for m in members if m.name == cid or m.name.startswith(cid + "/")]
            if not wanted:
                raise DvcError(f"{archive}: no folder {cid!r} in the archive")
            tar.extractall(tmp, members=wanted, filter="data")
            os.replace(tmp / cid, target)
            shutil.rmtree(tmp, ignore_errors=True)
            written.append(target)
    return written


def track_and_push(root: Path, corpus_paths: list[str]) -> None:
    """`dvc add` each raw corpus folder (pointer files go to git) and push to the default remote."""
    if not (root / ".dvc").is_dir():
        raise DvcError(f"{root}: no .dvc folder (this is not a DVC project)")
    run(root, "add", *corpus_paths)
    run(root, "push", *corpus_paths)
