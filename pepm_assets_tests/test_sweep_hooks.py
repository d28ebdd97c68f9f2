"""A sweep's analysis hooks (core/sweep/hooks.py) on a hand-made experiment folder with known numbers:
metrics_global.tsv, what each curve plots (its .tsv), report.md (best runs, selection on
validation, cross-dataset, anomalies), and run_hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pepm_assets.core.sweep import hooks
from pepm_assets.core.sweep.spec import PLAN_COLUMNS, RUNS_COLUMNS

EXP = "toy_sweep"
SVM, KMEANS = "tfidf_svm_quick", "kmeans_quick"

# run_id, train label, C label, repeat, seed, status, svm (macro_f1, accuracy, valid macro_f1), kmeans ari, note
RUNS = [
    ("run_0001", "p50", "c01", 0, 42, "success", (0.60, 0.62, 0.55), 0.10, ""),
    ("run_0002", "p50", "c01", 1, 43, "success", (0.64, 0.66, 0.57), 0.14, ""),
    ("run_0003", "p50", "c1", 0, 44, "success", (0.70, 0.73, 0.52), 0.20, ""),
    ("run_0004", "p50", "c1", 1, 45, "success", (0.72, 0.75, 0.50), 0.22, ""),
    ("run_0005", "p80", "c01", 0, 46, "success", (0.66, 0.68, 0.60), 0.30, ""),
    ("run_0006", "p80", "c01", 1, 47, "failed", None, None, "ValueError: boom in family sklearn"),
    ("run_0007", "p80", "c1", 0, 48, "oom", None, None, "max RSS 14100 MB over the hard limit 14000 MB"),
    ("run_0008", "p80", "c1", 1, 49, "skipped_oom", None, None, "oom_policy skip: run_0007 (same combo) ran out of memory"),
]
CROSS_F1 = 0.40  # run_0005's svm evaluated on asr


def _combo(train: str, c: str) -> str:
    return f"train={train}|C={c}"


def _make_vars(train: str) -> dict[str, str]:
    # p80 sets train_prop by an override, not by the Make variable: x must fall back to params.train_prop
    return {"HARDWARE_PRESET": "small", "TRAIN_PROP": "0.5"} if train == "p50" else {"HARDWARE_PRESET": "small"}


def _summary(run_id, train, c, rep, seed, svm, ari) -> dict:
    f1, acc, valid = svm
    params = {
        "dataset_id": "mpt",
        "view": "left_right",
        "train_prop": 0.5 if train == "p50" else 0.8,
        "seed": seed,
        "balance_strategy": "none",
        "hardware_preset": "small",
        "split": {"group_by": None, "validation_prop": 0.1},
        "model_params": {"C": 0.1 if c == "c01" else 1.0},
    }
    report = f"superior/{EXP}/runs/{run_id}/reports/mpt/left_right"
    models = [
        {
            "model_id": SVM,
            "family": "sklearn",
            "eval_dataset_id": "mpt",
            "n_job": 200,
            "n_train_used": 800,
            "train_seconds": 1.5,
            "metrics": {"accuracy": acc, "macro_f1": f1, "weighted_f1": f1 + 0.01, "accuracy_ci95": [acc - 0.02, acc + 0.02]},
            "validation": {"accuracy": valid + 0.01, "macro_f1": valid},
            "report_dir": f"{report}/sklearn/{SVM}",
        },
        {
            "model_id": KMEANS,
            "family": "cluster",
            "eval_dataset_id": "mpt",
            "n_job": 200,
            "n_train_used": 800,
            "train_seconds": 0.5,
            "metrics": {"ari": ari, "nmi": ari + 0.1},
            "validation": None,
            "report_dir": f"{report}/cluster/{KMEANS}",
        },
    ]
    if run_id == "run_0005":
        models.append({**models[0], "eval_dataset_id": "asr", "metrics": {"accuracy": 0.45, "macro_f1": CROSS_F1}, "validation": None})
    return {
        "run_id": run_id,
        "exp_id": EXP,
        "status": "success",
        "seed": seed,
        "repeat_index": rep,
        "combo": _combo(train, c),
        "axis_values": {"train": train, "C": c},
        "make_vars": _make_vars(train),
        "params": params,
        "params_hash": f"hash{run_id}",
        "duration_s": 10.0 + int(run_id[-1]),
        "max_rss_mb": 800.0,
        "quality_ok": run_id != "run_0001",
        "quality_flags": ["low_macro_f1"] if run_id == "run_0001" else [],
        "models": models,
    }


def _write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    pd.DataFrame([{c: str(r.get(c, "")) for c in columns} for r in rows], columns=columns).to_csv(path, sep="\t", index=False)


@pytest.fixture()
def sweep(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    exp_root = root / "superior" / EXP
    exp_root.mkdir(parents=True)
    plan, runs = [], []
    for run_id, train, c, rep, seed, status, svm, ari, note in RUNS:
        axis_json = json.dumps({"train": train, "C": c}, separators=(",", ":"))
        plan.append(
            {
                "run_id": run_id,
                "combo": _combo(train, c),
                "repeat_index": rep,
                "seed": seed,
                "stage": "pipeline",
                "profile": "ideo_quick",
                "resource_class": "light",
                "families": "sklearn,cluster",
                "models": f"{SVM},{KMEANS}",
                "axis_values_json": axis_json,
                "make_vars_json": json.dumps(_make_vars(train), separators=(",", ":")),
            }
        )
        row = {"run_id": run_id, "status": status, "attempt": 1, "seed": seed, "combo": _combo(train, c), "axis_values_json": axis_json}
        row["note"] = note
        if status in ("success", "failed", "oom"):
            (exp_root / "runs" / run_id).mkdir(parents=True)
            row |= {"duration_s": 10.0 + int(run_id[-1]), "max_rss_mb": 14100.0 if status == "oom" else 800.0}
        if status == "success":
            summary = exp_root / "runs" / run_id / "summary.json"
            summary.write_text(json.dumps(_summary(run_id, train, c, rep, seed, svm, ari)), encoding="utf-8")
            row |= {"metrics_path": summary.relative_to(root).as_posix(), "quality_ok": str(run_id != "run_0001").lower()}
            row["quality_flags"] = "low_macro_f1" if run_id == "run_0001" else ""
        runs.append(row)
    _write_tsv(exp_root / "plan.tsv", PLAN_COLUMNS, plan)
    _write_tsv(exp_root / "runs.tsv", RUNS_COLUMNS, runs)
    return exp_root, root


def test_metrics_global_has_one_row_per_run_model_and_evaluated_dataset(sweep) -> None:
    exp_root, root = sweep
    table = hooks.write_metrics_global(exp_root, root)
    assert len(table) == 4 * 2 + 3  # runs 1-4: svm + kmeans; run 5: + svm on asr
    assert table["run_id"].tolist() == [r for r in ["run_0001", "run_0002", "run_0003", "run_0004"] for _ in (0, 1)] + ["run_0005"] * 3
    assert set(table["status"]) == {"success"}
    for col in (
        "axis.train",
        "axis.C",
        "make.HARDWARE_PRESET",
        "make.TRAIN_PROP",
        "param.train_prop",
        "param.model_params.C",
        "param.split.validation_prop",
    ):
        assert col in table.columns
    cols = table.columns.tolist()
    assert cols[:7] == ["run_id", "combo", "repeat_index", "seed", "status", "axis.train", "axis.C"]
    assert cols.index("eval_dataset_id") < cols.index("accuracy") < cols.index("valid_macro_f1") < cols.index("n_train_used")
    for col in ("cross", "accuracy", "macro_f1", "weighted_f1", "ari", "nmi", "valid_accuracy", "valid_macro_f1"):
        assert col in cols
    assert "accuracy_ci95" not in cols  # intervals are not scalar metrics

    svm3 = table[(table["run_id"] == "run_0003") & (table["model_id"] == SVM)].iloc[0]
    assert (svm3["combo"], svm3["repeat_index"], svm3["seed"], svm3["axis.C"]) == ("train=p50|C=c1", 0, 44, "c1")
    assert (svm3["dataset_id"], svm3["view"], svm3["family"], svm3["eval_dataset_id"], svm3["cross"]) == (
        "mpt",
        "left_right",
        "sklearn",
        "mpt",
        False,
    )
    assert (svm3["macro_f1"], svm3["accuracy"], svm3["valid_macro_f1"]) == (0.70, 0.73, 0.52)
    assert (svm3["n_train_used"], svm3["train_seconds"], svm3["duration_s"], svm3["max_rss_mb"]) == (800, 1.5, 13.0, 800.0)
    assert svm3["make.TRAIN_PROP"] == "0.5" and svm3["param.train_prop"] == 0.5 and svm3["param.model_params.C"] == 1.0
    km3 = table[(table["run_id"] == "run_0003") & (table["model_id"] == KMEANS)].iloc[0]
    assert km3["ari"] == 0.20 and pd.isna(km3["macro_f1"]) and pd.isna(km3["valid_macro_f1"])
    cross = table[table["cross"]]
    assert cross[["run_id", "model_id", "dataset_id", "eval_dataset_id", "macro_f1"]].values.tolist() == [
        ["run_0005", SVM, "mpt", "asr", CROSS_F1]
    ]
    run5 = table[table["run_id"] == "run_0005"].iloc[0]
    assert pd.isna(run5["make.TRAIN_PROP"]) and run5["param.train_prop"] == 0.8
    assert table.loc[table["run_id"] == "run_0001", "quality_ok"].tolist() == [False, False]
    assert table.loc[table["run_id"] == "run_0001", "quality_flags"].iloc[0] == "low_macro_f1"

    written = pd.read_csv(exp_root / "metrics_global.tsv", sep="\t")
    assert written.columns.tolist() == cols and len(written) == len(table)
    assert written.loc[2, "macro_f1"] == pytest.approx(0.64)
    assert not [p for p in exp_root.iterdir() if p.name.endswith(".tmp")]


def test_curves_plot_mean_and_sd_over_repeats_with_make_var_falling_back_to_params(sweep) -> None:
    exp_root, root = sweep
    table = hooks.metrics_global(exp_root, root)
    paths = hooks.curves(table, ["macro_f1"], "TRAIN_PROP", ["family"], exp_root / "plots")
    assert paths == [exp_root / "plots" / "macro_f1__vs__TRAIN_PROP.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = pd.read_csv(exp_root / "plots" / "macro_f1__vs__TRAIN_PROP.tsv", sep="\t")
    # kmeans has no macro_f1 (absent); the cross-dataset row of run_0005 is left out; 0.8 comes from params
    assert data[["group", "x", "n"]].values.tolist() == [["sklearn", 0.5, 4], ["sklearn", 0.8, 1]]
    assert data["mean"].tolist() == pytest.approx([0.665, 0.66])
    assert data.loc[0, "sd"] == pytest.approx(pd.Series([0.60, 0.64, 0.70, 0.72]).std())
    assert pd.isna(data.loc[1, "sd"])
    assert data.loc[0, "run_ids"] == "run_0001,run_0002,run_0003,run_0004"

    by_c = hooks.curve_data(table, "macro_f1", "TRAIN_PROP", ["C"])  # an axis name as group
    assert by_c[["group", "x", "n"]].values.tolist() == [["C=c01", 0.5, 2], ["C=c01", 0.8, 1], ["C=c1", 0.5, 2]]
    assert by_c["mean"].tolist() == pytest.approx([0.62, 0.66, 0.71])
    assert by_c["sd"].tolist()[0] == pytest.approx(0.0282842712)
    assert by_c.attrs["pooled"] == [] and by_c.attrs["dropped_cross"] == 1
    assert hooks.curve_data(table, "macro_f1", "TRAIN_PROP", ["family"]).attrs["pooled"] == ["C"]

    with_cross = hooks.curve_data(table, "macro_f1", "TRAIN_PROP", ["eval_dataset_id"])
    assert with_cross[["group", "x", "mean"]].values.tolist() == [
        ["eval mpt", 0.5, 0.665],
        ["eval mpt", 0.8, 0.66],
        ["eval asr", 0.8, 0.40],
    ]


def test_categorical_axis_in_plan_order_and_a_single_x_value(sweep, tmp_path: Path) -> None:
    exp_root, root = sweep
    table = hooks.metrics_global(exp_root, root)
    data = hooks.curve_data(table, "macro_f1", "C", ["model_id"])
    assert data.attrs["kind"] == "categorical"
    assert data[["x", "n"]].values.tolist() == [["c01", 3], ["c1", 2]]
    reordered = hooks.curve_data(table.iloc[::-1].reset_index(drop=True), "macro_f1", "C", ["model_id"], {"C": ["c01", "c1"]})
    assert reordered["x"].tolist() == ["c01", "c1"]  # plan order, not row order
    gappy = table[~((table["axis.train"] == "p50") & (table["axis.C"] == "c01"))]  # c01 (first group) only has p80
    by_train = hooks.curve_data(gappy, "macro_f1", "train", ["C"])
    assert by_train[["group", "x"]].values.tolist() == [["C=c01", "p80"], ["C=c1", "p50"]]
    assert by_train.attrs["x_order"] == ["p50", "p80"]  # the plot's x axis: plan order

    only_p50 = table[table["axis.train"] == "p50"]
    (png,) = hooks.curves(only_p50, ["accuracy"], "TRAIN_PROP", ["C"], tmp_path / "plots", exp_id=EXP)
    single = pd.read_csv(png.with_suffix(".tsv"), sep="\t")
    assert single[["group", "x", "n"]].values.tolist() == [["C=c01", 0.5, 2], ["C=c1", 0.5, 2]]
    assert single["mean"].tolist() == pytest.approx([0.64, 0.74])


def test_a_metric_missing_for_some_rows_is_absent_from_its_plot(sweep) -> None:
    exp_root, root = sweep
    table = hooks.metrics_global(exp_root, root)
    paths = hooks.curves(table, ["macro_f1", "ari", "silhouette"], "TRAIN_PROP", ["model_id"], exp_root / "plots")
    assert [p.name for p in paths] == ["macro_f1__vs__TRAIN_PROP.png", "ari__vs__TRAIN_PROP.png", "silhouette__vs__TRAIN_PROP.png"]
    assert all(p.is_file() for p in paths)
    f1 = pd.read_csv(paths[0].with_suffix(".tsv"), sep="\t")
    assert set(f1["group"]) == {SVM}
    ari = pd.read_csv(paths[1].with_suffix(".tsv"), sep="\t")
    assert ari[["group", "x", "n"]].values.tolist() == [[KMEANS, 0.5, 4], [KMEANS, 0.8, 1]]
    assert ari["mean"].tolist() == pytest.approx([0.165, 0.30])
    assert pd.read_csv(paths[2].with_suffix(".tsv"), sep="\t").empty  # nobody reported it: a plot that says so


def test_report_best_runs_validation_selection_cross_and_anomalies(sweep) -> None:
    exp_root, root = sweep
    table = hooks.metrics_global(exp_root, root)
    plots = hooks.curves(table, ["macro_f1"], "TRAIN_PROP", ["family"], exp_root / "plots")
    target = hooks.report_markdown(exp_root, root, exp_root / "report.md", plots, description="A toy sweep.")
    text = target.read_text(encoding="utf-8")
    section = lambda title: text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]

    assert text.startswith(f"# Experiment {EXP}\n\nA toy sweep.\n")
    assert "- runs: 8 — success 5, failed 1, oom 1, skipped_oom 1" in text
    assert "- seeds: 42–49 (8 seeds)" in text
    assert "- duration: total 98.0 s, median 14.0 s per run" in text  # 11+12+…+17 s (run_0008 never ran)
    assert "- axes: train (p50, p80) × C (c01, c1)" in text
    runs = section("Runs")
    assert (
        "| run_0003 | success | train=p50\\|C=c1 | 44 | 13.0 s | 800 MB | tfidf_svm_quick: 0.7000 / 0.7300<br>kmeans_quick: ari 0.2000, nmi 0.3000 | — | [run_0003/](runs/run_0003/) |"
        in runs
    )
    assert "| run_0001 | success |" in runs and "| low_macro_f1 |" in runs
    assert "| run_0008 | skipped_oom | train=p80\\|C=c1 | 49 | — | — | — | — | — |" in runs

    best = section("Best runs")
    sklearn = best.split("#### sklearn (macro_f1)", 1)[1].split("####", 1)[0]
    assert (
        sklearn.splitlines()[4]
        == "| 1 | train=p50\\|C=c1 | tfidf_svm_quick (sklearn) | mpt / left_right | 0.7100 ± 0.0141 (n=2) | run_0003, run_0004 |"
    )
    cluster = best.split("#### cluster (ari)", 1)[1].split("####", 1)[0]
    assert cluster.splitlines()[4] == "| 1 | train=p80\\|C=c01 | kmeans_quick (cluster) | mpt / left_right | 0.3000 (n=1) | run_0005 |"
    assert "#### mpt / left_right (macro_f1)" in best and "Without macro_f1 (cluster): see by family." in best

    selection = section("Selection on validation")
    assert "never on the job set" in selection
    # train=p50: C=c1 has the best job score (0.71) but C=c01 the best validation score (0.56): c01 is chosen
    assert (
        "| C | train=p50 | tfidf_svm_quick (sklearn) | mpt / left_right | **c01** | 0.5600 | 0.6200 ± 0.0283 (n=2) | c01: 0.5600, c1: 0.5100 |"
    ) in selection
    assert (
        "| train | C=c01 | tfidf_svm_quick (sklearn) | mpt / left_right | **p80** | 0.6000 | 0.6600 (n=1) | p50: 0.5600, p80: 0.6000 |"
        in selection
    )
    assert "**c1**" not in selection

    assert "| train=p80\\|C=c01 | tfidf_svm_quick (sklearn) | mpt | asr | 0.4000 (n=1) | 0.6600 (n=1) |" in section("Cross-dataset")

    anomalies = section("Anomalies")
    assert "| run_0006 | failed | train=p80\\|C=c01 | ValueError: boom in family sklearn |" in anomalies
    assert "| run_0007 | oom | train=p80\\|C=c1 | max RSS 14100 MB over the hard limit 14000 MB |" in anomalies
    assert "| run_0008 | skipped_oom | train=p80\\|C=c1 | oom_policy skip: run_0007 (same combo) ran out of memory |" in anomalies
    assert "| run_0001 | low quality | train=p50\\|C=c01 | low_macro_f1 |" in anomalies

    assert "![macro_f1__vs__TRAIN_PROP](plots/macro_f1__vs__TRAIN_PROP.png)" in section("Plots")


def test_validation_selection_table(sweep) -> None:
    table = hooks.metrics_global(*sweep)
    sel = hooks.validation_selection(table)
    assert sel[["axis", "fixed", "model_id", "selected", "n"]].values.tolist() == [
        ["train", "C=c01", SVM, "p80", 1],
        ["C", "train=p50", SVM, "c01", 2],
    ]
    assert sel["valid_mean"].tolist() == pytest.approx([0.60, 0.56])
    assert sel["job_mean"].tolist() == pytest.approx([0.66, 0.62])


def test_run_hooks_in_order_and_a_failing_hook_does_not_stop_the_report(sweep) -> None:
    exp_root, root = sweep
    result = hooks.run_hooks(
        exp_root,
        root,
        [
            {"type": "curves", "metrics": ["accuracy", "macro_f1"], "x_axis": "TRAIN_PROP", "group_by": ["family", "dataset_id"]},
            {"type": "report_markdown", "path": "superior/${exp_id}/report.md"},
        ],
        description="desc",
    )
    assert result == {
        "metrics_global": f"superior/{EXP}/metrics_global.tsv",
        "rows": 11,
        "plots": [f"superior/{EXP}/plots/accuracy__vs__TRAIN_PROP.png", f"superior/{EXP}/plots/macro_f1__vs__TRAIN_PROP.png"],
        "report": f"superior/{EXP}/report.md",
    }
    report = (exp_root / "report.md").read_text(encoding="utf-8")
    assert "![accuracy__vs__TRAIN_PROP](plots/accuracy__vs__TRAIN_PROP.png)" in report
    assert "![macro_f1__vs__TRAIN_PROP](plots/macro_f1__vs__TRAIN_PROP.png)" in report

    (exp_root / "report.md").unlink()
    with pytest.raises(hooks.HookError, match="NOPE") as err:
        hooks.run_hooks(
            exp_root,
            root,
            [
                {"type": "curves", "metrics": ["macro_f1"], "x_axis": "NOPE", "group_by": []},
                {"type": "report_markdown", "path": "superior/${exp_id}/report.md"},
            ],
        )
    assert err.value.result["report"] == f"superior/{EXP}/report.md"
    assert "analysis hook failed: curves macro_f1 vs NOPE: ValueError" in (exp_root / "report.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="hook type 'plot'"):
        hooks.run_hooks(exp_root, root, [{"type": "plot"}])


def test_an_experiment_with_no_success_run(tmp_path: Path) -> None:
    exp_root = tmp_path / "superior" / "empty"
    exp_root.mkdir(parents=True)
    rows = [
        {"run_id": "run_0001", "status": "failed", "combo": "a=x", "note": "boom"},
        {"run_id": "run_0002", "status": "success", "combo": "a=y", "metrics_path": "superior/empty/runs/run_0002/summary.json"},  # lost
    ]
    _write_tsv(exp_root / "runs.tsv", RUNS_COLUMNS, rows)
    result = hooks.run_hooks(
        exp_root,
        tmp_path,
        [
            {"type": "curves", "metrics": ["macro_f1"], "x_axis": "TRAIN_PROP", "group_by": ["family"]},
            {"type": "report_markdown", "path": "superior/${exp_id}/report.md"},
        ],
    )
    assert result["rows"] == 0
    text = (exp_root / "report.md").read_text(encoding="utf-8")
    assert "No success run with a score." in text and "| run_0001 | failed | a=x | boom |" in text
    assert "| run_0002 | success | a=y | summary superior/empty/runs/run_0002/summary.json unreadable: FileNotFoundError |" in text
