"""Property-based tests (hypothesis) of the labels (core/labels.py) and of the scores
(core/metrics.py).

Labels: on generated label maps (the format of configs/label_maps/ideology.yml: categories, wings,
groups, per-corpus groups, excluded groups and roles, per-actor corrections by corpus or "*", views)
and documents, `assign_labels` gives every document what a direct reading of the map gives it,
document by document (`_read`). The order of that reading is the map's own documentation:
speaker roles "never get a label"; an actor correction places (or excludes) an actor whatever the
group; an actor's own corpus key before "*" ("prefer corpus keys"); per-corpus groups are
"corrections of the table above"; then the view reads the category, its wing or its cluster.

Scores: `classification_metrics` equals scikit-learn's metrics (macro-F1 averaged over the classes
present in the gold labels), `metrics_by_group` equals the scores of each group computed apart, and
the bootstrap intervals hold the point estimate and depend on the seed alone."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from pepm_assets.core import labels, metrics

pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")  # scikit-learn's, on one-class cases
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

CATEGORIES = ("far_left", "left", "center", "right", "far_right", "green")
WINGS = ("left", "right", "middle")
CLUSTERS = ("k1", "k2", "k3")
GROUPS = ("G1", "G2", "G3", "G4", "NI", "GVT")
CORPORA = ("mpt", "an", "senat")
SPEAKERS = ("A", "B", "C", "D", "E")
ROLES = ("member", "chair", "government", "collective")
VOTES = ("pour", "contre", "abstention")
REASONS = ("non_attached", "government_speaker", "chair_speaker", "collective_speaker", "withdrawn")


@st.composite
def label_maps(draw: st.DrawFn) -> dict:
    """A label map as its YAML reads (a dict): every category drawn from CATEGORIES is declared, a
    wing holds some of them (a category may be in none), groups and actors use declared ones."""
    categories = draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, unique=True))
    wing_of = {c: draw(st.sampled_from((*WINGS, None))) for c in categories}
    wings = {w: [c for c in categories if wing_of[c] == w] for w in WINGS if draw(st.booleans()) or w in wing_of.values()}
    declared = st.sampled_from(categories)
    entry = st.fixed_dictionaries({"category": declared, "cluster": st.sampled_from(CLUSTERS)})
    actor = st.fixed_dictionaries(
        {},
        optional={"category": declared, "cluster": st.sampled_from(CLUSTERS), "exclude": st.sampled_from(REASONS), "note": st.just("n")},
    )
    views = {
        "by_category": {"field": "category"},
        "by_wing": {"field": "wing"},
        "by_cluster": {"field": "cluster"},
        "by_vote": {"field": "meta:vote"},
        "by_missing": {"field": "meta:absent"},  # a column the documents do not have
    }
    for name in list(views):
        spec = views[name]
        if spec["field"] != "meta:absent" and draw(st.booleans()):
            pool = {"category": categories, "wing": list(wings), "cluster": list(CLUSTERS), "meta:vote": list(VOTES)}[spec["field"]]
            if pool:
                spec["values"] = draw(st.lists(st.sampled_from(pool), min_size=1, unique=True))
        if not spec["field"].startswith("meta:") and wings and draw(st.booleans()):
            spec["wing"] = draw(st.sampled_from(sorted(wings)))
    return {
        "categories": categories,
        "wings": wings,
        "groups": draw(st.dictionaries(st.sampled_from(GROUPS), entry, min_size=2, max_size=len(GROUPS))),
        "corpus_groups": draw(
            st.dictionaries(st.sampled_from(CORPORA), st.dictionaries(st.sampled_from(GROUPS), entry, min_size=1), max_size=2)
        ),
        "excluded_groups": draw(st.dictionaries(st.sampled_from(GROUPS), st.sampled_from(REASONS), max_size=3)),
        "excluded_roles": draw(st.dictionaries(st.sampled_from(ROLES), st.sampled_from(REASONS), max_size=3)),
        "actors": draw(
            st.dictionaries(st.sampled_from((*CORPORA, "*")), st.dictionaries(st.sampled_from(SPEAKERS), actor, min_size=1), max_size=3)
        ),
        "views": views,
    }


@st.composite
def documents(draw: st.DrawFn) -> pd.DataFrame:
    row = st.fixed_dictionaries(
        {
            "corpus_id": st.sampled_from(CORPORA),
            "speaker": st.sampled_from(SPEAKERS),
            "group": st.sampled_from(("", *GROUPS, "UNKNOWN")),
            "role": st.sampled_from((*ROLES, "member", "member")),  # mostly members
            "vote": st.sampled_from(("", *VOTES)),
            "text": st.sampled_from(("Très bien !", "Je vote contre.", "")),
        }
    )
    docs = pd.DataFrame(draw(st.lists(row, min_size=1, max_size=40)))
    return docs.assign(doc_id=[f"d{i}" for i in range(len(docs))])


def _category(raw: dict, corpus: str, speaker: str, group: str, role: str) -> tuple[str | None, str | None, str | None]:
    """(category, cluster, reason) of an actor, read off the map."""
    if role in raw["excluded_roles"]:
        return None, None, raw["excluded_roles"][role]
    actors = raw["actors"]
    correction = actors[corpus][speaker] if speaker in actors.get(corpus, {}) else actors.get("*", {}).get(speaker)
    if correction and correction.get("exclude"):
        return None, None, correction["exclude"]
    if correction and correction.get("category"):
        return correction["category"], correction.get("cluster"), None
    if group == "":
        return None, None, "no_group"
    if group in raw["excluded_groups"]:
        return None, None, raw["excluded_groups"][group]
    entry = raw["corpus_groups"].get(corpus, {}).get(group, raw["groups"].get(group))
    if entry is None:
        return None, None, "unmapped_group"
    return entry["category"], entry["cluster"], None


def _view(raw: dict, view: str, category: str | None, cluster: str | None) -> tuple[str | None, str | None]:
    spec = raw["views"][view]
    if category is None:
        return None, "no_category"
    wing = next((w for w, cats in raw["wings"].items() if category in cats), None)
    if "wing" in spec and wing != spec["wing"]:
        return None, "outside_view_wing"
    value = {"category": category, "wing": wing, "cluster": cluster}[spec["field"]]
    if value is None:
        return None, "no_" + spec["field"]
    if "values" in spec and value not in spec["values"]:
        return None, "label_not_in_view"
    return value, None


def _read(raw: dict, view: str, doc: dict) -> tuple[str | None, str | None]:
    """(label, exclusion) of one document in `view`, read off the map."""
    category, cluster, reason = _category(raw, doc["corpus_id"], doc["speaker"], doc["group"], doc["role"])
    if reason:
        return None, reason
    field = raw["views"][view]["field"]
    if not field.startswith("meta:"):
        return _view(raw, view, category, cluster)
    column = field.removeprefix("meta:")
    value = doc.get(column)
    if value is None:
        return None, f"no_{column}"
    allowed = raw["views"][view].get("values")
    if value == "" and not (allowed and "" in allowed):
        return None, f"no_{column}"
    if allowed is not None and value not in allowed:
        return None, "label_not_in_view"
    return value, None


def _cell(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


# ---------------------------------------------------------------- labels
@SETTINGS
@given(label_maps(), documents())
def test_assign_labels_reads_the_map_document_by_document(raw: dict, docs: pd.DataFrame) -> None:
    label_map = labels.LabelMap.model_validate(raw)
    for view in raw["views"]:
        out = labels.assign_labels(docs, label_map, view)
        pd.testing.assert_frame_equal(out[list(docs.columns)], docs)  # every document, in its order, unchanged
        got = [(_cell(lab), _cell(why)) for lab, why in zip(out["label"], out["exclusion"])]
        expected = [_read(raw, view, doc) for doc in docs.to_dict("records")]
        assert got == expected, view
        assert all((lab is None) != (why is None) for lab, why in got)  # a label or a reason, never both
        field = raw["views"][view]["field"]
        declared = {
            "category": set(raw["categories"]),
            "wing": set(raw["wings"]),
            "cluster": set(CLUSTERS),
            "meta:vote": set(VOTES),
            "meta:absent": set(),
        }[field]
        assert {lab for lab, _ in got if lab is not None} <= declared & set(raw["views"][view].get("values", declared))


@SETTINGS
@given(label_maps())
def test_actor_category_and_view_label_read_the_map(raw: dict) -> None:
    label_map = labels.LabelMap.model_validate(raw)
    for corpus, speaker, group, role in itertools.product(CORPORA, SPEAKERS, ("", *GROUPS, "X"), ROLES):
        assert labels.actor_category(label_map, corpus, speaker, group, role) == _category(raw, corpus, speaker, group, role)
    for view, spec in raw["views"].items():
        if not spec["field"].startswith("meta:"):
            for category in (None, *raw["categories"]):
                for cluster in (None, *CLUSTERS):
                    assert labels.view_label(label_map, view, category, cluster) == _view(raw, view, category, cluster)


@SETTINGS
@given(label_maps(), documents())
def test_views_table_agrees_with_assign_labels(raw: dict, docs: pd.DataFrame) -> None:
    label_map = labels.LabelMap.model_validate(raw)
    for corpus in CORPORA:
        actors = docs.loc[docs["corpus_id"] == corpus, ["speaker", "group", "role"]].drop_duplicates().reset_index(drop=True)
        table = labels.views_table(label_map, corpus, actors)
        for view, spec in raw["views"].items():
            if spec["field"].startswith("meta:"):
                continue
            for actor, cell in zip(actors.to_dict("records"), table[f"view:{view}"]):
                label, why = _read(raw, view, {**actor, "corpus_id": corpus})
                assert cell == (label if label is not None else f"({why})")


def test_an_actor_category_the_map_does_not_declare_is_refused() -> None:
    """A group's category must be declared (LabelMap refuses the map); so must an actor's: a typo
    in ideology_actors.yml would otherwise become a class of its own in the category view and go
    unnoticed ("no_wing" in the wing views)."""
    raw = {
        "categories": ["left", "right"],
        "wings": {"left": ["left"], "right": ["right"]},
        "groups": {"G1": {"category": "left", "cluster": "k1"}},
        "views": {"by_category": {"field": "category"}},
    }
    with pytest.raises(ValueError, match="unknown category"):
        labels.LabelMap.model_validate({**raw, "groups": {"G1": {"category": "rigth", "cluster": "k1"}}})
    with pytest.raises(ValueError, match="unknown category"):
        labels.LabelMap.model_validate({**raw, "actors": {"mpt": {"A": {"category": "rigth", "cluster": "k1"}}}})


# ---------------------------------------------------------------- scores
@st.composite
def predictions(draw: st.DrawFn, min_size: int = 1) -> tuple[list[str], list[str], list[str]]:
    """(labels, gold, predicted): gold within the labels (some labels may have no gold document),
    predictions within the labels or outside them (a label the model knows and the job set has not)."""
    known = draw(st.lists(st.sampled_from(("a", "b", "c", "d", "e")), min_size=1, max_size=5, unique=True))
    n = draw(st.integers(min_size, 60))
    gold = draw(st.lists(st.sampled_from(known), min_size=n, max_size=n))
    pred = draw(st.lists(st.sampled_from((*known, "zz")), min_size=n, max_size=n))
    return sorted(known), gold, pred


@SETTINGS
@given(predictions())
def test_classification_metrics_equal_scikit_learn(case: tuple[list[str], list[str], list[str]]) -> None:
    labels_, gold, pred = case
    m = metrics.classification_metrics(gold, pred, labels_)
    present = [label for label in labels_ if label in set(gold)]
    assert m["n"] == len(gold) and m["labels"] == labels_
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=present, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(f1_score(gold, pred, labels=labels_, average="weighted", zero_division=0))
    p, r, f, s = precision_recall_fscore_support(gold, pred, labels=labels_, zero_division=0)
    for i, label in enumerate(labels_):
        assert m["per_class"][label] == pytest.approx({"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]})
    assert m["confusion_matrix"] == confusion_matrix(gold, pred, labels=labels_).tolist()


def test_classification_metrics_of_no_document() -> None:
    """An empty set of predictions (e.g. a job set a grouped split left empty) scores 0, as the
    code's own `if n else 0.0` says, rather than failing."""
    m = metrics.classification_metrics([], [], ["a", "b"])
    assert m["n"] == 0 and m["accuracy"] == 0.0 and m["macro_f1"] == 0.0
    assert m["confusion_matrix"] == [[0, 0], [0, 0]]


@SETTINGS
@given(predictions(), st.data())
def test_metrics_by_group_equal_each_group_scored_apart(case: tuple[list[str], list[str], list[str]], data: st.DataObject) -> None:
    labels_, gold, pred = case
    field = data.draw(st.lists(st.sampled_from(("mpt", "an", "", "2013")), min_size=len(gold), max_size=len(gold)))
    index = data.draw(st.permutations(range(len(gold))))  # the job set's own index, not 0..n-1
    job = pd.DataFrame({"label": gold, "corpus": pd.Series(field, dtype=object)}).set_axis([i * 7 + 3 for i in index])
    got = metrics.metrics_by_group(job, pred, "corpus", labels_)
    expected = {}
    for value in sorted(set(field)):
        rows = [i for i, v in enumerate(field) if v == value]
        m = metrics.classification_metrics([gold[i] for i in rows], [pred[i] for i in rows], labels_)
        expected[str(value)] = {key: m[key] for key in ("n", "accuracy", "macro_f1", "weighted_f1", "per_class")}
    assert got == expected and list(got) == sorted(got)
    assert sum(g["n"] for g in got.values()) == len(gold)


@SETTINGS
@given(predictions(), st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
def test_bootstrap_intervals_hold_the_point_estimate_and_follow_the_seed(
    case: tuple[list[str], list[str], list[str]], seed: int, random
) -> None:
    labels_, gold, pred = case
    m = metrics.classification_metrics(gold, pred, labels_)
    ci = metrics.bootstrap_intervals(gold, pred, labels_, seed=seed, n_boot=200)
    for key in ("accuracy", "macro_f1"):
        low, high = ci[key]
        assert 0.0 <= low <= m[key] + 1e-12 and m[key] - 1e-12 <= high <= 1.0, (key, m[key], ci[key])
    assert ci["seed"] == seed and ci["n_boot"] == 200 and ci["level"] == 0.95
    # the seed alone decides the draw: the same seed, the same intervals, whatever the order of the
    # documents (resampling documents draws from their (gold, predicted) cells)
    order = list(range(len(gold)))
    random.shuffle(order)
    assert ci == metrics.bootstrap_intervals([gold[i] for i in order], [pred[i] for i in order], list(labels_), seed=seed, n_boot=200)
    if gold == pred:  # every resample is scored perfect
        assert ci["accuracy"] == ci["macro_f1"] == [1.0, 1.0]


@SETTINGS
@given(predictions(), st.data(), st.integers(0, 2**32 - 1))
def test_paired_delta_is_the_difference_of_the_two_macro_f1(
    case: tuple[list[str], list[str], list[str]], data: st.DataObject, seed: int
) -> None:
    labels_, gold, pred_a = case
    pred_b = data.draw(st.lists(st.sampled_from((*labels_, "zz")), min_size=len(gold), max_size=len(gold)))
    delta = metrics.paired_bootstrap_delta(gold, pred_a, pred_b, labels_, seed=seed, n_boot=200)
    f1 = lambda pred: metrics.classification_metrics(gold, pred, labels_)["macro_f1"]
    assert delta["delta_macro_f1"] == pytest.approx(f1(pred_a) - f1(pred_b), abs=1e-12)
    assert delta == metrics.paired_bootstrap_delta(gold, pred_a, pred_b, labels_, seed=seed, n_boot=200)
    swapped = metrics.paired_bootstrap_delta(gold, pred_b, pred_a, labels_, seed=seed, n_boot=200)
    assert swapped["delta_macro_f1"] == pytest.approx(-delta["delta_macro_f1"], abs=1e-12)
    low, high = delta["ci95"]
    assert -1.0 <= low <= high <= 1.0 and 0.0 <= delta["share_a_better"] <= 1.0
    same = metrics.paired_bootstrap_delta(gold, pred_a, pred_a, labels_, seed=seed, n_boot=200)
    assert same["delta_macro_f1"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["share_a_better"] == 0.0
