"""The `hf_jsonl` format (Hugging Face): JSON Lines ({"doc_id", "text", "label", "label_id"}) + labels.json.
`train` is the rows the format holds (the first of train.tsv: the hf cap's), `labels` all the split's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_path, write_json
from ..config import ResolvedParams
from ..paths import ProjectPaths
from . import reads


@reads("train", "job")
def hf_jsonl(
    train: pd.DataFrame, job: pd.DataFrame, out_dir: Path, params: ResolvedParams, paths: ProjectPaths, labels: list[str]
) -> dict[str, Any]:
    label2id = {label: i for i, label in enumerate(labels)}
    hf_dir = out_dir / "hf"
    result: dict[str, Any] = {"format": "hf_jsonl", "label2id": paths.rel(hf_dir / "labels.json")}
    for split, df in (("train", train), ("job", job)):
        target = hf_dir / f"{split}.jsonl"
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for doc_id, text, label in zip(df["doc_id"], df["text"], df["label"]):
                fh.write(
                    json.dumps({"doc_id": doc_id, "text": text, "label": label, "label_id": label2id[label]}, ensure_ascii=False) + "\n"
                )
        result[split] = paths.rel(target)
    write_json(hf_dir / "labels.json", {"label2id": label2id, "id2label": {str(i): label for label, i in label2id.items()}})
    return result
