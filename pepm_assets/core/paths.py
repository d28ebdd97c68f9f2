"""Where every output lives (spec paths). One place, so assets, CLI and tests agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    def raw(self, corpus_path: str) -> Path:
        return self.root / corpus_path

    def dvc_pointer(self, corpus_path: str) -> Path:
        return self.root / f"{corpus_path}.dvc"

    def corpus_dir(self, corpus_id: str) -> Path:
        """Parsed corpus: docs.parquet, rejects.parquet, parse_stats.json."""
        return self.root / "data" / "interim" / "_corpora" / corpus_id

    def actors_dir(self, corpus_id: str) -> Path:
        return self.root / "data" / "interim" / "_actors" / corpus_id

    def view_dir(self, dataset_id: str, view: str) -> Path:
        """train.tsv, job.tsv, meta_view.json."""
        return self.root / "data" / "interim" / dataset_id / view

    def processed_dir(self, dataset_id: str, view: str) -> Path:
        """Model formats and meta_formats.json."""
        return self.root / "data" / "processed" / dataset_id / view

    def model_dir(self, dataset_id: str, view: str, family: str, model_id: str) -> Path:
        """A trained model and its meta_model.json."""
        return self.root / "models" / dataset_id / view / family / model_id

    def report_dir(self, dataset_id: str, view: str, family: str, model_id: str, eval_dataset_id: str | None = None) -> Path:
        """metrics.json, classification_report.txt, meta_eval.json, metrics_by_<field>.json, plots.
        Evaluated on another dataset's job set (cross-dataset): the sibling `<model_id>@<eval_dataset>/`
        (a sibling, not a subfolder: each report folder is replaced as a whole)."""
        name = model_id if eval_dataset_id in (None, dataset_id) else f"{model_id}@{eval_dataset_id}"
        return self.root / "reports" / dataset_id / view / family / name

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)
