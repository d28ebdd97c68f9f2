"""A broken config fails before any work starts, with a message naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pepm_assets.core.config import ConfigError, parse_override, resolve_profile


def _fails(project: Path, profile: str = "tiny_quick", overrides: list[str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        resolve_profile(project, profile, overrides or [])
    return err.value


def test_good_profile_resolves_with_overrides(project: Path) -> None:
    params = resolve_profile(project, "tiny_quick", ["train_prop=0.6", "split.group_by=speaker", "families=[sklearn]"])
    assert params.train_prop == 0.6 and params.split.group_by == "speaker" and params.families == ["sklearn"]
    assert params.params_hash != resolve_profile(project, "tiny_quick").params_hash


def test_params_hash_ignores_wording_but_not_content(project: Path) -> None:
    base = resolve_profile(project, "tiny_quick")
    assert resolve_profile(project, "tiny_quick", ["seed=7"]).params_hash == base.params_hash  # same value
    assert resolve_profile(project, "tiny_quick", ["families=[check]"]).params_hash == base.params_hash  # not a view input
    assert resolve_profile(project, "tiny_quick", ["seed=8"]).params_hash != base.params_hash


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["trainprop=0.5"], "trainprop", "unknown key"),
        (["train_prop=abc"], "train_prop", "valid number"),
        (["train_prop=1.5"], "train_prop", "less than 1"),
        (["split.group=speaker"], "split.group", "unknown key"),
        (["families=[sklearn,svm]"], "families.1", "unknown family 'svm'"),
        (["data.corpus_ids=[an]"], "data.corpus_ids", "other corpora make another dataset"),
        (["hardware.max_train_docs.spcy=10"], "hardware.max_train_docs.spcy", "did you mean 'spacy'"),
        (["eval_dataset_id=tiny_multi"], "eval_dataset_id", "shares corpus"),
        (["view=nope"], "view", "unknown view"),
        (["dataset_id=nope"], "dataset_id", "unknown dataset"),
        (["data.corpus_ids=[mpt,nope]"], "data.corpus_ids.1", "unknown corpus"),
        (["data.merge_mode=glued"], "data.merge_mode", "single"),
        (["balance_strategy=smote"], "balance_strategy", "unknown balance strategy"),
        (["balance_strategy=cap_docs", "balance_preset=huge"], "balance_preset", "unknown preset"),
        (["balance_strategy=cap_docs", "balance_params.max_doc=3"], "balance_params.max_doc", "unknown key"),
        (["hardware_preset=cluster"], "hardware_preset", "unknown hardware preset"),
    ],
)
def test_bad_values_name_the_key(project: Path, overrides: list[str], key: str, words: str) -> None:
    err = _fails(project, overrides=overrides)
    assert err.key == key
    assert words in err.message
    assert "configs/profiles/tiny_quick.yml" in str(err)


def test_missing_profile_lists_known_ones(project: Path) -> None:
    err = _fails(project, "nope")
    assert "configs/profiles/nope.yml" in str(err) and "tiny_quick" in str(err)


def test_broken_common_files_are_named(project: Path) -> None:
    corpora = project / "configs" / "common" / "corpora.yml"
    corpora.write_text(corpora.read_text() + "    colour: blue\n")
    err = _fails(project)
    assert err.source == "configs/common/corpora.yml" and err.key == "corpora.an.colour"

    corpora.write_text("corpora:\n  mpt: {path: data/raw/mpt, dialect: klingon}\n")
    (project / "configs" / "common" / "datasets.yml").write_text("datasets:\n  tiny_mpt: {corpus_ids: [mpt]}\n")
    (project / "configs" / "common" / "cross_corpus.yml").unlink()
    err = _fails(project)
    assert err.key == "corpora.mpt.dialect" and "klingon" in err.message

    corpora.write_text("corpora: [unclosed\n")
    err = _fails(project)
    assert err.source == "configs/common/corpora.yml" and "line" in err.message

    corpora.unlink()
    err = _fails(project)
    assert err.source == "configs/common/corpora.yml" and "not found" in err.message


def test_broken_models_and_cross_corpus_are_named(project: Path) -> None:
    models = project / "configs" / "common" / "models.yml"
    models.write_text(models.read_text().replace("estimator: linear_svc", "estimator: random_forest"))
    err = _fails(project)
    assert err.source == "configs/common/models.yml" and err.key == "models.tfidf_svm_quick.params.estimator"
    models.write_text(models.read_text().replace("family: check", "family: oracle"))
    err = _fails(project)
    assert err.key == "models.check_default.family" and "oracle" in err.message
    models.write_text(models.read_text().replace("family: oracle", "family: check").replace("random_forest", "linear_svc"))
    err = _fails(project, overrides=["models=[tfidf_svm_quick,ghost]"])
    assert err.key == "models.1" and "ghost" in err.message
    cross = project / "configs" / "common" / "cross_corpus.yml"
    cross.write_text(cross.read_text().replace("tiny_an]", "nowhere]"))
    err = _fails(project)
    assert err.source == "configs/common/cross_corpus.yml" and err.key == "cross_corpus.datasets.1"


def test_broken_label_map_is_named(project: Path) -> None:
    ideology = project / "configs" / "label_maps" / "ideology.yml"
    ideology.write_text(ideology.read_text().replace("SOC:       {category: left,", "SOC:       {category: leftist,"))
    err = _fails(project)
    assert err.source == "configs/label_maps/ideology.yml" and err.key == "groups.SOC.category"

    ideology.write_text(ideology.read_text().replace("leftist", "left"))
    actors = project / "configs" / "label_maps" / "ideology_actors.yml"
    actors.write_text("actors:\n  mpt:\n    Someone: {categorie: left}\n")
    err = _fails(project)
    assert err.source == "configs/label_maps/ideology_actors.yml" and err.key == "actors.mpt.Someone.categorie"


def test_override_syntax() -> None:
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("seed=3") == (["seed"], 3)
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("seed")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("a..b=1")


def test_the_specs_models_per_family_lists_and_ideology_view(project) -> None:
    """§2.4.2 spellings: `models_<family>: [...]` beside `families`, and `ideology: {view: ...}`."""
    (project / "configs" / "profiles" / "spec_style.yml").write_text(
        "dataset_id: tiny_mpt\nideology: {view: left_right}\nfamilies: [check, spacy, sklearn]\n"
        "models_spacy: [spacy_bow]\nmodels_sklearn: [tfidf_svm_quick, tfidf_nb]\n",
        encoding="utf-8",
    )
    params = resolve_profile(project, "spec_style")
    assert params.view == "left_right"
    assert params.models == ["check_default", "spacy_bow", "tfidf_svm_quick", "tfidf_nb"]
    with pytest.raises(ConfigError, match=r"models_spacy\.0.*of family 'sklearn'"):
        resolve_profile(project, "spec_style", ["models_spacy=[tfidf_nb]"])
    with pytest.raises(ConfigError, match="models_spacyy"):
        resolve_profile(project, "spec_style", ["models_spacyy=[spacy_bow]"])
    with pytest.raises(ConfigError, match="ideology.view"):
        resolve_profile(project, "spec_style", ["view=vote"])
