"""The experiment config (spec §5.1-5.2, §6.2): configs/superior/<exp>.yml as strict, frozen objects.

Pydantic checks the shape (an unknown key is an error, with the closest field name); `load_experiment`
then checks what pydantic cannot see from one field: names against the project (Make variables,
families, the base profile), unique axis names and labels, zip lengths, the hard RAM limit, and that
no run is given a seed of its own (seeds come from `run.seed_strategy` / `run.base_seed`, so that
repeats are what the plan says). Every error is a ConfigError naming the file and the dotted key,
raised before a plan is written.

`oom_policy` and `early_stop` may sit at top level or, as in §6.2's SchedulerConfig, under
`scheduler`; given in both places they are an error (two values, no silent winner). Either way the
top-level fields `ExpConfig.oom_policy` / `ExpConfig.early_stop` hold the one in force.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ..config.loading import _rel, list_profiles, load_yaml, profile_path, validate
from ..config.schema import MAX_SEED, ConfigError, Strict, did_you_mean
from ..make_vars import MAKE_VARS

SLUG = r"^[A-Za-z0-9_.-]+$"  # exp_id, axis names, labels: folder names and `axis=label|…` combos
DEFAULT_WEIGHTS = {"light": 1, "medium": 2, "heavy": 4}
DEFAULT_REPORT = "superior/${exp_id}/report.md"


def _make_value(value: Any) -> Any:
    """A Make variable's value is text on a command line: numbers and booleans are written as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"a Make variable's value is a string, number or boolean (got {value!r})")
    return value


MakeValue = Annotated[str, BeforeValidator(_make_value)]
Slug = Annotated[str, Field(pattern=SLUG)]


class Base(Strict):
    profile: str
    stage: Literal["pipeline", "prepare", "train", "evaluate"] = "pipeline"
    make_vars: dict[str, MakeValue] = {}
    overrides: dict[str, Any] = {}


class AxisValue(Strict):
    label: Slug
    make_vars: dict[str, MakeValue] = {}
    overrides: dict[str, Any] = {}


class Axis(Strict):
    name: Slug
    type: Literal["choice"] = "choice"
    values: list[AxisValue] = Field(min_length=1)


class Grid(Strict):
    mode: Literal["cartesian", "zip"] = "cartesian"


class RunConfig(Strict):
    """`figures`: each run's confusion-matrix and reliability PNGs, drawn by `pepm sweep` as runs end
    (~0.3-1 CPU-s per run, taken from the runs when every core is busy). Off by default: the sweep's
    own figures are its curves; every run's metrics.json holds the numbers, and
    `pepm report figures superior/<exp_id>` draws the PNGs of finished runs later."""

    repeats: int = Field(1, ge=1)
    seed_strategy: Literal["fixed", "per_run", "per_repeat"] = "fixed"
    base_seed: int = Field(42, ge=0, le=MAX_SEED)
    figures: bool = False


class OomPolicy(Strict):
    on_oom: Literal["skip", "backoff", "stop"] = "skip"
    backoff_factor: float = Field(0.5, gt=0, lt=1)


class EarlyStopConfig(Strict):
    """Thresholds judged like a model's own early_stop (config.schema.EarlyStop): flagged when every
    threshold set is missed. `prune`: the remaining repeats of a flagged combination are not run."""

    enabled: bool = False
    min_accuracy: float | None = Field(None, ge=0, le=1)
    min_macro_f1: float | None = Field(None, ge=0, le=1)
    apply_to_families: list[str] = []  # empty: every family
    prune: bool = True


class SchedulerConfig(Strict):
    parallel: int = Field(1, ge=1)
    max_ram_gb: float | None = Field(None, gt=0)
    resource_classes: dict[str, str] = {}  # family -> class, replacing models.yml's resource_class
    weights: dict[str, Annotated[int, Field(ge=1)]] = {}  # class -> weight (default DEFAULT_WEIGHTS)
    max_weight: int = Field(4, ge=1)
    approx_ram_per_class: dict[str, Annotated[float, Field(gt=0)]] = {}  # GB
    oom_policy: OomPolicy | None = None
    early_stop: EarlyStopConfig | None = None

    def class_weights(self) -> dict[str, int]:
        return {**DEFAULT_WEIGHTS, **self.weights}


class Safety(Strict):
    enable_hard_ram_limit: bool = False
    hard_limit_mb: int | None = Field(None, ge=1)


class CurvesHook(Strict):
    type: Literal["curves"]
    metrics: list[str] = Field(min_length=1)
    x_axis: str
    group_by: list[str] = []


class ReportHook(Strict):
    type: Literal["report_markdown"]
    path: str = DEFAULT_REPORT

    @field_validator("path")
    @classmethod
    def _inside_project(cls, path: str) -> str:
        if PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts:
            raise ValueError(f"a path relative to the project root, without '..' (got {path!r})")
        return path


Hook = Annotated[CurvesHook | ReportHook, Field(discriminator="type")]


class AnalysisHooks(Strict):
    """After the last run. Without this section a sweep still writes metrics_global.tsv and report.md."""

    after_experiment: list[Hook] = [ReportHook(type="report_markdown")]


class ExpConfig(Strict):
    exp_id: Slug
    description: str = ""
    base: Base
    axes: list[Axis] = []
    grid: Grid = Grid()
    run: RunConfig = RunConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    safety: Safety = Safety()
    oom_policy: OomPolicy = OomPolicy()
    early_stop: EarlyStopConfig = EarlyStopConfig()
    analysis_hooks: AnalysisHooks = AnalysisHooks()

    @model_validator(mode="before")
    @classmethod
    def _placements(cls, data: Any) -> Any:
        """scheduler.oom_policy / scheduler.early_stop (spec §6.2) put in force at top level, and
        `${exp_id}` substituted in hook paths (the report's default path included)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        scheduler = data.get("scheduler")
        for key in ("oom_policy", "early_stop"):
            if isinstance(scheduler, dict) and scheduler.get(key) is not None and data.get(key) is None:
                data[key] = scheduler[key]
        hooks = data.get("analysis_hooks")
        if isinstance(hooks, dict) and isinstance(hooks.get("after_experiment"), list) and isinstance(data.get("exp_id"), str):
            items = []
            for hook in hooks["after_experiment"]:
                if isinstance(hook, dict) and hook.get("type") == "report_markdown":
                    path = hook.get("path", DEFAULT_REPORT)
                    hook = {**hook, "path": path.replace("${exp_id}", data["exp_id"]) if isinstance(path, str) else path}
                items.append(hook)
            data["analysis_hooks"] = {**hooks, "after_experiment": items}
        return data


def load_experiment(path: Path, root: Path) -> ExpConfig:
    """Read and check an experiment file; a ConfigError names the file (relative to root) and the key."""
    source = _rel(Path(path), Path(root))
    raw = load_yaml(Path(path), Path(root))
    scheduler = raw.get("scheduler")
    for key in ("oom_policy", "early_stop"):
        if isinstance(scheduler, dict) and scheduler.get(key) is not None and raw.get(key) is not None:
            raise ConfigError(source, f"scheduler.{key}", f"also given at top level ({key}): give it in one place")
    cfg = validate(ExpConfig, raw, source)
    _check(cfg, Path(root), source)
    return cfg


def _check(cfg: ExpConfig, root: Path, source: str) -> None:
    """What one field cannot say: names known to the project, uniqueness, lengths, seeds."""
    from .. import families

    if not profile_path(root, cfg.base.profile).is_file():
        known = list_profiles(root)
        raise ConfigError(source, "base.profile", f"profile {cfg.base.profile!r} not found{did_you_mean(cfg.base.profile, known)}")
    blocks = [("base", cfg.base)] + [(f"axes.{i}.values.{j}", v) for i, axis in enumerate(cfg.axes) for j, v in enumerate(axis.values)]
    for prefix, block in blocks:
        _check_make_vars(block.make_vars, source, f"{prefix}.make_vars")
        for key in block.overrides:
            if key == "seed":
                raise ConfigError(source, f"{prefix}.overrides.seed", "the seed comes from run.seed_strategy / run.base_seed")
    seen: dict[str, int] = {}
    for i, axis in enumerate(cfg.axes):
        if seen.setdefault(axis.name, i) != i:
            raise ConfigError(source, f"axes.{i}.name", f"axis {axis.name!r} is also axes.{seen[axis.name]}: axis names are unique")
        labels: dict[str, int] = {}
        for j, value in enumerate(axis.values):
            if labels.setdefault(value.label, j) != j:
                raise ConfigError(source, f"axes.{i}.values.{j}.label", f"label {value.label!r} given twice in axis {axis.name!r}")
    sizes = {axis.name: len(axis.values) for axis in cfg.axes}
    if cfg.grid.mode == "zip" and len(set(sizes.values())) > 1:
        raise ConfigError(source, "grid.mode", f"zip pairs the i-th values of every axis: they need as many values each (got {sizes})")
    if cfg.safety.enable_hard_ram_limit and cfg.safety.hard_limit_mb is None:
        raise ConfigError(source, "safety.hard_limit_mb", "enable_hard_ram_limit is true: set hard_limit_mb (MB per run)")
    known = families.REGISTRY.names()
    named = [(f"scheduler.resource_classes.{f}", f) for f in cfg.scheduler.resource_classes]
    for prefix, stop in (("early_stop", cfg.early_stop), ("scheduler.early_stop", cfg.scheduler.early_stop)):
        named += [(f"{prefix}.apply_to_families.{i}", f) for i, f in enumerate(stop.apply_to_families if stop else [])]
    for key, family in named:
        if family not in known:
            raise ConfigError(source, key, f"unknown family {family!r}{did_you_mean(family, known)} (registered: {known})")
    weights = cfg.scheduler.class_weights()
    for family, klass in cfg.scheduler.resource_classes.items():
        if klass not in weights:
            raise ConfigError(
                source,
                f"scheduler.resource_classes.{family}",
                f"class {klass!r} has no weight{did_you_mean(klass, weights)}: add it to scheduler.weights (weights: {weights})",
            )


def _check_make_vars(make_vars: dict[str, str], source: str, prefix: str) -> None:
    for name in make_vars:
        if name == "SEED":
            raise ConfigError(source, f"{prefix}.SEED", "the seed comes from run.seed_strategy / run.base_seed")
        if name in ("STAGE", "PROFILE"):
            raise ConfigError(source, f"{prefix}.{name}", f"give it as base.{name.lower()}")
        if name not in MAKE_VARS:
            hint = did_you_mean(name, MAKE_VARS)
            raise ConfigError(source, f"{prefix}.{name}", f"unknown Make variable{hint} (known: {', '.join(MAKE_VARS)})")
