"""`pepm dashboard`: one static HTML page of a project's results (V4.1 §4, "dashboards légers"),
read from the files the stages already wrote, computing nothing again:

- scores with their 95% intervals (reports/leaderboard.tsv; the clustering models and the
  cross-dataset evaluations from reports/index.json);
- the confusion matrix of every evaluation (its metrics.json; the PNG beside it, or drawn here
  when a sweep left none);
- the cross-corpus matrix (reports/cross_corpus/<view>/<model>/matrix.json, .png);
- the label and length distributions of each prepared split (data/interim/<dataset>/<view>/
  train.tsv, job.tsv, meta_view.json);
- the drift reports (reports/drift/**/summary.json, alerts.csv);
- the label-validity WARNINGs of each view (reports/<dataset>/<view>/diagnostics.json).

A part not computed yet says which command computes it; nothing missing is an error.

The page is one self-contained file that opens offline and asks for nothing: images are inlined as
base64 data URIs, the CSS is in the page, there is no script, no font and no link to a file or a
server (a Content-Security-Policy meta tag forbids them too). Written atomically."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_text
from .paths import ProjectPaths

DEFAULT = Path("reports") / "dashboard.html"
CONFUSION_PNG = "confusion_matrix.png"  # = training.CONFUSION_PNG (not imported: training loads the families)
DIAGNOSTICS = "diagnostics.json"  # = diagnostics.FILE
NOT_DATASETS = {"cross_corpus", "drift"}  # folders of reports/ that are not a dataset's
MAX_ALERTS = 40  # alert messages listed on the page; alerts.csv has them all
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"  # the page may load nothing


@dataclass
class Section:
    id: str
    title: str
    body: str = ""  # HTML
    missing: str | None = None  # "not computed yet: run `pepm ...`" when there is nothing to show

    @property
    def computed(self) -> bool:
        return self.missing is None


@dataclass
class Dashboard:
    path: Path
    sections: list[Section]
    n_images: int
    n_bytes: int
    seconds: float
    missing: dict[str, str] = field(default_factory=dict)  # section title -> what computes it


# ------------------------------------------------------------------------------------ reading


def _json(path: Path) -> dict[str, Any] | None:
    """A JSON file, or None when it is missing or unreadable (a part of the page left out, never a crash)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tsv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))
    except OSError:
        return []


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out  # NaN: an empty cell


def _split_columns(path: Path) -> dict[str, list[Any]] | None:
    """The label and n_tokens columns of a split TSV (prepare.write_tsv), the texts left unread."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        with open(path, encoding="utf-8") as fh:
            columns = fh.readline().rstrip("\n").split("\t")
        if "label" not in columns:
            return None
        wanted = [c for c in ("label", "n_tokens") if c in columns]  # (an empty include_columns would read them all)
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(use_threads=False, block_size=max(1 << 20, path.stat().st_size + 1)),
            parse_options=pcsv.ParseOptions(delimiter="\t", newlines_in_values=True),
            convert_options=pcsv.ConvertOptions(
                column_types={"label": pa.string(), "n_tokens": pa.int64()},
                include_columns=wanted,
                strings_can_be_null=False,
                null_values=[],
                quoted_strings_can_be_null=False,
            ),
        )
    except (OSError, pa.ArrowInvalid):
        return None
    return {name: table.column(name).to_pylist() for name in wanted}


def _views(folder: Path, skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(dataset, view) of the sub-sub-folders of `folder` (reports/ or data/interim/), sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        (d.name, v.name)
        for d in folder.iterdir()
        if d.is_dir() and d.name not in skip and not d.name.startswith((".", "_"))
        for v in d.iterdir()
        if v.is_dir() and not v.name.startswith(".")
    )


# ------------------------------------------------------------------------------------ HTML bits


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(fig: Any, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class _Images:
    """Counts the images inlined, for the summary."""

    def __init__(self) -> None:
        self.n = 0

    def img(self, data: bytes, alt: str, cls: str = "") -> str:
        self.n += 1
        return f'<img src="{_png_uri(data)}" alt="{_e(alt)}" class="{cls}">'


def _missing(what: str, commands: list[str], hint: str = "") -> str:
    """Plain text, commands between backticks (the CLI prints it; the page shows them as code)."""
    return f"{what}: run " + " or ".join(f"`{c}`" for c in commands) + hint


def _coded(text: str) -> str:
    """Escaped, `...` shown as code."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", _e(text))


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """`rows` hold HTML already escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    """A score with its interval drawn on a 0-1 bar (CSS only)."""
    if value is None:
        return ""
    text = f"{value:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else "")
    if low is None or high is None:
        return f"<span class=num>{_e(text)}</span>"
    left, width = max(0.0, low) * 100, max(0.4, (min(1.0, high) - max(0.0, low)) * 100)
    bar = (
        f'<span class=ci title="{_e(text)}"><span class=range style="left:{left:.1f}%;width:{width:.1f}%"></span>'
        f'<span class=pt style="left:{value * 100:.1f}%"></span></span>'
    )
    return f"<span class=num>{_e(text)}</span>{bar}"


def _anchor(*parts: str) -> str:
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in p) for p in parts)


# ------------------------------------------------------------------------------------ sections


def _scores(paths: ProjectPaths, board: list[dict[str, str]], profiles_hint: str) -> Section:
    section = Section("scores", "Scores with 95% intervals")
    index = _json(paths.reports / "index.json") or {}
    latest: dict[tuple, dict[str, Any]] = {}
    for e in index.get("entries", []):  # oldest first: the last of each slot wins (training.latest_entries)
        latest[(e.get("dataset_id"), e.get("view"), e.get("model_id"), e.get("eval_dataset_id"))] = e
    parts = []
    if board:
        parts.append(
            "<p class=note>From <code>reports/leaderboard.tsv</code>: each model's latest in-domain evaluation on "
            "its view's job set; the bar is the 0–1 scale, the shaded part the 95% interval (a bootstrap that resamples "
            "whole speakers when the split is grouped by speaker), the dot the score. Δ: macro-F1 minus the reference "
            "model's and minus the majority-class control's, paired, Holm-adjusted p (<code>reports/leaderboard.md</code>).</p>"
        )
    for (dataset_id, view), rows in _grouped(board).items():
        parts.append(f'<h3 id="{_anchor("scores", dataset_id, view)}">{_e(dataset_id)} / {_e(view)}</h3>')
        reference = next((r["delta_vs"] for r in rows if r.get("delta_vs")), None)  # the model the others are compared with
        table_rows, notes_seen = [], {}  # a note said once under the table, its number in each row it concerns
        for rank, r in enumerate(rows, 1):
            n_splits = int(_float(r.get("n_splits")) or 1)
            sd = _float(r.get("macro_f1_split_sd"))
            spread = f" ± {sd:.4f} over {n_splits} splits" if n_splits > 1 and sd is not None else ""
            notes = [n for n in (r.get("splits_note", ""), r.get("quality_flags", "")) if n]
            if r.get("truncated") == "True":
                notes.append(f"trained on the first {r.get('n_train_used')} train documents (hardware cap)")
            table_rows.append(
                [
                    str(rank),
                    f"<b>{_e(r['model_id'])}</b>",
                    _e(r.get("family", "")),
                    _interval(_float(r.get("macro_f1")), _float(r.get("macro_f1_low")), _float(r.get("macro_f1_high")))
                    + (f"<div class=small>{_e(spread)}</div>" if spread else ""),
                    _interval(_float(r.get("accuracy")), _float(r.get("accuracy_low")), _float(r.get("accuracy_high"))),
                    _delta(r, "delta", reference),
                    _delta(r, "baseline", None),
                    f"<span class=num>{_e(r.get('n_job', ''))} / {_e(r.get('n_train_used', ''))}</span>",
                    _e(_protocol(r)) + "".join(f" <sup>[{notes_seen.setdefault(n, len(notes_seen) + 1)}]</sup>" for n in notes),
                ]
            )
        header = ["#", "model", "family", "macro-F1 [95% CI]", "accuracy [95% CI]", "Δ vs reference", "Δ vs control"]
        parts.append(_table([*header, "docs job / train", "protocol"], table_rows, "scores"))
        if notes_seen:
            parts.append("<ol class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in notes_seen) + "</ol>")
    others = [e for e in latest.values() if e.get("eval_dataset_id") != e.get("dataset_id") and "macro_f1" in e.get("metrics", {})]
    if others:
        parts.append('<h3 id="scores-cross-dataset">Scored on another dataset\'s job set (cross-dataset)</h3>')
        rows = []
        for e in sorted(others, key=lambda e: (e["dataset_id"], e["view"], e["eval_dataset_id"], -e["metrics"]["macro_f1"])):
            m = e["metrics"]
            low, high = (m.get("macro_f1_ci95") or [None, None])[:2]
            alow, ahigh = (m.get("accuracy_ci95") or [None, None])[:2]
            rows.append(
                [
                    f"<b>{_e(e['model_id'])}</b>",
                    _e(e.get("family", "")),
                    _e(e["dataset_id"]),
                    _e(e["eval_dataset_id"]),
                    _e(e["view"]),
                    _interval(m["macro_f1"], low, high),
                    _interval(m.get("accuracy"), alow, ahigh),
                    _e(e.get("n_job", "")),
                ]
            )
        parts.append(
            _table(["model", "family", "trained on", "scored on", "view", "macro-F1 [95% CI]", "accuracy [95% CI]", "docs"], rows, "scores")
        )
    clusters = [e for e in latest.values() if e.get("family") == "cluster" or (e.get("supervised") is False)]
    if clusters:
        parts.append('<h3 id="scores-clusters">Clustering models (no label used to fit: agreement with the labels)</h3>')
        names = ("ari", "nmi", "homogeneity", "completeness", "silhouette")
        rows = []
        for e in sorted(clusters, key=lambda e: (e["dataset_id"], e["view"], e["model_id"])):
            m = e.get("metrics", {})
            cells = [f"{m[k]:.4f}" if isinstance(m.get(k), (int, float)) else "" for k in names]
            rows.append([f"<b>{_e(e['model_id'])}</b>", _e(e["dataset_id"]), _e(e["view"]), _e(m.get("n_clusters", "")), *cells])
        parts.append(_table(["model", "dataset", "view", "clusters", "ARI", "NMI", "homogeneity", "completeness", "silhouette"], rows))
    if not board and not others and not clusters:
        section.missing = _missing("no evaluation yet", ["pepm run -p <profile>", "pepm evaluate -p <profile>"], profiles_hint)
    elif not board:
        parts.insert(0, "<p class=missing>" + _coded(_missing("no leaderboard yet", ["pepm evaluate -p <profile>"])) + "</p>")
    section.body = "".join(parts)
    return section


def _grouped(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[dict[str, str]]]:
    out: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault((r.get("dataset_id", ""), r.get("view", "")), []).append(r)
    return out


def _signed(x: float) -> str:
    """+0.1234; a value that rounds to zero is +0.0000, not -0.0000."""
    return f"{round(x, 4) + 0.0:+.4f}"


def _delta(r: dict[str, str], prefix: str, reference: str | None) -> str:
    """leaderboard.tsv's paired comparison with the reference (delta_*) or the control (baseline_*)."""
    vs = r.get(f"{prefix}_vs", "")
    value = _float(r.get(f"{prefix}_macro_f1" if prefix == "delta" else f"{prefix}_delta"))
    if value is None:
        return "<span class=dim>reference</span>" if r.get("model_id") == reference else ""
    low, high, p = (_float(r.get(f"{prefix}_{k}")) for k in ("low", "high", "p_holm"))
    verdict = ""
    if p is not None and p < 0.05:
        verdict = " better" if value > 0 else " worse"
    interval = f"[{_signed(low)}, {_signed(high)}]" if low is not None and high is not None else ""
    cls = {" better": "good", " worse": "bad"}.get(verdict, "dim")
    return (
        f"<span class=num>{_signed(value)}</span> <span class=small>{_e(interval)}</span>"
        f'<div class=small><span class="{cls}">{_e(verdict.strip() or "n.s.")}</span>'
        f"{_e(f' p={p:.3g}' if p is not None else '')} vs {_e(vs)}</div>"
    )


def _protocol(r: dict[str, str]) -> str:
    bits = [r.get("split", ""), f"seed {r.get('seed', '')}"]
    n_splits = int(_float(r.get("n_splits")) or 1)
    if n_splits > 1:
        bits.append(f"mean of {n_splits} splits")
    if r.get("class_weight"):
        bits.append(f"class weights {r['class_weight']}")
    return " · ".join(b for b in bits if b)


def _report_dirs(paths: ProjectPaths) -> dict[tuple[str, str], list[Path]]:
    """(dataset, view) -> reports/<dataset>/<view>/<family>/<model>/ holding a metrics.json."""
    out: dict[tuple[str, str], list[Path]] = {}
    for dataset_id, view in _views(paths.reports, NOT_DATASETS):
        folder = paths.reports / dataset_id / view
        dirs = sorted(p.parent for p in folder.glob("*/*/metrics.json"))
        if dirs:
            out[(dataset_id, view)] = dirs
    return out


def _confusions(paths: ProjectPaths, board: list[dict[str, str]], images: _Images, profiles_hint: str) -> Section:
    section = Section("confusion", "Confusion matrices")
    rank = {(r.get("dataset_id"), r.get("view"), r.get("model_id")): i for i, r in enumerate(board)}
    parts = []
    for (dataset_id, view), dirs in _report_dirs(paths).items():
        dirs.sort(key=lambda d: (rank.get((dataset_id, view, d.name), len(rank)), "@" in d.name, d.name))
        cards = [card for d in dirs if (card := _confusion_card(d, images))]
        if cards:
            parts.append(f'<h3 id="{_anchor("confusion", dataset_id, view)}">{_e(dataset_id)} / {_e(view)}</h3>')
            parts.append('<div class="cards">' + "".join(cards) + "</div>")
    if parts:
        section.body = (
            "<p class=note>Rows: gold label; columns: predicted; each cell the count and the share of its gold class "
            "(the canonical split's job set). Clustering models: documents per cluster and gold label.</p>" + "".join(parts)
        )
    else:
        section.missing = _missing("no evaluation yet", ["pepm run -p <profile>", "pepm evaluate -p <profile>"], profiles_hint)
    return section


def _confusion_card(folder: Path, images: _Images) -> str:
    scores = _json(folder / "metrics.json")
    if not scores:
        return ""
    model, _, evaluated_on = folder.name.partition("@")
    family = folder.parent.name
    view = f"{folder.parent.parent.parent.name}/{folder.parent.parent.name}"  # reports/<dataset>/<view>/<family>/<model>
    caption = f"<b>{_e(model)}</b> <span class=dim>{_e(family)}</span>"
    if evaluated_on:
        caption += f"<br>scored on {_e(evaluated_on)}"
    if "macro_f1" in scores:
        caption += f"<br>macro-F1 {scores['macro_f1']:.4f} · accuracy {scores.get('accuracy', 0):.4f} · n {_e(scores.get('n', ''))}"
    if scores.get("confusion_matrix") and scores.get("labels"):
        png = folder / CONFUSION_PNG
        try:
            data = png.read_bytes()
        except OSError:  # a sweep's report: no figure drawn; drawn here, not written beside it
            from .metrics import confusion_figure

            data = _figure_png(confusion_figure(scores["confusion_matrix"], scores["labels"], scores.get("title", model)), dpi=90)
        return f"<figure>{images.img(data, f'confusion matrix of {view}/{folder.name}')}<figcaption>{caption}</figcaption></figure>"
    if isinstance(scores.get("contingency"), dict):
        table = scores["contingency"]
        labels = sorted({label for counts in table.values() for label in counts})
        rows = [[_e(c), *(_e(counts.get(label, 0)) for label in labels)] for c, counts in table.items()]
        ari = scores.get("ari")
        caption += f"<br>ARI {ari:.4f}" if isinstance(ari, (int, float)) else ""
        return f'<figure class="text">{_table(["cluster", *labels], rows, "small")}<figcaption>{caption}</figcaption></figure>'
    return ""


def _cross_corpus(root: Path, paths: ProjectPaths, images: _Images) -> Section:
    section = Section("cross-corpus", "Cross-corpus matrix")
    parts = []
    folder = paths.reports / "cross_corpus"
    for view, model_id in _views(folder):
        out = folder / view / model_id
        data = _json(out / "matrix.json")
        if not data or "macro_f1" not in data:
            continue
        datasets = data.get("rows_trained_on", [])
        parts.append(f'<h3 id="{_anchor("cross", view, model_id)}">{_e(model_id)}, view {_e(view)}</h3>')
        rows = []
        for i, a in enumerate(datasets):
            cells = []
            for j, _ in enumerate(datasets):
                low, high = data["macro_f1_ci95"][i][j]
                extra = f"majority {data['majority_macro_f1'][i][j]:.3f} · chance {data['chance_macro_f1'][i][j]:.3f} · n {data['n'][i][j]}"
                cells.append(_interval(data["macro_f1"][i][j], low, high) + f"<div class=small>{_e(extra)}</div>")
            rows.append([f"<b>{_e(a)}</b>", *cells])
        parts.append(
            "<p class=note>macro-F1 [95% CI]; rows: trained on, columns: evaluated on (diagonal: the row dataset's held-out "
            "job set; elsewhere: every labelled document of the column dataset, minus texts seen in training), with the "
            f"majority-class and chance baselines. From <code>{_e(paths.rel(out))}/matrix.json</code>.</p>"
        )
        parts.append(_table(["trained on ↓ / evaluated on →", *datasets], rows, "matrix"))
        try:
            parts.append(images.img((out / "matrix.png").read_bytes(), f"cross-corpus heat map of {model_id}", "wide"))
        except OSError:
            pass
    if parts:
        section.body = "".join(parts)
    elif not (root / "configs" / "common" / "cross_corpus.yml").is_file():
        section.missing = "not configured: add configs/common/cross_corpus.yml (view, model_id, datasets), then run `pepm cross-corpus`"
    else:
        section.missing = _missing("not computed yet", ["pepm cross-corpus"])
    return section


def _distributions(paths: ProjectPaths, images: _Images, profiles_hint: str) -> Section:
    section = Section("distributions", "Labels and lengths of the prepared splits")
    parts = []
    interim = paths.root / "data" / "interim"
    for dataset_id, view in _views(interim):
        folder = interim / dataset_id / view
        meta = _json(folder / "meta_view.json")
        if meta is None:
            continue
        columns = {name: _split_columns(folder / f"{name}.tsv") for name in ("train", "job")}
        parts.append(f'<h3 id="{_anchor("dist", dataset_id, view)}">{_e(dataset_id)} / {_e(view)}</h3>')
        parts.append(_view_summary(meta, columns))
        if all(columns.values()):
            parts.append(
                images.img(
                    _figure_png(_distribution_figure(dataset_id, view, columns)),
                    f"label and length distributions of {dataset_id}/{view}",
                    "wide",
                )
            )
    if parts:
        section.body = (
            "<p class=note>Each prepared split as it is on disk (<code>data/interim/&lt;dataset&gt;/&lt;view&gt;/</code>): "
            "documents per label in train and job, and the length of the texts in tokens.</p>" + "".join(parts)
        )
    else:
        section.missing = _missing("no prepared split yet", ["pepm prepare -p <profile>"], profiles_hint)
    return section


def _view_summary(meta: dict[str, Any], columns: dict[str, dict[str, list[Any]] | None]) -> str:
    split = meta.get("split", {})
    counts = {
        name: Counter(cols["label"]) if cols and "label" in cols else Counter(split.get(f"{name}_label_counts", {}))
        for name, cols in columns.items()
    }
    labels = sorted(set(counts["train"]) | set(counts["job"]))
    totals = {name: sum(c.values()) or 1 for name, c in counts.items()}
    rows = [
        [
            _e(label),
            *(f"{counts[n][label]} <span class=dim>({counts[n][label] / totals[n]:.0%})</span>" for n in ("train", "job")),
        ]
        for label in labels
    ]
    rows.append(["<b>all</b>", *(f"<b>{sum(counts[n].values())}</b>" for n in ("train", "job"))])
    facts = [
        f"split {split.get('kind', '?')}",
        f"seed {meta.get('seed', '?')}",
        f"{meta.get('n_docs_labelled', '?')} of {meta.get('n_docs_in', '?')} documents labelled",
        f"balance {meta.get('balance', {}).get('strategy', '?')}",
    ]
    lengths = []
    for name, cols in columns.items():
        tokens = cols.get("n_tokens", []) if cols else []
        if tokens:
            lengths.append(f"{name}: median {statistics.median(tokens):g} tokens, 95th percentile {_percentile(tokens, 95):.0f}")
    excluded = meta.get("excluded_by_reason") or {}
    out = _table(["label", "train", "job"], rows, "small")
    out += f"<p class=small>{_e(' · '.join(facts))}</p>"
    if lengths:
        out += f"<p class=small>{_e('; '.join(lengths))}</p>"
    if excluded:
        out += "<p class=small>excluded before the split: " + _e(", ".join(f"{k} {v}" for k, v in excluded.items())) + "</p>"
    recorded = {n: split.get(f"{n}_label_counts") for n in ("train", "job")}
    if columns["train"] and all(recorded.values()) and any(dict(counts[n]) != recorded[n] for n in ("train", "job")):
        out += "<p class=warn>the TSVs and meta_view.json disagree (a prepare was running?): run <code>pepm dashboard</code> again</p>"
    return f'<div class="split">{out}</div>'


def _percentile(values: list[int], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


def _distribution_figure(dataset_id: str, view: str, columns: dict[str, dict[str, list[Any]] | None]) -> Any:
    import numpy as np

    from .plotting import figure

    fig = figure(10.0, 3.4)
    bars, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.6]})
    labels = sorted({label for cols in columns.values() if cols for label in cols.get("label", [])})
    colours = {"train": "#4c72b0", "job": "#dd8452"}
    width = 0.4
    for k, name in enumerate(("train", "job")):
        counts = Counter(columns[name]["label"]) if columns[name] else Counter()
        xs = np.arange(len(labels)) + (k - 0.5) * width
        heights = [counts[label] for label in labels]
        bars.bar(xs, heights, width=width, color=colours[name], label=name)
        for x, h in zip(xs, heights):
            bars.text(x, h, str(h), ha="center", va="bottom", fontsize=7)
    bars.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    bars.set_ylabel("documents")
    bars.set_title("labels", fontsize=10)
    bars.legend(fontsize=8)
    tokens = {n: np.asarray(c.get("n_tokens", []), dtype=float) for n, c in columns.items() if c and c.get("n_tokens")}
    top = max((t.max() for t in tokens.values()), default=1.0)
    # integer counts: bin edges at half-integers, spaced evenly in log; the density is per log10 unit
    # (each curve's area is 1 on the log axis), so bins of different widths compare
    edges = np.unique(np.round(np.geomspace(1, top + 1, 36))) - 0.5
    edges = np.append(edges, edges[-1] + 1) if len(edges) < 2 else edges
    for name, t in tokens.items():
        values, _ = np.histogram(np.log10(np.maximum(t, 1)), bins=np.log10(edges), density=True)
        hist.stairs(values, edges, linewidth=1.6, color=colours[name], label=f"{name} (median {np.median(t):g})")
    hist.set_xscale("log")
    hist.set_xlabel("tokens per text (log scale)")
    hist.set_ylabel("density (per log10 unit)")
    hist.set_title("lengths", fontsize=10)
    hist.legend(fontsize=8)
    fig.suptitle(f"{dataset_id} / {view}", fontsize=11)
    return fig


def _drift(paths: ProjectPaths) -> Section:
    section = Section("drift", "Drift")
    folder = paths.reports / "drift"
    summaries = []
    for path in sorted(folder.rglob("summary.json")) if folder.is_dir() else []:
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # a temporary folder of a report being written
        data = _json(path)
        if data is not None:
            summaries.append((path.parent, data))
    if not summaries:
        section.missing = _missing("not computed yet", ["pepm drift"])
        return section
    alerts = _csv(folder / "alerts.csv")
    by_severity = Counter(a.get("severity", "") for a in alerts)
    parts = [
        "<p class=note>Evidently reports (<code>reports/drift/</code>, one <code>report.html</code> per folder): "
        "each compares a reference and a current set column by column (label, lengths, metadata); "
        "a column drifts when its distance is above the threshold and the test's p-value below its own.</p>"
    ]
    if alerts:
        parts.append(
            "<p>"
            + " · ".join(f'<span class="sev {_e(s)}">{_e(s)}</span> {n}' for s, n in sorted(by_severity.items()))
            + " alerts in <code>reports/drift/alerts.csv</code></p>"
        )
    rows = []
    for out, s in sorted(summaries, key=lambda x: (x[1].get("check", ""), x[1].get("title", ""))):
        columns = s.get("columns", [])
        drifted = s.get("drifted_columns") or [c["column"] for c in columns if c.get("drifted")]
        share, threshold = _float(s.get("drift_share")), _float(s.get("drift_share_threshold"))
        severity = s.get("severity") or ("OK" if s.get("passed", True) else "ERROR")
        share_text = f" · {share:.0%}" if share is not None else ""
        rows.append(
            [
                _e(s.get("check", "")),
                _e(s.get("title", "")) + f"<div class=small>{_e(paths.rel(out))}/report.html</div>",
                f'<span class="sev {_e(severity)}">{_e(severity)}</span>',
                f"<span class=num>{len(drifted)} of {len(columns)}{_e(share_text)}</span>"
                + (f"<div class=small>dataset drift at {threshold:.0%}</div>" if threshold is not None else ""),
                _e(", ".join(drifted)),
                f"<span class=num>{_e(s.get('n_reference', ''))} / {_e(s.get('n_current', ''))}</span>",
                f"<span class=num>{_e(str(s.get('created', ''))[:16].replace('T', ' '))}</span>",
            ]
        )
    header = ["check", "compares (report)", "severity", "columns drifted", "which", "docs ref / cur", "computed"]
    parts.append(_table(header, rows, "drift"))
    listed = [a for a in alerts if a.get("severity") in ("ERROR", "WARN")]
    if listed:
        order = {"ERROR": 0, "WARN": 1}
        listed.sort(key=lambda a: order.get(a.get("severity", ""), 2))
        items = "".join(
            f'<li><span class="sev {_e(a["severity"])}">{_e(a["severity"])}</span> <b>{_e(a.get("title", ""))}</b>: {_e(a.get("message", ""))}</li>'
            for a in listed[:MAX_ALERTS]
        )
        more = f"<p class=small>{len(listed) - MAX_ALERTS} more in reports/drift/alerts.csv</p>" if len(listed) > MAX_ALERTS else ""
        parts.append(f"<details><summary>{len(listed)} alerts</summary><ul class=alerts>{items}</ul>{more}</details>")
    section.body = "".join(parts)
    return section


def _csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    except OSError:
        return []


def _label_validity(paths: ProjectPaths, images: _Images, profiles_hint: str) -> Section:
    section = Section("label-validity", "Label validity")
    parts = []
    for dataset_id, view in _views(paths.reports, NOT_DATASETS):
        folder = paths.reports / dataset_id / view
        diag = _json(folder / DIAGNOSTICS)
        if diag is None:
            continue
        warned = [w for w in diag.get("warnings", []) if w.get("kind") != "terms"]
        parts.append(f'<h3 id="{_anchor("validity", dataset_id, view)}">{_e(dataset_id)} / {_e(view)}</h3>')
        if warned:
            items = "".join(f"<li><span class='sev WARN'>WARNING</span> {_coded(w.get('message', ''))}</li>" for w in warned)
            parts.append(f"<ul>{items}</ul>")
        else:
            parts.append("<p>no warning</p>")
        try:
            parts.append(images.img((folder / "label_validity.png").read_bytes(), f"label validity of {dataset_id}/{view}", "wide"))
        except OSError:
            pass
    if parts:
        section.body = (
            "<p class=note>What else the label may stand for (<code>reports/&lt;dataset&gt;/&lt;view&gt;/diagnostics.json</code>): "
            "its association with other metadata, the names of parties and groups in the texts. Scores with names masked: "
            "<code>pepm report label-validity -p &lt;profile&gt;</code>.</p>" + "".join(parts)
        )
    else:
        section.missing = _missing(
            "not computed yet (a view's first training or evaluation computes it)",
            ["pepm evaluate -p <profile>", "pepm report label-validity -p <profile>"],
            profiles_hint,
        )
    return section


# ------------------------------------------------------------------------------------ page

STYLE = """
:root{--fg:#1d232b;--dim:#6b7480;--line:#d9dde3;--bg:#fff;--soft:#f4f6f8;--accent:#2f5fa5}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:18px 28px;background:#24354d;color:#fff}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9d3e0}
header code{background:rgba(255,255,255,.16);color:#fff}
nav{padding:10px 28px;background:var(--soft);border-bottom:1px solid var(--line);position:sticky;top:0}
nav a{margin-right:16px;color:var(--accent);text-decoration:none;font-weight:600}
nav a.todo{color:var(--dim);font-weight:400}
main{padding:8px 28px 40px;max-width:1500px}
section{margin-top:26px}
h2{font-size:19px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:20px 0 8px}
table{border-collapse:collapse;margin:6px 0 10px}
th,td{border:1px solid var(--line);padding:4px 8px;vertical-align:top;text-align:left}
th{background:var(--soft);font-weight:600}
td .num{font-variant-numeric:tabular-nums;white-space:nowrap}
table.scores td:last-child{min-width:170px}
table.scores td:nth-child(6),table.scores td:nth-child(7){min-width:170px}
table.small td,table.small th{padding:2px 6px;font-size:12px}
.ci{display:block;position:relative;width:160px;height:8px;margin-top:3px;background:var(--soft);border:1px solid var(--line);border-radius:4px}
.ci .range{position:absolute;top:0;bottom:0;background:#9fb8dc;border-radius:3px}
.ci .pt{position:absolute;top:-2px;width:4px;height:10px;margin-left:-2px;background:#1f3f73;border-radius:2px}
.small{font-size:12px;color:var(--dim)}
.dim{color:var(--dim)}
.good{color:#17803d;font-weight:600}
.bad{color:#b3261e;font-weight:600}
.note{color:var(--dim);max-width:1100px}
.missing{padding:10px 14px;background:#fff8e6;border:1px solid #f0d48a;border-radius:6px;max-width:1100px}
.warn{color:#8a5300}
code{background:var(--soft);padding:1px 4px;border-radius:3px;font-size:12.5px}
.cards{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;padding:8px;border:1px solid var(--line);border-radius:6px;background:#fff}
figure img{display:block;max-width:340px;height:auto}
figure.text{max-width:320px}
figcaption{font-size:12px;margin-top:4px}
img.wide{display:block;max-width:100%;height:auto;margin:8px 0;border:1px solid var(--line);border-radius:6px}
.split{margin-bottom:6px}
.sev{display:inline-block;padding:0 6px;border-radius:3px;font-size:11px;font-weight:700;background:#e3e7ec}
.sev.ERROR{background:#f6d4d1;color:#8c1d18}
.sev.WARN{background:#fbe7c0;color:#7a4d00}
.sev.OK{background:#d6efdc;color:#17603a}
ul.alerts li{margin-bottom:4px}
ol.notes{margin:0 0 10px;padding-left:22px;font-size:12px;color:var(--dim);max-width:1100px}
sup{font-size:10px;color:var(--dim)}
footer{padding:14px 28px;color:var(--dim);border-top:1px solid var(--line);font-size:12px}
"""


def _guarded(section_id: str, title: str, make: Any) -> Section:
    """The section, or one that says why its files could not be shown (a file of another shape,
    e.g. written by an older pepm): one odd file never costs the whole page."""
    try:
        return make()
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        why = f"could not be shown ({type(exc).__name__}: {exc}); run the command that writes it again"
        return Section(section_id, title, missing=why)


def build(root: Path) -> tuple[str, list[Section], int]:
    """(the page, its sections, the number of images inlined)."""
    from .config import list_profiles

    paths = ProjectPaths(root)
    profiles = list_profiles(root)
    hint = f" (profiles: {', '.join(profiles[:8])}{', ...' if len(profiles) > 8 else ''})" if profiles else ""
    images = _Images()
    board = _tsv(paths.reports / "leaderboard.tsv")
    sections = [
        _guarded("scores", "Scores with 95% intervals", lambda: _scores(paths, board, hint)),
        _guarded("confusion", "Confusion matrices", lambda: _confusions(paths, board, images, hint)),
        _guarded("cross-corpus", "Cross-corpus matrix", lambda: _cross_corpus(root, paths, images)),
        _guarded("distributions", "Labels and lengths of the prepared splits", lambda: _distributions(paths, images, hint)),
        _guarded("drift", "Drift", lambda: _drift(paths)),
        _guarded("label-validity", "Label validity", lambda: _label_validity(paths, images, hint)),
    ]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    nav = "".join(f'<a href="#{s.id}" class="{"" if s.computed else "todo"}">{_e(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{s.id}"><h2>{_e(s.title)}</h2>'
        + (s.body if s.computed else f"<p class=missing>{_coded(s.missing or '')}</p>")
        + "</section>"
        for s in sections
    )
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>pepm dashboard · {_e(root.name)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>pepm dashboard · {_e(root.name)}</h1>"
        f"<p>{_e(str(root))} · generated {_e(stamp)} from the files on disk; <code>pepm dashboard</code> writes it again</p></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        "<footer>One self-contained file: images inlined, no script, no font, no link outside this page.</footer>"
        "</body></html>\n"
    )
    return page, sections, images.n


def write_dashboard(root: Path, target: Path | None = None) -> Dashboard:
    """Build the page from the project's files and write it (default reports/dashboard.html), atomically."""
    started = time.perf_counter()
    root = Path(root)
    target = Path(target) if target is not None else root / DEFAULT
    if not target.is_absolute():
        target = root / target
    page, sections, n_images = build(root)
    write_text(target, page)
    return Dashboard(
        path=target,
        sections=sections,
        n_images=n_images,
        n_bytes=len(page.encode("utf-8")),
        seconds=time.perf_counter() - started,
        missing={s.title: s.missing for s in sections if s.missing},
    )
