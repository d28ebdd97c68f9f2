"""An experiment's analysis hooks (spec §9): metrics_global.tsv, the `curves` plots and report.md.

Everything here reads what the sweep left in superior/<exp_id>/ (plan.tsv, runs.tsv and the
summary.json of each run that ended `success`) and writes atomically beside it:

    metrics_global.tsv              one row per (run, model, evaluated dataset) of every success run
    plots/<metric>__vs__<x>.png     a `curves` hook: mean ± sd over repeats, one line per group
    plots/<metric>__vs__<x>.tsv     the numbers that plot draws (group, x, mean, sd, n, runs)
    report.md                       a `report_markdown` hook (spec §9.2)

Scores are job-set scores unless named valid_*; a choice among the values of an axis (a
hyperparameter grid) is made on validation only, never on the job set.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_path, write_text
from ..make_vars import MAKE_VARS
from .spec import ABORTED_OOM, CANCELED, FAILED, FINAL, NOT_RUN, OOM, PRUNED, SKIPPED_OOM, SUCCESS

METRICS_GLOBAL = "metrics_global.tsv"
PLOTS = "plots"
PRIMARY = "macro_f1"  # what "best" means for a classifier; families without it rank on their own first metric
FALLBACK_METRICS = ("accuracy", "ari", "nmi", "v_measure", "homogeneity", "completeness", "silhouette")
GROUP_COLUMNS = ("family", "model_id", "dataset_id", "view", "eval_dataset_id")
TOP_PER_SECTION = 5

# the fixed columns of metrics_global.tsv, in order; axis.*, make.*, the metrics, valid_* and param.* come between
_HEAD = ["run_id", "combo", "repeat_index", "seed", "status"]
_IDS = ["dataset_id", "view", "family", "model_id", "eval_dataset_id", "cross"]
_FACTS = ["n_job", "n_train_used", "train_seconds", "duration_s", "max_rss_mb", "quality_ok", "quality_flags"]
_RESERVED = set(_HEAD + _IDS + _FACTS)


class HookError(RuntimeError):
    """Some hooks failed; the others ran and wrote their files (`result`, as run_hooks returns it)."""

    def __init__(self, errors: list[str], result: dict[str, Any]):
        super().__init__("analysis hooks failed: " + "; ".join(errors))
        self.errors = errors
        self.result = result


# ---------------------------------------------------------------------------------------------
# reading the sweep's files


def _read_tsv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def _json_cell(text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def _int(value: Any) -> int | None:
    x = _number(value)
    return int(x) if x is not None else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in ("true", "1", "yes") else False if text in ("false", "0", "no") else None


def _flags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    return [f.strip() for f in str(value or "").split(",") if f.strip()]


class _Sweep:
    """plan.tsv, runs.tsv and the summaries of the success runs of one experiment folder."""

    def __init__(self, exp_root: Path, root: Path):
        self.exp_root, self.root = Path(exp_root), Path(root)
        self.exp_id = self.exp_root.name
        self.plan = _read_tsv(self.exp_root / "plan.tsv")
        self.runs = _read_tsv(self.exp_root / "runs.tsv")
        if self.runs.empty and not self.plan.empty:  # planned, nothing submitted yet
            self.runs = pd.DataFrame({"run_id": self.plan["run_id"], "status": "planned", "combo": self.plan["combo"]})
        plan_pos = {r: i for i, r in enumerate(self.plan.get("run_id", []))}
        if not self.runs.empty:
            order = sorted(range(len(self.runs)), key=lambda i: (plan_pos.get(self.runs["run_id"].iat[i], len(plan_pos)), i))
            self.runs = self.runs.iloc[order].reset_index(drop=True)
        self.plan_rows = {r["run_id"]: r for r in self.plan.to_dict("records")}
        self.summaries: dict[str, dict[str, Any]] = {}
        self.unreadable: dict[str, str] = {}  # success run -> why its summary could not be read
        for r in self.runs.to_dict("records"):
            if r.get("status") != SUCCESS:
                continue
            rel = r.get("metrics_path", "")
            path = self.root / rel if rel else self.exp_root / "runs" / r["run_id"] / "summary.json"
            try:
                self.summaries[r["run_id"]] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                self.unreadable[r["run_id"]] = f"summary {rel or path.name} unreadable: {type(exc).__name__}"

    def axis_values(self, run_id: str) -> dict[str, str]:
        s = self.summaries.get(run_id)
        if s and s.get("axis_values"):
            return {k: str(v) for k, v in s["axis_values"].items()}
        row = self.plan_rows.get(run_id) or {}
        values = _json_cell(row.get("axis_values_json", ""))
        if not values:
            match = self.runs[self.runs["run_id"] == run_id]
            values = _json_cell(match["axis_values_json"].iat[0]) if "axis_values_json" in match and len(match) else {}
        return {k: str(v) for k, v in values.items()}

    def axis_order(self) -> dict[str, list[str]]:
        """axis name -> its labels in plan order (runs.tsv order where there is no plan)."""
        order: dict[str, list[str]] = {}
        for run_id in list(self.plan.get("run_id", [])) or list(self.runs.get("run_id", [])):
            for name, label in self.axis_values(run_id).items():
                labels = order.setdefault(name, [])
                if label not in labels:
                    labels.append(label)
        return order


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = ",".join(str(v) for v in value)
    else:
        out[prefix] = value


def _metric_column(name: str) -> str:
    return f"metric.{name}" if name in _RESERVED or "." in name else name


def _table(sweep: _Sweep) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for r in sweep.runs.to_dict("records"):
        s = sweep.summaries.get(r["run_id"])
        if s is None:
            continue
        plan_row = sweep.plan_rows.get(r["run_id"]) or {}
        params = s.get("params") or {}
        make_vars = s.get("make_vars") or _json_cell(plan_row.get("make_vars_json", ""))
        run_part: dict[str, Any] = {
            "run_id": r["run_id"],
            "combo": s.get("combo") or r.get("combo", ""),
            "repeat_index": _int(s.get("repeat_index", plan_row.get("repeat_index"))),
            "seed": _int(s.get("seed", r.get("seed"))),
            "status": SUCCESS,
        }
        run_part.update({f"axis.{k}": v for k, v in sweep.axis_values(r["run_id"]).items()})
        run_part.update({f"make.{k}": str(v) for k, v in make_vars.items()})
        param_part: dict[str, Any] = {}
        _flatten("param", params, param_part)
        quality_ok = s.get("quality_ok") if "quality_ok" in s else _bool(r.get("quality_ok"))
        flags = _flags(s.get("quality_flags") if "quality_flags" in s else r.get("quality_flags"))
        for m in s.get("models") or []:
            dataset_id = m.get("dataset_id") or params.get("dataset_id", "")
            eval_id = m.get("eval_dataset_id") or dataset_id
            row = dict(run_part)
            row.update(
                {
                    "dataset_id": dataset_id,
                    "view": m.get("view") or params.get("view", ""),
                    "family": m.get("family", ""),
                    "model_id": m.get("model_id", ""),
                    "eval_dataset_id": eval_id,
                    "cross": eval_id != dataset_id,
                }
            )
            row.update({_metric_column(k): float(v) for k, v in (m.get("metrics") or {}).items() if _number(v) is not None})
            row.update({f"valid_{k}": float(v) for k, v in (m.get("validation") or {}).items() if _number(v) is not None})
            row.update(
                {
                    "n_job": _int(m.get("n_job")),
                    "n_train_used": _int(m.get("n_train_used")),
                    "train_seconds": _number(m.get("train_seconds")),
                    "duration_s": _number(s.get("duration_s", r.get("duration_s"))),
                    "max_rss_mb": _number(s.get("max_rss_mb", r.get("max_rss_mb"))),
                    "quality_ok": quality_ok,
                    "quality_flags": ",".join(flags),
                }
            )
            row.update(param_part)
            rows.append(row)
    table = pd.DataFrame(rows)
    seen = list(dict.fromkeys(c for row in rows for c in row))  # first-seen order
    axes = [c for c in seen if c.startswith("axis.")]
    makes = [c for c in seen if c.startswith("make.")]
    params = [c for c in seen if c.startswith("param.")]
    valids = [c for c in seen if c.startswith("valid_")]
    metric_cols = [c for c in seen if c not in _RESERVED and c not in axes + makes + params + valids]
    columns = _HEAD + axes + makes + _IDS + metric_cols + valids + _FACTS + params
    table = table.reindex(columns=columns)
    for col in ("repeat_index", "seed", "n_job", "n_train_used"):
        table[col] = table[col].astype("Int64")
    table.attrs["axis_order"] = sweep.axis_order()
    table.attrs["exp_id"] = sweep.exp_id
    return table


def metrics_global(exp_root: Path, root: Path) -> pd.DataFrame:
    """One row per (run, model, evaluated dataset) of every success run, in plan order: run_id, combo,
    repeat_index, seed, status, axis.<name>, make.<NAME>, dataset_id, view, family, model_id,
    eval_dataset_id, cross, each numeric job metric, valid_<metric>, n_job, n_train_used,
    train_seconds, duration_s, max_rss_mb, quality_ok, quality_flags, then param.<key> (the
    resolved parameters, nested keys dotted: what a Make variable maps onto when it was not set)."""
    return _table(_Sweep(exp_root, root))


def write_metrics_global(exp_root: Path, root: Path) -> pd.DataFrame:
    """metrics_global(...) written to superior/<exp_id>/metrics_global.tsv (atomically); returns the table."""
    table = metrics_global(exp_root, root)
    with atomic_path(Path(exp_root) / METRICS_GLOBAL) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return table


# ---------------------------------------------------------------------------------------------
# curves


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _group_column(table: pd.DataFrame, name: str) -> str:
    for col in (name, f"axis.{name}", f"make.{name}", f"param.{name}"):
        if col in table.columns:
            return col
    if name in MAKE_VARS and f"param.{MAKE_VARS[name][0]}" in table.columns:
        return f"param.{MAKE_VARS[name][0]}"
    if name in GROUP_COLUMNS:
        return name  # an empty table has them all; a missing one is an empty column
    raise ValueError(
        f"group_by {name!r}: not a column of metrics_global (family, model_id, dataset_id, view, eval_dataset_id, an axis name)"
    )


def _x_values(table: pd.DataFrame, x_axis: str) -> tuple[pd.Series, str, str]:
    """(x value of each row, "numeric" | "categorical", axis label) for a Make variable, an axis, a column."""
    if x_axis in MAKE_VARS:
        key = MAKE_VARS[x_axis][0]
        make = table[f"make.{x_axis}"] if f"make.{x_axis}" in table else pd.Series(np.nan, index=table.index)
        param = table[f"param.{key}"] if f"param.{key}" in table else pd.Series(np.nan, index=table.index)
        set_ = make.notna() & (make.astype(str).str.strip() != "")
        values, label = make.where(set_, param), f"{x_axis} ({key})"
    elif f"axis.{x_axis}" in table:
        return table[f"axis.{x_axis}"], "categorical", f"axis {x_axis}"
    elif x_axis in table or f"param.{x_axis}" in table:
        col = x_axis if x_axis in table else f"param.{x_axis}"
        values, label = table[col], x_axis
    elif table.empty:
        return pd.Series(dtype=object), "categorical", x_axis
    else:
        raise ValueError(f"x_axis {x_axis!r}: neither a Make variable ({', '.join(MAKE_VARS)}), an axis nor a column of metrics_global")
    present = values.notna() & (values.astype(str).str.strip() != "")
    numeric = pd.to_numeric(values.where(present), errors="coerce")
    if present.any() and numeric[present].notna().all():
        return numeric, "numeric", label
    return values.where(present), "categorical", label


def _label(col: str, value: Any) -> str:
    if col in ("family", "model_id", "dataset_id", "view"):
        return str(value)
    if col == "eval_dataset_id":
        return f"eval {value}"
    return f"{col.split('.', 1)[-1]}={value}"


def _fmt_x(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, int, np.floating, np.integer)) else str(value)


def curve_data(
    table: pd.DataFrame, metric: str, x_axis: str, group_by: list[str], axis_order: dict[str, list[str]] | None = None
) -> pd.DataFrame:
    """What the `metric` vs `x_axis` plot draws: one row per (group, x): the group's columns, group
    (its legend label), x, mean, sd (sample sd over the rows, NaN for one), n and run_ids; groups
    and categorical x in plan order (axis labels; other values in order of appearance), numeric x
    sorted. Rows without the metric (a clustering model has no macro_f1) are left out, and so are
    cross-dataset rows unless eval_dataset_id is in group_by or is the x axis. attrs: kind,
    x_label, x_order, pooled (the other varying columns the means pool over), dropped_cross and
    dropped_no_x (rows with the metric left out: cross-dataset, without an x value), group_by."""
    axis_order = axis_order if axis_order is not None else table.attrs.get("axis_order", {})
    cols = [_group_column(table, g) for g in group_by]
    x, kind, x_label = _x_values(table, x_axis)
    data = table.assign(_x=x)
    dropped_cross = 0
    if "eval_dataset_id" not in cols and x_axis != "eval_dataset_id" and "cross" in data and not data.empty:
        cross = data["cross"].map(_bool).fillna(False).astype(bool)
        dropped_cross = int((cross & data.get(metric, pd.Series(np.nan, index=data.index)).notna()).sum())
        data = data[~cross]
    if metric not in data:
        data = data.iloc[0:0].assign(**{metric: pd.Series(dtype=float)})
    dropped_no_x = int((data[metric].notna() & data["_x"].isna()).sum())
    data = data[data[metric].notna() & data["_x"].notna()]
    data = data.assign(_m=pd.to_numeric(data[metric], errors="coerce")).dropna(subset=["_m"]).copy()
    for col in cols:
        data[col] = data[col].fillna("").astype(str)
    keys = [*cols, "_x"]
    pooled = []
    candidates = [c for c in data.columns if c.startswith("axis.")] + ["model_id", "family", "dataset_id", "view"]
    for col in candidates:
        if col in cols or col == f"axis.{x_axis}" or col not in data or data.empty:
            continue
        if (data.groupby(keys, dropna=False)[col].nunique(dropna=False) > 1).any():
            pooled.append(col.split(".", 1)[-1])
    rows = []
    groups = list(dict.fromkeys(tuple(r) for r in data[cols].itertuples(index=False, name=None))) if cols else [()]
    value_rank = {}  # per group column: an axis's labels in plan order, other values in order of appearance
    for col in cols:
        seen = list(dict.fromkeys(data[col]))
        planned = [v for v in axis_order.get(col.split(".", 1)[1], []) if v in seen] if col.startswith("axis.") else []
        value_rank[col] = {v: i for i, v in enumerate(planned + [v for v in seen if v not in planned])}
    groups.sort(key=lambda g: tuple(value_rank[c][v] for c, v in zip(cols, g)))
    for g in groups:
        part = data[(data[cols] == list(g)).all(axis=1)] if cols else data
        for xv, cell in part.groupby("_x", sort=False):
            values = cell["_m"].astype(float)
            rows.append(
                {
                    **dict(zip(cols, g)),
                    "group": ", ".join(_label(c, v) for c, v in zip(cols, g)) or "all runs",
                    "x": xv,
                    "mean": float(values.mean()),
                    "sd": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                    "n": len(values),
                    "run_ids": ",".join(dict.fromkeys(cell["run_id"])),
                }
            )
    out = pd.DataFrame(rows, columns=[*cols, "group", "x", "mean", "sd", "n", "run_ids"])
    if not out.empty:
        if kind == "numeric":
            rank = {v: i for i, v in enumerate(sorted(out["x"].unique()))}
        else:
            planned = axis_order.get(x_axis, [])
            seen = list(dict.fromkeys(out["x"]))
            ordered = [v for v in planned if v in seen] + [v for v in seen if v not in planned]
            rank = {v: i for i, v in enumerate(ordered)}
        group_rank = {g: i for i, g in enumerate(dict.fromkeys(out["group"]))}
        out = out.assign(_g=out["group"].map(group_rank), _r=out["x"].map(rank))
        out = out.sort_values(["_g", "_r"], kind="stable").drop(columns=["_g", "_r"]).reset_index(drop=True)
        out.attrs["x_order"] = sorted(rank, key=rank.get)
    out.attrs.update(
        {
            "kind": kind,
            "x_label": x_label,
            "pooled": pooled,
            "dropped_cross": dropped_cross,
            "dropped_no_x": dropped_no_x,
            "group_by": list(group_by),
        }
    )
    return out


def _n_text(ns: pd.Series) -> str:
    lo, hi = int(ns.min()), int(ns.max())
    return f"n={lo}" if lo == hi else f"n={lo}–{hi}"


def _plot_curve(data: pd.DataFrame, metric: str, x_axis: str, exp_id: str, target: Path) -> None:
    plt = _plt()
    kind, x_label = data.attrs["kind"], data.attrs["x_label"]
    notes = ["mean ± sd over repeats (error bar: sd; none for n=1)"]
    if data["group"].nunique() > 1 and data["x"].nunique() > 1:
        notes.append("groups shifted slightly sideways so their error bars do not overlap")
    if data.attrs["pooled"]:
        notes.append("pooled over: " + ", ".join(data.attrs["pooled"]))
    if data.attrs["dropped_cross"]:
        notes.append(f"in-domain only ({data.attrs['dropped_cross']} cross-dataset rows left out)")
    if data.attrs["dropped_no_x"]:
        notes.append(f"{data.attrs['dropped_no_x']} rows without a {x_axis} value left out")
    y_label = f"{metric} (validation)" if metric.startswith("valid_") else f"{metric} (job set)"
    xs = data.attrs.get("x_order") or list(dict.fromkeys(data["x"]))
    groups = list(dict.fromkeys(data["group"]))
    colors = plt.get_cmap("tab10").colors
    markers = "osD^vP*Xh<>"
    style = lambda i: {"color": colors[i % len(colors)], "marker": markers[i // len(colors) % len(markers)]}
    if data.empty:
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
        ax.text(
            0.5, 0.5, f"no success run has {metric!r} and a {x_axis} value", ha="center", va="center", fontsize=11, transform=ax.transAxes
        )
        ax.set_axis_off()
        ax.set_title(f"{exp_id}: {metric} vs {x_axis}", fontsize=11)
    elif len(xs) == 1:  # one x value: no curve to draw; the groups one per line, the value in the title
        fig, ax = plt.subplots(figsize=(8.5, 1.6 + 0.42 * len(data)))
        for i, r in enumerate(data.itertuples(index=False)):
            ax.errorbar([r.mean], [i], xerr=None if np.isnan(r.sd) else [r.sd], linestyle="none", capsize=4, ms=7, **style(i))
            ax.annotate(
                f"{r.mean:.3f}",
                (r.mean + (0 if np.isnan(r.sd) else r.sd), i),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.set_yticks(range(len(data)), [f"{g} (n={n})" for g, n in zip(data["group"], data["n"])], fontsize=8)
        ax.set_ylim(len(data) - 0.5, -0.5)  # first group on top
        ax.set_xlabel(y_label)
        if data.attrs["group_by"]:
            ax.set_ylabel(", ".join(data.attrs["group_by"]))
        ax.set_title(
            f"{exp_id}: {metric} at {x_label} = {_fmt_x(xs[0])}\n(the only {x_axis} value among the success runs: no curve)", fontsize=11
        )
    else:
        fig, ax = plt.subplots(figsize=(9, 5.2))
        rank = {v: i for i, v in enumerate(xs)}
        if kind == "categorical":  # dodged a little, so the error bars of groups at one x do not overlap
            step, line = min(0.3, 0.08 * len(groups)) / max(1, len(groups) - 1), {"linestyle": ":", "linewidth": 1}
        else:  # the same, by a small fraction of the gap between two x values (the ticks stay at the true values)
            step = 0.16 * float(np.diff(sorted(xs)).min()) / max(1, len(groups)) if len(groups) > 1 else 0.0
            line = {"linestyle": "-", "linewidth": 1.6}
        for gi, g in enumerate(groups):
            part = data[data["group"] == g]
            offset = (gi - (len(groups) - 1) / 2) * step
            px = [(rank[v] if kind == "categorical" else v) + offset for v in part["x"]]
            ax.errorbar(
                px, part["mean"], yerr=part["sd"].fillna(0.0), capsize=4, ms=6, label=f"{g} ({_n_text(part['n'])})", **line, **style(gi)
            )
        if kind == "categorical":
            long = max(len(str(v)) for v in xs) > 10
            ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=20 if long else 0, ha="right" if long else "center")
            ax.set_xlim(-0.5, len(xs) - 0.5)
        elif len(xs) <= 12:
            ax.set_xticks(sorted(xs), [_fmt_x(v) for v in sorted(xs)])
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.set_title(f"{exp_id}: {metric} vs {x_axis}", fontsize=11)
        title = ", ".join(data.attrs["group_by"]) or None
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title=title, title_fontsize=8)
    if not data.empty:
        ax.grid(True, alpha=0.3)
        lo = float((data["mean"] - data["sd"].fillna(0)).min())
        hi = float((data["mean"] + data["sd"].fillna(0)).max())
        pad = max(0.02, 0.08 * (hi - lo))
        (ax.set_xlim if len(xs) == 1 else ax.set_ylim)(lo - pad, hi + 3 * pad if len(xs) == 1 else hi + pad)  # room for the labels
        fig.text(0.01, 0.005, "; ".join(notes), fontsize=7.5, color="0.35", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def curves(
    table: pd.DataFrame,
    metrics: list[str],
    x_axis: str,
    group_by: list[str],
    out_dir: Path,
    exp_id: str | None = None,
    axis_order: dict[str, list[str]] | None = None,
) -> list[Path]:
    """For each metric, out_dir/<metric>__vs__<x_axis>.png (and .tsv: the numbers it draws,
    curve_data's table). x_axis: a Make variable (make.<NAME>, else the parameter it maps onto),
    an axis name (its labels, categorical, in plan order) or a column; group_by: family,
    model_id, dataset_id, view, eval_dataset_id or an axis name. A metric that no row has gives a
    plot that says so."""
    out_dir = Path(out_dir)
    exp_id = exp_id or table.attrs.get("exp_id") or out_dir.parent.name
    paths = []
    for metric in metrics:
        data = curve_data(table, metric, x_axis, group_by, axis_order)
        png = out_dir / f"{metric}__vs__{x_axis}.png"
        with atomic_path(png.with_suffix(".tsv")) as tmp:
            data.to_csv(tmp, sep="\t", index=False)
        _plot_curve(data, metric, x_axis, exp_id, png)
        paths.append(png)
    return paths


# ---------------------------------------------------------------------------------------------
# report.md


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _score(mean: float, sd: float, n: int) -> str:
    return f"{mean:.4f} ± {sd:.4f} (n={n})" if n > 1 and not np.isnan(sd) else f"{mean:.4f} (n={n})"


def _duration(seconds: float | None) -> str:
    if seconds is None or np.isnan(seconds):
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _seeds(seeds: list[int]) -> str:
    seeds = sorted(set(seeds))
    if not seeds:
        return "—"
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]} ({len(seeds)} seeds)"
    return ", ".join(str(s) for s in seeds)


def _primary(rows: pd.DataFrame) -> str | None:
    """The metric a family's rows rank on: macro_f1, else the first of FALLBACK_METRICS they have."""
    for m in (PRIMARY, *FALLBACK_METRICS):
        if m in rows and rows[m].notna().any():
            return m
    return None


def _by_combo(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """mean ± sd of `metric` over the repeats of each (combo, model, dataset, view, evaluated dataset), best first."""
    keys = ["combo", "family", "model_id", "dataset_id", "view", "eval_dataset_id"]
    rows = rows[rows[metric].notna()]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "mean", "sd", "n", "run_ids"])
    agg = rows.groupby(keys, sort=False, dropna=False).agg(
        mean=(metric, "mean"),
        sd=(metric, lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
        n=(metric, "size"),
        run_ids=("run_id", lambda v: ", ".join(v)),
    )
    return agg.reset_index().sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)


def _ranking_lines(rows: pd.DataFrame, metric: str) -> list[str]:
    agg = _by_combo(rows, metric)
    lines = [f"| rank | combo | model (family) | dataset / view | {metric}: mean ± sd over repeats | runs |", "|---|---|---|---|---|---|"]
    for rank, r in enumerate(agg.head(TOP_PER_SECTION).itertuples(index=False), start=1):
        lines.append(
            f"| {rank} | {_cell(r.combo)} | {_cell(r.model_id)} ({_cell(r.family)}) | {_cell(r.dataset_id)} / {_cell(r.view)} | "
            f"{_score(r.mean, r.sd, r.n)} | {_cell(r.run_ids)} |"
        )
    if len(agg) > TOP_PER_SECTION:
        lines.append(f"| … | {len(agg) - TOP_PER_SECTION} more in metrics_global.tsv | | | | |")
    return [*lines, ""]


def validation_selection(table: pd.DataFrame, metric: str = PRIMARY) -> pd.DataFrame:
    """For each group of runs that differ only by one axis (same other axis labels, model, dataset,
    view, evaluated dataset), the axis value with the best mean valid_<metric> over repeats, and
    that value's job <metric>; ties go to the value planned first. Only groups where at least two
    values have a validation score. Columns: axis, fixed, family, model_id, dataset_id, view,
    selected, valid_mean, job_mean, job_sd, n, compared (value: mean validation score, …)."""
    valid = f"valid_{metric}"
    columns = ["axis", "fixed", "family", "model_id", "dataset_id", "view", "selected", "valid_mean", "job_mean", "job_sd", "n", "compared"]
    if valid not in table or metric not in table or table[valid].isna().all():
        return pd.DataFrame(columns=columns)
    order = table.attrs.get("axis_order", {})
    data = table[~table["cross"].map(_bool).fillna(False).astype(bool) & table[valid].notna()]
    axes = [c for c in table.columns if c.startswith("axis.")]
    out = []
    for axis in axes:
        name = axis.split(".", 1)[1]
        others = [a for a in axes if a != axis]
        keys = [*others, "family", "model_id", "dataset_id", "view", "eval_dataset_id"]
        for key, part in data.fillna({c: "" for c in keys}).groupby(keys, sort=False):
            by_value = part.groupby(axis, sort=False).agg(
                valid_mean=(valid, "mean"),
                job_mean=(metric, "mean"),
                job_sd=(metric, lambda v: v.std(ddof=1) if len(v) > 1 else np.nan),
                n=(metric, "count"),
            )
            if len(by_value) < 2:
                continue
            planned = order.get(name, [])
            by_value = by_value.assign(_r=[planned.index(v) if v in planned else len(planned) for v in by_value.index])
            by_value = by_value.sort_values("_r", kind="stable")
            best = by_value["valid_mean"].idxmax()  # first maximum: ties go to the value planned first
            k = dict(zip(keys, key))
            out.append(
                {
                    "axis": name,
                    "fixed": ", ".join(f"{a.split('.', 1)[1]}={k[a]}" for a in others) or "—",
                    "family": k["family"],
                    "model_id": k["model_id"],
                    "dataset_id": k["dataset_id"],
                    "view": k["view"],
                    "selected": best,
                    "valid_mean": float(by_value.at[best, "valid_mean"]),
                    "job_mean": float(by_value.at[best, "job_mean"]),
                    "job_sd": float(by_value.at[best, "job_sd"]),
                    "n": int(by_value.at[best, "n"]),
                    "compared": ", ".join(f"{v}: {s:.4f}" for v, s in by_value["valid_mean"].items()),
                }
            )
    return pd.DataFrame(out, columns=columns)


def _rel(target_dir: Path, path: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), target_dir.resolve())).as_posix()


def _run_scores(table: pd.DataFrame, run_id: str) -> str:
    rows = table[(table["run_id"] == run_id) & ~table["cross"].map(_bool).fillna(False).astype(bool)] if not table.empty else table
    parts = []
    for r in rows.to_dict("records"):
        if _number(r.get(PRIMARY)) is not None or _number(r.get("accuracy")) is not None:
            f1, acc = _number(r.get(PRIMARY)), _number(r.get("accuracy"))
            score = f"{f1:.4f}" if f1 is not None else "—"
            score += f" / {acc:.4f}" if acc is not None else " / —"
        else:
            other = [(m, _number(r.get(m))) for m in FALLBACK_METRICS if _number(r.get(m)) is not None][:2]
            score = ", ".join(f"{m} {v:.4f}" for m, v in other) or "—"
        parts.append(f"{r['model_id']}: {score}" if len(rows) > 1 else score)
    return "<br>".join(_cell(p) for p in parts) or "—"


def report_markdown(
    exp_root: Path, root: Path, target: Path, plots: list[Path], description: str = "", hook_errors: list[str] | None = None
) -> Path:
    """superior/<exp_id>/report.md (spec §9.2): header and counts, the runs, the best combinations
    by family and by dataset, the selection on validation, cross-dataset scores, anomalies, plots."""
    sweep = _Sweep(exp_root, root)
    table = _table(sweep)
    target = Path(target) if Path(target).is_absolute() else Path(root) / target
    here = target.parent
    runs = sweep.runs
    statuses = runs["status"].tolist() if "status" in runs else []
    counts = {s: statuses.count(s) for s in [*FINAL, *sorted(set(statuses) - set(FINAL))] if statuses.count(s)}
    durations = [d for d in (_number(v) for v in runs.get("duration_s", [])) if d is not None]
    seeds = [s for s in (_int(v) for v in runs.get("seed", [])) if s is not None] or [
        s for s in (_int(v) for v in sweep.plan.get("seed", [])) if s is not None
    ]
    plan = sweep.plan
    lines = [f"# Experiment {sweep.exp_id}", ""]
    if description.strip():
        lines += [description.strip(), ""]
    lines.append(f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    for key in ("profile", "stage"):
        if key in plan and plan[key].nunique() == 1:
            lines.append(f"- {key}: {plan[key].iat[0]}")
    axis_order = sweep.axis_order()
    if axis_order:
        lines.append("- axes: " + " × ".join(f"{a} ({', '.join(v)})" for a, v in axis_order.items()))
    if "repeat_index" in plan and len(plan):
        lines.append(f"- repeats: {plan['repeat_index'].map(_int).max() + 1}")
    lines.append(f"- runs: {len(runs)} — " + (", ".join(f"{s} {n}" for s, n in counts.items()) or "none"))
    unfinished = len(runs) - sum(n for s, n in counts.items() if s in FINAL)
    if unfinished:
        lines.append(f"- **not finished: {unfinished} run(s) still planned, queued or running**")
    lines.append(
        f"- duration: total {_duration(sum(durations) if durations else None)}, median {_duration(float(np.median(durations)) if durations else None)} per run"
    )
    lines += [f"- seeds: {_seeds(seeds)}", f"- all scores: [{METRICS_GLOBAL}]({_rel(here, sweep.exp_root / METRICS_GLOBAL)})", ""]

    lines += [
        "## Runs",
        "",
        "Scores on the job set, in-domain: macro-F1 / accuracy (clustering models: their own metrics).",
        "",
        "| run | status | combo | seed | duration | max RSS | macro-F1 / accuracy | quality flags | folder |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs.to_dict("records"):
        folder = sweep.exp_root / "runs" / r["run_id"]
        link = f"[{r['run_id']}/]({_rel(here, folder)}/)" if folder.is_dir() else "—"
        rss = _number(r.get("max_rss_mb"))
        flags = ",".join(_flags(r.get("quality_flags"))) or ("quality_ok false" if _bool(r.get("quality_ok")) is False else "")
        scores = _run_scores(table, r["run_id"]) if r.get("status") == SUCCESS else "—"
        lines.append(
            f"| {r['run_id']} | {r.get('status', '')} | {_cell(r.get('combo', ''))} | {r.get('seed', '') or '—'} | {_duration(_number(r.get('duration_s')))} | "
            f"{f'{rss:.0f} MB' if rss is not None else '—'} | {scores} | {_cell(flags) or '—'} | {link} |"
        )
    lines.append("")

    in_domain = table[~table["cross"].map(_bool).fillna(False).astype(bool)] if not table.empty else table
    lines += ["## Best runs", ""]
    if in_domain.empty:
        lines += ["No success run with a score.", ""]
    else:
        lines += [
            "Mean ± sd over the repeats of each axis combination and model, best first, on the job set: a description of",
            "the results, not a model selection (for that, see the selection on validation).",
            "",
        ]
        lines += ["### By family", ""]
        for family, rows in in_domain.groupby("family", sort=True):
            metric = _primary(rows)
            if metric:
                lines += [f"#### {family} ({metric})", "", *_ranking_lines(rows, metric)]
        lines += ["### By dataset", ""]
        for (dataset_id, view), rows in in_domain.groupby(["dataset_id", "view"], sort=True):
            if PRIMARY in rows and rows[PRIMARY].notna().any():
                lines += [f"#### {dataset_id} / {view} ({PRIMARY})", "", *_ranking_lines(rows, PRIMARY)]
            others = sorted(set(rows["family"]) - set(rows.loc[rows.get(PRIMARY, pd.Series(np.nan, index=rows.index)).notna(), "family"]))
            if others:
                lines += [f"Without {PRIMARY} ({', '.join(others)}): see by family.", ""]

    selection = validation_selection(table)
    if not selection.empty or any(c.startswith("valid_") for c in table.columns):
        lines += [
            "## Selection on validation",
            "",
            f"For each group of runs that differ only by one axis, the value with the best mean validation {PRIMARY} over",
            "repeats (ties: the value planned first), and the job score of that value. The choice is made on validation",
            "only, never on the job set: the job score is the honest estimate for the selected value.",
            "",
        ]
        if selection.empty:
            lines += ["No group of runs differs by a single axis with validation scores for two values or more.", ""]
        else:
            lines += [
                f"| axis | other axes | model (family) | dataset / view | selected | valid {PRIMARY} (mean) | job {PRIMARY} of the selected | compared on validation |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in selection.itertuples(index=False):
                lines.append(
                    f"| {_cell(r.axis)} | {_cell(r.fixed)} | {_cell(r.model_id)} ({_cell(r.family)}) | {_cell(r.dataset_id)} / {_cell(r.view)} | "
                    f"**{_cell(r.selected)}** | {r.valid_mean:.4f} | {_score(r.job_mean, r.job_sd, r.n)} | {_cell(r.compared)} |"
                )
            lines.append("")

    cross = table[table["cross"].map(_bool).fillna(False).astype(bool)] if not table.empty else table
    if not cross.empty:
        lines += [
            "## Cross-dataset",
            "",
            f"| combo | model (family) | trained on | evaluated on | {PRIMARY}: mean ± sd | in-domain {PRIMARY} (same runs) |",
            "|---|---|---|---|---|---|",
        ]
        metric = PRIMARY if PRIMARY in cross and cross[PRIMARY].notna().any() else _primary(cross)
        for r in _by_combo(cross, metric).itertuples(index=False) if metric else []:
            same = in_domain[
                (in_domain["combo"] == r.combo) & (in_domain["model_id"] == r.model_id) & (in_domain["dataset_id"] == r.dataset_id)
            ]
            home = same[metric].dropna()
            home_text = _score(home.mean(), home.std(ddof=1) if len(home) > 1 else np.nan, len(home)) if len(home) else "—"
            lines.append(
                f"| {_cell(r.combo)} | {_cell(r.model_id)} ({_cell(r.family)}) | {_cell(r.dataset_id)} | {_cell(r.eval_dataset_id)} | "
                f"{_score(r.mean, r.sd, r.n)} | {home_text} |"
            )
        lines.append("")

    lines += ["## Anomalies", ""]
    anomalies = []
    why = {
        FAILED: "failed",
        OOM: "out of memory (hard RAM limit)",
        SKIPPED_OOM: "not run: oom_policy skip",
        ABORTED_OOM: "not run: oom_policy stop",
        PRUNED: "not run: early_stop",
        CANCELED: "canceled",
    }
    for r in runs.to_dict("records"):
        status = r.get("status", "")
        if status in why:
            anomalies.append((r["run_id"], status, r.get("combo", ""), r.get("note", "") or why[status]))
        elif status == SUCCESS and r["run_id"] in sweep.unreadable:
            anomalies.append((r["run_id"], status, r.get("combo", ""), sweep.unreadable[r["run_id"]]))
        if status == SUCCESS and (_bool(r.get("quality_ok")) is False or _flags(r.get("quality_flags"))):
            anomalies.append(
                (r["run_id"], "low quality", r.get("combo", ""), ", ".join(_flags(r.get("quality_flags"))) or "quality_ok false")
            )
    if anomalies:
        lines += ["| run | what | combo | note |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {_cell(c)} | {_cell(d)} |" for a, b, c, d in anomalies]
        not_run = sum(1 for _, s, _, _ in anomalies if s in NOT_RUN)
        if not_run:
            lines += ["", f"{not_run} run(s) decided by a policy were never executed."]
    else:
        lines.append("None: every finished run succeeded with its quality checks passed.")
    for error in hook_errors or []:
        lines.append(f"- analysis hook failed: {_cell(error)}")
    lines.append("")

    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            p = Path(p) if Path(p).is_absolute() else Path(root) / p
            lines += [f"### {p.stem.replace('__vs__', ' vs ')}", "", f"![{p.stem}]({_rel(here, p)})", ""]
            if p.with_suffix(".tsv").is_file():
                lines += [f"Numbers: [{p.with_suffix('.tsv').name}]({_rel(here, p.with_suffix('.tsv'))})", ""]
    return write_text(target, "\n".join(lines).rstrip() + "\n")


# ---------------------------------------------------------------------------------------------
# the hooks of an experiment


def _resolve_target(path: str, exp_root: Path, root: Path) -> Path:
    text = str(path).replace("${exp_id}", Path(exp_root).name).replace("{exp_id}", Path(exp_root).name)
    p = Path(text)
    return p if p.is_absolute() else Path(root) / p


def _names(value: Any) -> list[str]:
    """A hook's list of names; a single name as a plain string too (metrics: macro_f1)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def run_hooks(exp_root: Path, root: Path, hooks: list[dict[str, Any]], description: str = "") -> dict[str, Any]:
    """metrics_global.tsv first, then each hook in order: {"type": "curves", "metrics": [...],
    "x_axis": ..., "group_by": [...]} or {"type": "report_markdown", "path": ...} (relative to the
    project root, ${exp_id} substituted). A report gets the plots of the curves hooks before it.
    A hook that fails does not stop the next ones (a report names it); HookError is raised at the
    end. Returns {"metrics_global", "rows", "plots", "report"} (paths relative to the project root)."""
    exp_root, root = Path(exp_root), Path(root)
    for hook in hooks:
        if hook.get("type") not in ("curves", "report_markdown"):
            raise ValueError(f"analysis hook type {hook.get('type')!r}: expected curves or report_markdown")
    table = write_metrics_global(exp_root, root)

    def rel(p: Path) -> str:
        try:
            return p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return str(p)

    plots: list[Path] = []
    errors: list[str] = []
    reports: list[Path] = []
    for hook in hooks:
        try:
            if hook["type"] == "curves":
                plots += curves(table, _names(hook["metrics"]), str(hook["x_axis"]), _names(hook.get("group_by")), exp_root / PLOTS)
            else:
                target = _resolve_target(hook.get("path") or f"superior/{exp_root.name}/report.md", exp_root, root)
                reports.append(report_markdown(exp_root, root, target, plots, description, errors))
        except Exception as exc:
            what = f"curves {', '.join(_names(hook.get('metrics')))} vs {hook.get('x_axis')}" if hook["type"] == "curves" else hook["type"]
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
    result = {
        "metrics_global": rel(exp_root / METRICS_GLOBAL),
        "rows": len(table),
        "plots": [rel(p) for p in plots],
        "report": rel(reports[-1]) if reports else None,
    }
    if errors:
        raise HookError(errors, result)
    return result
