"""`pepm explore` (core/explore.py + ui/explore_app.py), the corpus explorer. On the tiny fixture
project, real runs: tiny_quick's pipeline (the control, a scikit-learn model, a clustering model),
then tiny_an prepared (a second parsed corpus). Every expected value is read back from the files
the stages wrote (docs.parquet, train.tsv, job.tsv, predictions.tsv), not from the explorer."""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core import explore
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

APP = Path(explore.__file__).resolve().parents[1] / "ui" / "explore_app.py"
SPEAKER = "Hervé_Mariton"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("explore")
    root = make_project(tmp / "proj")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            defs = build_definitions(root)
            runner.run_stage(root, "pipeline", "tiny_quick", ["models=[check_default,tfidf_svm_quick,kmeans_tfidf]"], instance, defs)
            runner.run_stage(root, "prepare", "tiny_an", [], instance, defs)
    return root


def _docs(root: Path, corpus: str) -> pd.DataFrame:
    return pq.read_table(ProjectPaths(root).corpus_dir(corpus) / "docs.parquet").to_pandas()


def _tsv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _view(inv: explore.Inventory, dataset: str) -> explore.ViewSplit:
    return next(v for v in inv.views if v.dataset_id == dataset)


def _evaluation(inv: explore.Inventory, view: explore.ViewSplit, model: str) -> explore.Evaluation:
    return next(e for e in inv.evaluations_on(view) if e.model_id == model)


# ------------------------------------------------------------------------------------ core


def test_inventory_lists_corpora_views_and_the_models_evaluated_on_each(project: Path) -> None:
    inv = explore.inventory(project)
    assert set(inv.corpora) == {"mpt", "an"}
    assert [v.key for v in inv.views] == ["tiny_an / left_right", "tiny_mpt / left_right"]
    mpt = _view(inv, "tiny_mpt")
    assert mpt.corpora == ("mpt",) and set(mpt.files) == {"train", "job"}
    assert {e.model_id for e in inv.evaluations_on(mpt)} == {"check_default", "tfidf_svm_quick", "kmeans_tfidf"}
    assert inv.evaluations_on(_view(inv, "tiny_an")) == []  # prepared, never evaluated
    svm = _evaluation(inv, mpt, "tfidf_svm_quick")
    assert svm.predictions == ProjectPaths(project).report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "predictions.tsv"
    assert inv.is_current(svm, mpt)
    assert not inv.is_current(dataclasses.replace(svm, eval_split_version="another split"), mpt)


def test_split_and_label_of_every_document_are_the_view_files(project: Path) -> None:
    inv = explore.inventory(project)
    view = _view(inv, "tiny_mpt")
    frame = explore.load_documents(inv, view).set_index("doc_id")
    docs = _docs(project, "mpt")
    assert sorted(frame.index) == sorted(docs["doc_id"])  # every parsed document of the view's corpus, once
    placed = {}
    for name in ("train", "job"):
        for row in _tsv(view.folder / f"{name}.tsv"):
            placed[row["doc_id"]] = name
            assert (frame.at[row["doc_id"], "split"], frame.at[row["doc_id"], "label"]) == (name, row["label"])
    others = frame.drop(index=list(placed))
    assert len(others) == 26 and set(others["split"]) == {explore.EXCLUDED} and set(others["label"]) == {""}
    for name in ("train", "job", explore.EXCLUDED):
        kept = explore.filter_documents(frame.reset_index(), explore.Filters(splits=(name,)))
        assert set(kept["doc_id"]) == ({d for d, s in placed.items() if s == name} if name != explore.EXCLUDED else set(others.index))


def test_each_filter_keeps_exactly_its_documents(project: Path) -> None:
    inv = explore.inventory(project)
    frame = explore.load_documents(inv)  # no view: both parsed corpora
    docs = pd.concat([_docs(project, "mpt"), _docs(project, "an")], ignore_index=True)
    assert len(frame) == len(docs)

    def kept(**filters) -> set[str]:
        return set(explore.filter_documents(frame, explore.Filters(**filters))["doc_id"])

    assert kept(speakers=(SPEAKER,)) == set(docs.loc[docs["speaker"] == SPEAKER, "doc_id"]) and len(kept(speakers=(SPEAKER,))) == 12
    assert kept(corpora=("an",)) == set(docs.loc[docs["corpus_id"] == "an", "doc_id"])
    assert kept(groups=("UMP", "SOC")) == set(docs.loc[docs["group"].isin(["UMP", "SOC"]), "doc_id"])
    assert kept(date_from="2013-01-30", date_to="2013-01-30") == set(docs.loc[docs["date"] == "2013-01-30", "doc_id"])
    assert kept(date_from="2019-01-01") == set(docs.loc[docs["date"] >= "2019-01-01", "doc_id"]) != set()
    assert kept(min_tokens=5, max_tokens=14) == set(docs.loc[docs["n_tokens"].between(5, 14), "doc_id"]) != set()
    both = kept(speakers=(SPEAKER,), date_to="2013-01-29")
    assert both == set(docs.loc[(docs["speaker"] == SPEAKER) & (docs["date"] == "2013-01-29"), "doc_id"]) and len(both) == 6
    assert kept() == set(docs["doc_id"])  # no filter set: everything
    view = _view(inv, "tiny_mpt")
    labelled = explore.load_documents(inv, view)
    right = {r["doc_id"] for name in ("train", "job") for r in _tsv(view.folder / f"{name}.tsv") if r["label"] == "right"}
    assert set(explore.filter_documents(labelled, explore.Filters(labels=("right",)))["doc_id"]) == right


def test_prediction_and_score_of_each_document_are_the_evaluation_file(project: Path) -> None:
    inv = explore.inventory(project)
    view = _view(inv, "tiny_mpt")
    svm = _evaluation(inv, view, "tfidf_svm_quick")
    frame = explore.load_documents(inv, view, svm).set_index("doc_id")
    written = _tsv(svm.predictions)
    assert len(written) == 24
    for row in written:
        assert frame.at[row["doc_id"], "predicted"] == row["predicted"]
        assert frame.at[row["doc_id"], "score"] == pytest.approx(float(row["score"]))
        assert bool(frame.at[row["doc_id"], "correct"]) == (row["predicted"] == row["label"])
    unscored = frame.drop(index=[r["doc_id"] for r in written])
    assert set(unscored["predicted"]) == {""} and unscored["correct"].isna().all() and unscored["score"].isna().all()
    assert set(frame.loc[frame["predicted"] != "", "split"]) == {"job"}  # the canonical split's job set
    clusters = explore.load_documents(inv, view, _evaluation(inv, view, "kmeans_tfidf"))
    assert (clusters["predicted"] != "").sum() == 24 and clusters["correct"].isna().all()  # a cluster is never right or wrong


def test_texts_are_read_for_the_documents_asked_only(project: Path) -> None:
    inv = explore.inventory(project)
    frame = explore.load_documents(inv)
    asked = frame[frame["speaker"].isin([SPEAKER, "Boris_Vallaud"])].head(8)
    texts = explore.read_texts(inv, asked)
    docs = pd.concat([_docs(project, "mpt"), _docs(project, "an")]).set_index("doc_id")
    assert set(texts) == set(asked["doc_id"]) and {d[:3] for d in texts} == {"mpt", "an:"}
    assert all(texts[d] == docs.at[d, "text"] for d in texts)


def test_no_parsed_documents_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "fresh")
    with pytest.raises(explore.ExploreError, match=r"data/interim/_corpora/<corpus>/docs\.parquet is missing; run `pepm prepare"):
        explore.inventory(root)
    monkeypatch.setenv("PEPM_ROOT", str(root))
    result = CliRunner().invoke(app, ["explore", "--port", "1"])  # fails before any server starts
    assert result.exit_code == 2 and "docs.parquet is missing" in result.output and "pepm prepare" in result.output


def test_pepm_never_imports_streamlit_and_the_core_neither_dagster() -> None:
    code = (
        "import sys\n"
        "import pepm_assets.core.explore\n"
        "assert not {'streamlit', 'dagster'} & set(sys.modules), sorted({'streamlit', 'dagster'} & set(sys.modules))\n"
        "import pepm_assets.cli\n"
        "assert 'streamlit' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------------ the app (Streamlit's headless harness)


def _app(monkeypatch: pytest.MonkeyPatch, root: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PEPM_ROOT", str(root))
    return AppTest.from_file(str(APP), default_timeout=60)


def test_app_speaker_filter_shows_that_speakers_rows_and_their_count(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, project).run()
    assert not at.exception
    assert at.selectbox(key="view").value == "tiny_an / left_right"  # the first prepared view
    at.selectbox(key="view").set_value("tiny_mpt / left_right").run()
    assert "**110 of 110 documents**" in [m.value for m in at.markdown]
    at.multiselect(key="speakers").set_value([SPEAKER]).run()
    table = at.dataframe[0].value
    expected = _docs(project, "mpt").query("speaker == @SPEAKER")
    assert set(table["speaker"]) == {SPEAKER} and sorted(table["doc_id"]) == sorted(expected["doc_id"])
    assert "**12 of 110 documents**" in [m.value for m in at.markdown]
    # the full text of the document picked
    first = table["doc_id"].iloc[0]
    assert at.selectbox(key="doc").value == first
    assert [t.value for t in at.text] == [expected.set_index("doc_id").at[first, "text"]]

    # a model: its predictions in the table, its accuracy on the documents shown
    svm = next(o for o in at.selectbox(key="model").options if o.startswith("tfidf_svm_quick"))
    at.selectbox(key="model").set_value(svm).run()
    table = at.dataframe[0].value
    assert set(table["speaker"]) == {SPEAKER}  # the filters stay
    written = {
        r["doc_id"]: r["predicted"]
        for r in _tsv(ProjectPaths(project).report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "predictions.tsv")
    }
    scored = table[table["predicted"] != ""]
    assert len(scored) == sum(1 for d in written if d in set(expected["doc_id"])) > 0
    assert all(written[d] == p for d, p in zip(scored["doc_id"], scored["predicted"]))
    right = int((scored["predicted"] == scored["label"]).sum())
    assert f"tfidf_svm_quick: {len(scored)} of them scored, {right} right (accuracy {right / len(scored):.3f})" in [
        m.value for m in at.markdown
    ]


def test_app_without_parsed_documents_shows_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(monkeypatch, make_project(tmp_path / "fresh")).run()
    assert not at.exception
    assert len(at.error) == 1 and "docs.parquet is missing" in at.error[0].value and not at.dataframe
