"""The `tfidf_svm_quick` model written as a plain scikit-learn script (no pepm import).

Two uses, both for benchmarks/bench_pipeline.py:

- `score_on_split(train_tsv, job_tsv, C, seed)`: the same model fitted on pepm's own train.tsv and
  scored on its job.tsv. Its macro-F1 must equal pepm's metrics.json (the model is not changed
  by being run through pepm).
- `full_pipeline(corpus_dir, seed)`: the whole job done plainly, MPT TEI -> labels -> split ->
  TF-IDF + LinearSVC -> accuracy / macro-F1 -> metrics.json. The time baseline of pepm's pipeline.
  Its split is sklearn's, not pepm's, so its scores differ slightly from pepm's.

Hyperparameters are read from configs/common/models.yml (entry tfidf_svm_quick) so they cannot
drift; keys the entry does not set take pepm's sklearn-family defaults (DEFAULTS below).

Usage: python benchmarks/plain_tfidf_svm.py full data/raw/mpt [--seed 42] [--out metrics.json]
       python benchmarks/plain_tfidf_svm.py score train.tsv job.tsv [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import yaml
from lxml import etree
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC

MODELS_YML = Path(__file__).resolve().parents[1] / "configs" / "common" / "models.yml"
DEFAULTS = {
    "ngram_min": 1,
    "ngram_max": 2,
    "sublinear_tf": True,
    "min_df": 2,
    "C": 1.0,
    "max_iter": 2000,
    "class_weight": "auto",
    "imbalance_ratio": 1.2,
}
TEI = "{http://www.tei-c.org/ns/1.0}"
MPT = "{http://mpt.ethelred.fr/ns/0.0/}"
COLLECTIVE = ("Plusieurs", "Un_député", "Une_députée")


def model_params(models_yml: Path = MODELS_YML, model_id: str = "tfidf_svm_quick") -> dict:
    with open(models_yml, encoding="utf-8") as fh:
        return {**DEFAULTS, **yaml.safe_load(fh)["models"][model_id].get("params", {})}


def fit_predict(train_texts, train_labels, job_texts, seed: int, C: float | None = None, models_yml: Path = MODELS_YML):
    p = model_params(models_yml)
    vectorizer = TfidfVectorizer(ngram_range=(p["ngram_min"], p["ngram_max"]), sublinear_tf=p["sublinear_tf"], min_df=p["min_df"])
    clf = LinearSVC(C=p["C"] if C is None else C, class_weight=class_weight(p, train_labels), random_state=seed, max_iter=p["max_iter"])
    clf.fit(vectorizer.fit_transform(train_texts), train_labels)
    return clf.predict(vectorizer.transform(job_texts))


def class_weight(p: dict, labels) -> str | None:
    """pepm's `class_weight` rule: auto = "balanced" when the largest train class over the smallest
    exceeds `imbalance_ratio` (the profile's balance strategy is none here)."""
    if p["class_weight"] != "auto":
        return None if p["class_weight"] == "none" else p["class_weight"]
    counts = pd.Series(list(labels)).value_counts()
    return "balanced" if counts.max() / counts.min() > p["imbalance_ratio"] else None


def scores(gold, pred) -> dict:
    return {"accuracy": accuracy_score(gold, pred), "macro_f1": f1_score(gold, pred, average="macro")}


def score_on_split(train_tsv, job_tsv, C: float | None = None, seed: int = 42) -> dict:
    """Fit on pepm's train.tsv, score on its job.tsv (C=None: the value of models.yml)."""
    read = lambda path: pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)  # noqa: E731  ("NA" is a word)
    train, job = read(train_tsv), read(job_tsv)
    pred = fit_predict(train["text"], train["label"], job["text"], seed, C)
    return {**scores(job["label"], pred), "n_train": len(train), "n_job": len(job)}


def read_mpt(corpus_dir: Path) -> pd.DataFrame:
    """One row per <sp> of a left/right deputy: chair, government and collective speakers excluded."""
    rows = []
    for path in sorted(Path(corpus_dir).glob("*.xml")):
        for _, sp in etree.iterparse(str(path), tag=TEI + "sp", resolve_entities=False, load_dtd=False, no_network=True):
            meta = sp.find(MPT + "metadata")
            if (
                meta is not None
                and meta.get("wing") in ("left", "right")
                and meta.get("interventiontype") != "régulation"
                and meta.get("politicalgroup") != "GVT"
                and not meta.get("auteur", "").startswith(COLLECTIVE)
            ):
                rows.append((meta.get("wing"), " ".join("".join(meta.itertext()).split())))
            sp.clear()
    return pd.DataFrame(rows, columns=["label", "text"])


def filter_and_split(docs: pd.DataFrame, seed: int = 42, train_prop: float = 0.8, min_tokens: int = 3):
    """(kept docs, train texts, job texts, train labels, job labels): texts of at least `min_tokens`
    whitespace tokens, exact duplicates dropped, a split stratified by label."""
    docs = docs[docs["text"].str.split().str.len() >= min_tokens].drop_duplicates("text")
    return docs, *train_test_split(docs["text"], docs["label"], train_size=train_prop, stratify=docs["label"], random_state=seed)


def full_pipeline(corpus_dir, seed: int = 42, out: Path | None = None, train_prop: float = 0.8, min_tokens: int = 3) -> dict:
    started = time.perf_counter()
    docs = read_mpt(Path(corpus_dir))
    n_read, read_s = len(docs), time.perf_counter() - started
    docs, train_x, job_x, train_y, job_y = filter_and_split(docs, seed, train_prop, min_tokens)
    split_s = time.perf_counter() - started - read_s
    pred = fit_predict(train_x, train_y, job_x, seed)
    result = {
        **scores(job_y, pred),
        "n_read": n_read,
        "n_kept": len(docs),
        "n_train": len(train_x),
        "n_job": len(job_x),
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 3),
        "seconds_read": round(read_s, 3),
        "seconds_filter_split": round(split_s, 3),
    }
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    full = sub.add_parser("full", help="the whole pipeline on an MPT corpus folder")
    full.add_argument("corpus_dir", type=Path)
    full.add_argument("--out", type=Path, default=Path("plain_metrics.json"))
    score = sub.add_parser("score", help="the model on pepm's train.tsv / job.tsv")
    score.add_argument("train_tsv", type=Path)
    score.add_argument("job_tsv", type=Path)
    score.add_argument("--C", type=float, default=None, help="default: models.yml")
    for p in (full, score):
        p.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if args.cmd == "full":
        print(json.dumps(full_pipeline(args.corpus_dir, args.seed, args.out)))
    else:
        print(json.dumps(score_on_split(args.train_tsv, args.job_tsv, args.C, args.seed)))


if __name__ == "__main__":
    main()
