"""The `spacy_docbin` format: spaCy DocBin shards, `shard_size` docs per file (spec: no giant DocBin,
which fails with E870).

Only the tokenizer of a blank pipeline is used (spacy.blank(lang)): the trainer adds the rest.
Docs keep the order of train.tsv / job.tsv (doc ids are not stored per doc: user_data
serialisation made writing 4x slower).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_dir
from ..config import ResolvedParams
from ..paths import ProjectPaths


def spacy_shards(train: pd.DataFrame, job: pd.DataFrame, out_dir: Path, params: ResolvedParams, paths: ProjectPaths) -> dict[str, Any]:
    import spacy  # heavy: imported only when this format is written
    from spacy.tokens import DocBin

    nlp = spacy.blank(params.formats.spacy_language)
    labels = sorted(set(train["label"]) | set(job["label"]))
    size = params.formats.spacy_shard_size
    result: dict[str, Any] = {"format": "spacy_docbin", "shard_size": size, "labels": labels, "order": "as in train.tsv / job.tsv"}
    for split, df in (("train", train), ("job", job)):
        target = out_dir / "spacy" / split
        shards = []
        with atomic_dir(target) as tmp:
            texts, golds = df["text"].tolist(), df["label"].tolist()
            for start in range(0, max(len(texts), 1), size):
                bin_ = DocBin(attrs=["ORTH", "SPACY"])
                for text, gold in zip(texts[start : start + size], golds[start : start + size]):
                    doc = nlp.make_doc(text)
                    doc.cats = {label: float(label == gold) for label in labels}
                    bin_.add(doc)
                name = f"part-{len(shards) + 1:04d}.spacy"
                bin_.to_disk(tmp / name)
                shards.append(name)
        result[split] = [paths.rel(target / name) for name in shards]
    return result
