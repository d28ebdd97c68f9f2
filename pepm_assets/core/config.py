"""Configuration as validated data: YAML files -> typed objects, errors that name the file and the key.

A *profile* (configs/profiles/<name>.yml) is a preset of every parameter of a run; *overrides*
(`key.sub=value`) are applied on top of it before validation, so a bad override fails exactly like a
bad file. `resolve_profile` cross-checks the profile against the common configs (corpora, datasets,
hardware, balance, label map) and returns `ResolvedParams`, whose `params_hash` identifies the
content of everything downstream. Nothing is read from disk after this point that is not in it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FAMILIES = ("check", "sklearn", "spacy", "hf", "cluster")
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available: 8x faster
MERGE_MODES = ("single", "merged", "juxtaposed", "separate")
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_YAML_VALUES = 100_000  # values a config may stand for once its aliases are expanded


class ConfigError(ValueError):
    """A configuration problem, raised before any work starts. Its message names file and key."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        where = f"{source}: key '{key}'" if key else source
        super().__init__(f"{where}: {message}")


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """ " (did you mean 'x'?)" when a known name is close to `word`, else ""."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- common configs
class CorpusConfig(Strict):
    path: str = Field(description="folder of TEI files, relative to the project root")
    dialect: str
    dialect_options: dict[str, Any] = {}
    glob: str = "*.xml"
    max_reject_rate: float = Field(0.05, ge=0, le=1, description="quality gate on parse rejects")
    max_failed_files: int = Field(0, ge=0, description="quality gate on files that could not be parsed")
    parse_workers: int = Field(0, ge=0, description="processes parsing files in parallel; 0 = one per core (max 4)")
    description: str = ""


class DatasetConfig(Strict):
    corpus_ids: list[str] = Field(min_length=1)
    merge_mode: Literal["single", "merged", "juxtaposed", "separate"] = "single"
    source_field: str = "corpus_id"
    compare_by: list[str] = []
    description: str = ""


class HardwarePreset(Strict):
    """Bounds a run trains within. `max_train_docs` caps the train set per family (a capped family
    takes the first rows of the shuffled train.tsv); the spec's `max_train_docs_<family>` keys are
    read into it (null: no cap)."""

    threads: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(256, ge=8)
    max_train_docs: dict[str, Annotated[int, Field(ge=1)]] = Field({}, description="family -> most training documents it gets")

    @model_validator(mode="before")
    @classmethod
    def _spec_cap_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        caps = dict(data.get("max_train_docs") or {})
        for key in [k for k in data if isinstance(k, str) and k.startswith("max_train_docs_")]:
            value = data.pop(key)
            caps[key[len("max_train_docs_") :]] = value
        data["max_train_docs"] = {family: cap for family, cap in caps.items() if cap is not None}
        return data

    def cap(self, family: str) -> int | None:
        """The most training documents `family` gets (None: all of train.tsv)."""
        return self.max_train_docs.get(family)


class EarlyStop(Strict):
    """Minimum scores of a model on the job set, with the spec's semantics (§8.6): a model is flagged
    (`quality_ok: false`, `quality_flags`) when *every* threshold set is missed (accuracy and
    macro-F1 both low), only when `enabled`. A flag is recorded and shown, never blocking: a weak
    model stays in the leaderboard, marked."""

    enabled: bool = True
    min_accuracy: float | None = Field(None, ge=0, le=1)
    min_macro_f1: float | None = Field(None, ge=0, le=1)

    def judge(self, scores: dict[str, Any]) -> tuple[bool, list[str]]:
        """(quality_ok, quality_flags) of an evaluation's scores."""
        limits = {"accuracy": self.min_accuracy, "macro_f1": self.min_macro_f1}
        limits = {k: v for k, v in limits.items() if v is not None and k in scores}
        if not self.enabled or not limits:
            return True, []
        flags = [f"low_{metric}" for metric, threshold in limits.items() if scores[metric] < threshold]
        return len(flags) < len(limits), flags


class ModelSpec(Strict):
    family: str
    params: dict[str, Any] = {}
    resource_class: Literal["light", "medium", "heavy"] = "light"
    early_stop: EarlyStop = EarlyStop()
    description: str = ""


class CrossCorpusConfig(Strict):
    """Train one model on each dataset, evaluate it on each dataset's job set (same view)."""

    view: str
    model_id: str
    datasets: list[str] = Field(min_length=2)


class CommonConfig(Strict):
    corpora: dict[str, CorpusConfig]
    datasets: dict[str, DatasetConfig]
    hardware: dict[str, HardwarePreset]
    balance_presets: dict[str, dict[str, dict[str, Any]]]
    models: dict[str, ModelSpec] = {}
    cross_corpus: CrossCorpusConfig | None = None


# ---------------------------------------------------------------- profiles
class DataOverride(Strict):
    corpus_ids: list[str] | None = None
    merge_mode: Literal["single", "merged", "juxtaposed", "separate"] | None = None
    source_field: str | None = None


class AnalysisConfig(Strict):
    compare_by: list[str] | None = None


class SplitConfig(Strict):
    stratify: bool = True
    group_by: str | None = Field(None, description="column kept on one side of the split (e.g. speaker)")


class FilterConfig(Strict):
    min_tokens: int = Field(1, ge=0)
    max_docs_per_corpus: int | None = Field(None, ge=1)
    dedup: bool = True


class FormatsConfig(Strict):
    spacy_shard_size: int = Field(2000, ge=1)
    spacy_language: str = "fr"


class QualityConfig(Strict):
    """The view's gates (the corpus's own, max_reject_rate / max_failed_files, are in corpora.yml:
    a parsed corpus is shared by every view that uses it)."""

    min_docs_per_class: int = Field(20, ge=1)


class Profile(Strict):
    profile: str
    description: str = ""
    dataset_id: str
    view: str
    label_map: str = "ideology.yml"
    data: DataOverride = DataOverride()
    analysis: AnalysisConfig = AnalysisConfig()
    families: list[str] = list(FAMILIES)
    models: list[str] | None = None
    hardware_preset: str = "small"
    balance_strategy: str = "none"
    balance_preset: str = "default"
    balance_params: dict[str, Any] = {}
    train_prop: float = Field(0.8, gt=0, lt=1)
    seed: int = Field(42, ge=0, le=MAX_SEED)
    hardware: dict[str, Any] = Field(
        {}, description="values replacing the hardware preset's (override: hardware.max_train_docs_spacy=1000)"
    )
    model_params: dict[str, dict[str, Any]] = Field(
        {}, description="per model id, params replacing its models.yml params (override: models.<id>.params.C=1.0)"
    )
    split: SplitConfig = SplitConfig()
    filters: FilterConfig = FilterConfig()
    formats: FormatsConfig = FormatsConfig()
    quality: QualityConfig = QualityConfig()

    models_by_family: dict[str, list[str]] = Field({}, description="the spec's models_<family> lists, gathered by the validator")

    @model_validator(mode="before")
    @classmethod
    def _spec_spellings(cls, data: Any) -> Any:
        """The specification's spellings: `models_<family>: [...]` lists, and `ideology: {view: x}`
        for `view`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        lists = {key[len("models_") :]: data.pop(key) for key in list(data) if key.startswith("models_") and key != "models_by_family"}
        if lists:
            data["models_by_family"] = {**data.get("models_by_family", {}), **lists}
        ideology = data.get("ideology")
        if isinstance(ideology, dict) and set(ideology) == {"view"}:
            data.pop("ideology")
            if data.get("view", ideology["view"]) != ideology["view"]:
                raise ValueError(f"view {data['view']!r} and ideology.view {ideology['view']!r} differ")
            data["view"] = ideology["view"]
        return data

    @field_validator("models_by_family")
    @classmethod
    def _lists_of_known_families(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = [f"models_{f}" for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown keys {unknown}; known: {[f'models_{f}' for f in FAMILIES]}")
        return value

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FAMILIES]
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {list(FAMILIES)}")
        return value


class ResolvedParams(Strict):
    """Everything a prepare run depends on, resolved; `params_hash` fingerprints it."""

    profile: str
    overrides: list[str]
    dataset_id: str
    dataset: DatasetConfig
    corpora: dict[str, CorpusConfig]
    view: str
    label_map: str
    label_map_sha256: str
    families: list[str]
    models: list[str]
    model_specs: dict[str, ModelSpec]  # models.yml entries of `models`, with the profile's model_params
    hardware_preset: str
    hardware: HardwarePreset
    balance_strategy: str
    balance_preset: str
    balance: dict[str, Any]
    train_prop: float
    seed: int
    split: SplitConfig
    filters: FilterConfig
    formats: FormatsConfig
    quality: QualityConfig

    @property
    def compare_by(self) -> list[str]:
        return list(self.dataset.compare_by)

    def hashed_part(self) -> dict[str, Any]:
        """What decides the content of a view: the profile name and the wording of overrides do not."""
        data = self.model_dump(mode="json")
        for key in ("profile", "overrides", "families", "models", "model_specs", "hardware_preset", "hardware"):
            data.pop(key)
        return data

    @property
    def params_hash(self) -> str:
        blob = json.dumps(self.hashed_part(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    @property
    def settings_hash(self) -> str:
        """The params hash without the seed: evaluations that differ only by their seed share it
        (the repeats the leaderboard summarises as mean ± sd)."""
        data = {k: v for k, v in self.hashed_part().items() if k != "seed"}
        return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------- loading helpers
def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """PEPM_ROOT, else the nearest folder above `start` (or cwd) holding configs/common/corpora.yml."""
    env = os.environ.get("PEPM_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "configs" / "common" / "corpora.yml").is_file():
            return candidate
    package_parent = Path(__file__).resolve().parents[2]
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


def load_yaml(path: Path, root: Path | None = None) -> dict[str, Any]:
    shown = _rel(path, root) if root else str(path)
    if not path.is_file():
        raise ConfigError(shown, None, "file not found")
    raw = path.read_bytes()
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
            msg = "unknown key" + did_you_mean(err["loc"][-1], _fields_at(model, err["loc"][:-1]))
        elif "input" in err and err["type"] not in ("missing", "value_error"):  # our own messages say it all
            msg = f"{msg} (got {_short_repr(err['input'])})"
        raise ConfigError(source, key or None, msg) from None


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
    common = CommonConfig(
        corpora=corpora,
        datasets=read("datasets.yml", _DatasetsFile).datasets,
        hardware=read("hardware.yml", _HardwareFile).hardware,
        balance_presets=read("balance.yml", _BalanceFile).presets,
        models=models,
        cross_corpus=read("cross_corpus.yml", _CrossCorpusFile, optional=True).cross_corpus,
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
    return common


def _check_models(models: dict[str, ModelSpec]) -> None:
    """Every model names a known family and parameters that family accepts."""
    from . import families  # light: families import their heavy libraries only when they run

    source = "configs/common/models.yml"
    for model_id, spec in models.items():
        if spec.family not in families.REGISTRY:
            raise ConfigError(source, f"models.{model_id}.family", f"unknown family {spec.family!r} (known: {families.REGISTRY.names()})")
        validate(families.REGISTRY.get(spec.family).params_model, spec.params, source, f"models.{model_id}.params")


def _check_corpora(corpora: dict[str, CorpusConfig]) -> None:
    """Every corpus names a known dialect and options that dialect accepts: checked here, a typo
    in an option fails before any file is parsed."""
    from .tei import dialects

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
    its fields (BASE_FIELDS + meta_fields, as `Dialect.fields`), and the dataset adds source_field.
    Corpora are concatenated, so a column of any one of them exists (empty in the others)."""
    from .tei import dialects

    columns = {source_field, *dialects.BASE_FIELDS}
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


def default_profile(dataset_id: str, view: str) -> Profile:
    """The parameters a dataset x view partition gets when no profile is named (e.g. from the UI)."""
    return Profile(profile="default", dataset_id=dataset_id, view=view)


def resolve_profile(
    root: Path,
    profile: Profile | str,
    overrides: list[str] | None = None,
    common: CommonConfig | None = None,
) -> ResolvedParams:
    """Profile + overrides + common configs -> ResolvedParams, or a ConfigError before any work."""
    from . import balance, labels  # local: keeps `config` importable on its own

    overrides = list(overrides or [])
    if isinstance(profile, str):
        prof = load_profile(root, profile, overrides)
    else:
        prof = validate(Profile, apply_overrides(profile.model_dump(), overrides), f"profile {profile.profile!r}") if overrides else profile
    source = _rel(profile_path(root, prof.profile), root) if prof.profile != "default" else "default profile"
    if overrides:
        source += f" + overrides {overrides}"
    common = common or load_common(root)

    if prof.dataset_id not in common.datasets:
        raise ConfigError(
            source,
            "dataset_id",
            f"unknown dataset {prof.dataset_id!r}{did_you_mean(prof.dataset_id, common.datasets)} (declared in configs/common/datasets.yml: {sorted(common.datasets)})",
        )
    dataset = common.datasets[prof.dataset_id]
    patch = {k: v for k, v in prof.data.model_dump().items() if v is not None}
    if prof.analysis.compare_by is not None:
        patch["compare_by"] = prof.analysis.compare_by
    if patch:
        dataset = dataset.model_copy(update=patch)
    for i, cid in enumerate(dataset.corpus_ids):
        if cid not in common.corpora:
            raise ConfigError(
                source,
                f"data.corpus_ids.{i}",
                f"unknown corpus {cid!r}{did_you_mean(cid, common.corpora)} (declared in configs/common/corpora.yml: {sorted(common.corpora)})",
            )
    if dataset.merge_mode == "single" and len(dataset.corpus_ids) != 1:
        raise ConfigError(source, "data.merge_mode", f"'single' needs exactly one corpus, got {dataset.corpus_ids}")
    corpora = {cid: common.corpora[cid] for cid in dataset.corpus_ids}
    _check_columns(prof, dataset, corpora, source)

    if prof.hardware_preset not in common.hardware:
        raise ConfigError(
            source,
            "hardware_preset",
            f"unknown hardware preset {prof.hardware_preset!r}{did_you_mean(prof.hardware_preset, common.hardware)} (known: {sorted(common.hardware)})",
        )

    label_map_path = root / "configs" / "label_maps" / prof.label_map
    label_map = labels.load_label_map(label_map_path, root)
    if prof.view not in label_map.views:
        raise ConfigError(
            source,
            "view",
            f"unknown view {prof.view!r}{did_you_mean(prof.view, label_map.views)} (views of {prof.label_map}: {sorted(label_map.views)})",
        )

    balance_params = balance.resolve(prof.balance_strategy, prof.balance_preset, prof.balance_params, common.balance_presets, source)

    hardware = common.hardware[prof.hardware_preset]
    if prof.hardware:
        patch = dict(prof.hardware)
        if isinstance(patch.get("max_train_docs"), dict):  # hardware.max_train_docs.spacy=1000 adds to the preset's caps
            patch["max_train_docs"] = {**hardware.max_train_docs, **patch["max_train_docs"]}
        hardware = validate(HardwarePreset, {**hardware.model_dump(), **patch}, source, "hardware")

    if prof.models is None:
        models = [m for m, spec in common.models.items() if spec.family in prof.families and spec.family not in prof.models_by_family]
        models += [m for family in prof.families for m in prof.models_by_family.get(family, [])]
        for family, listed in prof.models_by_family.items():
            for i, model_id in enumerate(listed):
                if model_id not in common.models or common.models[model_id].family != family or family not in prof.families:
                    found = (
                        f"of family {common.models[model_id].family!r}"
                        if model_id in common.models
                        else f"unknown{did_you_mean(model_id, common.models)}"
                    )
                    raise ConfigError(
                        source,
                        f"models_{family}.{i}",
                        f"model {model_id!r} is {found}; models_{family} lists {family} models of families {prof.families}",
                    )
    else:
        models = list(prof.models)
        for i, model_id in enumerate(models):
            if model_id not in common.models:
                raise ConfigError(
                    source,
                    f"models.{i}",
                    f"unknown model {model_id!r}{did_you_mean(model_id, common.models)} (configs/common/models.yml has: {sorted(common.models)})",
                )
            if common.models[model_id].family not in prof.families:
                raise ConfigError(
                    source,
                    f"models.{i}",
                    f"model {model_id!r} is of family {common.models[model_id].family!r}, which is not in families {prof.families}",
                )

    model_specs = {m: _model_spec(m, common.models[m], prof.model_params.get(m), source) for m in models}
    for model_id in prof.model_params:
        if model_id not in model_specs:
            raise ConfigError(
                source,
                f"models.{model_id}.params",
                f"model {model_id!r} is not run by this profile{did_you_mean(model_id, model_specs)} (models: {models})",
            )

    return ResolvedParams(
        profile=prof.profile,
        overrides=overrides,
        dataset_id=prof.dataset_id,
        dataset=dataset,
        corpora=corpora,
        view=prof.view,
        label_map=prof.label_map,
        label_map_sha256=label_map.fingerprint,
        families=prof.families,
        models=models,
        model_specs=model_specs,
        hardware_preset=prof.hardware_preset,
        hardware=hardware,
        balance_strategy=prof.balance_strategy,
        balance_preset=prof.balance_preset,
        balance=balance_params,
        train_prop=prof.train_prop,
        seed=prof.seed,
        split=prof.split,
        filters=prof.filters,
        formats=prof.formats,
        quality=prof.quality,
    )


def _model_spec(model_id: str, spec: ModelSpec, patch: dict[str, Any] | None, source: str) -> ModelSpec:
    """The models.yml entry with the profile's params for it, validated by its family."""
    if not patch:
        return spec
    from . import families

    params = {**spec.params, **patch}
    validate(families.REGISTRY.get(spec.family).params_model, params, source, f"models.{model_id}.params")
    return spec.model_copy(update={"params": params})


def _check_columns(prof: Profile, dataset: DatasetConfig, corpora: dict[str, CorpusConfig], source: str) -> None:
    """split.group_by and compare_by name columns of the documents (else the view fails after parsing)."""
    columns = document_columns(corpora, dataset.source_field)
    if prof.analysis.compare_by is not None:
        where, prefix = source, "analysis.compare_by"
    else:
        where, prefix = "configs/common/datasets.yml", f"datasets.{prof.dataset_id}.compare_by"
    named = [(where, f"{prefix}.{i}", column) for i, column in enumerate(dataset.compare_by)]
    if prof.split.group_by is not None:
        named.append((source, "split.group_by", prof.split.group_by))
    for where, key, column in named:
        if column not in columns:
            raise ConfigError(
                where,
                key,
                f"no column {column!r} in the documents of dataset {prof.dataset_id!r}{did_you_mean(column, columns)} (columns: {sorted(columns)})",
            )
