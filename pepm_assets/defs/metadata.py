"""Metadata as the Dagster UI shows it: floats rounded, an evaluation's per-class scores as a table,
its confusion matrix as an image, an MLflow run as a link."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

DECIMALS = 4  # the UI prints a float's every digit (0.8333333333333334)
PER_CLASS = ("precision", "recall", "f1", "support")
MAX_INLINE = 512 * 1024  # bytes of a PNG inlined in the metadata (a confusion matrix: 15-60 KB)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_round(v) for v in value]
    return value


def rounded(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata with every float (plain, `MetadataValue.float`, inside a JSON value) to 4 decimals."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
            value = dg.MetadataValue.float(round(value.value, DECIMALS))
        elif isinstance(value, dg.JsonMetadataValue):
            value = dg.MetadataValue.json(_round(value.data))
        else:
            value = _round(value) if isinstance(value, float) else value
        out[key] = value
    return out


def per_class_table(report_dir: Path) -> dg.MetadataValue | None:
    """precision / recall / F1 / support of each class (metrics.json's `per_class`, the canonical
    split's); None for a report without it (a clustering)."""
    try:
        per_class = json.loads((Path(report_dir) / "metrics.json").read_text(encoding="utf-8")).get("per_class") or {}
    except (OSError, ValueError):
        return None
    rows = {label: s for label, s in per_class.items() if isinstance(s, dict) and all(k in s for k in PER_CLASS)}
    if not rows:
        return None
    schema = dg.TableSchema(
        columns=[dg.TableColumn("class", "string")] + [dg.TableColumn(k, "int" if k == "support" else "float") for k in PER_CLASS]
    )
    records = [
        dg.TableRecord({"class": str(label), **{k: int(s[k]) if k == "support" else round(float(s[k]), DECIMALS) for k in PER_CLASS}})
        for label, s in rows.items()
    ]
    return dg.MetadataValue.table(records, schema=schema)


def image_markdown(png: Path, title: str) -> dg.MetadataValue | None:
    """The PNG inline in a markdown value (a data: URI): the UI's [Show Markdown] shows the image
    itself (checked in Dagster 1.13's UI). None when there is no PNG, or one over MAX_INLINE bytes
    (it would weigh on every read of the event log): its folder's path is in the metadata anyway."""
    try:
        data = Path(png).read_bytes()
    except OSError:
        return None
    if len(data) > MAX_INLINE:
        return None
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})")
