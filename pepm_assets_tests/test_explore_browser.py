"""`pepm explore` as a user meets it: the command started as a process on a tiny project (a real
pipeline run), the page opened in a real browser (Playwright driving Debian's chromium), a speaker
picked in the filter. The screenshot is kept in the test's folder and copied to /tmp/browser_shots/
(pepm_assets_tests/browser.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests import browser
from pepm_assets_tests.browser import free_port, serve, shoot
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

SPEAKER = "Hervé_Mariton"
browser_context, page = browser.browser_context, browser.page  # the browser's fixtures, for this module's test


def test_picking_a_speaker_in_the_browser_shows_only_their_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page) -> None:
    from playwright.sync_api import expect

    root = make_project(tmp_path / "proj")
    monkeypatch.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with temporary_instance(tmp_path / "dagster_home", monkeypatch) as instance:
        runner.run_stage(root, "pipeline", "tiny_quick", ["models=[tfidf_svm_quick]"], instance, build_definitions(root))
    docs = pq.read_table(ProjectPaths(root).corpus_dir("mpt") / "docs.parquet", columns=["doc_id", "speaker", "text"]).to_pandas()
    theirs = docs[docs["speaker"] == SPEAKER].set_index("doc_id")

    port = free_port()
    cmd = [sys.executable, "-m", "pepm_assets.cli", "explore", "--port", str(port)]
    with serve(cmd, port, tmp_path / "logs", env={**os.environ, "PEPM_ROOT": str(root)}, path="/_stcore/health", name="explore") as server:
        assert f"http://127.0.0.1:{port}" in server.stdout.read_text(encoding="utf-8")
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(server.url)
        page.get_by_text(f"{len(docs)} of {len(docs)} documents").wait_for(timeout=30_000)
        page.get_by_test_id("stMultiSelect").filter(has_text="Speaker").locator("input").click()
        page.keyboard.type(SPEAKER)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.get_by_text(f"{len(theirs)} of {len(docs)} documents").wait_for(timeout=30_000)

        grid = page.get_by_test_id("stDataFrame").locator("table").first  # the data grid's accessible table
        grid.locator("tbody tr").first.wait_for(state="attached", timeout=10_000)  # drawn on a canvas: the table is hidden
        expect(grid).to_have_attribute("aria-rowcount", str(len(theirs) + 1), timeout=10_000)  # + the header row; drawn after the count
        header = [h.strip() for h in grid.locator("thead th").all_text_contents()]
        rows = [[c.strip() for c in r.locator("td").all_text_contents()] for r in grid.locator("tbody tr").all()]
        speaker, doc_id = header.index("speaker"), header.index("doc_id")
        assert len(rows) >= 5 and {r[speaker] for r in rows} == {SPEAKER}  # every row drawn is theirs
        assert {r[doc_id] for r in rows} <= set(theirs.index)
        first = rows[0][doc_id]
        expect(page.get_by_test_id("stText")).to_have_text(theirs.at[first, "text"], timeout=10_000)  # its full text below the table
        assert shoot(page, tmp_path / "explore_speaker.png").stat().st_size > 10_000
