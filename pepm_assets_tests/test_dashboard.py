"""`pepm dashboard` (core/dashboard.py): one self-contained HTML page of a project's results. On the
tiny fixture project, real runs: tiny_quick's pipeline (the control, two scikit-learn models and a
clustering model), a first page; then tiny_an's pipeline, the cross-corpus matrix and the drift of
tiny_quick's split, a second page."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core import dashboard
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

MODELS = ["check_default", "tfidf_svm_quick", "tfidf_logreg", "kmeans_tfidf"]
SUPERVISED = ["check_default", "tfidf_svm_quick", "tfidf_logreg"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory):
    """(project, first page's result and text before cross-corpus and drift, second's after)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    project = make_project(tmp / "proj")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            defs = build_definitions(project)
            runner.run_stage(project, "pipeline", "tiny_quick", [f"models=[{','.join(MODELS)}]"], instance, defs)
            first = dashboard.write_dashboard(project)
            first_text = first.path.read_text(encoding="utf-8")
            runner.run_stage(project, "pipeline", "tiny_an", ["models=[tfidf_svm_quick]"], instance, defs)
            runner.cross_corpus(project, instance, defs)
            runner.drift(project, instance, [], ["tiny_mpt|left_right"], defs)
            second = dashboard.write_dashboard(project)
            yield project, (first, first_text), (second, second.path.read_text(encoding="utf-8"))


class _Page(HTMLParser):
    """Every reference the page makes (src, href, ...), every id, every tag, the <style> text."""

    REF_ATTRS = {"src", "href", "srcset", "action", "poster", "data", "background", "formaction", "xlink:href", "manifest", "ping"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.tags: set[str] = set()
        self.styles: list[str] = []
        self.meta: list[dict[str, str]] = []
        self._in_style = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in self.REF_ATTRS:
                self.refs.append((tag, name, value or ""))
            if name == "id":
                self.ids.add(value or "")
            if name == "style":
                self.styles.append(value or "")
        if tag == "meta":
            self.meta.append({k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _section(text: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', text, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def _part(html: str, anchor: str) -> str:
    """From the heading with id `anchor` to the next heading."""
    assert f'id="{anchor}"' in html, anchor
    return html.split(f'id="{anchor}"', 1)[1].split("<h3", 1)[0]


def _row(html: str, model_id: str) -> str:
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", html, re.S) if f"<b>{model_id}</b>" in r]
    assert len(rows) == 1, f"{model_id}: {len(rows)} rows"
    return rows[0]


def _images(html: str) -> dict[str, bytes]:
    """alt -> the PNG bytes of its data URI (each alt once: it names what the image shows)."""
    out = {}
    for src, alt in re.findall(r'<img src="([^"]*)" alt="([^"]*)"', html):
        assert src.startswith("data:image/png;base64,"), src[:40]
        assert alt not in out, f"two images {alt!r}"
        out[alt] = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
    return out


def _metrics(project: Path, dataset: str, family: str, model: str) -> dict:
    return json.loads((ProjectPaths(project).report_dir(dataset, "left_right", family, model) / "metrics.json").read_text(encoding="utf-8"))


def test_every_evaluated_model_is_shown_with_its_score_and_interval(pages) -> None:
    project, _, (result, text) = pages
    scores = _section(text, "scores")
    families = {"check_default": "check", "tfidf_svm_quick": "sklearn", "tfidf_logreg": "sklearn"}
    assert result.path == project / "reports" / "dashboard.html"
    for model in SUPERVISED:
        m = _metrics(project, "tiny_mpt", families[model], model)
        row = _row(_part(scores, "scores-tiny_mpt-left_right"), model)
        low, high = m["ci95"]["macro_f1"]
        assert f"{round(m['macro_f1'], 4):.4f} [{round(low, 4):.4f}, {round(high, 4):.4f}]" in row, model
        alow, ahigh = m["ci95"]["accuracy"]
        assert f"{round(m['accuracy'], 4):.4f} [{round(alow, 4):.4f}, {round(ahigh, 4):.4f}]" in row, model
        assert 'class="range"' in row or "class=range" in row  # the interval drawn
    assert "<b>tfidf_svm_quick</b>" in _part(scores, "scores-tiny_an-left_right")  # tiny_an's own table
    kmeans = _metrics(project, "tiny_mpt", "cluster", "kmeans_tfidf")
    assert f"{kmeans['ari']:.4f}" in _row(_part(scores, "scores-clusters"), "kmeans_tfidf")


def test_confusion_matrices_are_inlined_pngs(pages) -> None:
    project, _, (result, text) = pages
    images = _images(_section(text, "confusion"))
    families = {"check_default": "check", "tfidf_svm_quick": "sklearn", "tfidf_logreg": "sklearn"}
    for model, family in families.items():
        data = images[f"confusion matrix of tiny_mpt/left_right/{model}"]
        assert data.startswith(PNG)
        beside = ProjectPaths(project).report_dir("tiny_mpt", "left_right", family, model) / "confusion_matrix.png"
        assert data == beside.read_bytes()  # the figure the evaluation drew, not another
    assert images["confusion matrix of tiny_an/left_right/tfidf_svm_quick"].startswith(PNG)
    assert "kmeans_tfidf" in _section(text, "confusion")  # a clustering model: its contingency table
    assert result.n_images == len(_images(text))


def test_a_report_without_its_figure_gets_one_drawn_in_the_page_only(pages, tmp_path: Path) -> None:
    """A sweep's reports have no PNG (run.figures false): the page draws the matrix from metrics.json."""
    project, _, _ = pages
    copy = tmp_path / "proj"
    shutil.copytree(project / "configs", copy / "configs")
    shutil.copytree(project / "reports", copy / "reports")
    beside = ProjectPaths(copy).report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "confusion_matrix.png"
    beside.unlink()
    result = dashboard.write_dashboard(copy)
    drawn = _images(_section(result.path.read_text(encoding="utf-8"), "confusion"))["confusion matrix of tiny_mpt/left_right/tfidf_logreg"]
    assert drawn.startswith(PNG) and not beside.exists()


def test_the_page_makes_no_request(pages) -> None:
    _, (_, first), (_, second) = pages
    for text in (first, second):
        page = _Page(text)
        assert page.refs, "no reference at all: the parser saw nothing"
        for tag, attr, value in page.refs:
            assert value.startswith("data:") or value.startswith("#"), (tag, attr, value[:60])
            if value.startswith("#"):
                assert value[1:] in page.ids, value  # an in-page anchor that exists
        assert not page.tags & {"script", "link", "iframe", "object", "embed", "base", "video", "audio", "source"}
        css = "\n".join(page.styles)
        assert "@import" not in css and "@font-face" not in css
        assert all(u.strip("'\" ").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:)""", text, re.I)
        csp = [m["content"] for m in page.meta if m.get("http-equiv", "").lower() == "content-security-policy"]
        assert csp == [dashboard.CSP] and "default-src 'none'" in csp[0]


def test_parts_not_computed_yet_say_which_command_computes_them(pages) -> None:
    _, (first, text), (second, later) = pages
    assert "not computed yet: run <code>pepm cross-corpus</code>" in _section(text, "cross-corpus")
    assert "not computed yet: run <code>pepm drift</code>" in _section(text, "drift")
    assert set(first.missing) == {"Cross-corpus matrix", "Drift"}
    # computed since: the matrix (its table and heat map) and the drift of the split
    assert second.missing == {}
    cross = _section(later, "cross-corpus")
    assert "trained on ↓ / evaluated on →" in cross and "<b>tiny_an</b>" in cross and "<b>tiny_mpt</b>" in cross
    assert _images(cross)["cross-corpus heat map of tfidf_svm_quick"].startswith(PNG)
    drift = _section(later, "drift")
    assert "train_vs_job" in drift and "tiny_mpt/left_right" in drift


def test_label_and_length_distributions_of_each_prepared_split(pages) -> None:
    project, _, (_, text) = pages
    section = _section(text, "distributions")
    for dataset in ("tiny_mpt", "tiny_an"):
        meta = json.loads((ProjectPaths(project).view_dir(dataset, "left_right") / "meta_view.json").read_text(encoding="utf-8"))
        part = _part(section, f"dist-{dataset}-left_right")
        for label in meta["split"]["train_label_counts"]:
            train, job = meta["split"]["train_label_counts"][label], meta["split"]["job_label_counts"].get(label, 0)
            assert re.search(rf"<td>{label}</td><td>{train} <span", part) and re.search(rf"</td><td>{job} <span class=dim>", part), label
        assert "median" in part and "tokens" in part
        assert _images(part)[f"label and length distributions of {dataset}/left_right"].startswith(PNG)


def test_label_validity_warnings_of_each_evaluated_view(pages) -> None:
    project, _, (_, text) = pages
    section = _section(text, "label-validity")
    diag = json.loads((project / "reports" / "tiny_mpt" / "left_right" / "diagnostics.json").read_text(encoding="utf-8"))
    warned = [w["message"] for w in diag["warnings"] if w["kind"] != "terms"]
    assert 'id="validity-tiny_mpt-left_right"' in section
    for message in warned:
        assert html.escape(message, quote=True) in section
    if not warned:
        assert "no warning" in section


def test_a_project_with_nothing_run_gets_a_page_that_says_what_to_run(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    result = dashboard.write_dashboard(project)
    text = result.path.read_text(encoding="utf-8")
    assert result.n_images == 0 and all(not s.computed for s in result.sections)
    scores = _section(text, "scores")
    assert "run <code>pepm run -p &lt;profile&gt;</code> or <code>pepm evaluate -p &lt;profile&gt;</code>" in scores
    assert "(profiles: tiny_an, tiny_multi, tiny_quick)" in scores
    assert "<code>pepm prepare -p &lt;profile&gt;</code>" in _section(text, "distributions")
    assert "<code>pepm cross-corpus</code>" in _section(text, "cross-corpus")
    assert "<code>pepm drift</code>" in _section(text, "drift")
    assert "<code>pepm evaluate -p &lt;profile&gt;" in _section(text, "label-validity")
    # written atomically: the page and nothing else (no temporary left beside it)
    assert [p.name for p in (project / "reports").iterdir()] == ["dashboard.html"]


def test_the_command_writes_the_page_where_asked(pages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _, _ = pages
    monkeypatch.setenv("PEPM_ROOT", str(project))
    target = tmp_path / "out" / "page.html"
    result = CliRunner().invoke(app, ["dashboard", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>") and "images)" in result.output
    empty = make_project(tmp_path / "empty")
    monkeypatch.setenv("PEPM_ROOT", str(empty))
    result = CliRunner().invoke(app, ["dashboard"])
    assert result.exit_code == 0, result.output
    assert "Drift" in result.output and "pepm drift" in result.output and (empty / "reports" / "dashboard.html").is_file()


def test_a_file_of_another_shape_costs_its_section_not_the_page(pages, tmp_path: Path) -> None:
    project, _, _ = pages
    copy = tmp_path / "proj"
    shutil.copytree(project / "configs", copy / "configs")
    shutil.copytree(project / "reports", copy / "reports")
    matrix = copy / "reports" / "cross_corpus" / "left_right" / "tfidf_svm_quick" / "matrix.json"
    data = json.loads(matrix.read_text(encoding="utf-8"))
    del data["macro_f1_ci95"]  # e.g. written by an older pepm
    matrix.write_text(json.dumps(data), encoding="utf-8")
    result = dashboard.write_dashboard(copy)
    text = result.path.read_text(encoding="utf-8")
    assert "could not be shown (KeyError: &#x27;macro_f1_ci95&#x27;)" in _section(text, "cross-corpus")
    assert result.missing["Cross-corpus matrix"].startswith("could not be shown")
    assert _images(_section(text, "confusion"))["confusion matrix of tiny_mpt/left_right/tfidf_svm_quick"].startswith(PNG)


def test_a_difference_that_rounds_to_zero_has_no_minus_sign() -> None:
    """A paired interval of [-0.0000, +1.0000] reads as a negative bound that is not there."""
    assert [dashboard._signed(x) for x in (-0.0, -0.00001, 0.00004, -0.5, 0.66667)] == [
        "+0.0000",
        "+0.0000",
        "+0.0000",
        "-0.5000",
        "+0.6667",
    ]
