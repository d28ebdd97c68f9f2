"""What the confusion PNG shows (shares per gold class, its size) and the clustering scores' edge
cases (core/metrics.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from pepm_assets.core import metrics


def test_confusion_shares_are_recall_rows() -> None:
    shares = metrics.confusion_shares([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    assert shares.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]]


@pytest.mark.parametrize("n_labels", [2, 5])
def test_the_confusion_png_grows_with_the_classes(tmp_path: Path, n_labels: int) -> None:
    width, height = metrics.confusion_figure_size(n_labels)
    assert (width, height) == pytest.approx((2.7 + 0.9 * n_labels, 1.2 + 0.9 * n_labels))
    labels = [f"c{i}" for i in range(n_labels)]
    target = metrics.plot_confusion(np.eye(n_labels, dtype=int).tolist(), labels, tmp_path / "cm.png", "t")
    png = target.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (round(width * 110), round(height * 110))


def test_paired_comparisons_use_1000_replicates_unless_told() -> None:
    gold, a, b = ["x", "y"] * 10, ["x"] * 20, ["y"] * 20
    assert metrics.paired_bootstrap_delta(gold, a, b, ["x", "y"], seed=0)["n_boot"] == 1000


def test_clustering_scores_of_no_documents_and_of_singletons() -> None:
    empty = metrics.cluster_metrics([], [])
    assert (empty["n"], empty["n_clusters"], empty["noise_fraction"]) == (0, 0, 0.0)
    # every document its own cluster: a silhouette is undefined there (scikit-learn refuses it)
    singletons = metrics.cluster_metrics(["a", "b", "a"], ["x", "y", "z"], embedding=np.eye(3))
    assert "silhouette" not in singletons and singletons["n_clusters"] == 3
    two = metrics.cluster_metrics(["a", "b", "a", "b"], ["x", "y", "x", "y"], embedding=np.array([[0.0], [1.0], [0.1], [1.1]]))
    assert two["silhouette"] > 0.8


def test_the_silhouette_sample_of_a_large_clustering_is_seeded_with_0_by_default() -> None:
    """Above 5,000 documents the silhouette is computed on a sample; its seed is part of the result."""
    rng = np.random.default_rng(0)
    clusters = [f"k{i % 3}" for i in range(5200)]
    embedding = rng.normal(size=(5200, 2)) + np.array([[int(c[1]) * 0.5, 0.0] for c in clusters])
    default = metrics.cluster_metrics(["a"] * 5200, clusters, embedding=embedding)["silhouette"]
    assert default == metrics.cluster_metrics(["a"] * 5200, clusters, embedding=embedding, seed=0)["silhouette"]
    assert default != metrics.cluster_metrics(["a"] * 5200, clusters, embedding=embedding, seed=1)["silhouette"]


def test_the_confusion_figure_says_what_its_axes_and_cells_are() -> None:
    fig = metrics.confusion_figure([[3, 1], [0, 2]], ["left", "right"], "tfidf_svm on mpt")
    (ax,) = fig.axes
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "gold", "tfidf_svm on mpt")
    assert ax.title.get_fontsize() == 10
    assert [t.get_text() for t in ax.get_xticklabels()] == ["left", "right"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["left", "right"]
    assert {t.get_rotation() for t in ax.get_xticklabels()} == {45.0}
    (image,) = ax.get_images()
    assert image.get_clim() == (0, 1)
    assert image.get_array().tolist() == [[0.75, 0.25], [0.0, 1.0]]
    cells = {(t.get_position(), t.get_text(), t.get_color(), t.get_fontsize()) for t in ax.texts}
    assert cells == {
        ((0, 0), "3\n75%", "white", 8),
        ((1, 0), "1\n25%", "black", 8),
        ((0, 1), "0\n0%", "black", 8),
        ((1, 1), "2\n100%", "white", 8),
    }


def test_a_cell_turns_white_only_above_half() -> None:
    fig = metrics.confusion_figure([[1, 1], [0, 2]], ["a", "b"], "t")
    colours = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert colours == {"1\n50%": "black", "0\n0%": "black", "2\n100%": "white"}


def test_one_cluster_has_no_silhouette() -> None:
    out = metrics.cluster_metrics(["a", "b", "a"], ["k", "k", "k"], embedding=np.eye(3))
    assert "silhouette" not in out and out["n_clusters"] == 1


def test_long_class_names_stay_inside_the_confusion_png() -> None:
    labels = ["radical_center_left", "sovereigntist_right", "x"]
    fig = metrics.confusion_figure(np.eye(3, dtype=int).tolist(), labels, "t")
    fig.canvas.draw()
    box = fig.axes[0].get_tightbbox(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


LONG_TITLE = "tfidf_wordchar_svm · trained on an_amendements · all labelled documents of an_debats · left_right"


def _title_inside(fig, title_artist) -> bool:
    fig.canvas.draw()
    box = title_artist.get_window_extent()
    return box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_a_long_title_is_wrapped_inside_the_figure() -> None:
    """A model, a dataset and a view named in full were cut at both edges of the confusion PNG."""
    from pepm_assets.core.plotting import reliability_figure, wrap_title

    fig = metrics.confusion_figure([[3, 1], [0, 2]], ["left", "right"], LONG_TITLE)
    (ax,) = fig.axes
    assert ax.get_title().count("\n") >= 1 and ax.get_title().replace("\n", " · ").replace(" ·  · ", " · ") == LONG_TITLE
    assert _title_inside(fig, ax.title)
    gold, pred = ["left", "right", "left", "right"] * 10, ["left", "left", "right", "right"] * 10
    proba = np.array([[0.8, 0.2] if p == "left" else [0.3, 0.7] for p in pred])
    calibration = metrics.calibration_metrics(gold, pred, proba, ["left", "right"])
    fig = reliability_figure(calibration, LONG_TITLE, 2)
    assert _title_inside(fig, fig.axes[0].title)
    assert wrap_title("short · title", 4.5, 10) == "short · title"  # what fits stays on one line
