"""A model family added exactly as docs/internals.md's "Adding a model family" says, then trained and
evaluated through Dagster: one module of its own (in a package outside pepm), one registry entry
(the package's entry point in the `pepm.families` group), one models.yml entry. Nothing of pepm is
edited, so this fails when any step of the recipe stops being enough."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from pepm_assets.core import families
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.training import read_index
from pepm_assets.defs import runner
from pepm_assets_tests.fixtures import REPO, make_project

# step 1, the module: predicts, for a text containing the keyword, the label most train texts with
# it have, and for any other text the label most of the others have
KEYWORD_MODULE = '''
"""keyword: a one-word rule learnt from train."""

import json
from pathlib import Path

from pepm_assets.core.families import Family, FamilyParams, TrainData


class KeywordParams(FamilyParams):
    keyword: str


class KeywordFamily(Family):
    reads = "tsv"
    params_model = KeywordParams

    def fit(self, data: TrainData, model_dir: Path) -> dict:
        has = data.train["text"].str.lower().str.contains(self.params.keyword, regex=False)
        rule = {
            "with_keyword": str(data.train["label"][has].mode()[0]),
            "without_keyword": str(data.train["label"][~has].mode()[0]),
        }
        (model_dir / "rule.json").write_text(json.dumps(rule), encoding="utf-8")
        return rule

    def predict(self, model_dir: Path, texts: list[str]) -> list[str]:
        rule = json.loads((model_dir / "rule.json").read_text(encoding="utf-8"))
        return [rule["with_keyword" if self.params.keyword in t.lower() else "without_keyword"] for t in texts]
'''
# step 2, the registry entry: the package's pyproject.toml declares
#     [project.entry-points."pepm.families"]
#     keyword = "pepm_keyword:KeywordFamily"
# and `pip install` writes it into the distribution's metadata, where the registry reads it
DIST_INFO = {
    "METADATA": "Metadata-Version: 2.1\nName: pepm-keyword\nVersion: 0.1\n",
    "entry_points.txt": "[pepm.families]\nkeyword = pepm_keyword:KeywordFamily\n",
}
# step 3, the models.yml entry (and a profile that runs the family)
MODEL_ENTRY = "  keyword_egalite: {family: keyword, params: {keyword: égalité}}\n"
PROFILE = """dataset_id: tiny_mpt
view: left_right
families: [check, keyword]
seed: 7
quality: {min_docs_per_class: 5}
"""


@pytest.fixture()
def installed_keyword_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The package as `pip install` leaves it in a site folder: its module and its dist-info."""
    site = tmp_path / "site"
    (site / "pepm_keyword-0.1.dist-info").mkdir(parents=True)
    (site / "pepm_keyword.py").write_text(KEYWORD_MODULE, encoding="utf-8")
    for name, text in DIST_INFO.items():
        (site / "pepm_keyword-0.1.dist-info" / name).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("pepm_keyword", None)


def test_a_family_added_as_the_readme_says_trains_and_evaluates_through_dagster(
    installed_keyword_package: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance: dg.DagsterInstance
) -> None:
    assert "keyword" in families.REGISTRY.names() and families.REGISTRY.get("keyword").reads == "tsv"
    project = make_project(tmp_path / "proj")
    with open(project / "configs" / "common" / "models.yml", "a", encoding="utf-8") as fh:
        fh.write(MODEL_ENTRY)
    (project / "configs" / "profiles" / "tiny_keyword.yml").write_text(PROFILE, encoding="utf-8")
    monkeypatch.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    report = runner.run_stage(project, "pipeline", "tiny_keyword", [], dagster_instance)  # definitions built from the project
    assert report.params.models == ["check_default", "keyword_egalite"]
    for asset in ("model/keyword_egalite", "evaluation/keyword_egalite"):  # materialized by Dagster, not skipped
        assert dagster_instance.get_latest_materialization_event(dg.AssetKey.from_user_string(asset)) is not None, asset

    paths = ProjectPaths(project)
    # prepare wrote the format the family reads, once for both families, and nothing else
    meta_formats = json.loads((paths.processed_dir("tiny_mpt", "left_right") / "meta_formats.json").read_text(encoding="utf-8"))
    assert meta_formats["families"] == {"check": "tsv", "keyword": "tsv"} and list(meta_formats["formats"]) == ["tsv"]
    assert not (paths.processed_dir("tiny_mpt", "left_right") / "spacy").exists()

    meta_model = json.loads((paths.model_dir("tiny_mpt", "left_right", "keyword", "keyword_egalite") / "meta_model.json").read_text())
    assert meta_model["family"] == "keyword" and meta_model["fit"] == {"with_keyword": "left", "without_keyword": "right"}

    # the rule applied by hand to job.tsv, read with the csv module: the accuracy pepm must report
    with open(paths.view_dir("tiny_mpt", "left_right") / "job.tsv", encoding="utf-8", newline="") as fh:
        job = list(csv.DictReader(fh, delimiter="\t"))
    expected = sum(("left" if "égalité" in row["text"].lower() else "right") == row["label"] for row in job) / len(job)
    assert 0.5 < expected < 1  # the rule is right often, not always: the score says which documents it got
    scores = json.loads((paths.report_dir("tiny_mpt", "left_right", "keyword", "keyword_egalite") / "metrics.json").read_text())
    assert scores["accuracy"] == pytest.approx(expected)

    index = {e["model_id"]: e for e in read_index(paths)}
    assert index["keyword_egalite"]["family"] == "keyword"
    assert index["keyword_egalite"]["metrics"]["accuracy"] == pytest.approx(expected)
    assert "keyword_egalite" in (paths.reports / "leaderboard.md").read_text(encoding="utf-8")


def test_listing_families_imports_none_of_them() -> None:
    """Names come from the registry entries: validating a config never imports a family's module."""
    code = (
        "import sys\n"
        "from pepm_assets.core import families, formats\n"
        "assert families.REGISTRY.names() == ['check', 'cluster', 'hf', 'sklearn', 'spacy'], families.REGISTRY.names()\n"
        "assert formats.REGISTRY.names() == ['hf_jsonl', 'spacy_docbin', 'tsv'], formats.REGISTRY.names()\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pepm_assets.core.families.', 'torch', 'spacy', 'sklearn'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_entry_point_cannot_replace_a_builtin_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "other-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[pepm.families]\nsklearn = other:Sklearn\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="'sklearn' is registered twice"):
        families.REGISTRY.names()


def test_a_family_is_given_the_entry_of_the_format_it_reads() -> None:
    meta = {"families": {"check": "tsv", "hf": "hf_jsonl"}, "formats": {"tsv": {"format": "tsv"}, "hf_jsonl": {"format": "hf_jsonl"}}}
    assert families.input_format(families.build("hf", {}), meta) == {"format": "hf_jsonl"}
    with pytest.raises(ValueError, match=r"no 'spacy_docbin' format.*wrote \['hf_jsonl', 'tsv'\]"):
        families.input_format(families.build("spacy", {"config": "configs/spacy/spacy_bow.cfg"}), meta)
