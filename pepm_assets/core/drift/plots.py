"""PNG histograms beside each drift report: one column, reference vs current, as shares (so that
sides of different sizes compare), with the test's verdict in the title. Drawn with core/plotting
(matplotlib's object API, no pyplot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..plotting import figure, save_png

REFERENCE_COLOR, CURRENT_COLOR = "#4c72b0", "#dd8452"
MAX_CATEGORIES = 20


def categorical_png(reference: pd.Series, current: pd.Series, target: Path, title: str, names: tuple[str, str], verdict: str) -> Path:
    ref = reference.astype(str).value_counts(normalize=True)
    cur = current.astype(str).value_counts(normalize=True)
    order = list(ref.add(cur, fill_value=0).sort_values(ascending=False).index)
    if len(order) > MAX_CATEGORIES:  # the rest as one bar
        keep, rest = order[: MAX_CATEGORIES - 1], order[MAX_CATEGORIES - 1 :]
        ref = pd.concat([ref.reindex(keep, fill_value=0), pd.Series({"(other)": ref.reindex(rest, fill_value=0).sum()})])
        cur = pd.concat([cur.reindex(keep, fill_value=0), pd.Series({"(other)": cur.reindex(rest, fill_value=0).sum()})])
        order = [*keep, "(other)"]
    ref, cur = ref.reindex(order, fill_value=0), cur.reindex(order, fill_value=0)
    fig = figure(max(6.0, 0.55 * len(order) + 3), 4.5)
    ax = fig.add_subplot()
    x = np.arange(len(order))
    ax.bar(x - 0.2, ref.values, 0.4, label=f"{names[0]} (n={len(reference)})", color=REFERENCE_COLOR)
    ax.bar(x + 0.2, cur.values, 0.4, label=f"{names[1]} (n={len(current)})", color=CURRENT_COLOR)
    ax.set_xticks(x, order, rotation=35 if len(order) > 5 else 0, ha="right" if len(order) > 5 else "center")
    ax.set_ylabel("share of documents")
    ax.set_title(f"{title}\n{verdict}", fontsize=10)
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return save_png(fig, target)


def numerical_png(reference: pd.Series, current: pd.Series, target: Path, title: str, names: tuple[str, str], verdict: str) -> Path:
    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
    cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
    both = np.concatenate([ref, cur]) if len(ref) + len(cur) else np.zeros(1)
    lo, hi = np.percentile(both, [0.5, 99.5]) if len(both) > 1 else (both.min(), both.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    log = lo > 0 and hi / lo > 50  # lengths: a long tail, better read on a log axis
    bins = np.geomspace(lo, hi, 41) if log else np.linspace(lo, hi, 41)
    if np.all(both == np.round(both)) and hi - lo >= 1:  # counts: edges between integers (no empty bins)
        bins = np.unique(np.ceil(bins)) - 0.5
        bins = np.append(bins, bins[-1] + 1) if len(bins) < 2 else bins
    fig = figure(8.0, 4.5)
    ax = fig.add_subplot()
    for values, name, color in ((ref, names[0], REFERENCE_COLOR), (cur, names[1], CURRENT_COLOR)):
        if not len(values):
            continue
        weights = np.full(len(values), 1 / len(values))  # shares, whatever the side's size
        ax.hist(
            np.clip(values, lo, hi),
            bins=bins,
            weights=weights,
            histtype="step",
            linewidth=1.8,
            color=color,
            label=f"{name} (n={len(values)})",
        )
        ax.axvline(float(np.median(values)), color=color, linestyle="--", linewidth=1, alpha=0.8)
    if log:
        ax.set_xscale("log")
    ax.set_ylabel("share of documents")
    ax.set_xlabel(f"{title.split(':')[0]} (dashed: medians; clipped to the 0.5-99.5 percentiles)")
    ax.set_title(f"{title}\n{verdict}", fontsize=10)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return save_png(fig, target)
