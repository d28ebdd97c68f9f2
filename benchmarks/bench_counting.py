"""Benchmark of pepm's fast TF-IDF counting (`pepm_assets/core/families/counting.py`) against
scikit-learn's own vectorizer, in the same run, on MPT's left/right speeches (1x and Nx).

What is timed: the TF-IDF block of a models.yml model (the one pepm's sklearn family builds, with
the model's parameters), `fit_transform(train)` + `transform(job)`, on the train / job split of the
plain script (benchmarks/plain_tfidf_svm.py: its reading, filter and split). Three variants, in
rotating order within each repeat:

- `scikit-learn`: the vectorizer as scikit-learn runs it;
- `counting`: inside `fast_counting`, with scikit-learn's own pruning and sorting after the
  counting (strategies 1 and 2 of counting.py: compiled word n-grams, which leave the terms
  outside [min_df, max_df] out already, or counting on processes);
- `pepm`: `fast_counting` as pepm fits (strategy 3 too: pruning and sorting with NumPy).

Each variant's vocabulary (keys, values, key order) and matrices must equal scikit-learn's: the
`same output` row says PASS or FAIL. Reported: median seconds per variant and the median of the
per-repeat ratios to scikit-learn. No target: it shows whether each strategy pays, here and now.

Usage: python benchmarks/bench_counting.py [--replicas 5] [--repeats 5] [--models tfidf_svm_quick,tfidf_wordchar_svm] [--jobs 2] [--json F]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import bench_common  # noqa: E402  (benchmarks/, on sys.path: the scripts run as files)
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_pipeline as bp  # noqa: E402
import plain_tfidf_svm as plain  # noqa: E402

VARIANTS = ("scikit-learn", "counting", "pepm")
console = Console(soft_wrap=True)


def vectorizers_of(model_id: str):
    """A fresh TF-IDF block of the model, as pepm's sklearn family builds it (models.yml read and
    validated as a run reads it), and its vectorizers."""
    from pepm_assets.core import families
    from pepm_assets.core.config import load_common
    from pepm_assets.core.families.sklearn import _vectorizers, build_pipeline

    spec = load_common(REPO).models[model_id]
    if spec.family != "sklearn":
        raise SystemExit(f"bench counting: --models {model_id} is of the {spec.family!r} family; it measures sklearn models only")
    pipeline = build_pipeline(families.build(spec.family, spec.params).params, 42, None)
    return pipeline.named_steps["tfidf"], _vectorizers(pipeline)


def run_variant(variant: str, model_id: str, train: list[str], job: list[str], jobs: int) -> tuple[float, object]:
    from pepm_assets.core.families.counting import fast_counting

    block, vectorizers = vectorizers_of(model_id)
    gc.collect()
    started = time.perf_counter()
    if variant == "scikit-learn":
        X, X_job = block.fit_transform(train), block.transform(job)
    else:
        with fast_counting(vectorizers, jobs):
            if variant == "counting":  # scikit-learn's own pruning and sorting (the shadows removed on exit)
                for v in vectorizers:
                    v._limit_features = types.MethodType(type(v)._limit_features, v)
                    v._sort_features = types.MethodType(type(v)._sort_features, v)
            X, X_job = block.fit_transform(train), block.transform(job)
    seconds = time.perf_counter() - started
    return seconds, ([list(v.vocabulary_.items()) for v in vectorizers], X, X_job)


def same(a, b) -> bool:
    (vocab_a, X_a, J_a), (vocab_b, X_b, J_b) = a, b
    return vocab_a == vocab_b and all(x.shape == y.shape and (x != y).nnz == 0 for x, y in ((X_a, X_b), (J_a, J_b)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=5, help="replication factor of the large case (1: the 1x case only)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each variant (medians)")
    ap.add_argument(
        "--models",
        default="tfidf_svm_quick",
        help="models.yml ids of the sklearn family, comma-separated (tfidf_wordchar_svm: ~7 s a fit at 1x)",
    )
    ap.add_argument("--jobs", type=int, default=2, help="processes of the counting strategy 2 (the hardware preset's threads)")
    ap.add_argument("--corpus", default="mpt", help="only mpt (the plain script reads the MPT dialect)")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (printed)")
    args = ap.parse_args()
    if args.corpus != "mpt":
        console.print(f"[red]bench counting supports only --corpus mpt, not {args.corpus!r}[/]")
        return 0

    from pepm_assets.core import dvc
    from pepm_assets.core.families import counting

    tmp = Path(tempfile.mkdtemp(prefix="pepm_bench_counting_"))
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", tmp / "corpus_1x", ["mpt"])
    corpora = {"1x": tmp / "corpus_1x" / "mpt"}
    if args.replicas > 1:
        bp.replicate(corpora["1x"], tmp / "corpus_Nx", args.replicas)
        corpora[f"{args.replicas}x"] = tmp / "corpus_Nx"
    results: dict = {"repeats": args.repeats, "jobs": args.jobs, "implementation": counting.IMPLEMENTATION, "cases": {}}
    table = Table(title=f"bench counting: TF-IDF fit_transform(train) + transform(job), medians of {args.repeats}")
    for column in ("case", "model", "documents", *VARIANTS, "counting / scikit-learn", "pepm / scikit-learn", "same output"):
        table.add_column(column)
    for case, corpus in corpora.items():
        _, train, job, _, _ = plain.filter_and_split(plain.read_mpt(corpus))
        train, job = train.tolist(), job.tolist()
        for model_id in args.models.split(","):
            times: dict[str, list[float]] = {v: [] for v in VARIANTS}
            identical = True
            for rep in range(args.repeats):
                order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
                outputs = {}
                for variant in order:
                    seconds, outputs[variant] = run_variant(variant, model_id, train, job, args.jobs)
                    times[variant].append(seconds)
                identical &= all(same(outputs["scikit-learn"], outputs[v]) for v in VARIANTS[1:])
                console.log(f"{case} {model_id} {rep + 1}/{args.repeats}: " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in VARIANTS))
            ratio = {v: statistics.median(t / s for t, s in zip(times[v], times["scikit-learn"])) for v in VARIANTS[1:]}
            results["cases"].setdefault(case, {})[model_id] = {
                "train": len(train),
                "job": len(job),
                "seconds": times,
                "median_s": {v: statistics.median(times[v]) for v in VARIANTS},
                "ratio_to_scikit_learn": ratio,
                "same_output": identical,
            }
            table.add_row(
                case,
                model_id,
                f"{len(train):,} / {len(job):,}",
                *(f"{statistics.median(times[v]):.2f} s" for v in VARIANTS),
                f"{ratio['counting']:.2f}",
                f"{ratio['pepm']:.2f}",
                bp.verdict(identical),
            )
    console.print(table)
    return bench_common.finish(args, results, tmp, console)


if __name__ == "__main__":
    raise SystemExit(main())
