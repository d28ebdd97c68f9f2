"""The prepare steps of a dataset x view with their lineage stamps, shared by the Dagster assets
(defs/assets/prepare.py, outputs under the project) and the sweep runs (core/sweep/execute.py,
outputs under superior/<exp_id>/runs/<run_id>/). `out` is the project-shaped folder that receives
the split and the formats; the parsed corpora are always read from the project (`corpora`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import formats, lineage, prepare
from .config import ResolvedParams
from .paths import ProjectPaths


def parsed_versions(params: ResolvedParams, corpora: ProjectPaths) -> dict[str, str]:
    """The recorded version of each parsed corpus of the dataset; a LineageError names a missing one."""
    versions = {}
    for cid in params.dataset.corpus_ids:
        version = lineage.recorded_version(corpora.corpus_dir(cid) / "parse_stats.json")
        if version is None:
            raise lineage.LineageError(f"corpus_docs[{cid}] is missing (data/interim/_corpora/{cid}/): materialize it first")
        versions[cid] = version
    return versions


def build_split(params: ResolvedParams, out: Path, corpora: ProjectPaths) -> tuple[prepare.ViewResult, str, dict[str, str]]:
    """Label, balance and split into `out`, stamped with the view's version: (result, version,
    versions of the parsed corpora it read). The corpora's stamps are read again after the read:
    a corpus re-parsed meanwhile fails the step instead of mixing two versions (callers that hold
    the corpus locks never see it)."""
    docs_versions = parsed_versions(params, corpora)
    version = lineage.view_version(params, docs_versions)
    stamp = lineage.stamp(version, {"params_hash": params.params_hash, "corpus_docs": docs_versions}, ["train.tsv", "job.tsv"])
    docs_files = {cid: corpora.corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
    result = prepare.build_view(params, out, docs_files, stamp)
    if parsed_versions(params, corpora) != docs_versions:
        raise lineage.LineageError(f"a corpus of {params.dataset_id} was parsed again while the split was built; run again")
    return result, version, docs_versions


def build_formats(params: ResolvedParams, out: Path) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The model formats of the split in `out` that the run's models read (formats.write_formats:
    those missing or holding too few train rows are written, the others kept), if that split was
    built with `params`: (meta_formats, version, the split's stamp); else a LineageError saying to
    build the split first."""
    paths = ProjectPaths(out)
    view_stamp = lineage.read_stamp(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    if view_stamp is None or view_stamp["inputs"].get("params_hash") != params.params_hash:
        raise lineage.LineageError(
            f"view_split of {params.dataset_id}/{params.view} on disk is missing or was built with other "
            f"parameters than this run's ({params.params_hash}): materialize view_split first"
        )
    version = lineage.formats_version(view_stamp["version"])
    split = prepare.SplitOnDisk.of(params, out)
    meta = formats.write_formats(params, paths, split, lineage.stamp(version, {"view": view_stamp["version"]}, []))
    return meta, version, view_stamp
