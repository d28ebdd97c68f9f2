"""`pepm explore` as a user meets it: the command started as a process on a tiny project (a real
pipeline run), the page opened in a real browser (Playwright driving Debian's chromium), a speaker
picked in the filter. The screenshot is kept in the test's folder and copied to /tmp/explore_shots/."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/explore_shots")
SPEAKER = "Hervé_Mariton"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(server: subprocess.Popen, port: int, log: Path, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"pepm explore exited with {server.returncode}: {log.read_text(encoding='utf-8')}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"pepm explore not serving on 127.0.0.1:{port} after {timeout:.0f}s: {log.read_text(encoding='utf-8')}")


def test_picking_a_speaker_in_the_browser_shows_only_their_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from playwright.sync_api import expect, sync_playwright

    root = make_project(tmp_path / "proj")
    monkeypatch.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with temporary_instance(tmp_path / "dagster_home", monkeypatch) as instance:
        runner.run_stage(root, "pipeline", "tiny_quick", ["models=[tfidf_svm_quick]"], instance, build_definitions(root))
    docs = pq.read_table(ProjectPaths(root).corpus_dir("mpt") / "docs.parquet", columns=["doc_id", "speaker", "text"]).to_pandas()
    theirs = docs[docs["speaker"] == SPEAKER].set_index("doc_id")

    port = _free_port()
    log = tmp_path / "explore.log"
    env = {**os.environ, "PEPM_ROOT": str(root)}
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "pepm_assets.cli", "explore", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_healthy(server, port, log)
        assert f"http://127.0.0.1:{port}" in log.read_text(encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_text(f"{len(docs)} of {len(docs)} documents").wait_for(timeout=30_000)
                page.get_by_test_id("stMultiSelect").filter(has_text="Speaker").locator("input").click()
                page.keyboard.type(SPEAKER)
                page.keyboard.press("Enter")
                page.keyboard.press("Escape")
                page.get_by_text(f"{len(theirs)} of {len(docs)} documents").wait_for(timeout=30_000)

                grid = page.get_by_test_id("stDataFrame").locator("table").first  # the data grid's accessible table
                grid.locator("tbody tr").first.wait_for(state="attached", timeout=10_000)  # drawn on a canvas: the table is hidden
                expect(grid).to_have_attribute(
                    "aria-rowcount", str(len(theirs) + 1), timeout=10_000
                )  # + the header row; the rerun draws it after the count
                header = [h.strip() for h in grid.locator("thead th").all_text_contents()]
                rows = [[c.strip() for c in r.locator("td").all_text_contents()] for r in grid.locator("tbody tr").all()]
                speaker, doc_id = header.index("speaker"), header.index("doc_id")
                assert len(rows) >= 5 and {r[speaker] for r in rows} == {SPEAKER}  # every row drawn is theirs
                assert {r[doc_id] for r in rows} <= set(theirs.index)
                first = rows[0][doc_id]
                expect(page.get_by_test_id("stText")).to_have_text(
                    theirs.at[first, "text"], timeout=10_000
                )  # its full text below the table

                shot = tmp_path / "explore_speaker.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                SHOTS.mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, SHOTS / shot.name)
            finally:
                browser.close()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
    assert server.returncode is not None
