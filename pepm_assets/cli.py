"""`pepm`: the command line, thin over the same functions the Dagster assets call.

Every stage runs through Dagster on the project's instance (DAGSTER_HOME=<project>/.dagster by
default), so what you run here shows in `pepm dev` (the Dagster UI).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .core import settings

if TYPE_CHECKING:
    from rich.progress import Progress

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Raw corpora: import the shipped copy, version with DVC.")
app.add_typer(data_app, name="data")
report_app = typer.Typer(no_args_is_help=True, help="Standard reports computed from a prepared dataset x view.")
app.add_typer(report_app, name="report")
console = Console(soft_wrap=True)


@app.callback()
def _before_any_command() -> None:
    from .core import collector

    collector.tune_process()  # fewer garbage collections, none at exit: 1.6 s of a 1x `pepm run` (core/collector.py)


PROFILE = typer.Option(..., "--profile", "-p", help="configs/profiles/<name>.yml")
OVERRIDE = typer.Option(None, "--override", "-o", help="key.sub=value on top of the profile (repeatable)")
SHIPPED = Path("data") / "shipped" / "corpora.tar.xz"


def _root() -> Path:
    from .core.config import ConfigError, project_root

    try:
        return project_root()
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _instance(root: Path):
    """The project's instance (created under a lock on first use), after cleaning up what killed
    runs left behind (defs/recovery.py)."""
    from .defs import runner
    from .defs.instance import get_instance
    from .defs.recovery import recover

    runner.set_launcher("cli")  # the runs' pepm/launched_by (PEPM_LAUNCHED_BY wins: make's)
    instance = get_instance(root)
    _recovered(recover(instance, root))
    return instance


def _recovered(lines: list[str]) -> None:
    for line in lines:  # on stderr: stdout may be a command's data
        Console(stderr=True, soft_wrap=True).print(f"[yellow]recovered:[/] {escape(line)}")


def _crashed_runs(root: Path) -> list:
    """The runs recovery marked failed (for `pepm status`), after recovering those whose process
    died. Read without importing Dagster (defs/run_peek.py: ~1 s less) unless there is a run to
    recover or the storage is not the embedded SQLite one: then through the instance, as every
    command opens it."""
    from .defs.instance import ensure_dagster_home
    from .defs.run_peek import peek, remove_temporaries

    found = peek(ensure_dagster_home(root))
    if found is None or found.to_recover:
        from .defs.recovery import crashed_runs

        return crashed_runs(_instance(root))
    _recovered(remove_temporaries(root))
    return found.crashed


def _columns(counted: bool = False) -> tuple:
    """Spinner, description, bar (then done/total when `counted`), elapsed time."""
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    counts = (TextColumn("{task.completed}/{task.total}"),) if counted else ()
    return (SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), *counts, TimeElapsedColumn())


@contextlib.contextmanager
def _progress(*columns) -> Iterator[Progress]:
    """A rich Progress that keeps moving while Dagster runs steps in this process. Dagster's
    compute-log capture points file descriptor 1 at a file during each step; rich, writing to
    sys.stdout, then sees no terminal and stops refreshing (the clock stood still for the whole
    run). On a terminal the bar writes to a copy of the terminal's descriptor taken before."""
    from rich.progress import Progress

    if not console.is_terminal:
        with Progress(*columns, console=console) as progress:
            yield progress
        return
    with os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace") as terminal:
        live = Console(file=terminal, force_terminal=True, width=console.width, color_system=console.color_system, soft_wrap=True)
        with Progress(*columns, console=live) as progress:
            yield progress


@app.command()
def validate(profile: str = PROFILE, override: list[str] | None = OVERRIDE) -> None:
    """Check a profile + overrides against every config, without running anything."""
    from .core.config import ConfigError, resolve_profile

    root = _root()
    try:
        params = resolve_profile(root, profile, override or [])
    except ConfigError as exc:
        _fail(str(exc))
    # user text, escaped: Rich would read `[x]` in a name or an override as markup
    what = profile + (f" + overrides {override}" if override else "")
    console.print(
        f"[green]ok[/] {escape(what)}: dataset {escape(params.dataset_id)}, view {escape(params.view)}, params hash {params.params_hash}"
    )
    described = [(f"dataset {params.dataset_id}", params.dataset.description)]
    described += [(f"corpus {cid}", corpus.description) for cid, corpus in params.corpora.items()]
    for name, text in described:
        if text:
            console.print(f"  {escape(name)}: {escape(text.strip())}")


@app.command()
def prepare(profile: str = PROFILE, override: list[str] | None = OVERRIDE) -> None:
    """Parse, label, balance, split and write model formats for the profile's dataset x view."""
    _run_stage(_root(), "prepare", profile, override or [])


@app.command()
def train(profile: str = PROFILE, override: list[str] | None = OVERRIDE) -> None:
    """Train the profile's models (models.yml) on its prepared dataset x view."""
    _run_stage(_root(), "train", profile, override or [])


@app.command()
def evaluate(
    profile: str = PROFILE,
    override: list[str] | None = OVERRIDE,
    eval_dataset: str | None = typer.Option(
        None, "--eval-dataset", help="also score the models on this dataset's job set (= -o eval_dataset_id=...; spec §2.7.3)"
    ),
) -> None:
    """Evaluate the profile's trained models on the job set, then refresh the leaderboard."""
    _run_stage(_root(), "evaluate", profile, [*(override or []), *([f"eval_dataset_id={eval_dataset}"] if eval_dataset else [])])


def _run_stage(root: Path, stage: str, profile: str, overrides: list[str]) -> None:
    from .core import collector, side_worker
    from .core import progress as step_progress
    from .core.config import ConfigError, resolve_profile

    try:
        params = resolve_profile(root, profile, overrides)
    except ConfigError as exc:
        _fail(str(exc))
    if stage != "prepare":  # MLflow's import and store on the other core while Dagster is imported (core/side_worker.py)
        side_worker.start(root)
    with collector.long_lived():  # Dagster's import and the instance, kept to the command's end
        from .defs import runner

        instance = _instance(root)
    n_models = len(params.models) if stage != "prepare" else 0
    steps = (3 + len(params.dataset.corpus_ids) if stage in ("prepare", "pipeline") else 0) + (2 if n_models else 0)
    started = time.perf_counter()
    with _progress(*_columns()) as progress:
        task = progress.add_task(f"{stage} {profile}", total=max(steps, 1))

        def on_step(name: str) -> None:  # "versions", "corpus mpt", "22 assets of mpt/left_right"
            if progress.tasks[task].description != f"{stage} {profile}":
                progress.advance(task)
            progress.update(task, description=f"{stage} {profile}: {escape(name)}")

        current = [f"{stage} {profile}"]

        def on_asset(i: int, n: int, what: str) -> None:  # the bar then counts the run's assets: "3/22 train spacy_bow"
            current[0] = f"{stage} {profile}: {i}/{n} {escape(what)}"
            progress.update(task, total=n, completed=i - 1, description=current[0])

        def on_note(text: str) -> None:  # inside a model's step: "epoch 2/4, dev score 0.61" (core/progress.py)
            progress.update(task, description=f"{current[0]} · {escape(text)}")

        try:
            with step_progress.listening(on_note):
                report = runner.run_stage(root, stage, profile, overrides, instance, on_step=on_step, on_asset=on_asset)
        except (runner.StageFailed, ConfigError) as exc:
            _fail(str(exc), 1)
        finally:
            side_worker.stop()
        progress.update(task, completed=progress.tasks[task].total, description=f"{stage} {profile}: done")
    _print_report(root, report, time.perf_counter() - started, stage)


def _print_report(root: Path, report, seconds: float, stage: str = "prepare") -> None:
    import json

    from .core.paths import ProjectPaths

    params = report.params
    paths = ProjectPaths(root)
    meta = json.loads((paths.view_dir(params.dataset_id, params.view) / "meta_view.json").read_text(encoding="utf-8"))
    table = Table(title=f"{params.dataset_id} / {params.view}  (params {params.params_hash}, seed {params.seed})")
    table.add_column("label")
    table.add_column("train", justify="right")
    table.add_column("job", justify="right")
    for label, n in meta["split"]["train_label_counts"].items():
        table.add_row(label, str(n), str(meta["split"]["job_label_counts"].get(label, 0)))
    console.print(table)
    # label_validity warns (its WARNING lines are printed with the scores): not a failed gate
    warned = [name for name, ok in report.checks.items() if not ok and name.endswith(".label_validity")]
    failed = [name for name, ok in report.checks.items() if not ok and name not in warned]
    if report.checks:
        console.print(
            f"checks: {sum(report.checks.values())}/{len(report.checks)} passed"
            + (f" [red]failed: {escape(str(failed))}[/]" if failed else "")
            + (f" [yellow]label validity warns on {len(warned)} evaluations[/]" if warned else "")
        )
    if report.observed:
        console.print(f"new source versions recorded: {escape(', '.join(report.observed))}")
    if report.skipped:
        console.print(f"fresh, not re-run: {escape(', '.join(report.skipped))}")
    for cid in params.dataset.corpus_ids:
        _print_files(paths, cid)
    console.print(f"excluded: {escape(str(meta['excluded_by_reason']))}")
    console.print(
        f"outputs: {paths.rel(paths.view_dir(params.dataset_id, params.view))}/, {paths.rel(paths.processed_dir(params.dataset_id, params.view))}/"
    )
    if stage != "prepare":
        _print_scores(root, report.params)
    console.print(f"{len(report.runs)} Dagster runs in {seconds:.1f}s; see them with `pepm dev`")


def _print_files(paths, corpus_id: str) -> None:
    """Every input file is parsed or failed: name the failed ones (allowed by max_failed_files)."""
    import json

    from .core import corpus

    try:
        stats = json.loads((paths.corpus_dir(corpus_id) / "parse_stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    failed = stats.get("failed_files", [])
    console.print(
        f"{corpus_id}: {stats['n_files_parsed']} files parsed, {len(failed)} failed" + f", {stats['n_rejects']} documents rejected"
    )
    for f in failed:
        console.print(f"  [yellow]failed[/] {escape(corpus.where(f))}: {escape(f['reason'])}: {escape(str(f['detail']))}")


def _print_scores(root: Path, params) -> None:
    from .core.paths import ProjectPaths
    from .core.training import latest_entries, read_index

    paths = ProjectPaths(root)
    scored_on = [params.dataset_id, *([params.eval_dataset_id] if params.eval_dataset_id else [])]
    for eval_dataset_id in scored_on:
        entries = [
            e
            for e in latest_entries(read_index(paths))
            if (e["dataset_id"], e["view"], e["eval_dataset_id"]) == (params.dataset_id, params.view, eval_dataset_id)
            and e["model_id"] in params.models
        ]
        trained = "" if eval_dataset_id == params.dataset_id else f", models trained on {params.dataset_id}"
        _print_score_table(entries, f"job set of {eval_dataset_id} / {params.view}{trained}")
        if eval_dataset_id == params.dataset_id:
            _print_validity(entries)
    console.print(f"leaderboard: {paths.rel(paths.reports / 'leaderboard.md')} (+ .tsv, .png); MLflow: `pepm mlflow`")


def _print_validity(entries: list[dict]) -> None:
    """The label-validity WARNINGs of the evaluations (core/diagnostics.py), each once, with the models it concerns."""
    models: dict[str, list[str]] = {}
    for e in entries:
        for message in e.get("label_validity_warnings", []):
            models.setdefault(message, []).append(e["model_id"])
    for message, ids in models.items():
        which = "" if len(ids) == len(entries) else f" [{', '.join(ids)}]"
        console.print(f"[bold yellow]WARNING[/] (label validity){escape(which)}: {escape(message)}")
    if models:
        console.print("label validity: diagnostics.json in each report folder; scores with names masked: `pepm report label-validity`")


def _print_score_table(entries: list[dict], title: str) -> None:
    table = Table(title=escape(title))
    for col in ("model", "family", "accuracy", "macro-F1 [95% CI]", "other"):
        table.add_column(col)
    for e in sorted(entries, key=lambda e: -e["metrics"].get("macro_f1", -1)):
        m = e["metrics"]
        if "macro_f1" in m:
            n_splits = int(m.get("n_splits", 1))
            spread = f" ± {m['macro_f1_sd']:.4f} ({n_splits} splits)" if n_splits > 1 and m.get("macro_f1_sd") is not None else ""
            table.add_row(
                e["model_id"],
                e["family"],
                f"{m['accuracy']:.4f}",
                f"{m['macro_f1']:.4f}{spread} [{m['macro_f1_ci95'][0]:.4f}, {m['macro_f1_ci95'][1]:.4f}]",
                "",
            )
        else:
            table.add_row(e["model_id"], e["family"], "", "", " ".join(f"{k}={v:.3f}" for k, v in m.items() if isinstance(v, float)))
    console.print(table)


@app.command()
def run(
    stage: str = typer.Option("pipeline", "--stage", "-s", help="prepare | train | evaluate | pipeline (all three)"),
    profile: str = PROFILE,
    override: list[str] | None = OVERRIDE,
    make_var: list[str] | None = typer.Option(
        None,
        "--make-var",
        help="the spec's Make variables, NAME=value (SEED, TRAIN_PROP, HARDWARE_PRESET, FAMILY, MODELS, ...; repeatable); --override wins",
    ),
) -> None:
    """The older interface (`make run STAGE=... PROFILE=... SEED=...`): run one stage of a profile."""
    from .core.config import ConfigError
    from .core.make_vars import STAGES, to_overrides

    if stage not in STAGES:
        _fail(f"unknown stage {stage!r} (stages: {', '.join(STAGES)})")
    try:
        from_make = to_overrides(make_var or [])
    except ConfigError as exc:
        _fail(str(exc))
    _run_stage(_root(), stage, profile, [*from_make, *(override or [])])


@app.command()
def drift(
    dataset: str | None = typer.Option(None, "--dataset", help="with --view: the drift of this split only"),
    view: str | None = typer.Option(None, "--view", help="with --dataset"),
    corpus: str | None = typer.Option(None, "--corpus", help="this corpus only (vs its previous version, and vs the other corpora)"),
) -> None:
    """Drift reports (Evidently) through Dagster: every parsed corpus and prepared split, or the one named."""
    from .core.drift import monitor
    from .core.paths import ProjectPaths
    from .defs import runner

    root = _root()
    paths = ProjectPaths(root)
    corpora, views = monitor.on_disk(paths)
    if (dataset is None) != (view is None):
        _fail("--dataset and --view go together")
    if dataset or corpus:
        corpora = [corpus] if corpus else []
        views = [f"{dataset}|{view}"] if dataset else []
        missing = [c for c in corpora if not (paths.corpus_dir(c) / "parse_stats.json").is_file()]
        missing += [v for v in views if not (paths.view_dir(*v.split("|")) / "meta_view.json").is_file()]
        if missing:
            _fail(f"nothing to compare for {', '.join(missing)}: parse / prepare it first (pepm prepare -p <profile>)")
    if not corpora and not views:
        _fail("nothing parsed or prepared yet: run `pepm prepare -p <profile>` first")
    instance = _instance(root)
    with _progress(*_columns(counted=True)) as progress:
        task = progress.add_task("drift", total=len(corpora) + len(views))

        def on_step(name: str) -> None:
            if progress.tasks[task].description != "drift":
                progress.advance(task)
            progress.update(task, description=name)

        try:
            checks = runner.drift(root, instance, corpora, views, on_step=on_step)
        except runner.StageFailed as exc:
            _fail(str(exc), 1)
        progress.update(task, completed=len(corpora) + len(views), description="drift: done")
    failed = [name for name, ok in checks.items() if not ok]
    summary = f"checks: {len(checks) - len(failed)}/{len(checks)} passed"
    console.print(summary + (f" [yellow]drift: {escape(', '.join(failed))}[/]" if failed else ""))
    where = monitor.drift_root(paths)
    console.print(f"reports: {paths.rel(where)}/ (report.html in each folder); alerts: {paths.rel(where / 'alerts.csv')}")


@app.command()
def promote(
    model: str = typer.Argument(..., help="model id of models.yml"),
    dataset: str = typer.Option(..., "--dataset", help="dataset_id it was trained on"),
    view: str = typer.Option(..., "--view", help="view it was trained on"),
    to: str = typer.Option(..., "--to", help="staging | production (an MLflow registered-model alias)"),
    force: bool = typer.Option(False, "--force", help="promote even if a gate fails (needs --reason; recorded as forced)"),
    reason: str = typer.Option("", "--reason", help="why a forced promotion is right"),
) -> None:
    """Point a registered model's alias at the version on disk, when its gates pass (reports/promotions.tsv records every decision)."""
    from .core import promotion
    from .core.config import ConfigError, did_you_mean, load_common

    root = _root()
    try:
        common = load_common(root)
    except ConfigError as exc:
        _fail(str(exc))
    if model not in common.models:
        _fail(f"unknown model {model!r}{did_you_mean(model, common.models)}")
    try:
        decision = promotion.promote(root, dataset, view, common.models[model].family, model, to, reason if force else None)
    except promotion.PromotionError as exc:
        _fail(str(exc))
    table = Table(title=escape(f"{decision.registered_model} -> {to}"))
    for col in ("gate", "passed", "detail"):
        table.add_column(col)
    for gate in decision.gates:
        table.add_row(escape(gate.name), "[green]yes[/]" if gate.passed else "[red]no[/]", escape(gate.detail))
    console.print(table)
    if not decision.accepted:
        _fail(f"refused: {', '.join(decision.failed)} failed (recorded in reports/promotions.tsv)", 1)
    forced = f" (forced: {decision.reason})" if decision.forced and decision.failed else ""
    console.print(f"[green]promoted[/] {escape(decision.registered_model)} v{decision.version} -> {escape(to)}{escape(forced)}")


@app.command("cross-corpus")
def cross_corpus() -> None:
    """Materialize the cross-corpus matrix of configs/common/cross_corpus.yml (heat map under reports/cross_corpus/)."""
    from .core.config import load_common
    from .defs import runner

    root = _root()
    common = load_common(root)
    if common.cross_corpus is None:
        _fail("configs/common/cross_corpus.yml is missing")
    try:
        runner.cross_corpus(root, _instance(root))
    except runner.StageFailed as exc:
        _fail(str(exc), 1)
    cfg = common.cross_corpus
    import json

    out = root / "reports" / "cross_corpus" / cfg.view / cfg.model_id
    data = json.loads((out / "matrix.json").read_text(encoding="utf-8"))
    table = Table(title=f"{cfg.model_id}, view {cfg.view}: macro-F1 (rows: trained on, columns: evaluated on)")
    table.add_column("")
    for d in cfg.datasets:
        table.add_column(d, justify="right")
    for d, row in zip(cfg.datasets, data["macro_f1"]):
        table.add_row(d, *[f"{v:.3f}" for v in row])
    console.print(table)
    console.print(f"heat map: {out.relative_to(root)}/matrix.png")


@app.command()
def dashboard(
    output: Path | None = typer.Option(None, "--output", help="the HTML file to write (default reports/dashboard.html)"),
) -> None:
    """One static HTML page of the project's results, from the files on disk: scores with their
    intervals, confusion matrices, the cross-corpus matrix, label and length distributions of the
    prepared splits, drift, label-validity warnings. Self-contained (images inlined, no script, no
    link): it opens offline and can be mailed. Parts not computed yet say which command computes them."""
    from .core import dashboard as dash

    root = _root()
    result = dash.write_dashboard(root, output if output is None or output.is_absolute() else Path.cwd() / output)
    shown = [s.title for s in result.sections if s.computed]
    console.print(
        f"[bold]dashboard:[/] {escape(str(result.path))} ({result.n_bytes / 1024:.0f} KiB, {result.n_images} images) "
        f"in {result.seconds:.1f}s: {escape(', '.join(shown) or 'nothing computed yet')}"
    )
    for title, missing in result.missing.items():
        console.print(f"  [yellow]{escape(title)}[/]: {escape(missing)}")


@report_app.command("polarization")
def report_polarization(
    profile: str = PROFILE,
    override: list[str] | None = OVERRIDE,
    by: str = typer.Option("year", "--by", help="period: year | legislature (configs/common/legislatures.yml)"),
    model: str | None = typer.Option(None, "--model", help="model id of models.yml (default: the profile's first scikit-learn model)"),
    repeats: int = typer.Option(10, "--repeats", help="speaker-grouped splits per period (seeds seed, seed+1, ...)"),
    min_docs_per_class: int = typer.Option(5, "--min-docs-per-class", help="a period with a class below this is skipped"),
    min_speakers_per_class: int = typer.Option(3, "--min-speakers-per-class", help="a period with a class below this is skipped"),
) -> None:
    """Polarization over time (Peterson & Spirling 2018): the model's held-out accuracy per period on
    speaker-grouped splits, with 95% intervals and the chance level -> reports/<dataset>/<view>/polarization_over_time.{json,md,png}.
    Reads the prepared split of the profile (`pepm prepare -p ...` first)."""
    from .core import polarization
    from .core.config import ConfigError, resolve_profile

    root = _root()
    try:
        params = resolve_profile(root, profile, override or [])
        settings = polarization.Settings(
            by=by, model_id=model, repeats=repeats, min_docs_per_class=min_docs_per_class, min_speakers_per_class=min_speakers_per_class
        )
    except (ConfigError, polarization.PolarizationError) as exc:
        _fail(str(exc))
    try:
        result = polarization.write_report(params, root, settings)
    except polarization.PolarizationError as exc:
        _fail(str(exc), 1)
    table = Table(title=escape(f"polarization over time · {params.dataset_id} / {params.view} · {result['model_id']}"))
    for col in (by, "docs", "speakers", "accuracy [95% CI]", "sd", "chance", "macro-F1"):
        table.add_column(col, justify="left" if col == by else "right", no_wrap=col.startswith("accuracy"))
    for row in result["periods"]:
        label = polarization.period_label(row, by)
        if row["status"] != "ok":
            table.add_row(escape(label), str(row["n_docs"]), str(row["n_speakers"]), "[dim]skipped[/]", "", "", "")
            continue
        low, high = row["accuracy_ci95"]
        table.add_row(
            escape(label),
            str(row["n_docs"]),
            str(row["n_speakers"]),
            f"{row['accuracy']:.3f} [{low:.3f}, {high:.3f}]",
            f"{row['accuracy_sd']:.3f}",
            f"{row['chance']:.3f}",
            f"{row['macro_f1']:.3f}",
        )
    console.print(table)
    for row in result["periods"]:
        if row["status"] != "ok":
            console.print(f"skipped {escape(polarization.period_label(row, by))}: {escape(row['reason'])}")
    if result["excluded"]:
        console.print(f"left out: {escape(str(result['excluded']))}")
    files = ", ".join(result["files"].values())
    console.print(f"{result['n_periods_measured']}/{len(result['periods'])} periods measured in {result['seconds']:.1f}s: {escape(files)}")


@report_app.command("figures")
def report_figures(
    folder: Path = typer.Argument(..., help="a folder of reports, e.g. superior/<exp_id> (a sweep's runs) or reports/"),
) -> None:
    """The confusion-matrix and reliability PNGs missing beside each metrics.json under FOLDER (a sweep
    draws none unless its run.figures is true); the ones already there are kept."""
    from .core.training import draw_confusions

    root = _root()
    target = folder if folder.is_absolute() else root / folder
    if not target.is_dir():
        _fail(f"{folder}: no such folder")
    drawn = draw_confusions(target)
    console.print(f"{len(drawn)} figures drawn under {escape(str(folder))}")


@report_app.command("label-validity")
def report_label_validity(
    profile: str = PROFILE,
    override: list[str] | None = OVERRIDE,
    model: str | None = typer.Option(None, "--model", help="model id of models.yml (default: the profile's first scikit-learn model)"),
) -> None:
    """Label validity: the view's diagnostics (the label's association with other metadata, names of
    parties and groups in the texts, procedural top terms) and the model's scores with names kept and
    masked (filters.mask_names), fitted in process on the prepared split ->
    reports/<dataset>/<view>/label_validity.{json,md,png}. Reads the prepared split (`pepm prepare -p ...` first)."""
    from .core import diagnostics, label_validity
    from .core.config import ConfigError, resolve_profile

    root = _root()
    try:
        params = resolve_profile(root, profile, override or [])
        settings = label_validity.Settings(model_id=model)
    except (ConfigError, label_validity.LabelValidityError) as exc:
        _fail(str(exc))
    try:
        result = label_validity.write_report(params, root, settings)
    except label_validity.LabelValidityError as exc:
        _fail(str(exc), 1)
    for line in diagnostics.warning_lines(result["diagnostics"]):
        console.print(f"[bold yellow]WARNING[/]{escape(line.removeprefix('WARNING'))}")
    table = Table(title=escape(f"label validity · {params.dataset_id} / {params.view} · {result['model_id']}: accuracy [95% CI]"))
    for col in ("job texts", "docs", label_validity.KEPT, label_validity.MASKED):
        table.add_column(col, justify="left" if col == "job texts" else "right")
    for subset in ("all", "job texts naming a group", "other job texts"):
        kept, masked = (result["scores"][v][subset] for v in (label_validity.KEPT, label_validity.MASKED))
        table.add_row(subset, str(kept.get("n", 0)), label_validity._cell(kept, "accuracy"), label_validity._cell(masked, "accuracy"))
    console.print(table)
    delta = result["delta_macro_f1_kept_minus_masked"]
    console.print(
        f"macro-F1 names kept minus masked: {delta['delta_macro_f1']:+.4f} [{delta['ci95'][0]:+.4f}, {delta['ci95'][1]:+.4f}] "
        f"in {result['seconds']:.1f}s: {escape(', '.join(result['files'].values()))}"
    )


@app.command()
def explore(port: int = typer.Option(8501, help="web app port (bound to 127.0.0.1 only)")) -> None:
    """The corpus explorer: a local web app (Streamlit) on the parsed documents and the prepared
    views. Filter by corpus, speaker, group, label, split, date and length; read the texts; see a
    model's prediction and score on each document it was evaluated on. Serves 127.0.0.1 only, sends
    no usage statistics; stop it with Ctrl-C."""
    from .core import explore as ex

    root = _root()
    try:  # nothing to show: say so here, not in an empty page
        inv = ex.inventory(root)
    except ex.ExploreError as exc:
        _fail(str(exc))
    script = Path(__file__).resolve().parent / "ui" / "explore_app.py"
    # headless: opens no browser; gatherUsageStats false: no telemetry; toolbarMode minimal: no Deploy button
    server = ["--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true"]
    options = [*server, "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), *options]
    console.print(
        f"[bold]explorer:[/] http://127.0.0.1:{port} ({len(inv.corpora)} parsed corpora, {len(inv.views)} prepared views, "
        f"{len(inv.evaluations)} evaluations with predictions); Ctrl-C stops it"
    )
    sys.stdout.flush()
    os.chdir(root)
    # the server replaces this process (not a child of it): a signal sent to `pepm explore` stops the server
    os.execve(sys.executable, cmd, {**os.environ, settings.ROOT.name: str(root)})


@app.command("mlflow")
def mlflow_ui(
    port: int = typer.Option(5000, help="web UI port"),
    workers: int = typer.Option(1, "--workers", help="server processes (MLflow: 4, each importing MLflow, slow to start on 2 cores)"),
) -> None:
    """Open the MLflow UI on the project's tracking backend (mlruns/mlflow.db)."""
    from .core.tracking import default_uri

    root = _root()
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", default_uri(root), "--port", str(port), "--workers", str(workers)]
    os.chdir(root)
    os.execv(sys.executable, cmd)  # becomes the server: a signal to this pid reaches it (a child would outlive us)


@app.command()
def status(
    profile: list[str] | None = typer.Option(None, "--profile", "-p", help="profiles to show (default: all)"),
    override: list[str] | None = OVERRIDE,
) -> None:
    """What is fresh, stale or missing for each profile, from raw bytes to evaluations: each output's
    recorded version against the one its current inputs, parameters and code call for."""
    from .core import lineage
    from .core.config import ConfigError, list_profiles, load_common, resolve_profile

    root = _root()
    crashed = _crashed_runs(root)  # first use of the store, and recovery of runs whose process died
    expected = lineage.Expected(root)
    table = Table(title="status (versions on disk vs what the current files and configs call for)")
    for col in ("asset", "partition", "profiles", "status", "why"):
        table.add_column(col, overflow="fold")
    rows: dict[tuple[str, str], tuple[lineage.Status, list[str]]] = {}  # a partition shared by profiles: one row, every profile named
    invalid: list[tuple[str, str]] = []
    common = None  # read and checked once for all profiles; when it is broken, each profile's resolve says so, as before
    with contextlib.suppress(ConfigError):
        common = load_common(root)
    for name in profile or list_profiles(root):
        try:
            params = resolve_profile(root, name, override or [], common=common)
        except ConfigError as exc:
            invalid.append((name, str(exc)))
            continue
        for st in expected.statuses(params, params.model_specs):
            rows.setdefault((st.asset, st.partition), (st, []))[1].append(name)
    counts = {"FRESH": 0, "STALE": 0, "MISSING": 0}
    for (asset, partition), (st, names) in rows.items():
        counts[st.state] += 1
        colour = {"FRESH": "green", "STALE": "yellow", "MISSING": "red"}[st.state]
        table.add_row(asset, partition, escape(", ".join(names)), f"[{colour}]{st.state}[/]", escape("; ".join(st.why)))
    for name, error in invalid:
        table.add_row("profile", "", escape(name), "[red]INVALID[/]", escape(error))
    console.print(table)
    console.print(" ".join(f"{k.lower()}: {v}" for k, v in counts.items()))
    if crashed:
        runs = Table(title="runs whose process died (marked failed; their outputs are missing or stale above)")
        for col in ("run", "job", "partition", "started"):
            runs.add_column(col)
        for run in crashed:
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.start_time)) if run.start_time else ""
            runs.add_row(run.run_id[:8], run.job_name, escape(run.partition), started)
        console.print(runs)


@app.command()
def observe() -> None:
    """Record the raw corpora's content hashes and the partitions' params hashes in Dagster (what the
    hourly schedules do), so the Dagster UI shows what became stale."""
    from .definitions import build_definitions
    from .defs import runner
    from .defs.jobs import OBSERVE_PARAMS, OBSERVE_RAW

    root = _root()
    instance = _instance(root)
    defs = build_definitions(root)
    for job in (OBSERVE_RAW, OBSERVE_PARAMS):
        runner._execute(defs, job, instance)
    console.print("observed raw_tei and view_params")


@data_app.command("import")
def data_import(no_dvc: bool = typer.Option(False, "--no-dvc", help="only unpack, do not dvc add/push")) -> None:
    """Unpack the shipped corpora into data/raw/<corpus>/, then `dvc add` and `dvc push` them."""
    from .core import dvc
    from .core.config import load_common

    root = _root()
    common = load_common(root)
    archive = root / SHIPPED
    if not archive.is_file():
        _fail(f"{SHIPPED} not found")
    written = dvc.unpack_shipped(
        archive, root / "data" / "raw", [cid for cid, c in common.corpora.items() if c.path.startswith("data/raw/")]
    )
    console.print(f"unpacked: {[str(p.relative_to(root)) for p in written] or 'nothing (already there)'}")
    if not no_dvc:
        try:
            dvc.track_and_push(root, [c.path for c in common.corpora.values()])
        except dvc.DvcError as exc:
            _fail(str(exc), 1)
        console.print("tracked with DVC and pushed to the default remote (.dvc-storage/)")


@app.command()
def dev(port: int = typer.Option(3000, help="web UI port")) -> None:
    """Start the Dagster UI (`dagster dev`) on the project's instance."""
    root = _root()
    home = _instance(root).root_directory  # the store is created (under its lock) before the UI's processes open it
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(root / "workspace.yaml"), "-p", str(port)]
    # run from DAGSTER_HOME, where the instance's dagster.yaml is (PEPM_ROOT tells pepm where the project is);
    # becomes `dagster dev`: Ctrl-C or a signal to this pid reaches it (a child would outlive us)
    os.chdir(home)
    os.execve(sys.executable, cmd, {**os.environ, settings.ROOT.name: str(root)})


@app.command()
def sweep(
    exp_config: Path = typer.Option(..., "--exp-config", "-e", help="configs/superior/<exp>.yml"),
    parallel: int | None = typer.Option(None, "--parallel", help="runs at once (overrides scheduler.parallel)"),
    max_ram_gb: float | None = typer.Option(None, "--max-ram-gb", help="soft RAM budget (overrides scheduler.max_ram_gb)"),
    max_runs: int | None = typer.Option(None, "--max-runs", help="only the first N planned runs (debugging)"),
    resume: bool = typer.Option(False, "--resume", help="keep the runs already successful, follow those still queued or running"),
    dry_run: bool = typer.Option(False, "--dry-run", help="write plan.tsv only"),
) -> None:
    """An experiment sweep (spec's "superior"): every planned run a Dagster run on the instance's
    queue, isolated under superior/<exp_id>/runs/<run_id>/; runs.tsv, plots and report.md."""
    from .core.config import ConfigError
    from .core.sweep import session
    from .core.sweep.ledger import Ledger

    root = _root()
    try:
        planned = session.open_sweep(root, exp_config, parallel, max_ram_gb, max_runs)  # a broken experiment stops here
    except ConfigError as exc:
        _fail(str(exc))
    rel = planned.exp_root.relative_to(root)
    if dry_run:
        console.print(f"plan: {len(planned.plan)} runs -> {escape(str(rel))}/plan.tsv (nothing run)")
        return
    if resume and len(session.kept(planned.plan, Ledger.load(planned.exp_root / "runs.tsv"))) == len(planned.plan):
        hooks = session.finish(planned, root)  # a finished sweep: nothing to queue, no instance to open
        console.print(f"kept from before (--resume): {len(planned.plan)} successful runs; nothing to run: {escape(str(rel))}/runs.tsv")
        console.print(f"[bold]report:[/] {escape(str(hooks.get('report')))}" + (" (unchanged)" if hooks.get("skipped") else ""))
        return
    from .defs import runner, sweeper

    _instance(root)  # recovery of killed runs, once, before the sweep opens the instance
    from rich.progress import Progress

    with Progress(*_columns(counted=True), console=console) as progress:
        task = progress.add_task("sweep: planning", total=None)

        def on_change(ledger) -> None:
            from .core.sweep import spec

            done = ledger.count(*spec.FINAL)
            counts = {name: ledger.count(name) for name in (spec.RUNNING, spec.QUEUED, spec.FAILED, spec.OOM)}
            skipped = ledger.count(*spec.NOT_RUN)
            text = f"sweep: {ledger.count(spec.SUCCESS)} done · {counts[spec.RUNNING]} running · {counts[spec.QUEUED]} queued"
            text += f" · {counts[spec.FAILED]} failed" + (f" · {counts[spec.OOM]} oom" if counts[spec.OOM] else "")
            text += f" · {skipped} skipped" if skipped else ""
            progress.update(task, total=len(ledger.rows), completed=done, description=text)

        try:
            report = sweeper.run_sweep(root, exp_config, resume=resume, on_change=on_change, sweep=planned)
        except (ConfigError, runner.StageFailed) as exc:
            _fail(str(exc), 1)
        if report.ledger is not None:
            on_change(report.ledger)
    for line in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(line)}")
    console.print(f"queue: {escape(report.daemon or 'nothing to run')}")
    if report.kept:
        console.print(f"kept from before (--resume): {len(report.kept)} successful runs")
    rel = report.exp_root.relative_to(root)
    console.print(
        f"{len(report.plan)} planned runs, {len(report.submitted)} submitted, in {report.seconds:.1f}s: {escape(str(rel))}/runs.tsv"
    )
    if report.hooks.get("report"):
        console.print(f"[bold]report:[/] {escape(str(report.hooks['report']))}")
    failed = [r for r in report.ledger.rows.values() if r["status"] not in ("success",)] if report.ledger else []
    for row in failed:
        console.print(f"  {row['run_id']} {row['status']}: {escape(row['note'])}")
    if any(r["status"] in ("failed", "canceled") for r in failed):
        raise typer.Exit(1)


@app.command()
def bench(
    what: str = typer.Argument(
        "extract",
        help="extract (TEI parsing vs plain iterparse) | pipeline (whole pipeline vs a plain scikit-learn script) "
        "| storage (Dagster storages on pepm commands) | drift (a drift report vs Evidently by hand) "
        "| sweep (parallel 1 vs 2, one sweep run vs the plain script, --resume) "
        "| scale (pepm run vs the plain script at 40x: wall, peak tree memory, per step; the spaCy format's seconds) "
        "| counting (TF-IDF fit + transform: pepm's fast counting vs scikit-learn's)",
    ),
    corpus: str | None = typer.Option(None, help="corpus to measure (extract, pipeline, storage; default mpt)"),
    replicas: int | None = typer.Option(None, help="largest replication factor (default: extract 20, pipeline 10, scale 40, counting 5)"),
) -> None:
    """Benchmarks with their plain baselines measured in the same run (benchmarks/)."""
    root = _root()
    script = root / "benchmarks" / f"bench_{what}.py"
    if not script.is_file():
        _fail(f"no benchmark {what!r} ({script} not found)")
    args = (["--corpus", corpus] if corpus else []) + (["--replicas", str(replicas)] if replicas else [])
    raise typer.Exit(subprocess.call([sys.executable, str(script), *args], cwd=root))


DEMO = [("pipeline", "ideo_quick"), ("prepare", "ideo_multi"), ("pipeline", "an_debats_lr"), ("pipeline", "an_amendements_lr")]


@app.command()
def demo() -> None:
    """README command 1: import the shipped corpora; MPT through prepare -> train -> evaluate (five
    families, `small` preset); the multi-corpus profile prepared; the cross-corpus matrix; the
    drift reports of every corpus and split; the dashboard (reports/dashboard.html)."""
    root = _root()
    data_import(no_dvc=False)
    for stage, name in DEMO:
        _run_stage(root, stage, name, [])
    cross_corpus()
    drift(dataset=None, view=None, corpus=None)
    console.print(f"[bold]leaderboard:[/] {root / 'reports' / 'leaderboard.md'} (+ .tsv, .png)")
    dashboard(output=None)


if __name__ == "__main__":
    app()
