"""The prepare stage as partitioned assets:

raw_tei[corpus] (observed: DVC hash)      view_params[dataset|view] (observed: params hash)
  -> corpus_docs[corpus] -> actor_counts[corpus]
  -> view_split[dataset|view]  (+ blocking checks)  -> model_formats[dataset|view]

Each asset calls one core function; this file only adds partitions, metadata and checks.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from ...core import actors, corpus, dvc, formats, labels, prepare, split
from ...core.config import CommonConfig, ConfigError
from ...core.labels import LabelMap
from ...core.selection import resolve_partition, write_selection
from ..partitions import corpus_partitions, corpus_to_views, split_view_key, view_partitions
from ..resources import PepmProject

CODE_VERSION = "prepare-2"
GROUP = "prepare"


class PrepareConfig(dg.Config):
    """Run config of view_split: a profile and overrides; empty = the partition's stored selection."""

    profile: str = ""
    overrides: list[str] = []


def markdown_counts(counts: dict[str, Any], key: str = "label", value: str = "docs") -> dg.MetadataValue:
    rows = "\n".join(f"| {k} | {v} |" for k, v in counts.items())
    return dg.MetadataValue.md(f"| {key} | {value} |\n|---|---|\n{rows}")


def markdown_rows(df: pd.DataFrame, columns: list[str]) -> dg.MetadataValue:
    if df.empty:
        return dg.MetadataValue.md("none")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in df[columns].itertuples(index=False)]
    return dg.MetadataValue.md("\n".join(lines))


def build_prepare_assets(common: CommonConfig, label_map: LabelMap) -> list[Any]:
    corpora_pd = corpus_partitions(common)
    views_pd = view_partitions(common, label_map)

    @dg.observable_source_asset(partitions_def=corpora_pd, group_name=GROUP, description="Raw TEI folders under data/raw/<corpus>; data version = DVC content hash.")
    def raw_tei(project: PepmProject) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition({cid: dvc.corpus_version(project.path, cfg.path) for cid, cfg in project.common().corpora.items()})

    @dg.observable_source_asset(partitions_def=views_pd, group_name=GROUP, description="Resolved parameters of each dataset x view (profile + overrides + configs); data version = their hash. Observe after editing a profile to see what became stale.")
    def view_params(project: PepmProject) -> dg.DataVersionsByPartition:
        versions = {}
        common_now = project.common()
        for key in views_pd.get_partition_keys():
            dataset_id, view = split_view_key(key)
            try:
                versions[key] = resolve_partition(project.path, dataset_id, view, common=common_now).params_hash
            except ConfigError as exc:
                versions[key] = "invalid:" + hashlib.sha256(str(exc).encode()).hexdigest()[:16]
        return dg.DataVersionsByPartition(versions)

    @dg.asset(
        partitions_def=corpora_pd, group_name=GROUP, code_version=CODE_VERSION, deps=[raw_tei],
        description="Streaming, safe TEI parse -> docs.parquet, rejects.parquet (reason + file:line), parse_stats.json.",
        check_specs=[dg.AssetCheckSpec("reject_rate_under_threshold", asset="corpus_docs", blocking=True,
                                       description="parse rejects / documents <= corpora.yml max_reject_rate")],
    )
    def corpus_docs(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        cid = context.partition_key
        cfg = project.common().corpora[cid]
        outputs, stats = corpus.extract_corpus(cid, cfg, project.path, project.paths.corpus_dir(cid))
        rejects = pd.read_parquet(outputs.rejects)
        first = rejects.head(10)
        passed = stats.reject_rate <= cfg.max_reject_rate
        return dg.MaterializeResult(
            metadata={
                "n_docs": stats.n_docs,
                "n_rejects": stats.n_rejects,
                "reject_rate": stats.reject_rate,
                "n_files": stats.n_files,
                "n_files_failed": stats.n_files_failed,
                "n_tokens": stats.n_tokens,
                "seconds": stats.seconds,
                "groups": markdown_counts(dict(stats.groups.most_common()), "group"),
                "rejects_by_reason": markdown_counts(dict(stats.rejects_by_reason), "reason"),
                "first_rejects": markdown_rows(first, ["source_file", "source_line", "reason", "detail"]),
                "docs_path": dg.MetadataValue.path(project.paths.rel(outputs.docs)),
                "dialect": cfg.dialect,
            },
            check_results=[dg.AssetCheckResult(
                check_name="reject_rate_under_threshold", passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"reject_rate": stats.reject_rate, "threshold": cfg.max_reject_rate, "rejects_by_reason": dict(stats.rejects_by_reason)},
            )],
        )

    @dg.asset(
        partitions_def=corpora_pd, group_name=GROUP, code_version=CODE_VERSION, deps=[corpus_docs],
        description="actors_counts_<corpus>.tsv and an ideology_actors skeleton: every actor, counts and current label per view.",
    )
    def actor_counts(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        cid = context.partition_key
        label_map_ = labels.load_label_map(project.path / "configs" / "label_maps" / "ideology.yml", project.path)
        tsv, yml, table = actors.write_actor_files(cid, project.paths.corpus_dir(cid) / "docs.parquet", label_map_, project.paths.actors_dir(cid))
        unlabelled = table[table["category"] == ""]
        return dg.MaterializeResult(metadata={
            "n_actors": len(table),
            "n_actors_unlabelled": len(unlabelled),
            "docs_of_unlabelled_actors": markdown_counts(unlabelled.groupby("exclusion")["n_docs"].sum().to_dict(), "reason"),
            "counts_path": dg.MetadataValue.path(project.paths.rel(tsv)),
            "skeleton_path": dg.MetadataValue.path(project.paths.rel(yml)),
        })

    @dg.asset(
        partitions_def=views_pd, group_name=GROUP, code_version=CODE_VERSION,
        deps=[dg.AssetDep(corpus_docs, partition_mapping=corpus_to_views(common, label_map)), view_params],
        description="Label map, quality filters, balance, leak-free train/job split -> data/interim/<dataset>/<view>/{train,job}.tsv, meta_view.json.",
        check_specs=[
            dg.AssetCheckSpec("enough_docs_per_class", asset="view_split", blocking=True, description="every class has >= quality.min_docs_per_class train docs and >= 1 job doc"),
            dg.AssetCheckSpec("no_empty_texts", asset="view_split", blocking=True, description="no empty text in train.tsv / job.tsv"),
            dg.AssetCheckSpec("no_train_job_leakage", asset="view_split", blocking=True, description="no doc id, normalised text (or group_by value) in both train and job"),
        ],
    )
    def view_split(context: dg.AssetExecutionContext, config: PrepareConfig, project: PepmProject) -> dg.MaterializeResult:
        dataset_id, view = split_view_key(context.partition_key)
        if config.profile or config.overrides:
            params = resolve_partition(project.path, dataset_id, view, config.profile, config.overrides)
            write_selection(project.path, dataset_id, view, params.profile if params.profile != "default" else "", params.overrides)
        else:
            params = resolve_partition(project.path, dataset_id, view)
        docs_files = {cid: project.paths.corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
        missing = [str(p) for p in docs_files.values() if not p.is_file()]
        if missing:
            raise dg.Failure(f"materialize corpus_docs first; missing {missing}")
        result = prepare.build_view(params, project.path, docs_files)
        train, job = prepare.read_split(params, project.path)  # checks read back what was written
        return dg.MaterializeResult(
            metadata={
                "params_hash": params.params_hash,
                "profile": params.profile,
                "overrides": dg.MetadataValue.json(params.overrides),
                "seed": params.seed,
                "train_prop": params.train_prop,
                "n_train": len(train),
                "n_job": len(job),
                "label_counts_before_balance": markdown_counts(result.meta["label_counts_before_balance"]),
                "train_label_counts": markdown_counts(result.meta["split"]["train_label_counts"]),
                "job_label_counts": markdown_counts(result.meta["split"]["job_label_counts"]),
                "excluded_by_reason": markdown_counts(result.meta["excluded_by_reason"], "reason"),
                "params": dg.MetadataValue.json(params.model_dump(mode="json")),
                "train_path": dg.MetadataValue.path(project.paths.rel(result.train_path)),
                "meta_view_path": dg.MetadataValue.path(project.paths.rel(result.meta_path)),
            },
            check_results=view_checks(train, job, params.quality.min_docs_per_class, params.split.group_by),
        )

    @dg.asset(
        partitions_def=views_pd, group_name=GROUP, code_version=CODE_VERSION, deps=[view_split, view_params],
        description="spaCy DocBin shards, HF JSONL, TSV references and meta_formats.json under data/processed/<dataset>/<view>/.",
    )
    def model_formats(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        dataset_id, view = split_view_key(context.partition_key)
        meta_view = json.loads((project.paths.view_dir(dataset_id, view) / "meta_view.json").read_text(encoding="utf-8"))
        params = resolve_partition(project.path, dataset_id, view)
        if params.params_hash != meta_view["params_hash"]:
            raise dg.Failure(f"view_split of {dataset_id}/{view} was built with params {meta_view['params_hash']}, current are {params.params_hash}: materialize view_split first")
        train, job = prepare.read_split(params, project.path)
        meta = formats.write_formats(params, project.paths, train, job)
        return dg.MaterializeResult(metadata={
            "params_hash": params.params_hash,
            "families": dg.MetadataValue.json(meta["families"]),
            "meta_formats_path": dg.MetadataValue.path(project.paths.rel(project.paths.processed_dir(dataset_id, view) / "meta_formats.json")),
        })

    return [raw_tei, view_params, corpus_docs, actor_counts, view_split, model_formats]


def view_checks(train: pd.DataFrame, job: pd.DataFrame, min_docs: int, group_by: str | None) -> list[dg.AssetCheckResult]:
    """The quality gates of a split, computed from the files as written."""
    train_counts = train["label"].value_counts().to_dict()
    job_counts = job["label"].value_counts().to_dict()
    labels_ = sorted(set(train_counts) | set(job_counts))
    short = {lab: {"train": int(train_counts.get(lab, 0)), "job": int(job_counts.get(lab, 0))}
             for lab in labels_ if train_counts.get(lab, 0) < min_docs or job_counts.get(lab, 0) < 1}
    empty = int((train["text"].str.strip() == "").sum() + (job["text"].str.strip() == "").sum())
    leaks = split.leakage(train, job, group_by if group_by in train.columns else None)
    return [
        dg.AssetCheckResult(check_name="enough_docs_per_class", passed=bool(labels_) and not short,
                            metadata={"min_docs_per_class": min_docs, "classes_below": dg.MetadataValue.json(short), "n_classes": len(labels_)}),
        dg.AssetCheckResult(check_name="no_empty_texts", passed=empty == 0, metadata={"empty_texts": empty}),
        dg.AssetCheckResult(check_name="no_train_job_leakage", passed=not any(leaks.values()), metadata=leaks),
    ]
