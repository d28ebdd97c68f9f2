"""Label-validity diagnostics (core/diagnostics.py), filters.mask_names (core/prepare.py) and
`pepm report label-validity` (core/label_validity.py): the association measures against direct
computations, a confounded column flagged and an independent one not, group names found by their
rules and masked, the params hash of views that mask nothing unchanged, and end to end on the tiny
fixture (whose MPT vote is the label, like the real MPT's): the warnings in every evaluation report
and the leaderboard, and scores with names kept and masked."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import diagnostics, label_validity, labels, reports, stages, training
from pepm_assets.core.config import ConfigError, resolve_profile
from pepm_assets.core.config.schema import FilterConfig
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewError, build_view, read_tsv_file
from pepm_assets_tests import fixtures
from pepm_assets_tests.fixtures import REPO, build_stamped_view, make_project


# read in the tests, not at import: a broken config must fail tests, never the suite's collection
@functools.cache
def _label_map() -> labels.LabelMap:
    return labels.load_label_map(REPO / "configs" / "label_maps" / "ideology.yml", REPO)


@functools.cache
def _config():  # noqa: ANN202
    return diagnostics.load_config(REPO)[0]


@functools.cache
def _groups():  # noqa: ANN202
    return diagnostics.group_names(_config(), _label_map())


# ---------------------------------------------------------------- association measures
@pytest.mark.parametrize("table", [[[10, 20], [30, 5]], [[12, 0, 7, 3], [1, 9, 4, 8], [5, 5, 0, 11]], [[50, 0], [0, 50]]])
def test_cramers_v_against_scipy_and_the_bias_corrected_formula(table: list[list[int]]) -> None:
    from scipy.stats.contingency import association

    t = np.array(table, dtype=float)
    assert diagnostics.cramers_v(t, corrected=False) == pytest.approx(association(t.astype(int), method="cramer"), abs=1e-12)
    # Bergsma (2013), written out from the table
    n, (r, k) = t.sum(), t.shape
    expected = np.outer(t.sum(1), t.sum(0)) / n
    phi2 = ((t - expected) ** 2 / expected).sum() / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    assert diagnostics.cramers_v(t) == pytest.approx(math.sqrt(phi2c / min(kc - 1, rc - 1)), abs=1e-12)
    assert 0 <= diagnostics.cramers_v(t) <= diagnostics.cramers_v(t, corrected=False) <= 1


def test_normalized_mutual_information_is_scikit_learns() -> None:
    from sklearn.metrics import normalized_mutual_info_score

    rng = np.random.default_rng(0)
    x = rng.choice(["a", "b", "c"], 300)
    y = np.where(rng.random(300) < 0.7, x, rng.choice(["a", "b", "c", "d"], 300))
    table, rows, cols = diagnostics.contingency(x, y)
    assert rows == ["a", "b", "c"] and cols == ["a", "b", "c", "d"] and table.sum() == 300
    assert diagnostics.normalized_mutual_information(table) == pytest.approx(normalized_mutual_info_score(x, y), abs=1e-12)
    assert diagnostics.cramers_v(np.array([[5.0, 7.0]])) == 0.0  # one row: nothing varies with the label


def _docs(n: int = 400, seed: int = 1) -> pd.DataFrame:
    """left / right documents of 20 speakers each: `vote` is the label (4 % flipped), `coin` is not,
    `group` is what the label is made of."""
    rng = np.random.default_rng(seed)
    label = np.array(["left", "right"] * (n // 2))
    flip = rng.random(n) < 0.04
    speakers = [f"{lab}_{i % 20}" for i, lab in enumerate(label)]
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(n)],
            "label": label,
            "speaker": speakers,
            "group": np.where(label == "left", "SRC", "UMP"),
            "vote": np.where((label == "left") ^ flip, "pour", "contre"),
            "coin": rng.choice(["heads", "tails"], n),
            "date": "2013-01-30",
            "n_tokens": rng.integers(3, 50, n),
            "text": ["Un texte sans nom"] * n,
        }
    )


def test_a_confounded_column_is_flagged_and_an_independent_one_is_not() -> None:
    diag = diagnostics.diagnose(_docs(), _label_map(), "left_right", _config(), group_by="speaker")
    rows = {r["column"]: r for r in diag["associations"]}
    assert rows["vote"]["kind"] == "confound" and rows["vote"]["cramers_v"] > 0.85 and "vote on the bill" in rows["vote"]["message"]
    assert rows["coin"]["cramers_v"] < 0.2 and "message" not in rows["coin"]
    # the group is what the label is made of: listed, not a confound
    assert rows["group"]["kind"] == "label source" and "message" not in rows["group"]
    # government / opposition, derived from the group and the date (SRC governed in January 2013)
    assert rows["majority"]["kind"] == "confound" and rows["majority"]["table"] == {"left": {"majority": 200}, "right": {"opposition": 200}}
    assert rows["n_tokens" if "n_tokens" in rows else "date"]["kind"] == "not tested"  # one date; counts never tested
    kinds = [w["subject"] for w in diag["warnings"]]
    assert kinds == ["majority", "vote"]  # strongest first: majority is the label exactly here
    assert [r["column"] for r in diag["associations"] if "cramers_v" in r][:3] == ["majority", "vote", "coin"]
    # speaker: by construction (one label each), no warning while the split is grouped by speaker
    assert diag["speaker"]["speakers_with_one_label"] == 1.0 and "message" not in diag["speaker"]
    assert not any(w["kind"] == "speaker" for w in diag["warnings"])


def test_speaker_is_a_warning_only_when_the_split_lets_a_speaker_be_on_both_sides() -> None:
    docs = _docs().assign(_set=lambda d: np.where(np.arange(len(d)) % 7 == 0, "job", "train"))
    diag = diagnostics.diagnose(docs, _label_map(), "left_right", _config(), group_by=None)
    assert diag["speaker"]["job_docs_with_speaker_in_train"] == 1.0
    assert [w["kind"] for w in diag["warnings"]].count("speaker") == 1
    assert "_set" not in {r["column"] for r in diag["associations"]}


def test_the_label_source_of_a_meta_view_is_its_column() -> None:
    docs = _docs().assign(label=lambda d: d["vote"])  # the `vote` view of MPT
    rows = {r["column"]: r for r in diagnostics.diagnose(docs, _label_map(), "vote", _config())["associations"]}
    assert rows["vote"]["kind"] == "label source"
    assert rows["group"]["kind"] == "confound" and rows["group"]["message"]  # the vote goes with the group: a real confound there


# ---------------------------------------------------------------- names in texts
FOUND = {
    "Le groupe LR vote contre.": "LR",
    "Les députés LREM s'abstiennent.": "LREM",  # "LR" is no name inside "LREM"
    "Cet amendement du groupe LFI-NFP vise à supprimer.": "LFI-NFP",  # one name, not LFI and NFP
    "les Républicains s'y opposent": "les Républicains",
    "Le groupe Ecologiste et social propose": "Ecologiste et social",  # accent optional
    "LE GROUPE SOCIALISTE": "SOCIALISTE",  # a lower-case name matches in any case
    "Le groupe RE": "RE",
    "avec Horizons": "Horizons",
    "le PS, le PCF": "PS",
}
NOT_FOUND = [
    "les principes républicains",  # "Républicains" needs its capital
    "de nouveaux horizons",
    "re-voter",  # an abbreviation matches in capitals only
    "le PSG gagne",
    "les socialistesques",  # whole words only
    "Ensemble, avançons",
    "l'UMPiste",
]


def test_group_names_are_found_by_their_rules() -> None:
    finder = diagnostics.group_finder(_groups())
    texts = [*FOUND, *NOT_FOUND]
    assert finder.contains(texts).tolist() == [True] * len(FOUND) + [False] * len(NOT_FOUND)
    assert finder.first(list(FOUND)) == list(FOUND.values())


def test_name_shares_per_label_and_side() -> None:
    texts = pd.Series(["le groupe SRC propose", "rien", "l'UMP s'oppose", "l'UMP et le groupe socialiste", "rien", "rien"])
    label = pd.Series(["left", "left", "right", "right", "right", "right"])
    side = {g: diagnostics._group_label(_label_map(), "left_right", g) for g in _groups()}
    assert side["SRC"] == "left" and side["UMP"] == "right" and side["LREM"] is None
    shares = diagnostics.name_shares(texts, label, _groups(), side)
    assert shares["n_naming"] == 3 and shares["share"] == pytest.approx(0.5)
    assert shares["by_label"]["left"] == {"n": 2, "share": 0.5, "own_side_share": 0.5, "other_side_share": 0.0}
    assert shares["by_label"]["right"] == {"n": 4, "share": 0.5, "own_side_share": 0.5, "other_side_share": 0.25}
    assert {m["name"]: m["group"] for m in shares["most_named"]} == {"UMP": "UMP", "SRC": "SRC"}


def test_a_name_of_the_config_that_is_no_group_of_the_label_map_is_refused() -> None:
    config = diagnostics.LabelValidityConfig(group_names={"LRR": ["Les Républicains"]})
    with pytest.raises(ConfigError, match=r"group_names\.LRR.*did you mean 'LR'"):
        diagnostics.group_names(config, _label_map())


def test_mask_names_replaces_names_and_leaves_every_other_word() -> None:
    persons = diagnostics.person_names(pd.DataFrame({"speaker_name": ["Hervé Mariton", "Charles de Courson", "le président"]}))
    assert persons == ["Charles de Courson", "Courson", "Hervé Mariton", "Mariton", "de Courson"]
    texts = [
        "Monsieur Mariton, le groupe LFI-NFP et les Républicains défendent l'égalité.",
        "M. de Courson (UDI) : LR-UDI, LREM !",
        "Un texte sans nom, monsieur le président.",
    ]
    assert diagnostics.mask_texts(texts, _groups(), persons) == [
        "Monsieur NOM_PERSONNE, le groupe NOM_GROUPE et NOM_GROUPE défendent l'égalité.",
        "M. NOM_PERSONNE (NOM_GROUPE) : NOM_GROUPE-NOM_GROUPE, NOM_GROUPE !",
        "Un texte sans nom, monsieur le président.",
    ]


def test_a_surname_that_is_a_common_word_is_masked_only_with_its_first_name_or_a_title() -> None:
    docs = pd.DataFrame(
        {
            "speaker_name": ["Philippe Fait", "Michel Sapin, ministre du travail", "Plusieurs députés du groupe SRC"],
            "text": ["Il fait beau.", "", ""],
        }
    )
    persons = diagnostics.masking_persons(docs)
    assert "Fait" not in persons and {"Philippe Fait", "M. Fait", "madame Fait", "Sapin", "Michel Sapin"} <= set(persons)
    assert not any("députés" in p for p in persons)
    masked = diagnostics.mask_texts(["Fait à Paris. M. Fait et Philippe Fait ont voté, M. Sapin aussi."], {}, persons)
    assert masked == ["Fait à Paris. NOM_PERSONNE et NOM_PERSONNE ont voté, M. NOM_PERSONNE aussi."]


def test_top_terms_flag_procedural_words_and_names() -> None:
    judge = diagnostics.TermJudge(
        _config().procedural_terms,
        _groups(),
        ["Hervé Mariton", "Maud Petit"],
        texts=lambda: ["un petit pas", "Mme Petit"] + ["le petit"] * 3,
    )
    judged = judge.judge(
        {
            "left": [("avis défavorable", 2.0), ("égalité", 1.5), ("monsieur mariton", 1.0), ("char_wb: ab", 0.9)],
            "right": [("ump", 3.0), ("petit", 1.0)],
        },
        k=25,
    )
    flags = {t["term"]: t["flags"] for rows in judged["by_label"].values() for t in rows}
    assert flags == {
        "avis défavorable": ["procedural"],
        "égalité": [],
        "monsieur mariton": ["procedural", "name"],
        "ump": ["name"],
        "petit": [],  # a deputy's surname, but written in lower case in these texts: the word
    }
    assert (judged["n_terms"], judged["n_flagged"]) == (5, 3)  # the character n-gram is no word: not judged


# ---------------------------------------------------------------- filters.mask_names in the parameters
def test_the_params_hash_is_unchanged_unless_mask_names_is_true(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    plain = resolve_profile(root, "tiny_quick")
    off = resolve_profile(root, "tiny_quick", ["filters.mask_names=false"])
    on = resolve_profile(root, "tiny_quick", ["filters.mask_names=true"])
    assert "mask_names" not in FilterConfig().model_dump() and FilterConfig(mask_names=True).model_dump()["mask_names"] is True
    assert plain.params_hash == off.params_hash and "group_names" not in plain.hashed_part()
    assert on.params_hash != plain.params_hash and on.group_names["LR"] == ["LR", "Les Républicains"]
    # the names masked are in the hash of a masking view only: an edited list makes it stale, not the others
    cfg = root / "configs" / "common" / "label_validity.yml"
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace("  LR: [Les Républicains]", "  LR: [Les Républicains, LR-UDI]"), encoding="utf-8"
    )
    assert resolve_profile(root, "tiny_quick", ["filters.mask_names=true"]).params_hash != on.params_hash
    assert resolve_profile(root, "tiny_quick").params_hash == plain.params_hash


# ---------------------------------------------------------------- end to end, on the tiny fixture
@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project whose MPT speeches differ only by the group they name (SRC or UMP) and a
    speaker's name: names are the only signal, and the vote is the label (as in the real MPT)."""
    with pytest.MonkeyPatch.context() as mp:
        neutral = ["loi", "texte", "mariage", "famille"]
        mp.setattr(fixtures, "LEFT_WORDS", ["SRC", "Binet", *neutral])
        mp.setattr(fixtures, "RIGHT_WORDS", ["UMP", "Mariton", *neutral])
        root = make_project(tmp_path_factory.mktemp("validity") / "proj", n_per_speaker=10)
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, ProjectPaths(root).corpus_dir("mpt"))
    return root


def test_mask_names_masks_the_texts_of_the_view_before_the_split(named: Path) -> None:
    _, kept = build_stamped_view(named, "tiny_quick")
    texts = " ".join(read_tsv_file(kept.train_path)["text"])
    assert "SRC" in texts and "Mariton" in texts
    params, masked = build_stamped_view(named, "tiny_quick", ["filters.mask_names=true"])
    both = pd.concat([read_tsv_file(masked.train_path), read_tsv_file(masked.job_path)])
    words = set(" ".join(both["text"]).split())
    assert {"NOM_GROUPE", "NOM_PERSONNE", "loi", "texte"} <= words and not words & {"SRC", "UMP", "Binet", "Mariton"}
    assert masked.meta["params"]["filters"]["mask_names"] is True and masked.meta["params_hash"] == params.params_hash
    # texts that differ by a name only are one text once masked: dedup runs on the masked texts
    assert both["text_key"].is_unique


def test_masking_parameters_without_their_names_are_refused_not_left_unmasked(named: Path) -> None:
    params = resolve_profile(named, "tiny_quick", ["filters.mask_names=true"]).model_copy(update={"group_names": None})
    docs = {"mpt": ProjectPaths(named).corpus_dir("mpt") / "docs.parquet"}
    with pytest.raises(ViewError, match=r"filters\.mask_names: the parameters name no group to mask"):
        build_view(params, named, docs)


@pytest.fixture(scope="module")
def evaluated(named: Path) -> dict:
    params, _ = build_stamped_view(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]"])
    stages.build_formats(params, named)
    spec = params.model_specs["tfidf_svm_quick"]
    training.commit_model(named, training.train_model(params, "tfidf_svm_quick", spec, named))
    result = training.evaluate_model(params, "tfidf_svm_quick", spec, named, n_boot=50)
    training.commit_evaluation(named, result)
    reports.write_leaderboard(ProjectPaths(named))
    return result


def test_every_evaluation_report_opens_with_its_label_validity_warnings(named: Path, evaluated: dict) -> None:
    out = Path(evaluated["report_dir"])
    report = (out / "classification_report.txt").read_text(encoding="utf-8").splitlines()
    assert report[1].startswith("split grouped by speaker")  # the protocol stays the second line
    assert report[3].startswith("Label validity (")
    warned = [line for line in report if line.strip().startswith("WARNING:")]
    assert any("'vote'" in line and "vote on the bill" in line for line in warned)
    assert any("name a party or group" in line for line in warned)
    assert report.index(warned[-1]) < next(i for i, line in enumerate(report) if "precision" in line)
    meta_eval = json.loads((out / "meta_eval.json").read_text(encoding="utf-8"))
    assert meta_eval["label_validity_warnings"] == evaluated["label_validity_warnings"]
    assert any("'vote'" in w for w in meta_eval["label_validity_warnings"])
    diag = json.loads((out / "diagnostics.json").read_text(encoding="utf-8"))
    assert diag["terms"]["source"] == "the model's top terms" and diag["names"]["share"] > 0.5
    # the view's diagnostics, computed once per split, and the leaderboard's lines under the view
    view = json.loads((ProjectPaths(named).reports / "tiny_mpt" / "left_right" / "diagnostics.json").read_text(encoding="utf-8"))
    assert view["key"]["split_version"] == evaluated["split_version"]
    board = (ProjectPaths(named).reports / "leaderboard.md").read_text(encoding="utf-8")
    assert "**Label validity**" in board and "goes with 'vote'" in board


def _diagnose_counted(monkeypatch: pytest.MonkeyPatch, fail_first: bool = False) -> list[str]:
    """diagnostics.diagnose, recording the thread of each call (the first one raising with fail_first)."""
    import threading

    calls: list[str] = []
    real = diagnostics.diagnose

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(threading.current_thread().name)
        if fail_first and len(calls) == 1:
            raise RuntimeError("diagnostics broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(diagnostics, "diagnose", counted)
    return calls


@pytest.fixture
def named_copy(named: Path, tmp_path: Path) -> Path:
    """A copy of the `named` project, for tests that re-split it."""
    import shutil

    return Path(shutil.copytree(named, tmp_path / "proj", symlinks=True))


def test_a_fit_computes_the_views_diagnostics_beside_it_and_the_evaluation_reads_them(named_copy: Path, monkeypatch) -> None:
    """Training a model that ranks its own terms computes the view's diagnostics in a thread; the
    evaluation waits for them and computes nothing again, and they are those it would compute."""
    named = named_copy
    params, _ = build_stamped_view(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]", "seed=5"])
    stages.build_formats(params, named)
    spec = params.model_specs["tfidf_svm_quick"]
    cache = diagnostics.cache_path(params, named)
    cache.unlink(missing_ok=True)
    calls = _diagnose_counted(monkeypatch)
    training.commit_model(named, training.train_model(params, "tfidf_svm_quick", spec, named))
    result = training.evaluate_model(params, "tfidf_svm_quick", spec, named, n_boot=20)
    assert len(calls) == 1 and calls[0].startswith("pepm diagnostics")  # in the thread, once
    ahead = json.loads(cache.read_text(encoding="utf-8"))
    assert ahead["key"]["split_version"] == result["split_version"]
    cache.unlink()
    assert diagnostics.view_diagnostics(params, named) == ahead  # computed in the caller's thread: the same
    assert len(calls) == 2 and not calls[1].startswith("pepm diagnostics")
    assert any("'vote'" in w for w in result["label_validity_warnings"])


def test_diagnostics_that_fail_beside_the_fit_are_computed_by_the_evaluation(named_copy: Path, monkeypatch) -> None:
    named = named_copy
    params, _ = build_stamped_view(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]", "seed=6"])
    stages.build_formats(params, named)
    spec = params.model_specs["tfidf_svm_quick"]
    diagnostics.cache_path(params, named).unlink(missing_ok=True)
    calls = _diagnose_counted(monkeypatch, fail_first=True)
    training.commit_model(named, training.train_model(params, "tfidf_svm_quick", spec, named))
    result = training.evaluate_model(params, "tfidf_svm_quick", spec, named, n_boot=20)
    assert len(calls) == 2 and calls[0].startswith("pepm diagnostics") and not calls[1].startswith("pepm diagnostics")
    assert any("'vote'" in w for w in result["label_validity_warnings"])


def test_the_label_validity_report_compares_scores_with_and_without_names(named: Path, evaluated: dict) -> None:
    params = resolve_profile(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]"])
    result = label_validity.write_report(params, named, label_validity.Settings(n_boot=50))
    kept, masked = (result["scores"][v]["all"] for v in (label_validity.KEPT, label_validity.MASKED))
    metrics = json.loads((Path(evaluated["report_dir"]) / "metrics.json").read_text(encoding="utf-8"))
    assert kept["accuracy"] == pytest.approx(metrics["accuracy"])  # the fit with names is the evaluated model's
    assert kept["accuracy"] - masked["accuracy"] > 0.2  # names were the only signal
    assert result["job_texts_naming_a_group"] > 0 and result["protocol"]["split"] == "grouped by speaker"
    md = Path(result["paths"]["md"]).read_text(encoding="utf-8")
    assert "names kept" in md and "names masked" in md and "WARNING" in md and "nom_groupe" in md.lower()
    assert Path(result["paths"]["png"]).stat().st_size > 10_000
    assert json.loads(Path(result["paths"]["json"]).read_text(encoding="utf-8"))["model_id"] == "tfidf_svm_quick"


def test_the_report_from_the_cli_and_as_a_dagster_asset(named: Path, evaluated: dict, dagster_instance, monkeypatch) -> None:
    import dagster as dg
    from typer.testing import CliRunner

    from pepm_assets.cli import app
    from pepm_assets.core.selection import PROFILE_TAG
    from pepm_assets.definitions import build_definitions

    monkeypatch.setenv("PEPM_ROOT", str(named))
    out = CliRunner().invoke(app, ["report", "label-validity", "-p", "tiny_quick"])
    assert out.exit_code == 0, out.output
    assert "WARNING" in out.output and "names masked" in out.output and "label_validity.md" in out.output
    bad = CliRunner().invoke(app, ["report", "label-validity", "-p", "tiny_quick", "--model", "kmeans_tfidf"])
    assert bad.exit_code == 1 and "not a classifier" in bad.output

    target = ProjectPaths(named).reports / "tiny_mpt" / "left_right" / "label_validity.json"
    target.unlink()
    defs = build_definitions(named)
    checks = {spec.name for spec in defs.resolve_assets_def(dg.AssetKey(["evaluation", "tfidf_svm_quick"])).check_specs}
    assert "label_validity" in checks
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance,
        partition_key="tiny_mpt|left_right",
        asset_selection=[dg.AssetKey("label_validity")],
        tags={PROFILE_TAG: "tiny_quick"},
    )
    assert result.success and target.is_file()
    event = result.asset_materializations_for_node("label_validity")[0]
    assert "'vote'" in event.metadata["label_validity_warnings"].value and event.metadata["model_id"].text == "tfidf_svm_quick"


def test_a_broken_label_validity_config_fails_at_resolution(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    cfg = root / "configs" / "common" / "label_validity.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("association_warning: 0.5", "association_warning: 2"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"label_validity\.yml: key 'association_warning'"):
        resolve_profile(root, "tiny_quick")
    cfg.write_text("group_names: {LRR: [x]}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"key 'group_names\.LRR'"):
        resolve_profile(root, "tiny_quick")
    cfg.unlink()  # no file: the defaults (the label map's group keys are still names)
    assert resolve_profile(root, "tiny_quick", ["filters.mask_names=true"]).group_names["LR"] == ["LR"]


UNDER_PEPM_RUN = """
import json, sys
from pathlib import Path
from pepm_assets.core import diagnostics, side_worker, training
from pepm_assets.core.config import resolve_profile
root = Path(sys.argv[1])
params = resolve_profile(root, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]", "seed=7"])
spec = params.model_specs["tfidf_svm_quick"]
calls = []
real = diagnostics.diagnose
diagnostics.diagnose = lambda *a, **k: calls.append(1) or real(*a, **k)
assert side_worker.start(root, "sqlite:///" + str(root / "side.db"))
training.commit_model(root, training.train_model(params, "tfidf_svm_quick", spec, root))
result = training.evaluate_model(params, "tfidf_svm_quick", spec, root, n_boot=20)
side_worker.stop()
print("RESULT", json.dumps({"here": len(calls), "split_version": result["split_version"], "warnings": result["label_validity_warnings"]}))
"""


def test_under_pepm_run_the_views_diagnostics_are_computed_in_its_side_worker(named_copy: Path) -> None:
    """With the side worker of `pepm run` started (core/side_worker.py), the fit's diagnostics go
    there: the command's process computes none and the evaluation reads what the worker wrote."""
    import subprocess
    import sys

    named = named_copy
    params, _ = build_stamped_view(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]", "seed=7"])
    stages.build_formats(params, named)
    cache = diagnostics.cache_path(params, named)
    cache.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", UNDER_PEPM_RUN, str(named)], capture_output=True, text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert out.returncode == 0 and line, out.stdout[-2000:] + out.stderr[-2000:]
    got = json.loads(line.removeprefix("RESULT "))
    assert got["here"] == 0  # computed in the worker's process, not the command's
    assert json.loads(cache.read_text(encoding="utf-8"))["key"]["split_version"] == got["split_version"]
    assert any("'vote'" in w for w in got["warnings"])


def test_a_big_view_keeps_its_diagnostics_in_the_commands_process(named_copy: Path, monkeypatch) -> None:
    """The side worker takes the diagnostics of a small view only: a big one would sit there in a
    second copy while the fit holds its own (MPT x40: the command's peak memory 2.7 -> 3.5 GB)."""
    import threading

    from pepm_assets.core import side_worker

    named = named_copy
    params, _ = build_stamped_view(named, "tiny_quick", ["families=[sklearn]", "models=[tfidf_svm_quick]", "seed=8"])
    target = diagnostics.cache_path(params, named)
    monkeypatch.setattr(side_worker, "running", lambda: True)  # as under `pepm run`
    diagnostics.view_diagnostics_ahead(params, named, diagnostics.AHEAD_IN_WORKER_MAX_DOCS + 1)
    big = diagnostics._AHEAD.pop(target)
    big.join()
    assert isinstance(big, threading.Thread)
    diagnostics.view_diagnostics_ahead(params, named, diagnostics.AHEAD_IN_WORKER_MAX_DOCS)
    small = diagnostics._AHEAD.pop(target)
    assert isinstance(small, side_worker.Pending)
    small.result()
