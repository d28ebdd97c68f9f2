"""The `spacy_docbin` format: spaCy DocBin shards, `shard_size` docs per file (spec: no giant DocBin,
which fails with E870).

Only the tokenizer of a blank pipeline is used (spacy.blank(lang)): the trainer adds the rest.
`train` is the rows the format holds (the first rows of train.tsv: the spacy cap's, formats/__init__.py),
`labels` every label of the split (each doc's `cats` has them all, also those of rows not written).
Docs keep the order of train.tsv / job.tsv / valid.tsv (doc ids are not stored per doc: user_data
serialisation made writing 4x slower).

With `split.validation_prop` > 0 the view's valid.tsv (read from the view folder beside train.tsv)
is written too, as `valid` shards: spaCy's dev corpus, the only documents it picks `model-best`
on (families/spacy.py). The entry also records what the family needs to carve a dev slice of its own
when there is no validation set: the split's `group_by` and `stratify` (`split`), so that the slice
is drawn like the split (whole speakers on a split grouped by speaker). `valid` is [] when the
view has no validation set (or an empty one: a grouped split can hold out no whole group).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import atomic_dir
from ..config import ResolvedParams
from ..paths import ProjectPaths


def spacy_shards(
    train: pd.DataFrame, job: pd.DataFrame, out_dir: Path, params: ResolvedParams, paths: ProjectPaths, labels: list[str]
) -> dict[str, Any]:
    import spacy  # heavy: imported only when this format is written
    from spacy.tokens import DocBin

    from ..prepare import read_tsv_file

    nlp = spacy.blank(params.formats.spacy_language)
    size = params.formats.spacy_shard_size
    split = params.split
    valid = None
    if split.validation_prop > 0:
        valid = read_tsv_file(paths.view_dir(params.dataset_id, params.view) / "valid.tsv")
        unknown = sorted(set(valid["label"]) - set(labels))
        if unknown:
            raise ValueError(f"valid.tsv has labels {unknown} that neither train.tsv nor job.tsv has: spaCy could not score them")
    result: dict[str, Any] = {
        "format": "spacy_docbin",
        "shard_size": size,
        "labels": labels,
        "order": "as in train.tsv / job.tsv / valid.tsv",
        "split": {"group_by": split.group_by, "stratify": split.stratify, "validation_prop": split.validation_prop},
        "n_valid": 0 if valid is None else len(valid),
    }
    sets = [("train", train), ("job", job)]
    if valid is not None and not valid.empty:
        sets.append(("valid", valid))
    else:  # none: shards of an earlier split with a validation set would be another split's documents
        shutil.rmtree(out_dir / "spacy" / "valid", ignore_errors=True)
        result["valid"] = []
    for name, df in sets:
        target = out_dir / "spacy" / name
        shards = []
        with atomic_dir(target) as tmp:
            texts, golds = df["text"].tolist(), df["label"].tolist()
            for start in range(0, max(len(texts), 1), size):
                bin_ = DocBin(attrs=["ORTH", "SPACY"])
                for text, gold in zip(texts[start : start + size], golds[start : start + size]):
                    doc = nlp.make_doc(text)
                    doc.cats = {label: float(label == gold) for label in labels}
                    bin_.add(doc)
                shard = f"part-{len(shards) + 1:04d}.spacy"
                bin_.to_disk(tmp / shard)
                shards.append(shard)
        result[name] = [paths.rel(target / n) for n in shards]
    return result
