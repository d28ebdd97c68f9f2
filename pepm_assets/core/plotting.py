"""PNG figures with matplotlib's object API (Figure + Agg canvas): no pyplot, so no global backend
switch and nothing left open, and about 0.3 s less to import (pyplot loads every backend's
machinery; a sweep run draws one confusion matrix)."""

from __future__ import annotations

from pathlib import Path

from .atomic import atomic_path


def figure(width: float, height: float, layout: str | None = "constrained"):
    """A Figure on the Agg canvas, outside pyplot (no global state). Report figures give their
    titles a position (`set_title(..., y=1.0)`, where nothing sits above the axes): matplotlib
    otherwise searches for one at every draw, from the extents of every tick label."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def warm() -> None:
    """matplotlib imported and its text machinery loaded (fonts, the Agg renderer): what a
    process's first figure pays, paid before one is asked for (core/side_worker.py)."""
    fig = figure(1, 1, layout=None)
    fig.text(0.5, 0.5, "warm")
    fig.canvas.draw()


def wrap_title(title: str, width_in: float, fontsize: float) -> str:
    """`title` in lines that fit a figure `width_in` inches wide at `fontsize` points (about 0.55 em a
    character), broken at its " · " separators first, then between words: a model, a dataset and a
    view named in full ("... trained on an_amendements · job of an_amendements · ...") would not fit on one line."""
    import textwrap

    width = max(12, int(width_in * 72 / (fontsize * 0.55)))
    lines: list[str] = []
    for part in title.split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.extend(textwrap.wrap(part, width) or [""])
    return "\n".join(lines)


def save_png(fig, target: Path, dpi: int = 110) -> Path:
    """Written atomically (a reader never sees half a PNG). zlib level 1, not PIL's 6: the same
    pixels, files ~10 % larger, and the encoding a quarter of a report figure's time less."""
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return target


def reliability_figure(calibration: dict, title: str, n_classes: int = 2):
    """A top-label reliability diagram from metrics.json's `calibration` (metrics.calibration_metrics):
    above, each bin's accuracy against its mean score (bars over the bin, a dot at the mean score,
    the diagonal a perfectly calibrated model follows, the gap shaded); below, the documents per bin.
    The x axis starts at the lowest score a predicted label can have (1 / number of classes, down
    to its bin's edge): the same axes for every model of a view."""
    bins = calibration["bins"]
    n_bins = len(bins)
    low = int(n_bins / max(1, n_classes)) / n_bins
    fig = figure(5.2, 5.6, layout=None)  # fixed margins: constrained layout was 40% of the drawing time
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    fig.subplots_adjust(left=0.13, right=0.97, top=0.90, bottom=0.09)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    filled = [b for b in bins if b["n"]]
    width = 1 / n_bins
    top.bar(
        [b["lower"] for b in filled],
        [b["accuracy"] for b in filled],
        width=width,
        align="edge",
        color="#4c72b0",
        alpha=0.55,
        edgecolor="#2a4a7f",
        label="accuracy in bin",
    )
    for b in filled:  # the gap between what the scores say and how often they are right
        top.fill_between([b["lower"], b["upper"]], b["accuracy"], b["confidence"], color="#dd8452", alpha=0.35, linewidth=0)
    top.plot(
        [b["confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        "o-",
        color="#c44e52",
        markersize=4,
        label="mean score → accuracy",
    )
    top.set_xlim(low, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    kind = "" if calibration.get("scores", "probability") == "probability" else " (softmax of margins: not probabilities)"
    ece, brier = calibration.get("ece"), calibration.get("brier")
    stats = f"ECE {ece:.3f} ({n_bins} bins) · Brier {brier:.3f}" if ece is not None and brier is not None else "no documents"
    top.set_title(f"{wrap_title(title, 5.2, 9)}\n{stats}{kind}", fontsize=9, y=1.0)  # placed: see figure()
    top.legend(loc="upper left", fontsize=7)
    bottom.bar([b["lower"] for b in bins], [b["n"] for b in bins], width=width, align="edge", color="#8c8c8c", edgecolor="#555555")
    peak = max([b["n"] for b in bins] + [1])
    for b in filled:
        bottom.text(b["lower"] + width / 2, b["n"] + peak * 0.03, str(b["n"]), ha="center", va="bottom", fontsize=7)
    bottom.set_ylim(0, peak * 1.3)
    bottom.set_xlabel("score of the predicted label")
    bottom.set_ylabel("documents")
    return fig


def plot_reliability(calibration: dict, target: Path, title: str, n_classes: int = 2) -> Path:
    return save_png(reliability_figure(calibration, title, n_classes), target)
