"""What a configuration error says (core/config/loading.py): the line of a byte that is not UTF-8,
the suggestion for a misspelt key inside an optional section, how much of a bad value is shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from pepm_assets.core.config import ConfigError
from pepm_assets.core.config.loading import load_yaml, validate


def test_a_byte_that_is_not_utf8_is_reported_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_bytes(b"profile: x\ndescription: ok\nview: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 on line 3\)"):
        load_yaml(path, tmp_path)
    path.write_bytes(b"\xff")
    with pytest.raises(ConfigError, match=r"byte 0xff on line 1\)"):
        load_yaml(path, tmp_path)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = ""
    size: int = 0


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner | None = None
    items: list[Inner] = []


@pytest.mark.parametrize(
    ("data", "key"),
    [({"inner": {"nmae": "x"}}, "inner.nmae"), ({"items": [{"szie": 1}]}, "items.0.szie"), ({"innr": {}}, "innr")],
)
def test_a_misspelt_key_gets_the_closest_field_of_its_own_section(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(Outer, data, "f.yml")
    assert err.value.key == key
    expected = {"inner.nmae": "name", "items.0.szie": "size", "innr": "inner"}[key]
    assert err.value.message == f"unknown key (did you mean {expected!r}?)"


def test_a_dotted_override_meant_for_an_underscored_key_names_that_key(tmp_path: Path) -> None:
    from pepm_assets.core.config import resolve_profile
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    with pytest.raises(ConfigError) as err:  # `-o balance.strategy=none` nests {"balance": {"strategy": "none"}}
        resolve_profile(root, "tiny_quick", ["balance.strategy=none"])
    assert err.value.key == "balance"
    assert err.value.message.startswith("unknown key (did you mean 'balance_strategy'?")
    with pytest.raises(ConfigError) as err:  # a plain typo still gets the closest field
        validate(Outer, {"inner": {"size": 1}, "innr": {"x": 1}}, "f.yml")
    assert err.value.message == "unknown key (did you mean 'inner'?)"


def test_a_bad_value_is_shown_up_to_200_characters() -> None:
    for length, shown in ((198, None), (199, "...")):  # repr adds the two quotes: 200 fits, 201 is cut
        with pytest.raises(ConfigError) as err:
            validate(Inner, {"size": "x" * length}, "f.yml")
        text = repr("x" * length)
        if shown is None:
            assert err.value.message.endswith(f"(got {text})")
        else:
            assert err.value.message.endswith(f"(got {text[:200]}...)")


def test_a_dataset_defined_in_a_profile_merges_only_when_it_has_several_corpora(tmp_path: Path) -> None:
    """`data: {corpus_ids: [...]}` with a new dataset_id: one corpus is a `single` dataset, two are
    `merged` unless the profile says otherwise."""
    from pepm_assets.core.config import resolve_profile
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    profiles = root / "configs" / "profiles"
    (profiles / "one.yml").write_text("dataset_id: only_mpt\nview: left_right\ndata: {corpus_ids: [mpt]}\n", encoding="utf-8")
    (profiles / "two.yml").write_text("dataset_id: both\nview: left_right\ndata: {corpus_ids: [mpt, an]}\n", encoding="utf-8")
    (profiles / "sep.yml").write_text(
        "dataset_id: both_sep\nview: left_right\ndata: {corpus_ids: [mpt, an], merge_mode: separate}\n", encoding="utf-8"
    )
    modes = {name: resolve_profile(root, name).dataset.merge_mode for name in ("one", "two", "sep")}
    assert modes == {"one": "single", "two": "merged", "sep": "separate"}


def test_a_project_without_models_yml_loads_with_no_models(tmp_path: Path) -> None:
    """models.yml is optional (a project that only prepares views); corpora.yml is not."""
    from pepm_assets.core.config import load_common
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    for name in ("models.yml", "cross_corpus.yml"):  # cross_corpus.yml names a model
        (root / "configs" / "common" / name).unlink(missing_ok=True)
    assert load_common(root).models == {}
    (root / "configs" / "common" / "corpora.yml").unlink()
    with pytest.raises(ConfigError, match="file not found"):
        load_common(root)


def test_the_documented_defaults_of_a_corpus_and_a_hardware_preset() -> None:
    """What a corpora.yml / hardware.yml entry gets for a key it leaves out: no failed file and 5 %
    of rejects tolerated by the corpus gate; one thread, batches of 16, 256 tokens."""
    from pepm_assets.core.config.schema import CorpusConfig, HardwarePreset

    corpus = validate(CorpusConfig, {"path": "data/raw/x", "dialect": "mpt"}, "corpora.yml")
    assert (corpus.max_failed_files, corpus.max_reject_rate, corpus.parse_workers, corpus.glob) == (0, 0.05, 0, "*.xml")
    preset = validate(HardwarePreset, {}, "hardware.yml")
    assert (preset.threads, preset.batch_size, preset.max_length, preset.max_train_docs) == (1, 16, 256, {})


def test_a_corpus_reject_rate_is_a_share_between_0_and_1() -> None:
    from pepm_assets.core.config.schema import CorpusConfig

    for rate in (0, 0.1, 1):
        assert validate(CorpusConfig, {"path": "x", "dialect": "mpt", "max_reject_rate": rate}, "c.yml").max_reject_rate == rate
    for rate in (-0.1, 1.1):
        with pytest.raises(ConfigError) as err:
            validate(CorpusConfig, {"path": "x", "dialect": "mpt", "max_reject_rate": rate}, "c.yml")
        assert err.value.key == "max_reject_rate"


def test_the_project_is_found_from_a_folder_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pepm_assets.core.config.loading import project_root

    monkeypatch.delenv("PEPM_ROOT", raising=False)
    (tmp_path / "proj" / "configs" / "common").mkdir(parents=True)
    (tmp_path / "proj" / "configs" / "common" / "corpora.yml").write_text("corpora: {}\n", encoding="utf-8")
    deep = tmp_path / "proj" / "data" / "raw"
    deep.mkdir(parents=True)
    assert project_root(deep) == (tmp_path / "proj").resolve()
    assert project_root(tmp_path / "proj") == (tmp_path / "proj").resolve()


def test_a_yaml_key_that_is_a_list_is_invalid_yaml_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("? [a, b]\n: 1\nview: x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(path, tmp_path)


def test_an_override_below_a_value_that_is_not_a_mapping_is_refused() -> None:
    from pepm_assets.core.config.loading import apply_overrides

    with pytest.raises(ConfigError) as err:
        apply_overrides({"seed": 42}, ["seed.value=3"])
    assert (err.value.key, err.value.message) == ("seed.value", "'seed' is not a mapping")
    assert apply_overrides({"split": {"stratify": True}}, ["split.group_by=speaker"]) == {
        "split": {"stratify": True, "group_by": "speaker"}
    }


def test_a_profile_restating_a_declared_dataset_keeps_its_declaration(tmp_path: Path) -> None:
    """`data: {corpus_ids: ...}` equal to datasets.yml's: the declared dataset (its merge mode,
    source field, description) is the one used, not a new one made from the profile."""
    from pepm_assets.core.config import resolve_profile
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    with open(root / "configs" / "common" / "datasets.yml", "a", encoding="utf-8") as fh:
        fh.write("  juxt:\n    corpus_ids: [mpt, an]\n    merge_mode: juxtaposed\n    description: declared\n")
    (root / "configs" / "profiles" / "re.yml").write_text(
        "dataset_id: juxt\nview: left_right\ndata: {corpus_ids: [mpt, an]}\n", encoding="utf-8"
    )
    dataset = resolve_profile(root, "re").dataset
    assert (dataset.merge_mode, dataset.description) == ("juxtaposed", "declared")


def test_cross_corpus_yml_naming_an_unknown_model_fails_at_load(tmp_path: Path) -> None:
    from pepm_assets.core.config import load_common
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    (root / "configs" / "common" / "models.yml").unlink()
    if not (root / "configs" / "common" / "cross_corpus.yml").exists():
        (root / "configs" / "common" / "cross_corpus.yml").write_text("cross_corpus: {model_id: tfidf_svm_quick}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_common(root)
    assert (err.value.source, err.value.key) == ("configs/common/cross_corpus.yml", "cross_corpus.model_id")
    assert "unknown model 'tfidf_svm_quick'" in err.value.message


def test_the_specs_model_params_override_lands_in_model_params() -> None:
    """`models.<id>.params.<key>=v` (the spec's form) is `model_params.<id>.<key>`; other paths under
    `models` are left as they are."""
    from pepm_assets.core.config.loading import apply_overrides

    assert apply_overrides({}, ["models.tfidf_svm_quick.params.C=0.5"]) == {"model_params": {"tfidf_svm_quick": {"C": 0.5}}}
    assert apply_overrides({}, ["models.tfidf_svm_quick.other.C=0.5"]) == {"models": {"tfidf_svm_quick": {"other": {"C": 0.5}}}}
    assert apply_overrides({}, ["model_params.m.params.C=1"]) == {"model_params": {"m": {"params": {"C": 1}}}}


def test_filter_dumps_leave_out_mask_names_only_when_false() -> None:
    from pepm_assets.core.config.schema import FilterConfig

    assert "mask_names" not in validate(FilterConfig, {}, "p.yml").model_dump()
    assert validate(FilterConfig, {"mask_names": True}, "p.yml").model_dump()["mask_names"] is True


def test_the_params_hash_reads_non_ascii_values_as_utf8(tmp_path: Path) -> None:
    """The hash is SHA-256 of the sorted JSON written as UTF-8 (not \\u escapes): the documented form
    anyone can recompute from meta files."""
    import hashlib
    import json

    from pepm_assets.core.config import resolve_profile
    from pepm_assets_tests.fixtures import make_project

    root = make_project(tmp_path / "proj")
    params = resolve_profile(root, "tiny_quick", ["filters.mask_names=true"])
    blob = json.dumps(params.hashed_part(), sort_keys=True, ensure_ascii=False)
    assert not blob.isascii()
    assert params.params_hash == hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def test_a_config_read_again_is_its_current_content_in_a_copy_of_its_own(tmp_path: Path) -> None:
    """load_yaml keeps the parse of the bytes it read: an edit (even of the same length, within the
    file system's clock tick) is read as edited, a caller that changes what it got changes nobody
    else's copy, and a file that does not parse fails on every read."""
    import os

    path = tmp_path / "p.yml"
    path.write_text("view: left_right\nmodels: [a, b]\n", encoding="utf-8")
    stat = path.stat()
    first = load_yaml(path)
    first["models"].append("changed by a caller")
    assert load_yaml(path) == {"view": "left_right", "models": ["a", "b"]}
    path.write_text("view: right_left\nmodels: [a, b]\n", encoding="utf-8")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same modification time
    assert load_yaml(path)["view"] == "right_left"
    path.write_text("view: [unclosed\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(ConfigError, match="invalid YAML"):
            load_yaml(path, tmp_path)
