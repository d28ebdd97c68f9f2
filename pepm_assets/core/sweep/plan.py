"""The plan (spec §8.2): axis combinations x repeats, each run resolved before any work starts.

Every planned run is resolved with the project's own `resolve_profile`, exactly as `pepm run -o …`
would resolve it, so an axis value that does not fit the project (an unknown dataset, a model the
profile does not run) fails the whole plan, naming the experiment file and the axis value, instead
of failing run 7 after six have trained. plan.tsv then records what each run resolves to.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .. import atomic
from ..config import ConfigError, ResolvedParams, load_common, parse_override, resolve_profile
from ..config.schema import MAX_SEED
from ..make_vars import to_overrides
from .config import Axis, AxisValue, ExpConfig, SchedulerConfig
from .spec import PLAN_COLUMNS, RunSpec

log = logging.getLogger(__name__)

CLASS_TAG = "pepm/resource_class"
SPEC_KEYS = {"ideology.view": "view"}  # spec spellings an override key may use (§5.1), as profile keys
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")


def combinations(cfg: ExpConfig) -> list[list[tuple[Axis, AxisValue]]]:
    """cartesian: every combination, the first axis outermost; zip: the i-th value of every axis."""
    columns = [[(axis, value) for value in axis.values] for axis in cfg.axes]
    if cfg.grid.mode == "zip":
        return [list(row) for row in zip(*columns, strict=True)] if columns else [[]]
    return [list(row) for row in itertools.product(*columns)]


def build_plan(cfg: ExpConfig, root: Path, source: str) -> list[RunSpec]:
    """The runs of the experiment, in order (repeats innermost), each resolved; a ConfigError naming
    `source` and the axis value (or the combination, or `base`) when one does not resolve.

    Seeds: fixed = base_seed; per_run = base_seed + the run's 0-based position in the plan (spec
    §5.2); per_repeat = base_seed + repeat_index (every combination sees the same seeds: paired
    comparisons). make_vars and overrides: base, then each axis value in axis order (later wins);
    in the override list, overrides come after the mapped make_vars, so an override beats a Make
    variable that sets the same parameter."""
    common = load_common(Path(root))
    resolved: dict[tuple[str, ...], ResolvedParams] = {}
    plan: list[RunSpec] = []
    for combo_values in combinations(cfg):
        blocks = [cfg.base, *(value for _, value in combo_values)]
        make_vars = {k: v for block in blocks for k, v in block.make_vars.items()}
        overrides = {k: v for block in blocks for k, v in block.overrides.items()}
        axis_values = {axis.name: value.label for axis, value in combo_values}
        combo = "|".join(f"{name}={label}" for name, label in axis_values.items())
        settings = override_strings(make_vars, overrides, source)
        for repeat in range(cfg.run.repeats):
            run_id = f"run_{len(plan) + 1:04d}"
            seed = {"fixed": 0, "per_run": len(plan), "per_repeat": repeat}[cfg.run.seed_strategy] + cfg.run.base_seed
            if seed > MAX_SEED:
                raise ConfigError(source, "run.base_seed", f"{run_id} would get seed {seed}, above {MAX_SEED}")
            override_list = [*settings, f"seed={seed}"]
            key = tuple(settings)
            if key not in resolved:  # repeats differ by their seed only: resolved once per combination
                resolved[key] = _resolve(cfg, root, common, source, run_id, combo_values, override_list)
            params = resolved[key].model_copy(update={"seed": seed, "overrides": override_list})
            fams = sorted({params.model_specs[m].family for m in params.models})
            plan.append(
                RunSpec(
                    run_id=run_id,
                    exp_id=cfg.exp_id,
                    profile=cfg.base.profile,
                    stage=cfg.base.stage,
                    make_vars=make_vars,
                    overrides=overrides,
                    repeat_index=repeat,
                    axis_values=axis_values,
                    resource_class=resource_class(cfg.scheduler, params),
                    seed=seed,
                    combo=combo,
                    families=fams,
                    models=list(params.models),
                    override_list=override_list,
                    params_hash=run_hash(params),
                )
            )
    return plan


def run_hash(params: ResolvedParams) -> str:
    """Fingerprint of everything a run computes from. Not `params.params_hash`: that one fingerprints
    a prepared view and leaves out the models, their params and the hardware caps, so a sweep over
    `models.<id>.params.C` would give every run the same hash and a resume would not see a change."""
    data = params.model_dump(mode="json", exclude={"profile", "overrides"})
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _resolve(
    cfg: ExpConfig, root: Path, common: Any, source: str, run_id: str, combo_values: list, override_list: list[str]
) -> ResolvedParams:
    """Resolve a run; on failure, find what to blame: a single axis value that fails on the base
    alone, else `base` when the base fails by itself, else the combination."""

    def attempt(blocks: list) -> ConfigError | None:
        make_vars = {k: v for b in blocks for k, v in b.make_vars.items()}
        overrides = {k: v for b in blocks for k, v in b.overrides.items()}
        try:
            resolve_profile(Path(root), cfg.base.profile, [*override_strings(make_vars, overrides, source), override_list[-1]], common)
        except ConfigError as exc:
            return exc
        return None

    try:
        return resolve_profile(Path(root), cfg.base.profile, override_list, common)
    except ConfigError as exc:
        combo = "|".join(f"{axis.name}={value.label}" for axis, value in combo_values)
        base_error = attempt([cfg.base])
        blamed, error = (f"axes.{combo}" if combo else "base"), exc
        for axis, value in combo_values:
            value_error = attempt([cfg.base, value])
            if value_error is not None and (base_error is None or _what(value_error) != _what(base_error)):
                blamed, error = f"axes.{axis.name}={value.label}", value_error
                break
        else:
            if base_error is not None:
                blamed, error = "base", base_error
        raise ConfigError(source, blamed, f"{run_id} ({combo or 'no axes'}) does not resolve: {error}") from None


def _what(error: ConfigError) -> tuple[str | None, str]:
    return error.key, error.message


def resource_class(scheduler: SchedulerConfig, params: ResolvedParams) -> str:
    """The heaviest class among the run's families; a family's class is scheduler.resource_classes'
    or else the heaviest models.yml resource_class of its models in the run ("light" with none)."""
    weights = scheduler.class_weights()
    heaviest = "light"
    for model_id in params.models:
        spec = params.model_specs[model_id]
        klass = scheduler.resource_classes.get(spec.family, spec.resource_class)
        if weights.get(klass, 0) > weights.get(heaviest, 0):
            heaviest = klass
    return heaviest


def override_strings(make_vars: dict[str, str], overrides: dict[str, Any], source: str = "experiment") -> list[str]:
    """make_vars mapped onto profile keys, then overrides as `key=value` that config.parse_override
    reads back as the same value (checked: a value that would not round-trip is an error)."""
    out = to_overrides([f"{k}={v}" for k, v in make_vars.items()], source)
    for key, value in overrides.items():
        item = f"{SPEC_KEYS.get(key, key)}={inline_yaml(value)}"
        if parse_override(item)[1] != value:
            raise ConfigError(source, f"overrides.{key}", f"value {value!r} cannot be written as an override that reads back the same")
        out.append(item)
    return out


def inline_yaml(value: Any) -> str:
    """A value as compact inline YAML: `[a,b]`, `{k: v}`, plain words unquoted, other text in
    double quotes (JSON strings are YAML), so that e.g. "0.5" stays a string and 0.5 a number."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # YAML's spelling: 1e-07 would read back as text, 1.0e-07 as a number
        return yaml.safe_dump(value).split("\n")[0]
    if isinstance(value, list | tuple):
        return "[" + ",".join(inline_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{inline_yaml(k)}: {inline_yaml(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and parse_override(f"x={text}")[1] == text:
        return text
    return json.dumps(text, ensure_ascii=False)


# ---------------------------------------------------------------- plan.tsv
_JSON = {
    "axis_values_json": "axis_values",
    "make_vars_json": "make_vars",
    "overrides_json": "overrides",
    "override_list_json": "override_list",
}


def write_plan(path: Path, plan: list[RunSpec]) -> Path:
    """plan.tsv (PLAN_COLUMNS), atomically: json columns as compact JSON, lists comma-separated."""
    lines = ["\t".join(PLAN_COLUMNS)]
    for run in plan:
        row = {column: str(getattr(run, column, "")) for column in PLAN_COLUMNS if column not in _JSON}
        row.update(families=",".join(run.families), models=",".join(run.models))
        row.update({c: json.dumps(getattr(run, f), ensure_ascii=False, separators=(",", ":")) for c, f in _JSON.items()})
        lines.append("\t".join(row[column] for column in PLAN_COLUMNS))
    return atomic.write_text(path, "\n".join(lines) + "\n")


def read_plan(path: Path, exp_id: str | None = None) -> list[RunSpec]:
    """plan.tsv back into RunSpecs; exp_id (not a column) defaults to the plan's folder name,
    superior/<exp_id>/plan.tsv."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        RunSpec(
            run_id=row["run_id"],
            exp_id=exp_id or Path(path).parent.name,
            profile=row["profile"],
            stage=row["stage"],
            repeat_index=int(row["repeat_index"]),
            resource_class=row["resource_class"],
            seed=int(row["seed"]),
            combo=row["combo"],
            families=[f for f in row["families"].split(",") if f],
            models=[m for m in row["models"].split(",") if m],
            params_hash=row["params_hash"],
            **{f: json.loads(row[c]) for c, f in _JSON.items()},
        )
        for row in rows
    ]


# ---------------------------------------------------------------- Dagster run queue
def queue_limits(cfg: SchedulerConfig, classes_used: Iterable[str]) -> dict[str, Any]:
    """Dagster run-queue limits of a sweep: {"max_concurrent_runs": parallel, "tag_concurrency_limits":
    [{"key": "pepm/resource_class", "value": cls, "limit": n}, …]} for each class used, lightest first.

    The spec's budget is a weighted sum across classes (Σ weight ≤ max_weight, Σ approx RAM ≤
    max_ram_gb), but Dagster's queue limits count runs per tag value, one class at a time. Each
    class is therefore bounded as if it ran alone: n = min(max_weight // weight, floor(max_ram_gb /
    approx_ram_per_class)), the RAM bound only when both are given, and max_concurrent_runs =
    parallel bounds the total. A mix of classes can thus exceed the weighted budget (up to the
    number of classes times it); keep `parallel` low where that matters (spec §11: 1-2 on a laptop).
    n is at least 1: a class one run of which exceeds max_weight or the RAM budget still runs alone
    (a warning is logged, and returned by `queue_warnings`)."""
    weights = cfg.class_weights()
    limits = []
    for klass in sorted(set(classes_used), key=lambda c: (weights.get(c, 0), c)):
        n = cfg.max_weight // weights.get(klass, 1)
        ram = cfg.approx_ram_per_class.get(klass)
        if cfg.max_ram_gb is not None and ram is not None:
            n = min(n, math.floor(cfg.max_ram_gb / ram))
        limits.append({"key": CLASS_TAG, "value": klass, "limit": max(1, n)})
    for warning in queue_warnings(cfg, classes_used):
        log.warning(warning)
    return {"max_concurrent_runs": cfg.parallel, "tag_concurrency_limits": limits}


def queue_warnings(cfg: SchedulerConfig, classes_used: Iterable[str]) -> list[str]:
    """Classes one run of which is over the budget (it is still run, alone)."""
    weights, out = cfg.class_weights(), []
    for klass in sorted(set(classes_used)):
        if weights.get(klass, 1) > cfg.max_weight:
            out.append(f"a {klass} run weighs {weights[klass]}, over max_weight {cfg.max_weight}: {klass} runs go one at a time")
        ram = cfg.approx_ram_per_class.get(klass)
        if cfg.max_ram_gb is not None and ram is not None and ram > cfg.max_ram_gb:
            out.append(f"a {klass} run needs ~{ram} GB, over max_ram_gb {cfg.max_ram_gb}: {klass} runs go one at a time")
    return out
