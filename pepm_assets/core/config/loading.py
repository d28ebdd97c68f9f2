"""YAML files -> schema objects: safe, strict loading (duplicate keys, alias bombs, non-UTF-8 refused
with the file named), validation errors that name the dotted key, the common configs, profiles and
`key.sub=value` overrides."""

from __future__ import annotations

import copy
import functools
import itertools
import os
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .. import settings
from .schema import (
    CommonConfig,
    ConfigError,
    CorpusConfig,
    CrossCorpusConfig,
    DataOverride,
    DatasetConfig,
    HardwarePreset,
    Legislature,
    ModelSpec,
    Profile,
    Strict,
    did_you_mean,
)

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 8x faster
MAX_YAML_VALUES = 100_000  # values a config may stand for once its aliases are expanded


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """PEPM_ROOT, else the nearest folder above `start` (or cwd) holding configs/common/corpora.yml."""
    env = settings.ROOT.get()
    if env:
        return env.resolve()
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "configs" / "common" / "corpora.yml").is_file():
            return candidate
    package_parent = Path(__file__).resolve().parents[3]
    if (package_parent / "configs" / "common" / "corpora.yml").is_file():
        return package_parent
    raise ConfigError(str(here), None, "no pepm project here (configs/common/corpora.yml not found); set PEPM_ROOT")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _Refused(yaml.YAMLError):
    """YAML that parses but that pepm refuses; load_yaml adds the file name."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


class _Loader(_SafeLoader):  # type: ignore[misc,valid-type]
    """Safe YAML, stricter in two ways. A key given twice in a mapping is an error: YAML keeps the
    last silently (a second corpus id replaced the first). Aliases may expand to MAX_YAML_VALUES
    values at most: a 1 KB "billion laughs" is cheap to parse but pydantic, repr and JSON then
    walk it expanded (20 s and 3 GB). Small aliases stay allowed (ideology_actors.yml uses one)."""

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise _Refused(None, f"aliases expand to more than {MAX_YAML_VALUES} values (nested or recursive aliases)")
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else []:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so
                continue
            if first is not key_node:
                lines = f"lines {first.start_mark.line + 1} and {key_node.start_mark.line + 1}"
                raise _Refused(str(key), f"given twice ({lines}); the second would silently replace the first")
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` stands for with every alias expanded; linear in the distinct nodes
    (`sizes` memoizes shared ones). A node met again while being counted is a recursive alias:
    counted as too many."""
    if id(node) not in sizes:
        sizes[id(node)] = MAX_YAML_VALUES + 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


PARSED_KEPT = 128  # parses kept, keyed by a file's bytes (an edit is a miss) and its shown name


def load_yaml(path: Path, root: Path | None = None) -> dict[str, Any]:
    """The mapping a config file holds. The parse of the same bytes is kept (a copy is returned):
    resolving a profile reads the same ~25 files several times, ~150 parses in a 1x pipeline."""
    shown = _rel(path, root) if root else str(path)
    if not path.is_file():
        raise ConfigError(shown, None, "file not found")
    # a file that does not parse raises on every read (lru_cache keeps results, not errors)
    return copy.deepcopy(_parse(path.read_bytes(), shown))  # callers may change what they get


@functools.lru_cache(maxsize=PARSED_KEPT)
def _parse(raw: bytes, shown: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(shown, None, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except _Refused as exc:
        raise ConfigError(shown, exc.key, exc.message) from None
    except RecursionError:
        raise ConfigError(shown, None, "nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(shown, None, f"invalid YAML{line}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(shown, None, f"expected a mapping at top level, got {type(data).__name__}")
    return data


def validate(model: type[BaseModel], data: Any, source: str, prefix: str = "") -> Any:
    """Validate `data` into `model`; the first error becomes a ConfigError naming the dotted key
    (an unknown key with the closest field name of its model, the usual cause being a typo)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _suggestion(err["loc"][-1], err.get("input"), _fields_at(model, err["loc"][:-1]))
        elif "input" in err and err["type"] not in ("missing", "value_error"):  # our own messages say it all
            msg = f"{msg} (got {_short_repr(err['input'])})"
        raise ConfigError(source, key or None, msg) from None


def _suggestion(word: Any, value: Any, fields: list[str]) -> str:
    """The field a typo meant; for a dotted key that nested where the field's name has an
    underscore (`-o balance.strategy=x` is {"balance": {"strategy": "x"}}), that field."""
    if isinstance(value, dict) and len(value) == 1 and (joined := f"{word}_{next(iter(value))}") in fields:
        return f" (did you mean {joined!r}? a dot nests keys: {word}.{next(iter(value))} is not {joined})"
    return did_you_mean(word, fields)


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at `loc` inside `model` (through fields, dicts, lists and
    optionals), or [] where there is none."""
    for part in (*loc, None):
        args = [a for a in get_args(model) if a is not type(None)]
        if get_origin(model) in (Union, types.UnionType) and len(args) == 1:
            model = args[0]  # X | None
        if part is None:
            break
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif get_origin(model) in (dict, list) and get_args(model):
            model = get_args(model)[-1]
        else:
            return []
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


class _CorporaFile(Strict):
    corpora: dict[str, CorpusConfig]


class _DatasetsFile(Strict):
    datasets: dict[str, DatasetConfig]


class _HardwareFile(Strict):
    hardware: dict[str, HardwarePreset]


class _BalanceFile(Strict):
    presets: dict[str, dict[str, dict[str, Any]]]


class _ModelsFile(Strict):
    models: dict[str, ModelSpec] = {}


class _CrossCorpusFile(Strict):
    cross_corpus: CrossCorpusConfig | None = None


class _LegislaturesFile(Strict):
    legislatures: dict[int, Legislature] = {}


LEGISLATURES_FILE = "configs/common/legislatures.yml"


def load_common(root: Path) -> CommonConfig:
    """Read and validate configs/common/*.yml (models.yml is optional until models are trained)."""
    common = root / "configs" / "common"

    def read(filename: str, model: type[Strict], optional: bool = False) -> Any:
        path = common / filename
        if optional and not path.exists():
            return model()
        return validate(model, load_yaml(path, root), _rel(path, root))

    models = read("models.yml", _ModelsFile, optional=True).models
    _check_models(models)
    corpora = read("corpora.yml", _CorporaFile).corpora
    _check_corpora(corpora)
    datasets = read("datasets.yml", _DatasetsFile).datasets
    _check_dataset_corpora(datasets, corpora, "configs/common/datasets.yml", "datasets")
    hardware = read("hardware.yml", _HardwareFile).hardware
    for name, preset in hardware.items():
        check_caps(preset, "configs/common/hardware.yml", f"hardware.{name}")
    common = CommonConfig(
        corpora=corpora,
        datasets={**datasets, **_profile_datasets(root, corpora, datasets)},
        hardware=hardware,
        balance_presets=read("balance.yml", _BalanceFile).presets,
        models=models,
        cross_corpus=read("cross_corpus.yml", _CrossCorpusFile, optional=True).cross_corpus,
        legislatures=_check_legislatures(read("legislatures.yml", _LegislaturesFile, optional=True).legislatures),
    )
    cross = common.cross_corpus
    if cross is not None:
        if cross.model_id not in models:
            raise ConfigError(
                "configs/common/cross_corpus.yml",
                "cross_corpus.model_id",
                f"unknown model {cross.model_id!r}{did_you_mean(cross.model_id, models)}",
            )
        for i, dataset_id in enumerate(cross.datasets):
            if dataset_id not in common.datasets:
                raise ConfigError(
                    "configs/common/cross_corpus.yml",
                    f"cross_corpus.datasets.{i}",
                    f"unknown dataset {dataset_id!r}{did_you_mean(dataset_id, common.datasets)}",
                )
        for i, first in enumerate(cross.datasets):
            for second in cross.datasets[i + 1 :]:
                shared = sorted(set(common.datasets[first].corpus_ids) & set(common.datasets[second].corpus_ids))
                if shared:
                    raise ConfigError(
                        "configs/common/cross_corpus.yml",
                        "cross_corpus.datasets",
                        f"{first!r} and {second!r} share corpus {shared}: a model of one would be scored on documents it was trained on",
                    )
    return common


def _check_dataset_corpora(datasets: dict[str, DatasetConfig], corpora: dict[str, CorpusConfig], source: str, prefix: str) -> None:
    for dataset_id, dataset in datasets.items():
        for i, cid in enumerate(dataset.corpus_ids):
            if cid not in corpora:
                raise ConfigError(
                    source,
                    f"{prefix}.{dataset_id}.corpus_ids.{i}",
                    f"unknown corpus {cid!r}{did_you_mean(cid, corpora)} (declared in configs/common/corpora.yml: {sorted(corpora)})",
                )


def _profile_datasets(root: Path, corpora: dict[str, CorpusConfig], declared: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
    """Datasets defined in profile files (spec §2.4.2: a dataset_id not in datasets.yml, with
    data.corpus_ids), so that each has its Dagster partitions like a declared one. A dataset is
    made of the same corpora wherever it is named: two definitions that differ are an error. A
    profile that does not load is left to fail, naming itself, when it is used."""
    defined: dict[str, tuple[str, DatasetConfig]] = {}
    for name in list_profiles(root):
        path = profile_path(root, name)
        try:
            raw = load_yaml(path, root)
        except ConfigError:
            continue
        dataset_id, data = raw.get("dataset_id"), raw.get("data")
        if not isinstance(dataset_id, str) or not isinstance(data, dict) or data.get("corpus_ids") is None:
            continue
        shown = _rel(path, root)
        block = validate(DataOverride, data, shown, "data")
        corpus_ids = block.corpus_ids or []
        where = defined.get(dataset_id, ("configs/common/datasets.yml", declared.get(dataset_id)))
        if where[1] is not None:
            if where[1].corpus_ids != corpus_ids:
                raise ConfigError(
                    shown,
                    "data.corpus_ids",
                    f"dataset {dataset_id!r} is made of {where[1].corpus_ids} in {where[0]}, {corpus_ids} here; give one of them another dataset_id",
                )
            continue
        multi = "merged" if len(corpus_ids) > 1 else "single"
        dataset = DatasetConfig(
            corpus_ids=corpus_ids,
            merge_mode=block.merge_mode or multi,
            source_field=block.source_field or "corpus_id",
            description=f"defined in {shown}",
        )
        _check_dataset_corpora({dataset_id: dataset}, corpora, shown, "data")
        defined[dataset_id] = (shown, dataset)
    return {dataset_id: dataset for dataset_id, (_, dataset) in defined.items()}


def _check_legislatures(table: dict[int, Legislature]) -> dict[int, Legislature]:
    """The legislatures in order of their numbers, each after the one before (no overlap, at most
    the last one open): a date then belongs to one legislature at most."""
    ordered = dict(sorted(table.items()))
    numbers = list(ordered)
    for before, after in itertools.pairwise(numbers):
        prev, leg = ordered[before], ordered[after]
        if prev.end is None or leg.start <= prev.end:
            end = "has no end" if prev.end is None else f"ends on {prev.end}"
            raise ConfigError(
                LEGISLATURES_FILE,
                f"legislatures.{after}.start",
                f"legislature {after} starts on {leg.start}, but legislature {before} {end}: each must start after the one before ends",
            )
    return ordered


def _check_models(models: dict[str, ModelSpec]) -> None:
    """Every model names a known family and parameters that family accepts."""
    from .. import families  # light: families import their heavy libraries only when they run

    source = "configs/common/models.yml"
    for model_id, spec in models.items():
        if spec.family not in families.REGISTRY:
            raise ConfigError(source, f"models.{model_id}.family", f"unknown family {spec.family!r} (known: {families.REGISTRY.names()})")
        validate(families.REGISTRY.get(spec.family).params_model, spec.params, source, f"models.{model_id}.params")


def _check_corpora(corpora: dict[str, CorpusConfig]) -> None:
    """Every corpus names a known dialect and options that dialect accepts: checked here, a typo
    in an option fails before any file is parsed."""
    from ..tei import dialects

    source = "configs/common/corpora.yml"
    for cid, corpus in corpora.items():
        if corpus.dialect not in dialects.REGISTRY:
            known = dialects.REGISTRY.names()
            raise ConfigError(
                source,
                f"corpora.{cid}.dialect",
                f"unknown dialect {corpus.dialect!r}{did_you_mean(corpus.dialect, known)} (known: {known})",
            )
        validate(dialects.REGISTRY.get(corpus.dialect).options_model, corpus.dialect_options, source, f"corpora.{cid}.dialect_options")


def document_columns(corpora: dict[str, CorpusConfig], source_field: str) -> set[str]:
    """The columns a dataset's documents will have, known before parsing: each dialect declares
    its fields (BASE_FIELDS + meta_fields, as `Dialect.fields`), the dataset adds source_field, and
    the view derives `year` and `legislature` from the date (core/periods.py).
    Corpora are concatenated, so a column of any one of them exists (empty in the others)."""
    from ..periods import PERIOD_COLUMNS
    from ..tei import dialects

    columns = {source_field, *dialects.BASE_FIELDS, *PERIOD_COLUMNS}
    for corpus in corpora.values():
        columns.update(dialects.REGISTRY.get(corpus.dialect).meta_fields)
    return columns


# ---------------------------------------------------------------- overrides
def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r}", None, "expected key.sub=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}", key or None, "empty key")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except _Refused as exc:  # same rules as the files
        raise ConfigError(f"override {item!r}", key, exc.message) from None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        if len(path) >= 4 and path[0] == "models" and path[2] == "params":  # the spec's models.<id>.params.<key>=v
            path = ["model_params", path[1], *path[3:]]
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}", ".".join(path), f"'{part}' is not a mapping")
            node = child
        node[path[-1]] = value
    return out


# ---------------------------------------------------------------- resolution
def profile_path(root: Path, name: str) -> Path:
    return root / "configs" / "profiles" / f"{name}.yml"


def list_profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "configs" / "profiles").glob("*.yml"))


def load_profile(root: Path, name: str, overrides: list[str] | None = None) -> Profile:
    path = profile_path(root, name)
    shown = _rel(path, root)
    if not path.is_file():
        known = list_profiles(root)
        raise ConfigError(shown, None, f"profile {name!r} not found{did_you_mean(name, known)} (known: {', '.join(known) or 'none'})")
    raw = load_yaml(path, root)
    raw.setdefault("profile", name)
    overrides = list(overrides or [])
    if overrides:
        shown = f"{shown} + overrides {overrides}"
    return validate(Profile, apply_overrides(raw, overrides), shown)


def check_caps(hardware: HardwarePreset, source: str, prefix: str) -> None:
    """max_train_docs names registered families (a misspelt family would silently cap nothing)."""
    from .. import families

    known = families.REGISTRY.names()
    for family in hardware.max_train_docs:
        if family not in families.REGISTRY:
            raise ConfigError(
                source, f"{prefix}.max_train_docs.{family}", f"no family {family!r}{did_you_mean(family, known)} (registered: {known})"
            )
