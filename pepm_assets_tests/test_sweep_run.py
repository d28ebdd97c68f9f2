"""Sweeps end to end through Dagster's run queue on a tiny project: runs isolated from each other
and from the user's outputs, resume after a SIGKILL of the CLI and its runs, the hard RAM limit
with each oom_policy, early-stop pruning. Real daemon, real run workers, real MLflow (SQLite)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .fixtures import REPO, make_project

BASE = """
base:
  profile: tiny_an
  make_vars: {HARDWARE_PRESET: small}
  overrides: {families: [sklearn], models: [tfidf_svm_quick]}
"""


@pytest.fixture(scope="module")
def sweep_project(tmp_path_factory: pytest.TempPathFactory):
    """A tiny project with the repository's dagster.yaml and workspace.yaml, its own instance, its
    corpora parsed once (every test's sweep finds them fresh)."""
    root = make_project(tmp_path_factory.mktemp("sweep") / "proj", n_per_speaker=8)
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(REPO / name, root / name)
    env = {"PEPM_ROOT": str(root), "DAGSTER_HOME": str(root / ".dagster")}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield root, {**os.environ, **env, "COLUMNS": "200"}


def _experiment(root: Path, exp_id: str, body: str) -> Path:
    path = root / "configs" / "superior" / f"{exp_id}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"exp_id: {exp_id}\n{BASE}\n{body}", encoding="utf-8")
    return path


def _runs(root: Path, exp_id: str) -> list[dict[str, str]]:
    with (root / "superior" / exp_id / "runs.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _sweep(root: Path, path: Path, **kwargs):
    from pepm_assets.defs import sweeper

    return sweeper.run_sweep(root, path, **kwargs)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def test_parallel_runs_on_one_partition_never_share_a_file(sweep_project) -> None:
    root, _env = sweep_project
    user = root / "data" / "interim" / "tiny_an" / "left_right"  # the user's own split, made before
    user.mkdir(parents=True, exist_ok=True)
    (user / "train.tsv").write_text("the user's file\n", encoding="utf-8")
    before = _digest(root / "data" / "interim" / "tiny_an")
    body = "run: {repeats: 2, seed_strategy: per_run, base_seed: 11, figures: true}\nscheduler: {parallel: 2}\n"
    path = _experiment(root, "iso", body)

    report = _sweep(root, path)

    rows = _runs(root, "iso")
    assert [(r["run_id"], r["status"], r["seed"]) for r in rows] == [("run_0001", "success", "11"), ("run_0002", "success", "12")]
    splits = [root / "superior" / "iso" / "runs" / r / "data" / "interim" / "tiny_an" / "left_right" for r in ("run_0001", "run_0002")]
    metas = [json.loads((s / "meta_view.json").read_text(encoding="utf-8")) for s in splits]
    assert [m["seed"] for m in metas] == [11, 12]
    assert (splits[0] / "train.tsv").read_bytes() != (splits[1] / "train.tsv").read_bytes()
    assert _digest(root / "data" / "interim" / "tiny_an") == before, "a sweep wrote into the user's data/interim"
    assert not (root / "models" / "tiny_an").exists() and not (root / "reports" / "tiny_an").exists()
    for r in rows:  # every run scored its own model on its own job set
        summary = json.loads((root / r["metrics_path"]).read_text(encoding="utf-8"))
        assert summary["models"][0]["report_dir"].startswith(f"superior/iso/runs/{r['run_id']}/reports/")
        assert (root / summary["models"][0]["report_dir"] / "confusion_matrix.png").is_file()  # drawn by pepm sweep (run.figures)
        assert (root / summary["models"][0]["report_dir"] / "reliability_diagram.png").is_file()
    # one Dagster run per planned run, on the sweep_run partition, tagged; one MLflow parent each
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        runs = {r.tags["pepm/sweep_run"]: r for r in instance.get_runs(filters=dg.RunsFilter(tags={"pepm/sweep": "iso"}))}
        assert sorted(runs) == ["run_0001", "run_0002"]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS and r.job_name == "sweep" for r in runs.values())
        assert runs["run_0001"].tags["dagster/partition"] == "iso.run_0001"
        assert {r["dagster_run_id"] for r in rows} == {r.run_id for r in runs.values()}
        records = [instance.get_run_record_by_id(runs[k].run_id) for k in ("run_0001", "run_0002")]
        spans = [(rec.start_time, rec.end_time) for rec in records]  # the run workers' lives, sub-second
        assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], f"the two runs did not overlap: {spans}"
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("iso")
    found = client.search_runs([experiment.experiment_id])
    parents = {r.info.run_id for r in found if "mlflow.parentRunId" not in r.data.tags}
    assert parents == {r["mlflow_run_id"] for r in rows}
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId") in parents]
    assert sorted(r.data.tags["stage"] for r in children) == ["evaluate", "evaluate", "train", "train"]
    evaluation = next(r for r in children if r.data.tags["stage"] == "evaluate")
    assert "report/confusion_matrix.png" in {a.path for a in client.list_artifacts(evaluation.info.run_id, "report")}
    assert (root / "superior" / "iso" / "report.md").is_file() and (root / "superior" / "iso" / "metrics_global.tsv").is_file()
    assert report.daemon.startswith("a daemon started for this sweep")


def test_resume_after_sigkill_runs_each_planned_run_exactly_once(sweep_project) -> None:
    root, env = sweep_project
    path = _experiment(root, "killed", "run: {repeats: 4, seed_strategy: per_run, base_seed: 1}\nscheduler: {parallel: 1}\n")
    cmd = [str(Path(sys.executable).with_name("pepm")), "sweep", "--exp-config", str(path)]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            rows = _runs(root, "killed") if (root / "superior" / "killed" / "runs.tsv").is_file() else []
            statuses = [r["status"] for r in rows]
            running = [r["run_id"] for r in rows if r["status"] == "running"]
            journal = root / "superior" / "killed" / "runs" / (running[0] if running else "-") / "mlflow_journal.jsonl"
            if statuses.count("success") >= 1 and running and journal.is_file() and journal.stat().st_size:
                break  # a run is inside its step: its MLflow parent is in its journal
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail(f"no run succeeded with another inside its step within 240 s: {statuses}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its daemon, the code server and the run workers
        proc.wait()
    before = {r["run_id"]: r for r in _runs(root, "killed")}
    done_before = {k for k, r in before.items() if r["status"] == "success"}
    killed = [k for k, r in before.items() if r["status"] == "running"]
    assert done_before and killed

    result = subprocess.run([*cmd, "--resume"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    # the run workers' Dagster logs go to the sweep's log, not over its progress on the terminal
    assert "STEP_SUCCESS" not in result.stdout + result.stderr
    assert "STEP_SUCCESS" in (root / "superior" / "killed" / "logs" / "dagster.log").read_text(encoding="utf-8")

    after = _runs(root, "killed")
    assert [r["run_id"] for r in after] == ["run_0001", "run_0002", "run_0003", "run_0004"]
    assert all(r["status"] == "success" for r in after), after
    by_id = {r["run_id"]: r for r in after}
    for run_id in done_before:  # kept: not computed again
        assert by_id[run_id]["dagster_run_id"] == before[run_id]["dagster_run_id"] and by_id[run_id]["attempt"] == "1"
    for run_id in killed:  # in flight when killed: executed again, not left STARTED
        assert by_id[run_id]["attempt"] == "2" and by_id[run_id]["dagster_run_id"] != before[run_id]["dagster_run_id"]
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        old = instance.get_run_by_id(before[killed[0]]["dagster_run_id"])
        assert old.status == dg.DagsterRunStatus.FAILURE
        assert not [r for r in instance.get_runs(filters=dg.RunsFilter(tags={"pepm/sweep": "killed"})) if not r.is_finished]
    assert f"kept from before (--resume): {len(done_before)} successful runs" in result.stdout
    # MLflow (logged by pepm sweep from each run's journal): one FINISHED parent per run, once; the
    # killed attempt's parent, logged by the resume from the journal the kill left, ended KILLED
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("killed").experiment_id], max_results=100)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    finished = {r.info.run_id: r.data.tags["sweep_run"] for r in parents if r.info.status == "FINISHED"}
    assert finished == {r["mlflow_run_id"]: r["run_id"] for r in after}
    assert [(r.data.tags["sweep_run"], r.data.tags["attempt"]) for r in parents if r.info.status == "KILLED"] == [(killed[0], "1")]
    assert len(parents) == len(after) + 1


def test_a_finished_sweep_resumed_runs_nothing(sweep_project) -> None:
    root, env = sweep_project
    path = _experiment(root, "again", "run: {repeats: 1, base_seed: 3}\n")
    first = _sweep(root, path)
    second = _sweep(root, path, resume=True)
    assert first.submitted == ["run_0001"] and second.submitted == [] and second.kept == ["run_0001"]
    assert _runs(root, "again")[0]["dagster_run_id"] == first.ledger.rows["run_0001"]["dagster_run_id"]
    report = root / "superior" / "again" / "report.md"
    written = report.stat().st_mtime_ns
    cmd = [str(Path(sys.executable).with_name("pepm")), "sweep", "--exp-config", str(path), "--resume"]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "nothing to run" in out.stdout and "(unchanged)" in out.stdout  # no instance opened, hooks not redone
    assert report.stat().st_mtime_ns == written
    # run.figures is off by default: no run's PNG drawn; `pepm report figures` draws them afterwards
    reports = root / "superior" / "again" / "runs" / "run_0001" / "reports"
    assert list(reports.rglob("metrics.json")) and not list(reports.rglob("*.png"))
    cmd = [str(Path(sys.executable).with_name("pepm")), "report", "figures", "superior/again"]
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "2 figures drawn" in out.stdout, out.stdout + out.stderr
    assert sorted(p.name for p in reports.rglob("*.png")) == ["confusion_matrix.png", "reliability_diagram.png"]


def test_a_run_that_succeeded_while_no_sweep_watched_is_kept_by_resume(sweep_project) -> None:
    """pepm sweep killed after its run's worker finished but before it read the end: runs.tsv still
    says `running`; the resume reads Dagster's SUCCESS and the outcome, and does not run it again."""
    root, _env = sweep_project
    path = _experiment(root, "unwatched", "run: {repeats: 1, base_seed: 4}\n")
    first = _sweep(root, path)
    ledger = root / "superior" / "unwatched" / "runs.tsv"
    rows = _runs(root, "unwatched")
    rows[0].update(status="running", end="", duration_s="", metrics_path="", mlflow_run_id="")
    with ledger.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)

    second = _sweep(root, path, resume=True)

    assert second.submitted == [] and second.kept == ["run_0001"]
    row = _runs(root, "unwatched")[0]
    assert row["status"] == "success" and row["metrics_path"] and row["dagster_run_id"] == first.ledger.rows["run_0001"]["dagster_run_id"]


def test_an_mlflow_store_out_of_reach_loses_no_run_and_is_caught_up(sweep_project, monkeypatch) -> None:
    """The sweep's MLflow store unusable while it runs (a path that cannot be created): the run
    succeeds all the same, runs.tsv says MLflow is not logged yet and the journal stays; the next
    `pepm sweep --resume` with the store back logs it once, nested, and clears the note."""
    root, _env = sweep_project
    path = _experiment(root, "no_store", "run: {repeats: 1, base_seed: 6}\n")
    blocker = root / "not_a_folder"
    blocker.write_text("a file where the store's folder should be", encoding="utf-8")
    monkeypatch.setenv("PEPM_MLFLOW_URI", f"sqlite:///{blocker / 'mlflow.db'}")
    first = _sweep(root, path)
    row = _runs(root, "no_store")[0]
    assert row["status"] == "success" and row["mlflow_run_id"] == "" and "MLflow not logged yet" in row["note"], row
    journal = root / "superior" / "no_store" / "runs" / "run_0001" / "mlflow_journal.jsonl"
    assert journal.is_file()

    monkeypatch.delenv("PEPM_MLFLOW_URI")
    second = _sweep(root, path, resume=True)

    assert first.submitted == ["run_0001"] and second.submitted == []
    row = _runs(root, "no_store")[0]
    assert row["mlflow_run_id"] and row["note"] == "" and not journal.exists()
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("no_store").experiment_id])
    assert [r.info.run_id for r in found if "mlflow.parentRunId" not in r.data.tags] == [row["mlflow_run_id"]]
    assert len(found) == 3 and all(r.info.status == "FINISHED" for r in found)


OOM_AXES = """
axes:
  - name: estimator
    type: choice
    values:
      - {label: svm, overrides: {models: [tfidf_svm_quick]}}
      - {label: logreg, overrides: {models: [tfidf_logreg]}}
run: {repeats: 2, seed_strategy: per_repeat, base_seed: 5}
scheduler: {parallel: 1}
safety: {enable_hard_ram_limit: true, hard_limit_mb: 40}
"""


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("skip", ["oom", "skipped_oom", "oom", "skipped_oom"]),
        ("stop", ["oom", "aborted_oom_policy", "aborted_oom_policy", "aborted_oom_policy"]),
    ],
)
def test_hard_ram_limit_stops_a_run_and_the_oom_policy_applies(sweep_project, policy: str, expected: list[str]) -> None:
    """40 MB: the run's own process is over the limit as soon as it has imported pandas."""
    root, _env = sweep_project
    exp_id = f"oom_{policy}"
    path = _experiment(root, exp_id, OOM_AXES + f"oom_policy: {{on_oom: {policy}}}\n")
    _sweep(root, path)
    rows = _runs(root, exp_id)
    assert [r["status"] for r in rows] == expected
    oom = rows[0]
    assert "hard RAM limit: process tree RSS" in oom["note"] and "> 40 MB" in oom["note"]
    assert float(oom["max_rss_mb"]) > 40
    log = (root / "superior" / exp_id / "logs" / "run_0001.log").read_text(encoding="utf-8")
    assert "pepm: hard RAM limit" in log
    assert "oom_policy" in rows[1]["note"] or "oom" in rows[1]["note"]


def test_backoff_replans_with_smaller_caps_and_records_them(sweep_project) -> None:
    root, _env = sweep_project
    path = _experiment(
        root,
        "oom_backoff",
        "run: {repeats: 1, base_seed: 5}\nsafety: {enable_hard_ram_limit: true, hard_limit_mb: 40}\n"
        "oom_policy: {on_oom: backoff, backoff_factor: 0.5}\n"
        "axes: [{name: cap, type: choice, values: [{label: c16, overrides: {hardware.max_train_docs.sklearn: 16}}]}]\n",
    )
    _sweep(root, path)
    (row,) = _runs(root, "oom_backoff")
    # the first try and three backoffs (16 -> 8 -> 4 -> 2 documents), each still over 40 MB. Every
    # cap is below the view's 19 train documents, so a backoff halves it whether the watchdog stopped
    # the run before its split or after (when it is above, the train set's size is halved:
    # test_sweep_plan.py::test_backoff_overrides)
    assert row["status"] == "oom" and row["attempt"] == "4", row
    assert json.loads(row["train_caps_json"]) == {"sklearn": 2}
    with (root / "superior" / "oom_backoff" / "plan.tsv").open(encoding="utf-8") as fh:
        assert len(fh.read().splitlines()) == 2  # re-planned in place: still one planned run


def test_early_stop_prunes_the_remaining_repeats_of_a_flagged_combination(sweep_project) -> None:
    root, _env = sweep_project
    body = (
        "run: {repeats: 3, seed_strategy: per_run, base_seed: 1}\nscheduler: {parallel: 1}\n"
        "early_stop: {enabled: true, min_accuracy: 0.9, min_macro_f1: 0.9, apply_to_families: [check]}\n"
        # the majority baseline: far under 0.9 on a balanced two-class view (the SVM is perfect on this tiny data)
        "axes: [{name: model, type: choice, values: [{label: baseline, overrides: {families: [check], models: [check_default]}}]}]\n"
    )
    _sweep(root, _experiment(root, "pruned", body))
    rows = _runs(root, "pruned")
    assert [r["status"] for r in rows] == ["success", "pruned_early_stop", "pruned_early_stop"]
    assert rows[0]["quality_ok"] == "false" and rows[0]["quality_flags"] == "low_accuracy,low_macro_f1"
    log = (root / "superior" / "pruned" / "logs" / "early_stop.log").read_text(encoding="utf-8")
    assert "run_0001" in log and "pruned run_0002, run_0003" in log


def test_a_hyperparameter_grid_is_selected_on_the_validation_split(sweep_project) -> None:
    """Each run scores its model on valid.tsv (carved from train) too; report.md picks the C value
    with the best mean validation macro-F1, whatever the job scores say."""
    root, _env = sweep_project
    # class_weight none: balanced weights (auto, tiny_an's train set is imbalanced) make C=0.001 as
    # perfect as C=1.0 on this tiny data, and there would be no choice to make
    body = (
        "run: {repeats: 1, base_seed: 2}\n"
        "axes: [{name: svm_c, type: choice, values: ["
        "{label: '0.001', overrides: {models.tfidf_svm_quick.params.C: 0.001, models.tfidf_svm_quick.params.class_weight: none, split.validation_prop: 0.25}},"
        "{label: '1.0', overrides: {models.tfidf_svm_quick.params.C: 1.0, models.tfidf_svm_quick.params.class_weight: none, split.validation_prop: 0.25}}]}]\n"
    )
    _sweep(root, _experiment(root, "cgrid", body))
    rows = _runs(root, "cgrid")
    assert [r["status"] for r in rows] == ["success", "success"]
    valid = {}
    for row in rows:
        summary = json.loads((root / row["metrics_path"]).read_text(encoding="utf-8"))
        (model,) = summary["models"]
        assert model["validation"]["n"] > 0
        valid[json.loads(row["axis_values_json"])["svm_c"]] = model["validation"]["macro_f1"]
        split = root / "superior" / "cgrid" / "runs" / row["run_id"] / "data" / "interim" / "tiny_an" / "left_right"
        assert (split / "valid.tsv").is_file()
    best = max(valid, key=lambda k: (valid[k], k == "0.001"))  # ties: the value planned first
    report = (root / "superior" / "cgrid" / "report.md").read_text(encoding="utf-8")
    section = report.split("## Selection on validation", 1)[1].split("\n## ", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith("| svm_c "))
    assert line.split("|")[5].strip().strip("*") == best, (valid, line)
    assert valid["0.001"] != valid["1.0"]  # a real choice was made


EIGHT_WRITERS = """
import sys, time
from pathlib import Path
from pepm_assets.core.tracking import Tracker
root, go, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
while not go.exists():
    time.sleep(0.005)
tracker = Tracker(root, experiment="eight")
parent = tracker.start_parent(f"eight/run_{n}", {"dagster_run_id": n}, {"axis.n": n})
mlflow, experiment_id = tracker._mlflow()
client = mlflow.MlflowClient(tracker.uri)  # the tracker's store, as its own calls
for stage in ("train", "evaluate"):
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "stage": stage})
    client.log_metric(run.info.run_id, "macro_f1", 0.5)
    client.set_terminated(run.info.run_id)
tracker.end_parent(parent, "FINISHED", {"macro_f1": 0.5})
"""


def test_eight_sweep_runs_writing_to_mlflow_at_once_lose_no_run(tmp_path: Path) -> None:
    """Eight parallel sweep runs on the embedded SQLite store: "database is locked" is retried."""
    go = tmp_path / "go"
    env = {**os.environ, "PEPM_MLFLOW_URI": ""}
    procs = [
        subprocess.Popen([sys.executable, "-c", EIGHT_WRITERS, str(tmp_path), str(go), str(i)], env=env, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    time.sleep(3)  # every process has imported pepm and MLflow
    go.touch()
    errors = [p.communicate(timeout=300)[1][-800:] for p in procs if p.wait(timeout=300) != 0]
    assert not errors, errors
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name("eight").experiment_id], max_results=100)
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 8 and {r.info.status for r in parents} == {"FINISHED"}
    assert len(found) == 24
