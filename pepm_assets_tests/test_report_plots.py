"""leaderboard.png and clustering.png as a reader needs them, checked on the figures' artists (not
pixels): each value label right of its whisker's end, never on it; bars coloured by family with a
legend of the families; the majority-class control a line, not a bar; a bar as thick in a one-model
panel as in an eight-model one; axis labels on every panel. Clusterings, which have no macro-F1,
get their own table and plot, and leaderboard.md says where."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.container import BarContainer, ErrorbarContainer

from pepm_assets.core import reports
from pepm_assets.core.atomic import write_json
from pepm_assets.core.paths import ProjectPaths

# (model, family, macro-F1, low, high): upper whiskers near 1, wide and narrow intervals, a control
BIG = [
    ("tfidf_logreg", "sklearn", 0.93, 0.88, 0.995),
    ("tfidf_svm_quick", "sklearn", 0.92, 0.80, 0.98),
    ("spacy_cnn_quick", "spacy", 0.90, 0.89, 0.91),
    ("tfidf_nb", "sklearn", 0.85, 0.40, 0.97),
    ("spacy_bow", "spacy", 0.80, 0.70, 0.86),
    ("hf_tiny", "hf", 0.62, 0.45, 0.66),
    ("mystery", "newfamily", 0.30, 0.05, 0.55),
    ("check_default", "check", 0.40, 0.19, 0.47),
]
ONE = [("tfidf_svm_quick", "sklearn", 0.75, 0.63, 0.80)]


def _entry(dataset: str, model_id: str, family: str, value: float, low: float, high: float, i: int) -> dict:
    metrics = {
        "accuracy": value,
        "macro_f1": value,
        "weighted_f1": value,
        "accuracy_ci95": [low, high],
        "macro_f1_ci95": [low, high],
        "n_splits": 5 if family == "sklearn" else 1,
        **({"macro_f1_sd": 0.03, "accuracy_sd": 0.03} if family == "sklearn" else {}),
    }
    return {
        "model_id": model_id,
        "family": family,
        "dataset_id": dataset,
        "eval_dataset_id": dataset,
        "view": "left_right",
        "profile": "p",
        "params_hash": "h",
        "seed": 42,
        "n_job": 200,
        "n_train_used": 800,
        "truncated": False,
        "evaluated_at": f"2026-01-01T00:00:{i:02d}+00:00",
        "split": "grouped by speaker",
        "class_weight": "none",
        "settings_hash": f"s-{model_id}",
        "version": f"v-{dataset}-{model_id}",
        "metrics": metrics,
        "files": {},
    }


def _cluster_entry(root: Path, model_id: str, ari: float, i: int) -> dict:
    report = f"reports/big/left_right/cluster/{model_id}/metrics.json"
    full = {
        "n_clusters": 2,
        "noise_fraction": 0.25 if model_id.startswith("hdbscan") else 0.0,
        "contingency": {"c0": {"left": 3, "right": 7}, "c1": {"left": 8, "right": 2}},
    }
    write_json(root / report, full)
    scores = {"ari": ari, "nmi": 0.2, "homogeneity": 0.21, "completeness": 0.19, "n_clusters": 2, "silhouette": 0.05}
    return {**_entry("big", model_id, "cluster", 0, 0, 0, i), "metrics": scores, "files": {"metrics.json": report}}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    entries = [_entry("big", *row, i) for i, row in enumerate(BIG)] + [_entry("one", *row, 20 + i) for i, row in enumerate(ONE)]
    entries += [_cluster_entry(tmp_path, "kmeans_tfidf", 0.11, 30), _cluster_entry(tmp_path, "hdbscan_tfidf", -0.02, 31)]
    write_json(tmp_path / "reports" / "index.json", {"entries": entries})
    return tmp_path


@pytest.fixture()
def figure(project: Path):
    fig = reports.leaderboard_figure(reports.leaderboard_table(ProjectPaths(project)))
    fig.canvas.draw()
    return fig


def _panels(fig) -> dict[str, object]:
    return {ax.get_title(loc="left").split(" · ")[0]: ax for ax in fig.axes}


def _whisker_ends(ax) -> dict[float, float]:
    """y of each bar -> x of its upper whisker's end, from the error bars drawn."""
    (errorbar,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    (segments,) = [c for c in errorbar.get_children() if isinstance(c, LineCollection)]
    return {float(s[0][1]): float(max(s[0][0], s[1][0])) for s in segments.get_segments()}


def test_value_labels_are_right_of_the_whiskers_not_on_them(figure) -> None:
    renderer = figure.canvas.get_renderer()
    checked = 0
    for ax in figure.axes:
        ends = _whisker_ends(ax)
        labels = [t for t in ax.texts if t.get_gid() == reports.VALUE_GID]
        assert len(labels) == len(ends)
        for text in labels:
            x, y = text.get_position()
            end = ends[float(y)]  # the label is on its bar's row
            assert x > end
            cap_right = ax.transData.transform((end, y))[0] + 2  # the cap is a 1 px line at the whisker's end
            box = text.get_window_extent(renderer)
            assert box.x0 > cap_right, f"{text.get_text()!r} starts at {box.x0:.1f} px, its whisker ends at {cap_right:.1f} px"
            assert box.x1 < figure.bbox.width  # and it stays in the picture
            checked += 1
    assert checked == len(BIG) - 1 + len(ONE)  # every bar but the control's


def test_bars_are_coloured_by_family_with_a_legend_and_the_control_is_a_line(figure) -> None:
    (legend,) = figure.legends
    entries = [t.get_text() for t in legend.get_texts()]
    families = sorted({f for _, f, *_ in BIG + ONE} - {"check"})
    assert entries[: len(families)] == families
    assert entries[len(families) :] == ["majority-class control (shaded: its 95% interval)"]
    colours = reports.family_colours([f for _, f, *_ in BIG])
    big = _panels(figure)["big / left_right"]
    (bars,) = [c for c in big.containers if isinstance(c, BarContainer)]
    assert len(bars.patches) == len(BIG) - 1  # the control is not a bar
    ticks = [t.get_text() for t in big.get_yticklabels()]
    assert "check_default" not in ticks and "tfidf_svm_quick (reference)" in ticks
    by_model = dict(zip(ticks, bars.patches))
    for model_id, family, *_ in BIG[:-1]:
        name = f"{model_id} (reference)" if model_id == reports.REFERENCE_MODEL else model_id
        assert by_model[name].get_facecolor()[:3] == pytest.approx(_rgb(colours[family]))
    assert len(set(colours.values())) == len(colours)  # a family nobody coloured gets its own colour too
    (control,) = [line for line in big.get_lines() if line.get_gid() == reports.CONTROL_GID]
    assert list(control.get_xdata()) == [0.40, 0.40] and control.get_label() == "check_default"
    assert not [line for line in _panels(figure)["one / left_right"].get_lines() if line.get_gid() == reports.CONTROL_GID]


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))


def test_a_bar_is_as_thick_in_a_one_model_panel_as_in_an_eight_model_one(figure) -> None:
    renderer = figure.canvas.get_renderer()
    thickness = {}
    for name, ax in _panels(figure).items():
        (bars,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        heights = {round(p.get_window_extent(renderer).height, 1) for p in bars.patches}
        assert len(heights) == 1
        thickness[name] = heights.pop()
    assert thickness["one / left_right"] == pytest.approx(thickness["big / left_right"], abs=0.5)
    assert thickness["one / left_right"] < 0.3 * figure.dpi  # a bar, not a wall: under 0.3 inch


def test_every_panel_says_what_its_axes_are(figure) -> None:
    for ax in figure.axes:
        assert ax.get_xlabel().startswith("macro-F1") and "95% interval" in ax.get_xlabel()
        assert ax.get_ylabel() == "model"
        assert ax.get_xlim() == (0.0, 1.0)


def test_clusterings_have_their_own_table_and_plot_and_the_leaderboard_points_there(project: Path) -> None:
    paths = ProjectPaths(project)
    out = reports.write_leaderboard(paths)
    assert out["clustering"] == {"rows": 2, "tsv": "reports/clustering.tsv", "md": "reports/clustering.md", "png": "reports/clustering.png"}
    board = (project / "reports" / "leaderboard.md").read_text(encoding="utf-8")
    assert "reports/clustering.md" in board and "kmeans_tfidf ARI 0.110" in board  # the global pointer and the view's line
    assert "kmeans_tfidf" not in pd.read_csv(project / "reports" / "leaderboard.tsv", sep="\t")["model_id"].tolist()
    table = pd.read_csv(project / "reports" / "clustering.tsv", sep="\t")
    assert table["model_id"].tolist() == ["kmeans_tfidf", "hdbscan_tfidf"]  # best ARI first
    assert table.set_index("model_id").loc["hdbscan_tfidf", "noise_fraction"] == 0.25
    assert json.loads(table.loc[0, "contingency"]) == {"c0": {"left": 3, "right": 7}, "c1": {"left": 8, "right": 2}}
    md = (project / "reports" / "clustering.md").read_text(encoding="utf-8")
    assert "| kmeans_tfidf | 0.1100 | 0.2000 |" in md and "c0: left 3, right 7 · c1: left 8, right 2" in md
    assert (project / "reports" / "clustering.png").stat().st_size > 5000
    fig = reports.clustering_figure(table)
    fig.canvas.draw()
    (ax,) = fig.axes
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ARI", "NMI", "homogeneity", "completeness"]
    assert ax.get_xlabel().startswith("agreement of the clusters with the labels") and ax.get_ylabel() == "clustering"
    assert ax.get_xlim()[0] < -0.02  # a negative ARI is drawn, left of 0
    bars = [p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches]
    values = [t for t in ax.texts if t.get_gid() == reports.VALUE_GID]
    assert len(bars) == len(values) == 4 * 2
    for text in values:  # each value right of its bar's end
        (bar,) = [b for b in bars if abs(b.get_y() + b.get_height() / 2 - text.get_position()[1]) < 1e-9]
        assert text.get_position()[0] > max(bar.get_x() + bar.get_width(), bar.get_x())


def test_no_clustering_no_clustering_files(project: Path) -> None:
    index = project / "reports" / "index.json"
    entries = [e for e in json.loads(index.read_text(encoding="utf-8"))["entries"] if e["family"] != "cluster"]
    write_json(index, {"entries": entries})
    out = reports.write_leaderboard(ProjectPaths(project))
    assert out["clustering"]["rows"] == 0 and not (project / "reports" / "clustering.md").exists()
    assert "clustering.md" not in (project / "reports" / "leaderboard.md").read_text(encoding="utf-8")
