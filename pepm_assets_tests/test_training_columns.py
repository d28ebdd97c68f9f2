"""Training reads of train.tsv only the columns its family fits from (`Family.train_columns`, with the
document ids, the label, the source field and the split's group_by), and fits the same model as
from the whole file: at 40x MPT the unread columns were ~350 MB of the fit's peak memory."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pepm_assets.core import stages, training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families.check import CheckFamily
from pepm_assets.core.families.sklearn import SklearnFamily
from pepm_assets.core.paths import ProjectPaths
from pepm_assets_tests.fixtures import build_stamped_view, make_project

MODEL = "tfidf_svm_quick"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    root = make_project(tmp_path_factory.mktemp("columns") / "proj")
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, ProjectPaths(root).corpus_dir("mpt"))
    params, _ = build_stamped_view(root, "tiny_quick", ["families=[check,sklearn]", f"models=[{MODEL},check_default]"])
    stages.build_formats(params, root)
    return root, params


def _fit(root: Path, params, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], object]:
    """(the columns the family's fit was given, the fitted pipeline)."""
    seen: list[list[str]] = []
    fit = SklearnFamily.fit

    def recording(self, data, model_dir):
        seen.append(list(data.train.columns))
        return fit(self, data, model_dir)

    monkeypatch.setattr(SklearnFamily, "fit", recording)
    meta = training.train_model(params, MODEL, params.model_specs[MODEL], root)
    model_dir = ProjectPaths(root).model_dir(params.dataset_id, params.view, "sklearn", MODEL)
    with open(model_dir / "model.pkl", "rb") as fh:
        return seen[0], (pickle.load(fh), meta["n_train_used"])


def test_a_family_gets_only_its_columns_and_fits_the_same_model_as_from_every_column(prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    root, params = prepared
    train_tsv = ProjectPaths(root).view_dir(params.dataset_id, params.view) / "train.tsv"
    header = train_tsv.read_text(encoding="utf-8").split("\n", 1)[0].split("\t")
    assert {"speaker", "date", "text_key"} <= set(header)
    narrow, (model, n) = _fit(root, params, monkeypatch)
    wanted = {"doc_id", "label", "text", params.dataset.source_field, params.split.group_by}  # tiny_quick: grouped by speaker
    assert narrow == [c for c in header if c in wanted] and "date" not in narrow and "text_key" not in narrow, narrow
    monkeypatch.setattr(SklearnFamily, "train_columns", None)  # what training read before: the whole file
    wide, (whole, n_whole) = _fit(root, params, monkeypatch)
    assert wide == header and n == n_whole > 0
    assert model.named_steps["tfidf"].vocabulary_ == whole.named_steps["tfidf"].vocabulary_
    assert np.array_equal(model.named_steps["clf"].coef_, whole.named_steps["clf"].coef_)


def test_the_split_group_and_the_source_field_are_always_read(prepared) -> None:
    _, params = prepared
    grouped = params.model_copy(update={"split": params.split.model_copy(update={"group_by": "group"})})
    assert training._train_columns(grouped, CheckFamily(CheckFamily.params_model())) == {
        "doc_id",
        "label",
        "text",
        "group",
        params.dataset.source_field,
    }
    ungrouped = params.model_copy(update={"split": params.split.model_copy(update={"group_by": None})})
    assert training._train_columns(ungrouped, CheckFamily(CheckFamily.params_model())) == {
        "doc_id",
        "label",
        "text",
        params.dataset.source_field,
    }
    assert training._train_columns(params, type("AllColumns", (CheckFamily,), {"train_columns": None})(CheckFamily.params_model())) is None
