"""The configuration schema: typed objects for every YAML file, and ConfigError.

No pepm imports here: every other module may import the schema (families read HardwarePreset,
formats read ResolvedParams) without an import cycle. Reading YAML into these objects is
`loading.py`; turning a profile into a run's parameters is `resolve.py`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer, model_validator

MERGE_MODES = ("single", "merged", "juxtaposed", "separate")
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_REPEATS = 100  # split.repeats: each repeat is a split on disk and a fit of every cheap model


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
    """One model trained on each dataset, scored on each dataset (same view): on its own job set
    (the diagonal), on every labelled document of each other dataset (core/cross_corpus.py)."""

    view: str
    model_id: str
    datasets: list[str] = Field(min_length=2)
    n_boot: int = Field(1000, ge=100)  # bootstrap replicates of each cell's interval (seeded with the row's profile seed)


class Legislature(Strict):
    """One legislature of the Assemblée nationale (configs/common/legislatures.yml): its first and
    last day, both inclusive; no `end` while it is in session."""

    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Legislature:
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class CommonConfig(Strict):
    corpora: dict[str, CorpusConfig]
    datasets: dict[str, DatasetConfig]
    hardware: dict[str, HardwarePreset]
    balance_presets: dict[str, dict[str, dict[str, Any]]]
    models: dict[str, ModelSpec] = {}
    cross_corpus: CrossCorpusConfig | None = None
    legislatures: dict[int, Legislature] = {}  # configs/common/legislatures.yml (optional): the `legislature` column


# ---------------------------------------------------------------- profiles
class DataOverride(Strict):
    """A profile's `data:` block (spec §2.4.2). For a dataset_id not in datasets.yml it defines the
    dataset (its corpus_ids are then required); for a declared one it may change how the corpora
    are combined (merge_mode, source_field), not which."""

    corpus_ids: list[str] | None = Field(None, min_length=1)
    merge_mode: Literal["single", "merged", "juxtaposed", "separate"] | None = None
    source_field: str | None = None


class AnalysisConfig(Strict):
    compare_by: list[str] | None = None


class SplitConfig(Strict):
    """How train and job (and valid) are drawn. Grouped by speaker unless a profile says otherwise
    (`split: {group_by: null}`): a speaker on both sides lets a classifier score by recognising who
    speaks rather than which side they are on, which flatters every score (core/split.py). With
    `group_by` null, `stratify` picks a split stratified by label, else a plain random one.
    `repeats` N > 1 draws N such splits of the view (repeat 0 with the profile's seed), and every
    model that fits from train.tsv is fitted and scored on each (core/training.py)."""

    stratify: bool = True
    group_by: str | None = Field(
        "speaker", description="column whose values are each kept on one side of the split; null: a split by document"
    )
    validation_prop: float = Field(
        0.0, ge=0, lt=0.5, description="share of the train side held out as valid.tsv, for model selection never on job (0: none)"
    )
    repeats: int = Field(
        1,
        ge=1,
        le=MAX_REPEATS,
        description="train/job splits of the view, each drawn like the first with a seed derived from the profile's "
        "(core/split.py: repeat_seeds); every model that fits from train.tsv is fitted and scored on each, "
        "scores reported as mean ± sd over them",
    )

    @model_serializer(mode="wrap")
    def _without_defaults_of_new_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """validation_prop 0 and repeats 1 are left out of dumps: the params hash (a dump) of a
        profile that uses neither stays what it was before the keys existed, so its prepared splits,
        models and evaluations stay fresh; any other value is in the hash, and changing it makes the
        split stale."""
        data = handler(self)
        if not self.validation_prop:
            data.pop("validation_prop", None)
        if self.repeats == 1:
            data.pop("repeats", None)
        return data


LANGUAGE_CANDIDATES = ("fr", "en", "de", "es", "it", "pt", "nl")  # filters.languages: the languages a text is told apart from


class LanguageFilter(Strict):
    """filters.languages (core/quality.py): documents detected in a language outside `keep` are left
    out of the view. A text shorter than `min_tokens`, or whose most likely language is below
    `min_probability`, is not judged ("und") and stays: short interjections are where detectors
    err most, and a French "Bravo !" is no foreign text. `candidates`: the languages the detector
    chooses among (fewer candidates, fewer mistakes on short French texts)."""

    keep: list[str] = Field(["fr"], min_length=1, description="ISO 639-1 codes of the languages kept")
    candidates: list[str] = Field(list(LANGUAGE_CANDIDATES), min_length=2, description="languages the detector chooses among")
    min_tokens: int = Field(5, ge=1, description="shorter texts are not judged (kept, counted as und)")
    min_probability: float = Field(0.9, gt=0, le=1, description="a less certain detection is not judged (kept, counted as und)")

    @model_validator(mode="before")
    @classmethod
    def _list_is_keep(cls, data: Any) -> Any:
        """`languages: [fr]` (or `fr`) is short for `languages: {keep: [fr]}`."""
        if isinstance(data, str):
            return {"keep": [data]}
        return {"keep": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _kept_are_candidates(self) -> LanguageFilter:
        missing = [code for code in self.keep if code not in self.candidates]
        if missing:
            raise ValueError(f"keep {missing} not among candidates {self.candidates}: the detector could never find them")
        return self


class NearDuplicateFilter(Strict):
    """filters.near_duplicates (core/quality.py): texts whose word `shingle`-grams (of the dedup
    normalisation) overlap by Jaccard >= `threshold` are one text, treated like exact duplicates
    before the split: one copy kept if all copies agree on the label, none if they disagree. Found
    by MinHash (`num_perm` permutations, seeded) + LSH, each candidate pair checked exactly."""

    threshold: float = Field(0.9, gt=0, le=1, description="Jaccard similarity of word shingles at or above which two texts are one")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    shingle: int = Field(5, ge=1, le=20, description="words per shingle")

    @model_validator(mode="before")
    @classmethod
    def _true_is_defaults(cls, data: Any) -> Any:
        return {} if data is True else data


class FilterConfig(Strict):
    min_tokens: int = Field(1, ge=0)
    max_docs_per_corpus: int | None = Field(None, ge=1)
    dedup: bool = True
    mask_names: bool = Field(
        False,
        description="replace party / group names (NOM_GROUPE) and speakers' names (NOM_PERSONNE) in the texts before the "
        "split, so that no family learns who signs or is named (core/diagnostics.py; names: configs/common/label_validity.yml)",
    )
    languages: LanguageFilter | None = Field(
        None,
        description="keep only documents in these languages ([fr], or {keep, candidates, min_tokens, min_probability}); null: no filter",
    )
    near_duplicates: NearDuplicateFilter | None = Field(
        None, description="drop near-duplicate texts before the split (true, or {threshold, num_perm, shingle}); null: exact dedup only"
    )
    procedural: bool = Field(
        False,
        description="strip stage directions ('(Applaudissements ...)') from texts and drop documents that are only chair's "
        "formulas (configs/common/procedural.yml)",
    )

    @model_validator(mode="before")
    @classmethod
    def _off_is_null(cls, data: Any) -> Any:
        """`near_duplicates: false` (an override's way to turn it off) is null."""
        if isinstance(data, dict) and data.get("near_duplicates") is False:
            data = {**data, "near_duplicates": None}
        return data

    @model_serializer(mode="wrap")
    def _without_unused_masking(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """mask_names false, languages and near_duplicates null and procedural false are left out of
        dumps: the params hash of a view that uses none of them stays what it was before the keys
        existed (its split, models and evaluations stay fresh)."""
        data = handler(self)
        for key in ("mask_names", "languages", "near_duplicates", "procedural"):
            if getattr(self, key) in (None, False):
                data.pop(key, None)
        return data


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
    families: list[str] | None = Field(None, description="model families run (default: every registered family)")
    models: list[str] | None = None
    eval_dataset_id: str | None = Field(None, description="also score the models on this dataset's job set (spec §2.7.3)")
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
        """The specification's spellings: `models_<family>: [...]` lists, `ideology: {view: x}` for
        `view`, and `cross_dataset: {train_on, eval_on}` (§10.2) for dataset_id / eval_dataset_id.
        (Family names are checked against the family registry at resolution.)"""
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
        cross = data.get("cross_dataset")
        if isinstance(cross, dict) and set(cross) <= {"train_on", "eval_on"}:
            data.pop("cross_dataset")
            for key, field in (("train_on", "dataset_id"), ("eval_on", "eval_dataset_id")):
                if key in cross:
                    if data.get(field, cross[key]) != cross[key]:
                        raise ValueError(f"{field} {data[field]!r} and cross_dataset.{key} {cross[key]!r} differ")
                    data[field] = cross[key]
        return data


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
    eval_dataset_id: str | None = None  # scored on this dataset's job set too (cross-dataset)
    # the legislature table, when the view has a `legislature` column (compare_by, split.group_by):
    # in the params hash then (an edited table changes the view), left out of it otherwise
    legislatures: dict[int, Legislature] | None = None
    # filters.mask_names: the names masked, group -> its names (configs/common/label_validity.yml + the
    # label map's groups): in the params hash then (an edited list changes the texts), None and out of it otherwise
    group_names: dict[str, list[str]] | None = None
    # filters.procedural: the patterns of configs/common/procedural.yml (core/quality.py): in the params
    # hash then (an edited list changes the texts), None and out of it otherwise
    procedural_patterns: dict[str, list[str]] | None = None
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
        for key in ("profile", "overrides", "families", "models", "eval_dataset_id", "model_specs", "hardware_preset", "hardware"):
            data.pop(key)
        if data.get("legislatures") is None:
            data.pop("legislatures", None)  # a view without a legislature column: its hash is what it was before the table existed
        if data.get("group_names") is None:
            data.pop("group_names", None)  # a view that masks no name: its hash is what it was before masking existed
        if data.get("procedural_patterns") is None:
            data.pop("procedural_patterns", None)  # idem, a view without filters.procedural
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


def default_profile(dataset_id: str, view: str) -> Profile:
    """The parameters a dataset x view partition gets when no profile is named (e.g. from the UI)."""
    return Profile(profile="default", dataset_id=dataset_id, view=view)
