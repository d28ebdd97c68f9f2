"""Every path the corpus glob matches is accounted for: parsed, or failed with a reason, named in
files.parquet and parse_stats.json, gated by `quality_gate`; a failing file never stops the others,
and parse workers never outlive the process that started them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pydantic
import pytest

from pepm_assets.core import corpus
from pepm_assets.core.config import CorpusConfig
from pepm_assets.core.tei.reader import TEI_NS

from .fixtures import REPO, an_month

AN_OPTIONS = {"element": "u", "speaker_attribute": "who", "text_element": "seg"}
GOOD = {"good_a.xml": an_month(2, seed=1), "good_b.xml": an_month(3, seed=2)}
EXPECTED = {  # source_file -> (status, reason)
    "good_a.xml": ("parsed", ""),
    "good_b.xml": ("parsed", ""),
    "truncated.xml": ("failed", "truncated_xml"),
    "no_namespace.xml": ("failed", "no_documents"),
    "empty.xml": ("failed", "empty_file"),
    "unreadable.xml": ("failed", "unreadable"),
    "io_error.xml": ("failed", "unreadable"),
    "dangling.xml": ("failed", "broken_link"),
    "loop.xml": ("failed", "broken_link"),
    "d.xml": ("failed", "not_a_file"),
    "fifo.xml": ("failed", "not_a_file"),
}
N_FAILED = sum(status == "failed" for status, _ in EXPECTED.values())


def _write_good(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in GOOD.items():
        (folder / name).write_text(text, encoding="utf-8")


def _refused(path: Path) -> bool:
    try:
        open(path, "rb").close()
    except PermissionError:
        return True
    return False


def _make_unreadable(path: Path, text: str) -> None:
    """A real file that open() refuses: chmod 000 does it for a user, but root reads through any
    mode, so for root a link to a kernel file that is write-only even for root."""
    path.write_text(text, encoding="utf-8")
    path.chmod(0)
    if _refused(path):
        return
    path.unlink()
    path.symlink_to("/proc/sys/vm/drop_caches")
    if not _refused(path):
        pytest.skip("no file that open() refuses to this user on this machine")


@pytest.fixture()
def broken_corpus(tmp_path: Path) -> Path:
    """raw/: two good files beside every kind of broken entry the glob can match."""
    raw = tmp_path / "raw"
    _write_good(raw)
    good = GOOD["good_a.xml"]
    (raw / "truncated.xml").write_text(good[: good.index("</u>", len(good) // 2) + 4], encoding="utf-8")
    (raw / "no_namespace.xml").write_text(good.replace(f' xmlns="{TEI_NS}"', ""), encoding="utf-8")
    (raw / "empty.xml").write_text("", encoding="utf-8")
    _make_unreadable(raw / "unreadable.xml", good)
    (raw / "io_error.xml").symlink_to("/proc/self/mem")  # opens, but reading offset 0 is an I/O error
    (raw / "dangling.xml").symlink_to("missing.xml")
    (raw / "loop.xml").symlink_to("loop.xml")
    (raw / "d.xml").mkdir()
    os.mkfifo(raw / "fifo.xml")  # opening it to read would block forever
    (raw / "notes.txt").write_text("not matched by the glob", encoding="utf-8")
    return tmp_path


def _extract(root: Path, folder: str, out: str, **settings) -> tuple[CorpusConfig, corpus.CorpusOutputs, corpus.ParseStats]:
    cfg = CorpusConfig(path=folder, dialect="tei", dialect_options=AN_OPTIONS, **settings)
    return (cfg, *corpus.extract_corpus("an", cfg, root, root / out))


def test_every_matched_path_is_accounted_for_once(broken_corpus: Path) -> None:
    _, outputs, stats = _extract(broken_corpus, "raw", "out")
    files = pd.read_parquet(outputs.files)
    assert list(files.columns) == ["source_file", "status", "reason", "line", "detail", "n_docs", "n_rejects"]
    assert sorted(files["source_file"]) == sorted(EXPECTED)  # each once; notes.txt is not matched
    assert {row.source_file: (row.status, row.reason) for row in files.itertuples()} == EXPECTED
    row = files.set_index("source_file").loc
    assert row["truncated.xml", "line"] > 1 and 0 < row["truncated.xml", "n_docs"] < 12  # kept before the cut
    assert TEI_NS in row["no_namespace.xml", "detail"] and "no TEI document element" in row["no_namespace.xml", "detail"]
    assert "loop" in row["loop.xml", "detail"] and "missing.xml" in row["dangling.xml", "detail"]
    assert files[files["status"] == "parsed"]["line"].isna().all()
    docs = pd.read_parquet(outputs.docs)
    assert files["n_docs"].sum() == stats.n_docs == len(docs)
    assert (stats.n_files, stats.n_files_parsed, stats.n_files_failed) == (len(EXPECTED), 2, N_FAILED)
    assert stats.failed_by_reason == Counter(reason for status, reason in EXPECTED.values() if status == "failed")
    # failed files are not document rejects: the reject rate stays about documents
    assert stats.n_rejects == 0 and stats.reject_rate == 0 and len(pd.read_parquet(outputs.rejects)) == 0
    saved = json.loads(outputs.stats.read_text(encoding="utf-8"))
    assert saved["n_files_parsed"] == 2 and saved["n_files_failed"] == N_FAILED
    assert saved["failed_by_reason"] == dict(stats.failed_by_reason)
    assert sorted(f["source_file"] for f in saved["failed_files"]) == sorted(n for n, (s, _) in EXPECTED.items() if s == "failed")
    assert set(saved["failed_files"][0]) == {"source_file", "reason", "line", "detail"}


def test_good_files_read_as_in_a_clean_run(broken_corpus: Path) -> None:
    _write_good(broken_corpus / "clean")
    _, dirty, _ = _extract(broken_corpus, "raw", "out")
    _, clean, clean_stats = _extract(broken_corpus, "clean", "out_clean")
    docs = pd.read_parquet(dirty.docs)
    pd.testing.assert_frame_equal(docs[docs["source_file"].isin(GOOD)].reset_index(drop=True), pd.read_parquet(clean.docs))
    n_docs = pd.read_parquet(dirty.files).set_index("source_file")["n_docs"]
    assert n_docs[list(GOOD)].to_dict() == pd.read_parquet(clean.files).set_index("source_file")["n_docs"].to_dict()
    assert clean_stats.n_files_failed == 0 and not list(clean.files.parent.glob(".*.tmp"))  # written atomically


def test_quality_gate_names_each_failed_file(broken_corpus: Path) -> None:
    cfg, outputs, stats = _extract(broken_corpus, "raw", "out")
    assert cfg.max_failed_files == 0
    problems = corpus.quality_gate(stats, cfg)
    assert problems[0] == f"an: {N_FAILED} of {len(EXPECTED)} files failed (max_failed_files: 0)"
    for name, (status, reason) in EXPECTED.items():
        named = [p for p in problems if f"failed file {name}" in p]
        assert (named and reason in named[0]) if status == "failed" else not named, (name, problems)
    line = int(pd.read_parquet(outputs.files).set_index("source_file").loc["truncated.xml", "line"])
    assert any(f"failed file truncated.xml:{line}: truncated_xml" in p for p in problems)
    assert all(isinstance(p, str) for p in problems)
    assert corpus.quality_gate(stats, cfg.model_copy(update={"max_failed_files": N_FAILED})) == []
    with pytest.raises(pydantic.ValidationError):
        CorpusConfig(path="raw", dialect="tei", max_failed_files=-1)


def test_quality_gate_reports_a_document_reject_rate_over_the_threshold(project: Path) -> None:
    cfg = CorpusConfig(path="data/raw/mpt", dialect="mpt", max_reject_rate=0.001)
    _, stats = corpus.extract_corpus("mpt", cfg, project, project / "out")  # 2 blank <sp> among 112
    [problem] = corpus.quality_gate(stats, cfg)
    assert problem.startswith("mpt: 2 of 112 documents rejected") and "empty_text 2" in problem
    assert corpus.quality_gate(stats, cfg.model_copy(update={"max_reject_rate": 0.05})) == []


def test_parse_workers_give_the_same_files_table(broken_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, serial, _ = _extract(broken_corpus, "raw", "serial", parse_workers=1)
    monkeypatch.setattr(corpus, "PARALLEL_MIN_BYTES", 0)  # the corpus is tiny: use the pool anyway
    _, pooled, stats = _extract(broken_corpus, "raw", "pooled", parse_workers=2)
    pd.testing.assert_frame_equal(pd.read_parquet(pooled.files), pd.read_parquet(serial.files))
    pd.testing.assert_frame_equal(pd.read_parquet(pooled.docs), pd.read_parquet(serial.docs))
    assert stats.n_files_failed == N_FAILED


PARENT = """
import os, sys, time
from pathlib import Path
from pepm_assets.core import corpus
from pepm_assets.core.tei.dialects import build

def hang(paths):
    Path(sys.argv[2], str(os.getpid())).write_text("")
    time.sleep(120)

corpus._read_files = hang
corpus.PARALLEL_MIN_BYTES = 0
folder = Path(sys.argv[1])
list(corpus.iter_batches(build("an", folder, "tei", {}), corpus.corpus_files(folder, "*.xml"), 2))
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan is re-parented to a process that may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_parse_workers_die_with_their_parent(tmp_path: Path) -> None:
    """A parent killed outright (SIGKILL: out of memory, a cancelled run) takes its workers along."""
    _write_good(tmp_path / "raw")
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(PARENT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "raw"), str(pids)], env=env)
    workers: list[int] = []
    try:
        assert _wait(lambda: len(list(pids.iterdir())) == 2, 60), "the workers never started"
        workers = [int(p.name) for p in pids.iterdir()]
        assert all(_alive(pid) for pid in workers)
        parent.kill()
        parent.wait()
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 5), "a worker outlived its parent"
    finally:
        parent.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_pipeline_stops_before_the_split_and_names_the_failed_files(
    project: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Dagster: 1 broken file beside the 2 good MPT files fails the gate (default
    max_failed_files 0) with the file named, no split is built; allowed by the threshold, the run
    goes on, the good files' documents are those of a clean run and the CLI lists the failed file."""
    from pepm_assets.core.paths import ProjectPaths
    from pepm_assets.definitions import build_definitions
    from pepm_assets.defs import runner

    paths = ProjectPaths(project)
    clean = runner.run_stage(project, "prepare", "tiny_quick", [], dagster_instance, build_definitions(project))
    clean_docs = pd.read_parquet(paths.corpus_dir("mpt") / "docs.parquet")
    (project / "data" / "raw" / "mpt" / "20130103.xml").write_text(
        '<?xml version="1.0"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0">\n<text><body><div>\n<sp', encoding="utf-8"
    )
    meta_view = paths.view_dir("tiny_mpt", "left_right") / "meta_view.json"
    before = meta_view.read_bytes()
    with pytest.raises(runner.StageFailed, match=r"(?s)failed_files_under_threshold|blocking.*failed file 20130103.xml:\d+: truncated_xml"):
        runner.run_stage(project, "prepare", "tiny_quick", [], dagster_instance, build_definitions(project))
    assert meta_view.read_bytes() == before  # the split was not touched
    files = pd.read_parquet(paths.corpus_dir("mpt") / "files.parquet")
    assert dict(zip(files["source_file"], files["status"])) == {
        "20130101.xml": "parsed",
        "20130102.xml": "parsed",
        "20130103.xml": "failed",
    }

    corpora = project / "configs" / "common" / "corpora.yml"
    corpora.write_text(corpora.read_text().replace("    dialect: mpt\n", "    dialect: mpt\n    max_failed_files: 1\n", 1))
    report = runner.run_stage(project, "prepare", "tiny_quick", [], dagster_instance, build_definitions(project))
    assert all(report.checks.values()) and len(report.checks) == len(clean.checks)
    docs = pd.read_parquet(paths.corpus_dir("mpt") / "docs.parquet")
    assert docs["doc_id"].tolist() == clean_docs["doc_id"].tolist()

    from typer.testing import CliRunner

    from pepm_assets.cli import app

    monkeypatch.setenv("PEPM_ROOT", str(project))
    out = CliRunner().invoke(app, ["prepare", "-p", "tiny_quick"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "2 files parsed, 1 failed" in out.output and "failed 20130103.xml:" in out.output
