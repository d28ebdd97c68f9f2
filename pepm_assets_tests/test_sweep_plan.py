"""Experiment sweeps, plain-Python half: the experiment config, the plan, queue limits and the
oom / early-stop policies, against the repository's real configs (read only: nothing is written
under the repository; experiment files and plan.tsv go to tmp_path)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from pepm_assets.core.config import ConfigError, resolve_profile
from pepm_assets.core.config.schema import SplitConfig
from pepm_assets.core.sweep import spec
from pepm_assets.core.sweep.config import EarlyStopConfig, OomPolicy, SchedulerConfig, load_experiment
from pepm_assets.core.sweep.plan import build_plan, inline_yaml, queue_limits, queue_warnings, read_plan, write_plan
from pepm_assets.core.sweep.policy import after_oom, backoff_overrides, judge_early_stop, to_prune

from .fixtures import REPO

SWEEPS = REPO / "configs" / "superior"


def _exp(tmp_path: Path, **sections) -> Path:
    data = {"exp_id": "t", "base": {"profile": "ideo_quick", "make_vars": {"FAMILY": "sklearn", "MODELS": "tfidf_svm_quick"}}}
    data.update(sections)
    path = tmp_path / "exp.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _plan(path: Path) -> list[spec.RunSpec]:
    return build_plan(load_experiment(path, REPO), REPO, str(path))


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _plan(path)
    assert info.value.source == str(path)
    return info.value


AXES = [
    {"name": "prop", "values": [{"label": "a", "make_vars": {"TRAIN_PROP": 0.6}}, {"label": "b", "make_vars": {"TRAIN_PROP": 0.7}}]},
    {
        "name": "bal",
        "values": [
            {"label": "none", "make_vars": {"BALANCE_STRATEGY": "none"}},
            {"label": "over", "make_vars": {"BALANCE_STRATEGY": "oversample", "BALANCE_PRESET": "parity"}},
            {"label": "cap", "overrides": {"balance_strategy": "cap_docs"}},
        ],
    },
]


# ---------------------------------------------------------------- plan generation
def test_cartesian_plan_order_ids_combos_and_repeats(tmp_path: Path) -> None:
    plan = _plan(_exp(tmp_path, axes=AXES, run={"repeats": 2, "seed_strategy": "per_run", "base_seed": 10}))
    assert len(plan) == 2 * 3 * 2
    assert [r.run_id for r in plan] == [f"run_{i:04d}" for i in range(1, 13)]
    combos = ["prop=a|bal=none", "prop=a|bal=over", "prop=a|bal=cap", "prop=b|bal=none", "prop=b|bal=over", "prop=b|bal=cap"]
    assert [r.combo for r in plan] == [c for c in combos for _ in range(2)]
    assert [r.repeat_index for r in plan] == [0, 1] * 6
    assert [r.seed for r in plan] == list(range(10, 22))
    assert plan[3].axis_values == {"prop": "a", "bal": "over"}
    assert plan[3].make_vars == {
        "FAMILY": "sklearn",
        "MODELS": "tfidf_svm_quick",
        "TRAIN_PROP": "0.6",
        "BALANCE_STRATEGY": "oversample",
        "BALANCE_PRESET": "parity",
    }
    assert plan[3].override_list == [
        "families=[sklearn]",
        "models=[tfidf_svm_quick]",
        "train_prop=0.6",
        "balance_strategy=oversample",
        "balance_preset=parity",
        "seed=13",
    ]
    assert {(r.profile, r.stage, r.exp_id, r.resource_class) for r in plan} == {("ideo_quick", "pipeline", "t", "light")}
    assert {tuple(r.families) for r in plan} == {("sklearn",)} and {tuple(r.models) for r in plan} == {("tfidf_svm_quick",)}
    assert len({r.params_hash for r in plan}) == 12  # every run differs (seed, train_prop or balance)


def test_zip_pairs_the_ith_values_and_no_axes_is_one_run(tmp_path: Path) -> None:
    axes = [AXES[0], {**AXES[1], "values": AXES[1]["values"][:2]}]
    plan = _plan(_exp(tmp_path, axes=axes, grid={"mode": "zip"}))
    assert [r.combo for r in plan] == ["prop=a|bal=none", "prop=b|bal=over"]
    (tmp_path / "solo").mkdir()
    solo = _plan(_exp(tmp_path / "solo", run={"repeats": 2}))
    assert [(r.run_id, r.combo, r.repeat_index, r.axis_values) for r in solo] == [("run_0001", "", 0, {}), ("run_0002", "", 1, {})]


def test_precedence_base_then_axes_in_order_and_overrides_beat_make_vars(tmp_path: Path) -> None:
    axes = [
        {"name": "x", "values": [{"label": "v", "make_vars": {"TRAIN_PROP": 0.6}, "overrides": {"balance_strategy": "oversample"}}]},
        {
            "name": "y",
            "values": [
                {"label": "w", "make_vars": {"TRAIN_PROP": 0.7, "BALANCE_STRATEGY": "none"}, "overrides": {"filters.min_tokens": 5}}
            ],
        },
    ]
    base = {
        "profile": "ideo_quick",
        "make_vars": {"FAMILY": "sklearn", "MODELS": "tfidf_svm_quick", "TRAIN_PROP": 0.8},
        "overrides": {"balance_strategy": "cap_docs", "filters.min_tokens": 2},
    }
    (run,) = _plan(_exp(tmp_path, base=base, axes=axes))
    assert run.make_vars["TRAIN_PROP"] == "0.7" and run.make_vars["BALANCE_STRATEGY"] == "none"
    assert run.overrides == {"balance_strategy": "oversample", "filters.min_tokens": 5}
    params = resolve_profile(REPO, "ideo_quick", run.override_list)
    assert (params.train_prop, params.balance_strategy, params.filters.min_tokens, params.seed) == (0.7, "oversample", 5, 42)


@pytest.mark.parametrize(
    ("strategy", "seeds"),
    [("fixed", [7] * 6), ("per_run", [7, 8, 9, 10, 11, 12]), ("per_repeat", [7, 8, 9, 7, 8, 9])],
)
def test_seed_strategies(tmp_path: Path, strategy: str, seeds: list[int]) -> None:
    plan = _plan(_exp(tmp_path, axes=[AXES[0]], run={"repeats": 3, "seed_strategy": strategy, "base_seed": 7}))
    assert [r.seed for r in plan] == seeds
    assert [r.override_list[-1] for r in plan] == [f"seed={s}" for s in seeds]


def test_override_values_read_back_as_written() -> None:
    from pepm_assets.core.config import parse_override

    for value in [
        "mpt",
        "0.5",
        "true",
        "a b",
        "x:y",
        "",
        0.5,
        1e-07,
        3,
        True,
        None,
        ["mpt", "an_debats"],
        ["a,b", 1],
        {"spacy": 1000, "k": "v w"},
    ]:
        assert parse_override(f"k={inline_yaml(value)}")[1] == value
    assert inline_yaml(["mpt", "an_debats"]) == "[mpt,an_debats]" and inline_yaml("0.5") == '"0.5"'


# ---------------------------------------------------------------- config errors: file + key
def test_unknown_key_names_the_key_and_the_closest_field(tmp_path: Path) -> None:
    err = _error(_exp(tmp_path, run={"repeat": 2}))
    assert err.key == "run.repeat" and "did you mean 'repeats'" in err.message


def test_unknown_make_variable_with_suggestion(tmp_path: Path) -> None:
    axes = [{"name": "p", "values": [{"label": "a"}, {"label": "b", "make_vars": {"TRAIN_PORP": 0.5}}]}]
    err = _error(_exp(tmp_path, axes=axes))
    assert err.key == "axes.0.values.1.make_vars.TRAIN_PORP" and "did you mean 'TRAIN_PROP'" in err.message


def test_zip_needs_axes_of_equal_length(tmp_path: Path) -> None:
    err = _error(_exp(tmp_path, axes=AXES, grid={"mode": "zip"}))
    assert err.key == "grid.mode" and "{'prop': 2, 'bal': 3}" in err.message


def test_a_seed_of_its_own_is_refused(tmp_path: Path) -> None:
    base = {"profile": "ideo_quick", "make_vars": {"SEED": 3}}
    assert _error(_exp(tmp_path, base=base)).key == "base.make_vars.SEED"
    axes = [{"name": "s", "values": [{"label": "a", "overrides": {"seed": 3}}]}]
    err = _error(_exp(tmp_path, axes=axes))
    assert err.key == "axes.0.values.0.overrides.seed" and "run.seed_strategy" in err.message


def test_hard_limit_needs_a_size(tmp_path: Path) -> None:
    err = _error(_exp(tmp_path, safety={"enable_hard_ram_limit": True}))
    assert err.key == "safety.hard_limit_mb"


def test_other_checks_name_their_key(tmp_path: Path) -> None:
    cases = [
        ({"axes": [AXES[0], {**AXES[0], "values": AXES[0]["values"][:1]}]}, "axes.1.name"),
        ({"axes": [{"name": "p", "values": [{"label": "a"}, {"label": "a"}]}]}, "axes.0.values.1.label"),
        ({"axes": [{"name": "p", "values": []}]}, "axes.0.values"),
        ({"scheduler": {"resource_classes": {"spacyy": "heavy"}}}, "scheduler.resource_classes.spacyy"),
        ({"scheduler": {"resource_classes": {"spacy": "gpu"}, "weights": {"light": 1}}}, "scheduler.resource_classes.spacy"),
        ({"scheduler": {"oom_policy": {"on_oom": "stop"}}, "oom_policy": {"on_oom": "skip"}}, "scheduler.oom_policy"),
        ({"oom_policy": {"on_oom": "backoff", "backoff_factor": 1.0}}, "oom_policy.backoff_factor"),
        ({"exp_id": "a b"}, "exp_id"),
        ({"base": {"profile": "ideo_quik"}}, "base.profile"),
        ({"analysis_hooks": {"after_experiment": [{"type": "plots"}]}}, "analysis_hooks.after_experiment.0"),
    ]
    for i, (sections, key) in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        assert _error(_exp(tmp_path / str(i), **sections)).key == key, sections


def test_scheduler_placement_and_hook_paths(tmp_path: Path) -> None:
    cfg = load_experiment(
        _exp(
            tmp_path,
            scheduler={"oom_policy": {"on_oom": "stop"}},
            analysis_hooks={"after_experiment": [{"type": "report_markdown"}, {"type": "report_markdown", "path": "out/${exp_id}.md"}]},
        ),
        REPO,
    )
    assert cfg.oom_policy == OomPolicy(on_oom="stop") and cfg.early_stop == EarlyStopConfig()
    assert [h.path for h in cfg.analysis_hooks.after_experiment] == ["superior/t/report.md", "out/t.md"]


def test_an_axis_value_that_does_not_resolve_fails_the_plan_naming_it(tmp_path: Path) -> None:
    axes = [
        AXES[0],
        {
            "name": "dataset",
            "values": [{"label": "mpt", "overrides": {"dataset_id": "mpt"}}, {"label": "bad", "overrides": {"dataset_id": "nowhere"}}],
        },
    ]
    err = _error(_exp(tmp_path, axes=axes))
    assert err.key == "axes.dataset=bad" and err.message.startswith("run_0002 (prop=a|dataset=bad) does not resolve")
    assert "unknown dataset 'nowhere'" in err.message


def test_blame_goes_to_the_combination_or_the_base(tmp_path: Path) -> None:
    base = {"profile": "ideo_quick"}
    axes = [
        {"name": "m", "values": [{"label": "svm", "overrides": {"models": ["tfidf_svm_quick"]}}]},
        {"name": "f", "values": [{"label": "spacy", "overrides": {"families": ["spacy"]}}]},
    ]
    err = _error(_exp(tmp_path, base=base, axes=axes))
    assert err.key == "axes.m=svm|f=spacy" and "not in families ['spacy']" in err.message
    (tmp_path / "b").mkdir()
    base = {"profile": "ideo_quick", "overrides": {"dataset_id": "nowhere"}}
    assert _error(_exp(tmp_path / "b", base=base, axes=[AXES[0]])).key == "base"


# ---------------------------------------------------------------- the shipped examples
def test_the_spec_example_validates_and_plans_eight_runs(tmp_path: Path) -> None:
    path = SWEEPS / "ideo_balancing_sweep.yml"
    cfg = load_experiment(path, REPO)
    assert cfg.early_stop.apply_to_families == ["spacy", "hf"] and cfg.oom_policy.on_oom == "skip"
    assert cfg.analysis_hooks.after_experiment[1].path == "superior/ideo_balancing_sweep/report.md"
    plan = build_plan(cfg, REPO, "configs/superior/ideo_balancing_sweep.yml")
    assert len(plan) == 8
    assert [r.seed for r in plan] == list(range(42, 50))
    assert plan[7].combo == "dataset=mpt_an_debats_juxt|balance_strategy=oversample_parity|family_model=spacy_cnn"
    assert [r.resource_class for r in plan] == ["light", "heavy"] * 4  # scheduler.resource_classes: spacy heavy
    assert [r.families for r in plan] == [["sklearn"], ["spacy"]] * 4 and plan[1].models == ["spacy_cnn_quick"]
    params = resolve_profile(REPO, "ideo_quick", plan[7].override_list)
    assert (params.view, params.dataset_id, params.balance_strategy, params.balance_preset) == (
        "ideology_global",
        "mpt_an_debats",
        "oversample",
        "parity",
    )
    assert params.dataset.merge_mode == "juxtaposed" and params.compare_by == ["corpus_id"]
    assert queue_limits(cfg.scheduler, {r.resource_class for r in plan}) == {
        "max_concurrent_runs": 1,
        "tag_concurrency_limits": [
            {"key": "pepm/resource_class", "value": "light", "limit": 4},
            {"key": "pepm/resource_class", "value": "heavy", "limit": 1},
        ],
    }
    written = write_plan(tmp_path / "ideo_balancing_sweep" / "plan.tsv", plan)
    assert written.read_text(encoding="utf-8").splitlines()[0].split("\t") == spec.PLAN_COLUMNS
    assert read_plan(written) == plan


def test_learning_curve_and_cross_corpus_examples(tmp_path: Path) -> None:
    plan = _plan(SWEEPS / "learning_curve.yml")
    assert len(plan) == 12 and [r.seed for r in plan] == [42, 43, 44] * 4
    assert [r.make_vars["TRAIN_PROP"] for r in plan[::3]] == ["0.3", "0.5", "0.7", "0.9"]
    assert {tuple(r.models) for r in plan} == {("tfidf_svm_quick",)}
    pair = _plan(SWEEPS / "cross_corpus_pair.yml")
    resolved = [resolve_profile(REPO, "ideo_quick", r.override_list) for r in pair]
    assert [(p.dataset_id, p.eval_dataset_id) for p in resolved] == [("mpt", "an_debats"), ("an_debats", "mpt")]


def test_svm_c_grid_example(tmp_path: Path) -> None:
    """split.validation_prop is being added by another change: until SplitConfig has it, the plan
    must fail on it, naming the base; the grid itself is checked on a copy without that line."""
    path = SWEEPS / "svm_c_grid.yml"
    cfg = load_experiment(path, REPO)
    assert cfg.base.overrides == {"split.validation_prop": 0.15}
    if "validation_prop" in SplitConfig.model_fields:
        plan = build_plan(cfg, REPO, str(path))
    else:
        err = _error(path)
        assert err.key == "base" and "split.validation_prop" in err.message
        copy = tmp_path / "svm_c_grid.yml"
        copy.write_text(path.read_text(encoding="utf-8").replace("    split.validation_prop: 0.15\n", ""), encoding="utf-8")
        plan = _plan(copy)
    assert len(plan) == 8 and [r.seed for r in plan] == [42, 43] * 4
    resolved = [resolve_profile(REPO, "ideo_quick", r.override_list) for r in plan[::2]]
    assert [p.model_specs["tfidf_svm_quick"].params["C"] for p in resolved] == [0.05, 0.2, 0.5, 2.0]
    assert len({r.params_hash for r in plan}) == 8  # C is part of the run's hash


# ---------------------------------------------------------------- queue limits
def test_queue_limits_per_class(caplog: pytest.LogCaptureFixture) -> None:
    cfg = SchedulerConfig(parallel=3, max_ram_gb=10, max_weight=4, approx_ram_per_class={"light": 2, "medium": 4, "heavy": 12})
    with caplog.at_level(logging.WARNING):
        limits = queue_limits(cfg, ["heavy", "light", "medium", "light"])
    assert limits == {
        "max_concurrent_runs": 3,
        "tag_concurrency_limits": [
            {"key": "pepm/resource_class", "value": "light", "limit": 4},  # min(4 // 1, 10 // 2)
            {"key": "pepm/resource_class", "value": "medium", "limit": 2},  # min(4 // 2, 10 // 4)
            {"key": "pepm/resource_class", "value": "heavy", "limit": 1},  # min(4 // 4, 10 // 12 = 0) -> alone
        ],
    }
    assert queue_warnings(cfg, ["heavy", "light"]) == ["a heavy run needs ~12.0 GB, over max_ram_gb 10.0: heavy runs go one at a time"]
    assert "heavy run needs" in caplog.text
    heavy = SchedulerConfig(weights={"heavy": 8}, max_weight=4)
    assert queue_limits(heavy, ["heavy"])["tag_concurrency_limits"] == [{"key": "pepm/resource_class", "value": "heavy", "limit": 1}]
    assert queue_warnings(heavy, ["heavy"]) == ["a heavy run weighs 8, over max_weight 4: heavy runs go one at a time"]
    assert queue_limits(SchedulerConfig(max_weight=6, max_ram_gb=8), ["medium"])["tag_concurrency_limits"][0]["limit"] == 3


# ---------------------------------------------------------------- policies
def _runs(combos: list[str]) -> list[spec.RunSpec]:
    return [
        spec.RunSpec(f"run_{i:04d}", "t", "p", "pipeline", {}, {}, 0, {}, "light", 42, combo) for i, combo in enumerate(combos, start=1)
    ]


def test_oom_policies() -> None:
    plan = _runs(["a", "a", "b", "a", "a", "b"])
    ledger = {
        "run_0001": {"status": spec.SUCCESS},
        "run_0002": {"status": spec.OOM},
        "run_0003": {"status": spec.RUNNING},
        "run_0005": {"status": spec.FAILED},
    }
    assert after_oom(OomPolicy(on_oom="skip"), plan, ledger, "run_0002") == [
        ("run_0004", spec.SKIPPED_OOM, "oom_policy skip: run_0002 (a) ran out of memory")
    ]
    assert after_oom("stop", plan, ledger, "run_0002") == [
        ("run_0003", spec.ABORTED_OOM, "oom_policy stop: run_0002 ran out of memory"),
        ("run_0004", spec.ABORTED_OOM, "oom_policy stop: run_0002 ran out of memory"),
        ("run_0006", spec.ABORTED_OOM, "oom_policy stop: run_0002 ran out of memory"),
    ]
    assert after_oom(OomPolicy(on_oom="backoff"), plan, ledger, "run_0002") == []


def test_backoff_overrides() -> None:
    caps = {"spacy": 4000, "hf": 2000}
    assert backoff_overrides(caps, ["spacy", "sklearn"], None, 0.5) == ["hardware.max_train_docs.spacy=2000"]
    assert backoff_overrides(caps, ["spacy", "sklearn"], 1000, 0.25) == [
        "hardware.max_train_docs.spacy=250",
        "hardware.max_train_docs.sklearn=250",
    ]
    assert backoff_overrides({"spacy": 3}, ["spacy"], None, 0.1) == ["hardware.max_train_docs.spacy=1"]
    assert backoff_overrides({"spacy": 1}, ["spacy", "sklearn"], None, 0.5) is None
    params = resolve_profile(REPO, "ideo_quick", backoff_overrides(caps, ["spacy"], None, 0.5))
    assert params.hardware.max_train_docs == {"spacy": 2000, "hf": 2000, "cluster": 5000}


def test_early_stop_judge_and_pruning() -> None:
    cfg = EarlyStopConfig(enabled=True, min_accuracy=0.3, min_macro_f1=0.25, apply_to_families=["spacy"])
    low = {"accuracy": 0.2, "macro_f1": 0.1}
    assert judge_early_stop(cfg, [{"family": "sklearn", "metrics": low}]) == (True, [])
    assert judge_early_stop(cfg, [{"family": "spacy", "metrics": {"accuracy": 0.2, "macro_f1": 0.3}}]) == (True, [])
    assert judge_early_stop(cfg, [{"family": "sklearn", "metrics": low}, {"family": "spacy", "metrics": low}]) == (
        False,
        ["low_accuracy", "low_macro_f1"],
    )
    every = cfg.model_copy(update={"apply_to_families": []})
    assert judge_early_stop(every, [{"family": "sklearn", "metrics": low}]) == (False, ["low_accuracy", "low_macro_f1"])
    assert judge_early_stop(cfg.model_copy(update={"enabled": False}), [{"family": "spacy", "metrics": low}]) == (True, [])

    plan = _runs(["a", "a", "a", "a", "b"])
    ledger = {
        "run_0001": {"status": spec.SUCCESS, "quality_ok": "false"},
        "run_0002": {"status": spec.RUNNING},
        "run_0003": {"status": spec.QUEUED},
        "run_0005": {"status": spec.PLANNED},
    }
    assert to_prune(plan, ledger, "run_0001", cfg) == ["run_0003", "run_0004"]
    assert to_prune(plan, ledger, "run_0001", cfg.model_copy(update={"prune": False})) == []
    assert to_prune(plan, {**ledger, "run_0001": {"status": spec.SUCCESS, "quality_ok": "true"}}, "run_0001", cfg) == []
