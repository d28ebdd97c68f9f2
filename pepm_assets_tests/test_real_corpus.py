"""The one real-corpus path: MPT from the shipped archive, prepared through Dagster."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd

from pepm_assets.core import dvc
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.fixtures import REPO


def test_mpt_prepared_through_dagster(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    root = tmp_path / "pepm"
    shutil.copytree(REPO / "configs", root / "configs")
    dvc.unpack_shipped(REPO / "data" / "shipped" / "corpora.tar.xz", root / "data" / "raw", ["mpt"])
    defs = build_definitions(root)
    report = runner.prepare(root, "ideo_quick", [], dagster_instance, defs)
    assert all(report.checks.values()) and len(report.checks) == 5

    paths = ProjectPaths(root)
    stats = json.loads((paths.corpus_dir("mpt") / "parse_stats.json").read_text())
    assert stats["n_files"] == 25 and stats["n_docs"] > 19000 and stats["reject_rate"] < 0.001
    assert stats["groups"]["UMP"] > 7700 and stats["groups"]["SRC"] > 3800

    meta = json.loads((paths.view_dir("mpt", "left_right") / "meta_view.json").read_text())
    excluded = meta["excluded_by_reason"]
    assert excluded["chair_speaker"] > 4000 and excluded["government_speaker"] > 1000 and excluded["collective_speaker"] > 300
    counts = meta["label_counts_before_balance"]
    assert set(counts) == {"left", "right"} and counts["right"] > counts["left"] > 3000
    assert abs(meta["split"]["n_train"] / (meta["split"]["n_train"] + meta["split"]["n_job"]) - 0.8) < 0.005
    assert meta["split"]["kind"] == "grouped by speaker"  # ideo_quick leaves its split to the default
    assert meta["leakage"] == {"shared_texts": 0, "shared_doc_ids": 0, "shared_speaker": 0}

    train = pd.read_csv(paths.view_dir("mpt", "left_right") / "train.tsv", sep="\t")
    assert len(train) == meta["split"]["n_train"] and train["text"].str.len().min() > 0
    formats = json.loads((paths.processed_dir("mpt", "left_right") / "meta_formats.json").read_text())
    spacy_format = formats["formats"]["spacy_docbin"]
    shards, held = spacy_format["train"], spacy_format["holds"]
    assert held["n_train"] == min(meta["split"]["n_train"], held["max_train_docs"]["spacy"])  # what the capped family reads
    assert len(shards) == -(-held["n_train"] // 2000) and all((root / s).is_file() for s in shards)
    assert (root / formats["formats"]["hf_jsonl"]["job"]).read_text(encoding="utf-8").count("\n") == meta["split"]["n_job"]

    # every input file accounted for, and the version chain from the raw bytes (acceptance on MPT)
    files = pd.read_parquet(paths.corpus_dir("mpt") / "files.parquet")
    assert len(files) == 25 and set(files["status"]) == {"parsed"} and files["n_docs"].sum() == stats["n_docs"]
    from pepm_assets.core import lineage
    from pepm_assets.core.config import resolve_profile

    params = resolve_profile(root, "ideo_quick")

    def states() -> dict[str, str]:
        return {st.asset: st.state for st in lineage.Expected(root).statuses(params, {})}

    assert set(states().values()) == {"FRESH"}
    raw = root / "data" / "raw" / "mpt" / "20130129.xml"
    before = 'auteur="Annie_Genevard" interventiontype="intervention" politicalgroup="UMP"'
    raw.write_text(raw.read_text(encoding="utf-8").replace(before, before.replace("UMP", "SRC")), encoding="utf-8")
    assert states() == {"corpus_docs": "STALE", "view_split": "STALE", "model_formats": "STALE"}
    runner.prepare(root, "ideo_quick", [], dagster_instance, defs)
    assert set(states().values()) == {"FRESH"}
    rows = pd.concat([pd.read_csv(paths.view_dir("mpt", "left_right") / f"{s}.tsv", sep="\t") for s in ("train", "job")])
    edited = rows[(rows["speaker"] == "Annie_Genevard") & rows["doc_id"].str.startswith("mpt:20130129:")]
    assert len(edited) > 0 and set(edited["label"]) == {"left"}
    assert set(rows[(rows["speaker"] == "Annie_Genevard") & ~rows["doc_id"].str.startswith("mpt:20130129:")]["label"]) == {"right"}
