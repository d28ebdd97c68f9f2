"""Property-based tests (hypothesis) of the balance strategies (core/balance/) and of the way a view
applies them (core/prepare.py `_balance_and_split`, `_split_pool`): pool-stage strategies
down-sample the labelled pool before the split, train-stage ones resample the fit set after it, so
that no copy of a row can reach the validation or job set.

What each strategy must give (its module's docstring, configs/common/balance.yml, spec §2.5.4):
- none: the pool as it is; class_weights: the pool as it is, and scikit-learn's "balanced" weights;
- cap_docs: min(n_c, max_docs) documents of each class (max_docs: min -> the smallest class);
- cap_tokens: a seeded draw of each class's documents while their tokens stay within max_tokens
  (at least one document);
- alpha_total: min(n_c, max(1, round(total * n_c**alpha / sum_k n_k**alpha))) documents of class c;
- oversample: max(n_c, target) rows of each class (target: max -> the largest), the extra rows
  copies of the class's own rows."""

from __future__ import annotations

import functools
import typing
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.utils.class_weight import compute_class_weight

from pepm_assets.core import balance, prepare, split
from pepm_assets.core.config import ConfigError
from pepm_assets_tests.fixtures import REPO
from pepm_assets_tests.test_properties_split import _norm, pools

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.cache
def presets() -> dict[str, dict[str, dict]]:
    """balance.yml's presets, read when a test needs them (never at import: a broken config must
    fail the tests that read it, not the collection of the suite)."""
    return yaml.safe_load(Path(REPO / "configs" / "common" / "balance.yml").read_text(encoding="utf-8"))["presets"]


PER_STRATEGY = settings(SETTINGS, max_examples=15)  # a test run once per strategy (pytest parameters)
STAGES = {"none": "none", "class_weights": "none", "cap_docs": "pool", "cap_tokens": "pool", "alpha_total": "pool", "oversample": "train"}


@st.composite
def labelled(draw: st.DrawFn, max_per_class: int = 30) -> pd.DataFrame:
    """A labelled pool: classes of 1, 2, 3 or more documents, n_tokens from 0 (an empty text) up."""
    labels = draw(st.lists(st.sampled_from(("a", "b", "c", "d", "e")), min_size=1, max_size=5, unique=True))
    rows = []
    for label in labels:
        for _ in range(draw(st.one_of(st.sampled_from((1, 2, 3)), st.integers(1, max_per_class)))):
            rows.append({"doc_id": f"d{len(rows)}", "label": label, "text": f"texte {len(rows)}", "n_tokens": draw(st.integers(0, 400))})
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[i] for i in order], index=pd.RangeIndex(len(rows)) * 2 + 10)


def _params(strategy: str) -> st.SearchStrategy[dict]:
    """A strategy's params: its presets in balance.yml, or values drawn from the domain it is meant
    for (deferred: balance.yml is read when the test runs)."""
    return st.deferred(lambda: _params_now(strategy))


def _params_now(strategy: str) -> st.SearchStrategy[dict]:
    drawn = {
        "none": st.just({}),
        "class_weights": st.just({"scheme": "balanced"}),
        "cap_docs": st.builds(lambda m: {"max_docs": m}, st.one_of(st.just("min"), st.integers(1, 40))),
        "cap_tokens": st.builds(lambda m: {"max_tokens": m}, st.integers(1, 3000)),
        "alpha_total": st.builds(lambda a, t: {"alpha": a, "total": t}, st.floats(0, 1), st.integers(1, 120)),
        "oversample": st.builds(lambda t: {"target": t}, st.one_of(st.just("max"), st.integers(1, 40))),
    }[strategy]
    shipped = [balance.resolve(strategy, p, {}, presets(), "balance.yml") for p in presets().get(strategy, {})]
    return st.one_of(drawn, st.sampled_from(shipped)) if shipped else drawn


def _resample(strategy: str, params: dict, df: pd.DataFrame, seed: int) -> pd.DataFrame:
    return balance.build(strategy, params).resample(df, np.random.default_rng(seed))


def _counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["label"].value_counts().items()}


def _assert_subset_without_copies(out: pd.DataFrame, df: pd.DataFrame) -> None:
    """Down-sampling: rows of `df`, unchanged, each at most once, every class kept, in `df`'s order within a class."""
    assert out.index.is_unique and out["doc_id"].is_unique
    pd.testing.assert_frame_equal(out, df.loc[out.index])
    assert set(out["label"]) == set(df["label"])  # never empties a class
    position = pd.Series(range(len(df)), index=df.index)
    for _, group in out.groupby("label"):
        assert position[group.index].is_monotonic_increasing


def test_the_registry_holds_the_strategies_tested_here() -> None:
    """A new strategy needs its definition in this file's properties (and a stage pepm knows)."""
    assert set(balance.REGISTRY.names()) == set(STAGES)
    assert {name: balance.REGISTRY.get(name).stage for name in STAGES} == STAGES
    assert set(presets()) == set(STAGES)


# ---------------------------------------------------------------- each strategy by its definition
@SETTINGS
@given(labelled(), _params("cap_docs"), st.integers(0, 2**32 - 1))
def test_cap_docs(df: pd.DataFrame, params: dict, seed: int) -> None:
    out = _resample("cap_docs", params, df, seed)
    counts = _counts(df)
    cap = min(counts.values()) if params["max_docs"] == "min" else params["max_docs"]
    assert _counts(out) == {label: min(n, cap) for label, n in counts.items()}
    _assert_subset_without_copies(out, df)


@SETTINGS
@given(labelled(), st.data(), st.integers(0, 2**32 - 1))
def test_cap_tokens(df: pd.DataFrame, data: st.DataObject, seed: int) -> None:
    totals = sorted({int(n) for n in df.groupby("label")["n_tokens"].sum() if n >= 1})
    exact = [st.sampled_from([{"max_tokens": n} for n in totals])] if totals else []  # a cap a class fills exactly
    params = data.draw(st.one_of(_params("cap_tokens"), *exact))
    out = _resample("cap_tokens", params, df, seed)
    _assert_subset_without_copies(out, df)
    cap = params["max_tokens"]
    for label, group in df.groupby("label"):
        kept = out[out["label"] == label]
        left = group.drop(kept.index)
        tokens = int(kept["n_tokens"].sum())
        assert tokens <= cap or len(kept) == 1  # within the cap, or the one document a class keeps
        if len(left):  # documents were drawn until the next one would pass the cap
            assert tokens + int(left["n_tokens"].max()) > cap
        else:
            assert int(group["n_tokens"].sum()) <= cap or len(group) == 1
        if int(group["n_tokens"].sum()) <= cap:  # a class within the cap keeps every document
            assert len(left) == 0


@SETTINGS
@given(labelled(), _params("alpha_total"), st.integers(0, 2**32 - 1))
def test_alpha_total(df: pd.DataFrame, params: dict, seed: int) -> None:
    out = _resample("alpha_total", params, df, seed)
    _assert_subset_without_copies(out, df)
    counts = _counts(df)
    weights = {label: float(n) ** params["alpha"] for label, n in counts.items()}
    got = _counts(out)
    for label, n in counts.items():
        share = weights[label] / sum(weights.values()) * params["total"]
        allowed = {min(n, max(1, round(share)))}
        if abs(share % 1 - 0.5) < 1e-9:  # a tie: the rounding of the last bit decides
            allowed |= {min(n, max(1, int(np.floor(share)))), min(n, max(1, int(np.ceil(share))))}
        assert got[label] in allowed, (label, n, share, got[label])


@SETTINGS
@given(labelled(), _params("oversample"), st.integers(0, 2**32 - 1))
def test_oversample(df: pd.DataFrame, params: dict, seed: int) -> None:
    out = _resample("oversample", params, df, seed)
    counts = _counts(df)
    target = max(counts.values()) if params["target"] == "max" else params["target"]
    assert _counts(out) == {label: max(n, target) for label, n in counts.items()}  # never down-samples
    # every row kept once as it was; the extra rows are copies of rows of the same class
    first = out[~out.index.duplicated(keep="first")]
    pd.testing.assert_frame_equal(first.sort_index(), df.sort_index())
    pd.testing.assert_frame_equal(out, df.loc[out.index])
    assert set(out["doc_id"]) == set(df["doc_id"])


@SETTINGS
@given(labelled())
def test_class_weights_and_none_leave_the_pool_alone(df: pd.DataFrame) -> None:
    weights = balance.build("class_weights", {"scheme": "balanced"})
    assert weights.resample(df, np.random.default_rng(0)) is df
    labels = sorted(df["label"].unique())
    expected = compute_class_weight("balanced", classes=np.array(labels), y=df["label"].to_numpy())
    got = weights.class_weights(df)
    assert list(got) == labels and list(got.values()) == pytest.approx(list(expected), abs=1e-6)
    assert sum(got[label] * n for label, n in _counts(df).items()) == pytest.approx(len(df), rel=1e-5)
    none = balance.build("none", {})
    assert none.resample(df, np.random.default_rng(0)) is df and none.class_weights(df) is None


@pytest.mark.parametrize("strategy", sorted(STAGES))
def test_every_value_a_strategy_accepts_keeps_every_class(strategy: str) -> None:
    """Whatever integer a strategy's parameters accept (balance.resolve validates a profile's
    balance_params with them), no class comes out empty: a value that would empty one is refused."""
    df = pd.DataFrame({"doc_id": ["1", "2", "3"], "label": ["a", "a", "b"], "text": ["x", "y", "z"], "n_tokens": [5, 5, 5]})
    fields = balance.REGISTRY.get(strategy).params_model.model_fields
    for name in sorted(n for n, field in fields.items() if int in _types(field.annotation)):
        for value in (0, 1, 2, -1):
            try:
                params = balance.resolve(strategy, "default", {name: value}, presets(), "profile")
            except ConfigError:
                continue  # refused: fine
            out = balance.build(strategy, params).resample(df, np.random.default_rng(0))
            assert set(out["label"]) == {"a", "b"}, (strategy, name, value)


def _types(annotation) -> set:
    return {annotation, *(t for arg in typing.get_args(annotation) for t in (arg, *typing.get_args(arg)))}


def test_oversample_of_an_empty_train_side() -> None:
    """A split can leave the train side empty (every class a single document, train_prop < 0.5);
    over-sampling it has nothing to copy and gives it back empty, as a strategy of stage none does.
    (Pool-stage strategies never see an empty pool: the view fails first, prepare.ViewError.)"""
    pool = pd.DataFrame({"doc_id": ["1", "2"], "label": ["a", "b"], "text": ["x", "y"], "n_tokens": [3, 3], "speaker": ["s", "t"]})
    train, _ = split.split_train_job(pool, 0.4, 0)
    assert train.empty
    for strategy in sorted(name for name, stage in STAGES.items() if stage != "pool"):
        out = balance.build(strategy, balance.resolve(strategy, "default", {}, presets(), "profile")).resample(
            train, np.random.default_rng(0)
        )
        assert out.empty and list(out.columns) == list(pool.columns), strategy


# ---------------------------------------------------------------- every strategy, every preset
@pytest.mark.parametrize("strategy", sorted(STAGES))
@PER_STRATEGY
@given(labelled(), st.data(), st.integers(0, 2**32 - 1))
def test_every_strategy_keeps_every_class_and_is_seeded(strategy: str, df: pd.DataFrame, data: st.DataObject, seed: int) -> None:
    params = data.draw(_params(strategy))
    out = _resample(strategy, params, df, seed)
    pd.testing.assert_frame_equal(out, _resample(strategy, params, df.copy(), seed))  # same seed, same rows
    assert set(out["label"]) == set(df["label"])
    stage = balance.build(strategy, params).stage
    if stage == "pool":  # down-sampling: never a copy
        _assert_subset_without_copies(out, df)
    elif stage == "train":  # over-sampling: never a row dropped
        assert Counter(out["doc_id"]) >= Counter(df["doc_id"])
    else:
        assert out is df


# ---------------------------------------------------------------- as a view applies them
def _view_params(
    strategy: str, params: dict, seed: int, train_prop: float, validation_prop: float, group_by: str | None, corpora
) -> SimpleNamespace:
    """What `_balance_and_split` and `_split_pool` read of ResolvedParams."""
    return SimpleNamespace(
        balance_strategy=strategy,
        balance=params,
        seed=seed,
        train_prop=train_prop,
        split=SimpleNamespace(stratify=True, group_by=group_by, validation_prop=validation_prop),
        dataset=SimpleNamespace(merge_mode="separate" if len(corpora) > 1 else "single", source_field="corpus_id", corpus_ids=corpora),
    )


@st.composite
def view_pools(draw: st.DrawFn) -> pd.DataFrame:
    """A deduplicated labelled pool as a view has it (split.drop_duplicates run), with n_tokens and a corpus."""
    pool, _ = split.drop_duplicates(draw(pools(max_per_class=16)))
    assume(len(pool) > 0)  # an empty pool fails the view before balancing (prepare.ViewError)
    tokens = st.lists(st.integers(0, 300), min_size=len(pool), max_size=len(pool))
    corpora = st.lists(st.sampled_from(("an", "mpt")), min_size=len(pool), max_size=len(pool))
    return pool.assign(n_tokens=draw(tokens), corpus_id=draw(corpora))


def _assert_apart(sets: dict[str, pd.DataFrame], group_by: str | None) -> None:
    for (name_a, a), (name_b, b) in [(x, y) for i, x in enumerate(sets.items()) for y in list(sets.items())[i + 1 :]]:
        assert not set(a["doc_id"]) & set(b["doc_id"]), (name_a, name_b)
        assert not {_norm(t) for t in a["text"]} & {_norm(t) for t in b["text"]}, (name_a, name_b)
        if group_by:
            assert not set(a[group_by]) & set(b[group_by]), (name_a, name_b)


@pytest.mark.parametrize("strategy", sorted(STAGES))
@PER_STRATEGY
@given(
    view_pools(), st.data(), st.integers(0, 2**20), st.floats(0.3, 0.9), st.sampled_from((0.0, 0.25)), st.sampled_from((None, "speaker"))
)
def test_balance_and_split_never_lets_a_copy_cross(
    strategy: str, pool: pd.DataFrame, data: st.DataObject, seed: int, train_prop: float, validation_prop: float, group_by: str | None
) -> None:
    params = data.draw(_params(strategy))
    stage = balance.build(strategy, params).stage
    # (an empty train side, every class a single document below train_prop 0.5, makes oversample
    # raise: test_oversample_of_an_empty_train_side)
    assume(stage != "train" or len(split.split_train_job(pool, train_prop, seed, True, group_by)[0]))
    view = _view_params(strategy, params, seed, train_prop, validation_prop, group_by, ["an"])
    train, valid, job = prepare._balance_and_split(pool, view, salt=0)
    # the sets are apart (doc_id, normalised text, speaker): oversampled copies stay in train
    _assert_apart({"train": train, "valid": valid, "job": job}, group_by)
    assert not any(split.leakage(train, job, group_by, valid).values())
    assert valid["doc_id"].is_unique and job["doc_id"].is_unique
    # the stages: down-sampling before the split (its pool shared by the three sets), over-sampling
    # of the fit set only, after the validation set is carved out
    balanced = balance.build(strategy, params).resample(pool, np.random.default_rng([seed, 1, 0])) if stage == "pool" else pool
    fit, job_expected = split.split_train_job(balanced, train_prop, seed, True, group_by)
    fit, valid_expected = split.split_validation(fit, validation_prop, [seed, 3, 0], True, group_by)
    pd.testing.assert_frame_equal(job, job_expected)
    pd.testing.assert_frame_equal(valid, valid_expected)
    if stage == "train":
        assert set(train["doc_id"]) == set(fit["doc_id"]) and Counter(train["doc_id"]) >= Counter(fit["doc_id"])
        assert train.drop_duplicates("doc_id").sort_index().equals(fit.sort_index())
        if len(fit):
            target = max(_counts(fit).values()) if params["target"] == "max" else params["target"]
            assert _counts(train) == {label: max(n, target) for label, n in _counts(fit).items()}
    else:
        pd.testing.assert_frame_equal(train, fit)
        assert train["doc_id"].is_unique


@pytest.mark.parametrize("separate", [False, True], ids=["single", "separate"])
@pytest.mark.parametrize("stage", ["pool", "train"])
@PER_STRATEGY
@given(view_pools(), st.data(), st.integers(0, 2**20), st.sampled_from((None, "speaker")))
def test_split_pool_per_corpus_never_lets_a_copy_cross(
    stage: str, separate: bool, pool: pd.DataFrame, data: st.DataObject, seed: int, group_by: str | None
) -> None:
    strategy = data.draw(st.sampled_from(sorted(name for name, s in STAGES.items() if s == stage)))
    params = data.draw(_params(strategy))
    corpora = sorted(set(pool["corpus_id"])) if separate else ["an"]
    assume(len(corpora) > 1 or not separate)
    if balance.build(strategy, params).stage == "train":  # see test_balance_and_split_never_lets_a_copy_cross
        for cid in corpora:
            rows = pool[pool["corpus_id"] == cid] if separate else pool
            assume(len(split.split_train_job(rows, 0.7, seed + corpora.index(cid), True, group_by)[0]))
    view = _view_params(strategy, params, seed, 0.7, 0.2, group_by, corpora)
    train, valid, job = prepare._split_pool(pool, view, Counter())
    # no document, no text on two sides, across corpora too (the pool is deduplicated as a whole)
    _assert_apart({"train": train, "valid": valid, "job": job}, None)
    # groups: apart within each corpus, which is what each corpus's own model trains and is scored
    # on (the view's asset check counts leakage per corpus in merge_mode separate); a speaker of
    # two corpora may sit in one corpus's train and the other's job
    for cid in corpora:
        part = {name: df[df["corpus_id"] == cid] for name, df in (("train", train), ("valid", valid), ("job", job))}
        _assert_apart(part, group_by)
        assert not any(split.leakage(part["train"], part["job"], group_by, part["valid"]).values())
    if not separate:
        assert not any(split.leakage(train, job, group_by, valid).values())
    again = prepare._split_pool(pool.copy(), view, Counter())
    for a, b in zip((train, valid, job), again):
        pd.testing.assert_frame_equal(a, b)
