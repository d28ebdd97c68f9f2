"""The `check` family: a control, not a classifier. It records label and length statistics of the
train set (meta_model.json) and predicts the majority class, so its scores are the floor every
real model must beat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import PROBABILITY, ClassScores, Family, TrainData


class CheckFamily(Family):
    reads = "tsv"
    train_columns = ("text", "label")

    def fit(self, data: TrainData, model_dir: Path) -> dict[str, Any]:
        train = data.train
        counts = train["label"].value_counts().sort_index()
        tokens = train["text"].str.split().str.len()
        stats = {
            "n_docs": len(train),
            "label_counts": {str(k): int(v) for k, v in counts.items()},
            "majority_label": str(counts.idxmax()),
            "tokens_per_doc": {
                str(label): {"mean": round(float(t.mean()), 2), "median": float(t.median()), "max": int(t.max())}
                for label, t in tokens.groupby(train["label"])
            },
            "empty_texts": int((train["text"].str.strip() == "").sum()),
        }
        (model_dir / "check.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")
        return {**stats, "class_weight": "none"}  # stated in every report of a model (core/training.py: protocol)

    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        majority = json.loads((model_dir / "check.json").read_text(encoding="utf-8"))["majority_label"]
        return [majority] * len(texts)

    def scores(self, model_dir: Path, texts: list[str]) -> list[float] | None:
        """The majority label's share of the train set: the probability a constant guess has of
        being right there, the same for every text."""
        stats = json.loads((model_dir / "check.json").read_text(encoding="utf-8"))
        share = stats["label_counts"][stats["majority_label"]] / max(1, stats["n_docs"])
        return [float(share)] * len(texts)

    def predict_scores(self, model_dir: Path, texts: list[str]) -> tuple[list[str], list[float], ClassScores]:
        """The train set's label shares as every text's class probabilities: the forecast of a model
        that knows only the base rates, whose Brier score every real model's must beat."""
        import numpy as np

        stats = json.loads((model_dir / "check.json").read_text(encoding="utf-8"))
        classes = sorted(stats["label_counts"])
        shares = np.array([stats["label_counts"][c] for c in classes], dtype=float) / max(1, stats["n_docs"])
        scored = ClassScores(classes, np.tile(shares, (len(texts), 1)), PROBABILITY)
        labels = [stats["majority_label"]] * len(texts)
        return labels, scored.of(labels), scored
