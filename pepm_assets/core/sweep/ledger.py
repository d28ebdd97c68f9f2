"""runs.tsv: one row per planned run, its status and facts (spec §4.1). Only `pepm sweep` writes it,
from what Dagster's run storage and each run's outcome.json say, and every write replaces the file
atomically: a sweep killed at any point leaves the last complete table, never half a row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..atomic import write_text
from .spec import PLANNED, RUNS_COLUMNS, RunSpec


class Ledger:
    def __init__(self, path: Path, rows: dict[str, dict[str, str]]) -> None:
        self.path = Path(path)
        self.rows = rows

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """The table on disk ({} when there is none yet)."""
        path = Path(path)
        if not path.is_file():
            return cls(path, {})
        with path.open(encoding="utf-8", newline="") as fh:
            rows = {r["run_id"]: {c: r.get(c) or "" for c in RUNS_COLUMNS} for r in csv.DictReader(fh, delimiter="\t")}
        return cls(path, rows)

    def plan(self, plan: list[RunSpec], keep: set[str]) -> None:
        """One row per planned run, in plan order: the rows of `keep` (runs a resume does not run
        again) as they were, every other run reset to `planned`. Rows of runs no longer in the plan
        are dropped (the plan is the experiment's current definition)."""
        rows = {}
        for spec in plan:
            old = self.rows.get(spec.run_id)
            if spec.run_id in keep and old is not None:
                rows[spec.run_id] = old
                continue
            attempt = int(old["attempt"] or 0) if old else 0
            rows[spec.run_id] = {c: "" for c in RUNS_COLUMNS} | {
                "run_id": spec.run_id,
                "status": PLANNED,
                "attempt": str(attempt),
                "seed": str(spec.seed),
                "combo": spec.combo,
                "resource_class": spec.resource_class,
                "axis_values_json": _json(spec.axis_values),
                "params_hash": spec.params_hash,
            }
        self.rows = rows

    def update(self, run_id: str, **fields: object) -> bool:
        """Set fields of a run's row; True when something changed (the caller then saves)."""
        row = self.rows[run_id]
        new = {k: "" if v is None else str(v) for k, v in fields.items()}
        unknown = set(new) - set(RUNS_COLUMNS)
        if unknown:
            raise KeyError(f"not a runs.tsv column: {sorted(unknown)}")
        changed = any(row.get(k) != v for k, v in new.items())
        row.update(new)
        return changed

    def count(self, *statuses: str) -> int:
        return sum(1 for r in self.rows.values() if r["status"] in statuses)

    def save(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=RUNS_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in self.rows.values():
            writer.writerow({c: _one_line(row.get(c, "")) for c in RUNS_COLUMNS})
        write_text(self.path, buffer.getvalue())


def _one_line(value: str) -> str:
    return " ".join(str(value).split("\t")).replace("\n", " ⏎ ")


def _json(data: object) -> str:
    import json

    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
