"""`labels.assign_labels` on meta views (`field: meta:<column>`) and the keys of label-map errors:
exactly one of label / exclusion on every row, whatever excluded the document first."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pepm_assets.core import labels
from pepm_assets.core.config import ConfigError

MAP = {
    "categories": ["gauche", "droite"],
    "wings": {"left": ["gauche"], "right": ["droite"]},
    "groups": {"SOC": {"category": "gauche", "cluster": "soc"}, "LR": {"category": "droite", "cluster": "lr"}},
    "excluded_roles": {"chair": "chair_speaker"},
    "views": {"vote": {"field": "meta:vote", "values": ["pour", "contre"]}, "any_vote": {"field": "meta:vote"}},
}


def label_map() -> labels.LabelMap:
    return labels.LabelMap.model_validate(MAP)


def docs(**columns: list) -> pd.DataFrame:
    base = {
        "corpus_id": ["c"] * 4,
        "speaker": ["a", "b", "president", "d"],
        "group": ["SOC", "LR", "SOC", "LR"],
        "role": ["member", "member", "chair", "member"],
    }
    return pd.DataFrame({**base, **columns})


def test_a_document_excluded_by_role_gets_no_meta_label() -> None:
    """The chair voted "pour": the role exclusion stands, and no label is added beside it."""
    out = labels.assign_labels(docs(vote=["pour", "contre", "pour", "abstention"]), label_map(), "vote")
    assert out["label"].tolist()[:2] == ["pour", "contre"]
    assert pd.isna(out["label"].iloc[2]) and out["exclusion"].iloc[2] == "chair_speaker"
    assert pd.isna(out["label"].iloc[3]) and out["exclusion"].iloc[3] == "label_not_in_view"
    assert (out["label"].isna() != out["exclusion"].isna()).all()


def test_a_meta_view_on_a_column_the_documents_lack_excludes_them_all_by_name() -> None:
    out = labels.assign_labels(docs(), label_map(), "vote")
    assert out["label"].isna().all()
    assert out["exclusion"].tolist() == ["no_vote", "no_vote", "chair_speaker", "no_vote"]


def test_a_meta_view_without_values_takes_every_non_empty_value() -> None:
    out = labels.assign_labels(docs(vote=["pour", "", "pour", None]), label_map(), "any_vote")
    assert out["label"].tolist()[0] == "pour"
    assert out["exclusion"].tolist()[1:] == ["no_vote", "chair_speaker", "no_vote"]


def test_a_label_map_error_keeps_the_key_of_the_field(tmp_path: Path) -> None:
    """A wrong value whose repr holds ": " (a mapping) is reported at its own key, not re-split."""
    bad = {**MAP, "views": {"vote": {"field": {"meta": "vote"}}}}
    path = tmp_path / "map.yml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        labels.load_label_map(path, tmp_path)
    assert err.value.key == "views.vote.field"
    bad = {**MAP, "views": {"vote": {"field": "meta:vote", "values": []}}}
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ConfigError) as err:  # a model-level check: the key comes from its message
        labels.load_label_map(path, tmp_path)
    assert err.value.key == "views.vote.values"
    assert err.value.message.startswith("empty list")
