"""Configuration as validated data: YAML files -> typed objects, errors that name the file and the key.

A *profile* (configs/profiles/<name>.yml) is a preset of every parameter of a run; *overrides*
(`key.sub=value`) are applied on top of it before validation, so a bad override fails exactly like a
bad file. `resolve_profile` cross-checks the profile against the common configs (corpora, datasets,
hardware, balance, label map, models) and returns `ResolvedParams`, whose `params_hash` identifies the
content of everything downstream. Nothing is read from disk after this point that is not in it.

    schema.py   the typed objects (no pepm imports: anything may import them)
    loading.py  YAML -> objects: strict safe loading, common configs, profiles, overrides
    resolve.py  profile + overrides + common configs -> ResolvedParams
"""

from .loading import (
    apply_overrides,
    document_columns,
    list_profiles,
    load_common,
    load_profile,
    load_yaml,
    parse_override,
    profile_path,
    project_root,
    validate,
)
from .resolve import resolve_on_dataset, resolve_profile
from .schema import (
    MAX_SEED,
    MERGE_MODES,
    AnalysisConfig,
    CommonConfig,
    ConfigError,
    CorpusConfig,
    DatasetConfig,
    EarlyStop,
    FilterConfig,
    FormatsConfig,
    HardwarePreset,
    Legislature,
    ModelSpec,
    Profile,
    ResolvedParams,
    SplitConfig,
    Strict,
    default_profile,
    did_you_mean,
)

__all__ = [
    "MAX_SEED",
    "MERGE_MODES",
    "AnalysisConfig",
    "CommonConfig",
    "ConfigError",
    "CorpusConfig",
    "DatasetConfig",
    "EarlyStop",
    "FilterConfig",
    "FormatsConfig",
    "HardwarePreset",
    "Legislature",
    "ModelSpec",
    "Profile",
    "ResolvedParams",
    "SplitConfig",
    "Strict",
    "apply_overrides",
    "default_profile",
    "did_you_mean",
    "document_columns",
    "list_profiles",
    "load_common",
    "load_profile",
    "load_yaml",
    "parse_override",
    "profile_path",
    "project_root",
    "resolve_on_dataset",
    "resolve_profile",
    "validate",
]
