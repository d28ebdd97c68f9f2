"""Drift reports: two sets of documents (or of a model's predictions) -> an Evidently report (HTML +
JSON), PNG histograms, a summary and the alerts of every drift above its threshold.

    compare(reference, current, out_dir, cfg, check=...)      documents: text descriptors, label, metadata
    prediction_drift(ref_scores, cur_scores, out_dir, cfg)     a model's scores / predicted labels
    write_alerts(results, out_dir)                             alerts.json + alerts.csv of many reports
    load_result(out_dir)                                       a written report's DriftResult, read back

A report folder (written whole, atomically: it replaces what was there):

    report.html    Evidently's report, with a pepm header (what is compared, verdict, per-column table)
    report.json    Evidently's snapshot (metrics and tests) as JSON
    summary.json   DriftResult.to_dict(): per-column scores, verdict, alerts, sample sizes, seed, versions
    alerts.json    the alerts of this report, and alerts.csv (same rows)
    <column>.png   histograms of the configured plot columns (label, n_tokens by default)

Sides are prepared the same way: rows with a doc_id already seen dropped (a balanced train.tsv
repeats documents: oversampling is not drift), then at most `max_docs` rows sampled with the
config's seed, then the descriptors computed from `text` (descriptors.py; they replace columns of
the same name, e.g. the parser's n_tokens, so both sides are measured alike) and `year` derived
from `date`. A configured column that a side lacks is skipped, with its reason in `skipped`.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import html
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_dir, write_json, write_text
from .config import ColumnRule, DriftConfig
from .descriptors import DESCRIPTORS, load_vocabulary, text_descriptors, year_of

NONE = "(none)"
ALERT_FIELDS = (
    "severity", "check", "title", "reference", "current", "scope", "column", "method",
    "statistic", "value", "threshold", "p_value", "p_value_threshold", "message", "report",
)  # fmt: skip
METHOD_NAMES = {
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "hellinger": "Hellinger distance",
    "kl_div": "Kullback-Leibler divergence",
    "psi": "PSI",
    "ed": "energy distance",
    "ks": "K-S p-value",
    "chisquare": "chi-square p-value",
    "z": "Z-test p-value",
    "mannw": "Mann-Whitney U p-value",
    "t_test": "t-test p-value",
    "anderson": "Anderson-Darling p-value",
    "cramer_von_mises": "Cramér-von Mises p-value",
    "es": "Epps-Singleton p-value",
    "fisher_exact": "Fisher exact p-value",
    "g_test": "G-test p-value",
    "TVD": "total variation p-value",
    "empirical_mmd": "MMD p-value",
}


class DriftInputError(ValueError):
    """The documents given cannot be compared (too few on a side, mismatched inputs)."""


@dataclasses.dataclass(frozen=True)
class ColumnDrift:
    column: str
    type: str  # numerical | categorical
    method: str
    statistic: str  # p_value | distance
    score: float
    threshold: float
    drifted: bool
    reference_summary: str  # mean (numerical) or the most frequent value and its share (categorical)
    current_summary: str
    p_value: float | None = None  # of the two-sample test gating a distance (the rule's p_value), else None
    p_value_threshold: float | None = None

    def describe(self) -> str:
        name = METHOD_NAMES.get(self.method, self.method)
        if self.statistic == "p_value":
            relation = "<" if self.score < self.threshold else ">="
            return f"{name} {self.score:.3g} {relation} {self.threshold:g}: {'drift' if self.drifted else 'no drift'}"
        text = f"{name} {self.score:.3g} {'>=' if self.score >= self.threshold else '<'} {self.threshold:g}"
        if self.p_value is not None and self.p_value_threshold is not None:
            test = "K-S" if self.type == "numerical" else "chi-square"
            text += f", {test} p {self.p_value:.2g} {'<' if self.p_value < self.p_value_threshold else '>='} {self.p_value_threshold:g}"
        return f"{text}: {'drift' if self.drifted else 'no drift'}"


@dataclasses.dataclass(frozen=True)
class Alert:
    severity: str  # WARN | ERROR
    check: str
    title: str
    reference: str
    current: str
    scope: str  # column | report
    column: str  # "" for the report as a whole
    method: str  # the stat test, or "drift_share" for the report as a whole
    statistic: str  # p_value | distance | share_of_drifted_columns
    value: float
    threshold: float
    p_value: float | None  # the two-sample test gating a distance, if any
    p_value_threshold: float | None
    message: str
    report: str  # the report's HTML file

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class DriftResult:
    check: str
    title: str
    reference_name: str
    current_name: str
    columns: list[ColumnDrift]
    skipped: dict[str, str]  # column -> why it was not compared
    drift_share: float  # share of the compared columns that drifted
    drift_share_threshold: float
    dataset_drift: bool  # drift_share >= drift_share_threshold
    alerts: list[Alert]
    n_reference: int  # rows compared, after duplicates and sampling
    n_current: int
    n_reference_input: int  # rows given
    n_current_input: int
    duplicates_dropped: dict[str, int]
    seed: int
    config_fingerprint: str
    evidently_version: str
    vocabulary: str
    out_dir: Path
    files: dict[str, str]  # html, json, summary, alerts_json, alerts_csv, png:<column> -> file name in out_dir
    created: str = ""

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def scores(self) -> dict[str, float]:
        return {c.column: c.score for c in self.columns}

    @property
    def severity(self) -> str | None:
        """ERROR, WARN, or None: the highest severity among the alerts."""
        levels = {a.severity for a in self.alerts}
        return "ERROR" if "ERROR" in levels else "WARN" if "WARN" in levels else None

    @property
    def passed(self) -> bool:
        """No ERROR alert (WARN alerts do not fail a check)."""
        return self.severity != "ERROR"

    def path(self, name: str) -> Path:
        return self.out_dir / self.files[name]

    @property
    def pngs(self) -> dict[str, Path]:
        return {k.split(":", 1)[1]: self.out_dir / v for k, v in self.files.items() if k.startswith("png:")}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["out_dir"] = str(self.out_dir)
        data.update(drifted_columns=self.drifted_columns, severity=self.severity, passed=self.passed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], out_dir: Path | None = None) -> DriftResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in fields}
        kept["columns"] = [ColumnDrift(**c) for c in data["columns"]]
        kept["alerts"] = [Alert(**a) for a in data["alerts"]]
        kept["out_dir"] = Path(out_dir if out_dir is not None else data["out_dir"])
        return cls(**kept)


# ---------------------------------------------------------------- preparing the two sides
def _prepare(frame: pd.DataFrame, name: str, cfg: DriftConfig, dedupe_on: str | None) -> tuple[pd.DataFrame, int]:
    frame = frame.reset_index(drop=True)
    dropped = 0
    if dedupe_on and dedupe_on in frame.columns:
        before = len(frame)
        frame = frame.drop_duplicates(dedupe_on, keep="first").reset_index(drop=True)
        dropped = before - len(frame)
    if len(frame) < cfg.min_docs:
        raise DriftInputError(f"{name}: {len(frame)} rows to compare, fewer than drift.min_docs={cfg.min_docs}")
    if len(frame) > cfg.max_docs:
        frame = frame.sample(n=cfg.max_docs, random_state=cfg.seed).sort_index().reset_index(drop=True)
    return frame, dropped


def _features(frame: pd.DataFrame, rules: dict[str, ColumnRule], vocabulary_name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rule columns this side can give, typed for Evidently, and why the others are missing."""
    out: dict[str, pd.Series] = {}
    missing: dict[str, str] = {}
    wanted_descriptors = [c for c in rules if c in DESCRIPTORS]
    described = None
    if wanted_descriptors and "text" in frame.columns:
        described = text_descriptors(frame["text"], load_vocabulary(vocabulary_name))
    for column, rule in rules.items():
        if described is not None and column in DESCRIPTORS:
            values = described[column]
        elif column in frame.columns:
            values = frame[column]
        elif column == "year" and "date" in frame.columns:
            values = year_of(frame["date"])
        else:
            missing[column] = "no such column" + (" (nor a text column to describe)" if column in DESCRIPTORS else "")
            continue
        if rule.type == "numerical":
            values = pd.to_numeric(values, errors="coerce").astype("float64").replace([np.inf, -np.inf], np.nan)
            if values.isna().all():
                missing[column] = "no numeric value"
                continue
        else:
            values = values.astype("string").fillna("").str.strip().replace("", NONE).astype(str)
        out[column] = values.reset_index(drop=True)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame))), missing


def _summary(values: pd.Series, rule: ColumnRule) -> str:
    if rule.type == "numerical":
        clean = values.dropna()
        return f"mean {clean.mean():.4g}, median {clean.median():.4g}" if len(clean) else "no value"
    counts = values.value_counts(normalize=True)
    return f"{counts.index[0]} {counts.iloc[0]:.0%} of {len(counts)} values" if len(counts) else "no value"


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded for the block, then put back (a random stat test such as
    empirical_mmd draws from it)."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


# ---------------------------------------------------------------- Evidently
def _run_evidently(ref: pd.DataFrame, cur: pd.DataFrame, rules: dict[str, ColumnRule], drift_share: float, seed: int):
    from ._evidently import evidently, gated_method, quiet

    ev = evidently()
    columns = list(rules)
    methods = {c: gated_method(r.method, r.p_value) if r.p_value is not None else r.method for c, r in rules.items()}
    definition = ev.DataDefinition(
        numerical_columns=[c for c in columns if rules[c].type == "numerical"],
        categorical_columns=[c for c in columns if rules[c].type == "categorical"],
    )
    preset = ev.DataDriftPreset(
        columns=columns,
        drift_share=drift_share,
        per_column_method=methods,
        per_column_threshold={c: rules[c].threshold for c in columns},
    )
    report = ev.Report([preset], include_tests=True)
    with _seeded(seed), quiet():
        snapshot = report.run(
            ev.Dataset.from_pandas(cur[columns], data_definition=definition),
            ev.Dataset.from_pandas(ref[columns], data_definition=definition),
        )
    return snapshot, ev.version


def _read_snapshot(snapshot_dict: dict[str, Any], columns: list[str]) -> tuple[dict[str, float], dict[str, bool], float]:
    """Per-column scores and drift verdicts (Evidently's own tests), and the share of drifted columns."""
    scores: dict[str, float] = {}
    share = math.nan
    for metric in snapshot_dict["metrics"]:
        config = metric.get("config", {})
        if config.get("type") == "evidently:metric_v2:ValueDrift":
            scores[config["column"]] = float(metric["value"])
        elif config.get("type") == "evidently:metric_v2:DriftedColumnsCount":
            share = float(metric["value"]["share"])
    drifted: dict[str, bool] = {}
    for test in snapshot_dict["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            status = str(getattr(test["status"], "value", test["status"]))
            if status not in ("SUCCESS", "FAIL"):
                raise RuntimeError(f"Evidently could not test column {params['column']!r}: {status} ({test.get('description')})")
            drifted[params["column"]] = status == "FAIL"
    lost = [c for c in columns if c not in scores or c not in drifted]
    if lost or math.isnan(share):
        raise RuntimeError(f"Evidently's report lacks the drift of {lost or 'the share of drifted columns'}")
    return scores, drifted, share


# ---------------------------------------------------------------- the public functions
def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out_dir: Path,
    cfg: DriftConfig,
    *,
    check: str,
    title: str | None = None,
    reference_name: str = "reference",
    current_name: str = "current",
    columns: Sequence[str] | None = None,
    dedupe_on: str | None = "doc_id",
) -> DriftResult:
    """Compare two sets of documents (columns doc_id, text, label, group, date, ... as in train.tsv,
    job.tsv or a corpus's docs.parquet) under the config's `check`, and write the report folder
    `out_dir` (replaced whole, atomically). `columns` restricts the check's columns to these."""
    chk = cfg.check(check)
    rules = cfg.rules(check)
    if columns is not None:
        unknown = [c for c in columns if c not in rules]
        if unknown:
            raise DriftInputError(f"columns {unknown} are not compared by check {check!r} (it compares {list(rules)})")
        rules = {c: rules[c] for c in columns}
    title = title or f"{check}: {reference_name} vs {current_name}"
    n_ref_in, n_cur_in = len(reference), len(current)
    ref, ref_dups = _prepare(reference, f"{title} ({reference_name})", cfg, dedupe_on)
    cur, cur_dups = _prepare(current, f"{title} ({current_name})", cfg, dedupe_on)
    ref_x, ref_missing = _features(ref, rules, cfg.vocabulary)
    cur_x, cur_missing = _features(cur, rules, cfg.vocabulary)
    skipped: dict[str, str] = {}
    for column in rules:
        why = [f"{side}: {m[column]}" for side, m in ((reference_name, ref_missing), (current_name, cur_missing)) if column in m]
        if why:
            skipped[column] = "; ".join(why)
    compared = {c: r for c, r in rules.items() if c not in skipped}
    if not compared:
        raise DriftInputError(f"{title}: none of the columns {list(rules)} can be compared ({skipped})")

    snapshot, version = _run_evidently(ref_x, cur_x, compared, chk.drift_share, cfg.seed)
    scores, drifted, share = _read_snapshot(snapshot.dict(), list(compared))
    from ._evidently import two_sample_p_value

    gates = {c: two_sample_p_value(ref_x[c], cur_x[c], r.type) for c, r in compared.items() if r.p_value is not None}
    results = [
        ColumnDrift(
            column=c,
            type=r.type,
            method=r.method,
            statistic=r.statistic,
            score=scores[c],
            threshold=r.threshold,
            drifted=drifted[c],
            reference_summary=_summary(ref_x[c], r),
            current_summary=_summary(cur_x[c], r),
            p_value=gates.get(c),
            p_value_threshold=r.p_value,
        )
        for c, r in compared.items()
    ]
    dataset_drift = share >= chk.drift_share
    out_dir = Path(out_dir)
    alerts = []
    for col in results:
        if col.drifted:
            alerts.append(
                Alert(
                    severity=compared[col.column].severity or chk.column_severity,
                    check=check,
                    title=title,
                    reference=reference_name,
                    current=current_name,
                    scope="column",
                    column=col.column,
                    method=col.method,
                    statistic=col.statistic,
                    value=col.score,
                    threshold=col.threshold,
                    p_value=col.p_value,
                    p_value_threshold=col.p_value_threshold,
                    message=f"{col.column}: {col.describe()} ({reference_name}: {col.reference_summary}; {current_name}: {col.current_summary})",
                    report=str(out_dir / "report.html"),
                )
            )
    if dataset_drift:
        alerts.insert(
            0,
            Alert(
                severity=chk.severity,
                check=check,
                title=title,
                reference=reference_name,
                current=current_name,
                scope="report",
                column="",
                method="drift_share",
                statistic="share_of_drifted_columns",
                value=share,
                threshold=chk.drift_share,
                p_value=None,
                p_value_threshold=None,
                message=f"{title}: {sum(c.drifted for c in results)} of {len(results)} columns drifted ({share:.0%} >= {chk.drift_share:.0%}): "
                + ", ".join(c.column for c in results if c.drifted),
                report=str(out_dir / "report.html"),
            ),
        )
    result = DriftResult(
        check=check,
        title=title,
        reference_name=reference_name,
        current_name=current_name,
        columns=results,
        skipped=skipped,
        drift_share=share,
        drift_share_threshold=chk.drift_share,
        dataset_drift=dataset_drift,
        alerts=alerts,
        n_reference=len(ref),
        n_current=len(cur),
        n_reference_input=n_ref_in,
        n_current_input=n_cur_in,
        duplicates_dropped={reference_name: ref_dups, current_name: cur_dups},
        seed=cfg.seed,
        config_fingerprint=cfg.fingerprint(),
        evidently_version=version,
        vocabulary=load_vocabulary(cfg.vocabulary).source if any(c in DESCRIPTORS for c in compared) else "",
        out_dir=out_dir,
        files={},
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    _write(result, snapshot, ref_x, cur_x, compared, cfg.plot_columns(check), chk.description)
    return result


def prediction_drift(
    reference_scores: Sequence[float] | np.ndarray | None,
    current_scores: Sequence[float] | np.ndarray | None,
    out_dir: Path,
    cfg: DriftConfig,
    *,
    reference_labels: Sequence[str] | np.ndarray | None = None,
    current_labels: Sequence[str] | np.ndarray | None = None,
    check: str = "prediction",
    title: str | None = None,
    reference_name: str = "job",
    current_name: str = "other",
) -> DriftResult:
    """A model's scores (e.g. the probability of its predicted label) and/or predicted labels on
    one set vs another, with the check's two-sample tests (by default K-S on `score`, chi-square on
    `predicted_label`). Scores or labels may be left out, on both sides together."""

    def frame(scores: Any, labels: Any, side: str) -> pd.DataFrame:
        data: dict[str, Any] = {}
        if scores is not None:
            data["score"] = np.asarray(scores, dtype=float)
        if labels is not None:
            data["predicted_label"] = np.asarray(labels, dtype=object).astype(str)
        if not data:
            raise DriftInputError(f"{side}: neither scores nor predicted labels")
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise DriftInputError(f"{side}: {len(data['score'])} scores but {len(data['predicted_label'])} predicted labels")
        return pd.DataFrame(data)

    ref, cur = frame(reference_scores, reference_labels, reference_name), frame(current_scores, current_labels, current_name)
    if set(ref.columns) != set(cur.columns):
        raise DriftInputError(
            f"{reference_name} gives {list(ref.columns)}, {current_name} gives {list(cur.columns)}: give the same on both sides"
        )
    columns = [c for c in cfg.rules(check) if c in ref.columns]
    return compare(
        ref,
        cur,
        out_dir,
        cfg,
        check=check,
        title=title or f"predictions: {reference_name} vs {current_name}",
        reference_name=reference_name,
        current_name=current_name,
        columns=columns or None,
        dedupe_on=None,
    )


def load_result(out_dir: Path) -> DriftResult:
    """The DriftResult of a report folder written by compare (its summary.json)."""
    out_dir = Path(out_dir)
    return DriftResult.from_dict(json.loads((out_dir / "summary.json").read_text(encoding="utf-8")), out_dir)


def write_alerts(results: Iterable[DriftResult], out_dir: Path) -> tuple[Path, Path]:
    """alerts.json ({n_alerts, by_severity, alerts}) and alerts.csv of every alert of `results`,
    ERROR first, written atomically into `out_dir`. Returns their paths."""
    alerts = [a for r in results for a in r.alerts]
    alerts.sort(key=lambda a: (a.severity != "ERROR", a.check, a.title, a.scope != "report", a.column))
    return _write_alerts(alerts, Path(out_dir))


def _write_alerts(alerts: list[Alert], out_dir: Path) -> tuple[Path, Path]:
    by_severity = {level: sum(a.severity == level for a in alerts) for level in ("ERROR", "WARN")}
    json_path = write_json(
        out_dir / "alerts.json", {"n_alerts": len(alerts), "by_severity": by_severity, "alerts": [a.to_dict() for a in alerts]}
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(ALERT_FIELDS), lineterminator="\n")
    writer.writeheader()
    for alert in alerts:
        writer.writerow(alert.to_dict())
    csv_path = write_text(out_dir / "alerts.csv", buffer.getvalue())
    return json_path, csv_path


# ---------------------------------------------------------------- writing a report folder
def _write(
    result: DriftResult,
    snapshot: Any,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    rules: dict[str, ColumnRule],
    plots: list[str],
    description: str,
) -> None:
    from . import plots as drawing
    from ._evidently import quiet

    final = result.out_dir
    names = (result.reference_name, result.current_name)
    with atomic_dir(final) as tmp:
        files = {
            "html": "report.html",
            "json": "report.json",
            "summary": "summary.json",
            "alerts_json": "alerts.json",
            "alerts_csv": "alerts.csv",
        }
        by_column = {c.column: c for c in result.columns}
        for column in plots:
            if column not in by_column:
                continue
            col = by_column[column]
            draw = drawing.numerical_png if rules[column].type == "numerical" else drawing.categorical_png
            target = tmp / f"{_safe(column)}.png"
            draw(ref[column], cur[column], target, f"{column}: {names[0]} vs {names[1]}", names, col.describe())
            files[f"png:{column}"] = target.name
        result.files = files
        with quiet():
            snapshot_json, page = snapshot.json(), snapshot.get_html_str(as_iframe=False)
        write_text(tmp / "report.json", snapshot_json)
        write_text(tmp / "report.html", _with_header(page, result, description))
        _write_alerts(result.alerts, tmp)
        write_json(tmp / "summary.json", result.to_dict())


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "column"


def _with_header(page: str, result: DriftResult, description: str) -> str:
    """Evidently's page with a pepm header above its dashboard (and a <title>)."""
    e = html.escape
    verdict_color = {"ERROR": "#c0392b", "WARN": "#d68910", None: "#1e8449"}[result.severity]
    verdict = (
        f"{len(result.drifted_columns)} of {len(result.columns)} columns drifted ({result.drift_share:.0%}; "
        f"the report drifts from {result.drift_share_threshold:.0%}): "
        + ("DRIFT" if result.dataset_drift else "no drift as a whole")
        + (f" — {result.severity}" if result.severity else " — OK")
    )
    rows = "".join(
        f"<tr style='color:{'#c0392b' if c.drifted else 'inherit'}'><td>{e(c.column)}</td><td>{e(c.type)}</td>"
        f"<td>{e(METHOD_NAMES.get(c.method, c.method))}</td><td>{c.score:.4g}</td><td>{c.threshold:g}</td>"
        f"<td>{'' if c.p_value is None else f'{c.p_value:.2g} (drift if < {c.p_value_threshold:g})'}</td>"
        f"<td>{'yes' if c.drifted else 'no'}</td><td>{e(c.reference_summary)}</td><td>{e(c.current_summary)}</td></tr>"
        for c in result.columns
    )
    skipped = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in result.skipped.items())
    images = "".join(
        f"<a href='{e(name)}'><img src='{e(name)}' alt='{e(col)}' style='max-height:260px;margin:4px;border:1px solid #ddd'></a>"
        for col, name in ((k.split(":", 1)[1], v) for k, v in result.files.items() if k.startswith("png:"))
    )
    sizes = (
        f"{e(result.reference_name)}: {result.n_reference} documents compared ({result.n_reference_input} given); "
        f"{e(result.current_name)}: {result.n_current} ({result.n_current_input} given)"
    )
    dups = ", ".join(f"{e(k)}: {v}" for k, v in result.duplicates_dropped.items() if v)
    header = f"""
<div id="pepm-drift-header" style="font-family:sans-serif;max-width:1200px;margin:16px auto;padding:12px 20px;border:1px solid #ccc;border-radius:6px">
<h1 style="font-size:22px;margin:4px 0">{e(result.title)}</h1>
<p style="margin:4px 0;color:#555">check <b>{e(result.check)}</b>{" — " + e(description) if description else ""}</p>
<p style="margin:4px 0">{sizes}{" — duplicate doc_id dropped: " + dups if dups else ""}</p>
<p style="margin:8px 0;font-weight:bold;color:{verdict_color}">{e(verdict)}</p>
<table style="border-collapse:collapse;font-size:13px" cellpadding="4" border="1">
<tr><th>column</th><th>type</th><th>test</th><th>score</th><th>threshold</th><th>two-sample p</th><th>drift</th>
<th>{e(result.reference_name)}</th><th>{e(result.current_name)}</th></tr>{rows}</table>
{"<p>not compared:</p><ul>" + skipped + "</ul>" if skipped else ""}
<div>{images}</div>
<p style="font-size:12px;color:#777">pepm drift report — seed {result.seed}, config {e(result.config_fingerprint)},
Evidently {e(result.evidently_version)}{", vocabulary " + e(result.vocabulary) if result.vocabulary else ""}, {e(result.created)}.
Evidently's own report follows (its "current" is {e(result.current_name)}, its "reference" {e(result.reference_name)}).</p>
</div>"""
    page = page.replace("<head>", f"<head>\n<title>{e(result.title)}</title>", 1)
    at = page.find("<body>")
    return page[: at + len("<body>")] + header + page[at + len("<body>") :] if at >= 0 else header + page
