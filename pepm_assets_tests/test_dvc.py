"""DVC round trip with the real dvc executable: add, push to a local remote, lose everything, pull."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

from pepm_assets.core import dvc
from pepm_assets_tests.fixtures import REPO


def test_push_delete_pull_restores_corpus_byte_for_byte(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.run(root, "init", "-q")
    dvc.run(root, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    written = dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", root / "data" / "raw", ["an_debats"])
    assert written == [root / "data" / "raw" / "an_debats"]
    reference = tmp_path / "reference"
    shutil.copytree(written[0], reference)

    dvc.track_and_push(root, ["data/raw/an_debats"])
    pointer = root / "data" / "raw" / "an_debats.dvc"
    assert dvc.pointer_hash(pointer).endswith(".dir")

    shutil.rmtree(root / "data" / "raw" / "an_debats")
    shutil.rmtree(root / ".dvc" / "cache")
    dvc.run(root, "pull", "data/raw/an_debats")

    cmp = filecmp.dircmp(reference, root / "data" / "raw" / "an_debats")
    assert not cmp.left_only and not cmp.right_only
    files = sorted(p.name for p in reference.iterdir())
    match, mismatch, errors = filecmp.cmpfiles(reference, root / "data" / "raw" / "an_debats", files, shallow=False)
    assert len(match) == 74 and not mismatch and not errors


def test_shipped_pointers_match_the_shipped_archive(tmp_path: Path) -> None:
    """The .dvc files in git describe exactly the archive a fresh clone unpacks."""
    root = tmp_path / "proj"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc.run(root, "init", "-q")
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", root / "data" / "raw", ["mpt", "an_debats", "an_amendements"])
    dvc.run(root, "add", "data/raw/mpt", "data/raw/an_debats", "data/raw/an_amendements")
    for cid in ("mpt", "an_debats", "an_amendements"):
        assert dvc.pointer_hash(root / "data" / "raw" / f"{cid}.dvc") == dvc.pointer_hash(REPO / "data" / "raw" / f"{cid}.dvc")
    # the raw source's version is DVC's own hash when the glob selects the whole tracked folder
    from pepm_assets.core.config import CorpusConfig
    from pepm_assets.core.lineage import raw_version

    for cid in ("mpt", "an_debats", "an_amendements"):
        whole = CorpusConfig(path=f"data/raw/{cid}", dialect="tei", glob="**/*")
        assert raw_version(root, whole) == dvc.pointer_hash(root / "data" / "raw" / f"{cid}.dvc")
