"""The prepare stage as partitioned assets:

raw_tei[corpus] (observed: content hash)  view_params / train_params[dataset|view] (observed: params / hardware hash)
  -> corpus_docs[corpus] -> actor_counts[corpus]
  -> view_split[dataset|view]  (+ blocking checks)  -> model_formats[dataset|view]

Each asset calls one core function; this file only adds partitions, metadata and checks.
"""

import hashlib
import json
from typing import Any

import dagster as dg
import pandas as pd

from ...core import actors, corpus, labels, lineage, prepare, split, stages
from ...core.atomic import write_json
from ...core.config import CommonConfig, ConfigError
from ...core.labels import LabelMap
from ...core.locks import corpora_locks, corpus_lock, view_lock
from ...core.selection import resolve_for_run, resolve_partition
from ..metadata import rounded
from ..partitions import corpus_partitions, corpus_to_views, split_view_key, view_partitions, with_partition
from ..resources import PepmProject

CODE_VERSION = "prepare-4"  # 4: dated affiliations (corpus-4), spaCy valid shards (formats-4)
GROUP = "prepare"


def run_params(context: dg.AssetExecutionContext, project: PepmProject):
    """The params this run stands for (its pepm/profile + pepm/overrides tags, else the partition's
    configured profile): every step resolves them from the run, never from a file a run writes."""
    dataset_id, view = split_view_key(context.partition_key)
    try:
        return resolve_for_run(project.path, dataset_id, view, context.run.tags)
    except ConfigError as exc:
        raise dg.Failure(str(exc)) from None


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
    raw_tei, view_params, train_params = _source_assets(corpora_pd, views_pd)
    corpus_docs, actor_counts = _corpus_assets(corpora_pd, raw_tei)
    view_split, model_formats = _view_assets(
        views_pd, dg.AssetDep(corpus_docs, partition_mapping=corpus_to_views(common, label_map)), view_params
    )
    return [raw_tei, view_params, train_params, corpus_docs, actor_counts, view_split, model_formats]


def _source_assets(corpora_pd: dg.PartitionsDefinition, views_pd: dg.PartitionsDefinition) -> tuple[Any, Any, Any]:
    """The observed sources: raw files (content hash), a partition's parameters and its hardware values."""

    @dg.observable_source_asset(
        partitions_def=corpora_pd,
        group_name=GROUP,
        description="Raw TEI files under `data/raw/<corpus>` that the corpus glob selects; data version = their content hash (DVC's directory hash when the glob selects the whole tracked folder).",
    )
    def raw_tei(project: PepmProject) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition({cid: lineage.raw_version(project.path, cfg) for cid, cfg in project.common().corpora.items()})

    @dg.observable_source_asset(
        partitions_def=views_pd,
        group_name=GROUP,
        description="Resolved parameters of each dataset x view (its configured profile + configs; a CLI run records its own profile + overrides); data version = their hash. Observe after editing a profile to see what became stale.",
    )
    def view_params(project: PepmProject) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition(_per_view(project, lambda params: params.params_hash))

    def _per_view(project: PepmProject, version) -> dict[str, str]:
        """version(params) of each dataset x view, resolved with its configured profile."""
        versions = {}
        common_now = project.common()
        for key in views_pd.get_partition_keys():
            dataset_id, view = split_view_key(key)
            try:
                versions[key] = version(resolve_partition(project.path, dataset_id, view, common=common_now))
            except ConfigError as exc:
                versions[key] = "invalid:" + hashlib.sha256(str(exc).encode()).hexdigest()[:16]
        return versions

    @dg.observable_source_asset(
        partitions_def=views_pd,
        group_name=GROUP,
        description="Hardware preset values of each dataset x view (its configured profile's preset); data version = their hash. The models depend on it.",
    )
    def train_params(project: PepmProject) -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition(_per_view(project, lineage.hardware_version))

    return raw_tei, view_params, train_params


def _corpus_assets(corpora_pd: dg.PartitionsDefinition, raw_tei: Any) -> tuple[Any, Any]:
    """One parsed corpus (with its quality gates) and its actor counts, per corpus partition."""

    @dg.asset(
        partitions_def=corpora_pd,
        group_name=GROUP,
        code_version=CODE_VERSION,
        deps=[raw_tei],
        description="Streaming, safe TEI parse -> docs.parquet, rejects.parquet (document rejects: reason + file:line), files.parquet (every matched file: parsed or failed, with reason and line), parse_stats.json.",
        check_specs=[
            dg.AssetCheckSpec(
                "reject_rate_under_threshold",
                asset="corpus_docs",
                blocking=True,
                description="rejected documents / documents <= corpora.yml max_reject_rate",
            ),
            dg.AssetCheckSpec(
                "failed_files_under_threshold",
                asset="corpus_docs",
                blocking=True,
                description="input files that failed completely (unreadable, broken XML, no TEI document, links, folders) <= corpora.yml max_failed_files (default 0)",
            ),
        ],
    )
    def corpus_docs(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        cid = context.partition_key
        cfg = project.common().corpora[cid]
        with corpus_lock(project.path, cid):
            raw = lineage.raw_version(project.path, cfg)
            (project.paths.corpus_dir(cid) / "parse_stats.json").unlink(missing_ok=True)  # the stamp goes first, comes back last
            outputs, stats = corpus.extract_corpus(cid, cfg, project.path, project.paths.corpus_dir(cid))
            if lineage.raw_version(project.path, cfg) != raw:
                raise dg.Failure(f"corpus {cid}: files under {cfg.path} changed while they were parsed; run again")
            config = lineage.corpus_config_version(cfg)
            version = lineage.corpus_docs_version(raw, config)
            problems = corpus.quality_gate(stats, cfg)
            parse_stats = json.loads(outputs.stats.read_text(encoding="utf-8"))
            parse_stats["quality_gate"] = problems
            if not problems:  # a corpus that fails its gate gets no stamp: nothing downstream can use it
                files = [p.name for p in (outputs.docs, outputs.rejects, outputs.files)]
                parse_stats["lineage"] = lineage.stamp(version, {"raw": raw, "config": config}, files)
            write_json(outputs.stats, parse_stats)  # the stamp, last
        return _parsed_result(project, cid, cfg, outputs, stats, raw, version)

    @dg.asset(
        partitions_def=corpora_pd,
        group_name=GROUP,
        code_version=CODE_VERSION,
        deps=[corpus_docs],
        description="`actors_counts_<corpus>.tsv` and an ideology_actors skeleton: every actor, counts and current label per view.",
    )
    def actor_counts(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        cid = context.partition_key
        label_map_ = labels.load_label_map(project.path / "configs" / "label_maps" / "ideology.yml", project.path)
        tsv, yml, table = actors.write_actor_files(
            cid, project.paths.corpus_dir(cid) / "docs.parquet", label_map_, project.paths.actors_dir(cid)
        )
        unlabelled = table[table["category"] == ""]
        return dg.MaterializeResult(
            metadata={
                "n_actors": len(table),
                "n_actors_unlabelled": len(unlabelled),
                "docs_of_unlabelled_actors": markdown_counts(unlabelled.groupby("exclusion")["n_docs"].sum().to_dict(), "reason"),
                "counts_path": dg.MetadataValue.path(project.paths.rel(tsv)),
                "skeleton_path": dg.MetadataValue.path(project.paths.rel(yml)),
            }
        )

    return corpus_docs, actor_counts


def _parsed_result(project: PepmProject, cid: str, cfg: Any, outputs: Any, stats: Any, raw: str, version: str) -> dg.MaterializeResult:
    """corpus_docs' metadata (counts, the first rejects, failed files) and its two gates."""
    rejects = pd.read_parquet(outputs.rejects)
    first = rejects.head(10)
    return dg.MaterializeResult(
        metadata=rounded(
            {
                "n_docs": stats.n_docs,
                "n_rejects": stats.n_rejects,
                "reject_rate": stats.reject_rate,
                "n_files": stats.n_files,
                "n_files_failed": stats.n_files_failed,
                "failed_by_reason": markdown_counts(dict(stats.failed_by_reason), "reason", "files"),
                "n_tokens": stats.n_tokens,
                "seconds": stats.seconds,
                "groups": markdown_counts(dict(stats.groups.most_common()), "group"),
                "rejects_by_reason": markdown_counts(dict(stats.rejects_by_reason), "reason"),
                "first_rejects": markdown_rows(first, ["source_file", "source_line", "reason", "detail"]),
                "docs_path": dg.MetadataValue.path(project.paths.rel(outputs.docs)),
                "dialect": cfg.dialect,
                "description": cfg.description,
                "raw_version": raw,
            }
        ),
        data_version=dg.DataVersion(version),
        check_results=with_partition(
            [
                dg.AssetCheckResult(
                    check_name="reject_rate_under_threshold",
                    passed=stats.reject_rate <= cfg.max_reject_rate,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "reject_rate": stats.reject_rate,
                        "threshold": cfg.max_reject_rate,
                        "rejects_by_reason": dict(stats.rejects_by_reason),
                    },
                ),
                dg.AssetCheckResult(
                    check_name="failed_files_under_threshold",
                    passed=stats.n_files_failed <= cfg.max_failed_files,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "n_files_failed": stats.n_files_failed,
                        "threshold": cfg.max_failed_files,
                        "n_files": stats.n_files,
                        "failed_files": markdown_rows(
                            pd.DataFrame(stats.failed_files, columns=["source_file", "line", "reason", "detail"]),
                            ["source_file", "line", "reason", "detail"],
                        ),
                    },
                ),
            ],
            cid,
        ),
    )


def _view_assets(views_pd: dg.PartitionsDefinition, docs_dep: dg.AssetDep, view_params: Any) -> tuple[Any, Any]:
    """A dataset x view's split (with its blocking checks) and the model formats written from it."""

    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        code_version=CODE_VERSION,
        deps=[docs_dep, view_params],
        description="Label map, quality filters, balance, leak-free train/job split -> `data/interim/<dataset>/<view>/{train,job}.tsv`, meta_view.json (split.repeats > 1: also `repeats/r<k>/{train,job}.tsv`, each passing the same checks).",
        check_specs=[
            dg.AssetCheckSpec(
                "enough_docs_per_class",
                asset="view_split",
                blocking=True,
                description="every class has >= quality.min_docs_per_class train docs and >= 1 job doc",
            ),
            dg.AssetCheckSpec("no_empty_texts", asset="view_split", blocking=True, description="no empty text in train.tsv / job.tsv"),
            dg.AssetCheckSpec(
                "no_train_job_leakage",
                asset="view_split",
                blocking=True,
                description="no doc id, normalised text (or group_by value) in both train and job",
            ),
        ],
    )
    def view_split(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        params = run_params(context, project)
        with view_lock(project.path, params.dataset_id, params.view), corpora_locks(project.path, params.dataset.corpus_ids):
            try:
                result, version, docs_versions = stages.build_split(params, project.path, project.paths)
            except lineage.LineageError as exc:
                raise dg.Failure(str(exc)) from None
            train, job = prepare.read_split(params, project.path)  # checks read back what was written
            repeats = [
                tuple(
                    prepare.read_repeat(params, project.path, r, name) if name != "valid" or params.split.validation_prop else None
                    for name in ("train", "job", "valid")
                )
                for r in range(1, params.split.repeats)
            ]
        return dg.MaterializeResult(
            metadata=rounded(
                {
                    "params_hash": params.params_hash,
                    "profile": params.profile,
                    "dataset": params.dataset.description or ", ".join(params.dataset.corpus_ids),
                    "overrides": dg.MetadataValue.json(params.overrides),
                    "seed": params.seed,
                    "train_prop": params.train_prop,
                    "n_train": len(train),
                    "n_job": len(job),
                    "split_repeats": params.split.repeats,
                    "label_counts_before_balance": markdown_counts(result.meta["label_counts_before_balance"]),
                    "train_label_counts": markdown_counts(result.meta["split"]["train_label_counts"]),
                    "job_label_counts": markdown_counts(result.meta["split"]["job_label_counts"]),
                    "excluded_by_reason": markdown_counts(result.meta["excluded_by_reason"], "reason"),
                    "excluded_by_group": markdown_rows(
                        pd.DataFrame(labels.exclusion_rows(result.meta["excluded_by_group"]), columns=["reason", "group", "docs"]),
                        ["reason", "group", "docs"],
                    ),
                    "coalition_rules": dg.MetadataValue.json(result.meta["label_map"]["coalitions"]),
                    # filters.procedural / languages / near_duplicates (core/quality.py): what each did
                    **({"data_quality": dg.MetadataValue.json(result.meta["quality"])} if "quality" in result.meta else {}),
                    **{k: v for k, v in result.meta["leakage"].items() if k == "near_duplicate_pairs_across_split"},
                    "params": dg.MetadataValue.json(params.model_dump(mode="json")),
                    "train_path": dg.MetadataValue.path(project.paths.rel(result.train_path)),
                    "meta_view_path": dg.MetadataValue.path(project.paths.rel(result.meta_path)),
                    "corpus_docs_versions": dg.MetadataValue.json(docs_versions),
                }
            ),
            data_version=dg.DataVersion(version),
            check_results=with_partition(
                view_checks(
                    train,
                    job,
                    params.quality.min_docs_per_class,
                    params.split.group_by,
                    params.dataset.source_field if params.dataset.merge_mode == "separate" else None,
                    valid=result.valid if params.split.validation_prop else None,
                    repeats=repeats,
                ),
                context.partition_key,
            ),
        )

    @dg.asset(
        partitions_def=views_pd,
        group_name=GROUP,
        code_version=CODE_VERSION,
        deps=[view_split, view_params],
        description=(
            "The formats the run's models read (spaCy DocBin shards, HF JSONL, TSV references), each holding the train "
            "documents its capped families use, and meta_formats.json, under `data/processed/<dataset>/<view>/`; "
            "a format already written for this split is kept."
        ),
    )
    def model_formats(context: dg.AssetExecutionContext, project: PepmProject) -> dg.MaterializeResult:
        params = run_params(context, project)
        with view_lock(project.path, params.dataset_id, params.view):
            try:
                meta, version, view_stamp = stages.build_formats(params, project.path)
            except lineage.LineageError as exc:
                raise dg.Failure(str(exc)) from None
        return dg.MaterializeResult(
            metadata={
                "params_hash": params.params_hash,
                "view_version": view_stamp["version"],
                "families": dg.MetadataValue.json(meta["families"]),
                "formats_held": dg.MetadataValue.json({name: e.get("holds", {}).get("n_train") for name, e in meta["formats"].items()}),
                "meta_formats_path": dg.MetadataValue.path(
                    project.paths.rel(project.paths.processed_dir(params.dataset_id, params.view) / "meta_formats.json")
                ),
            },
            data_version=dg.DataVersion(version),
        )

    return view_split, model_formats


def view_checks(
    train: pd.DataFrame,
    job: pd.DataFrame,
    min_docs: int,
    group_by: str | None,
    per: str | None = None,
    valid: pd.DataFrame | None = None,
    repeats: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]] = (),
) -> list[dg.AssetCheckResult]:
    """The quality gates of a split, computed from the files as written. `per` (the source field of
    a `separate` dataset): class sizes and leakage are checked within each corpus, which is what
    each corpus's own model trains and is scored on. `valid` (split.validation_prop): no document or
    group of it in train or job either. `repeats` (split.repeats > 1): the (train, job, valid) of
    repeats 1.. pass the same gates, each on its own (a class short in repeat 2 is `r2/<label>`)."""
    splits = [("", train, job, valid)] + [(f"r{r}/", *parts) for r, parts in enumerate(repeats, start=1)]
    parts = [
        part
        for tag, tr, jb, vd in splits
        for part in (
            [(tag, tr, jb, vd)]
            if per is None
            else [
                (f"{tag}{c}/", tr[tr[per] == c], jb[jb[per] == c], None if vd is None else vd[vd[per] == c]) for c in sorted(set(tr[per]))
            ]
        )
    ]
    short: dict[str, dict[str, int]] = {}
    leaks: dict[str, int] = {}
    for prefix, part_train, part_job, part_valid in parts:
        train_counts = part_train["label"].value_counts().to_dict()
        job_counts = part_job["label"].value_counts().to_dict()
        for lab in sorted(set(train_counts) | set(job_counts)):
            if train_counts.get(lab, 0) < min_docs or job_counts.get(lab, 0) < 1:
                short[prefix + lab] = {"train": int(train_counts.get(lab, 0)), "job": int(job_counts.get(lab, 0))}
        for name, n in split.leakage(part_train, part_job, group_by if group_by in train.columns else None, part_valid).items():
            leaks[name] = leaks.get(name, 0) + n
    labels_ = sorted(set(train["label"]) | set(job["label"]))
    empty = sum(int((df["text"].str.strip() == "").sum()) for _, tr, jb, _ in splits for df in (tr, jb))
    return [
        dg.AssetCheckResult(
            check_name="enough_docs_per_class",
            passed=bool(labels_) and not short,
            metadata={"min_docs_per_class": min_docs, "classes_below": dg.MetadataValue.json(short), "n_classes": len(labels_)},
        ),
        dg.AssetCheckResult(check_name="no_empty_texts", passed=empty == 0, metadata={"empty_texts": empty}),
        dg.AssetCheckResult(check_name="no_train_job_leakage", passed=not any(leaks.values()), metadata=leaks),
    ]
