"""Profile + overrides + common configs -> ResolvedParams, or a ConfigError before any work.

Each `_resolve_*` step checks one part of the profile against what it refers to (datasets,
corpora, presets, label map, models) and names the key of the first problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .loading import (
    LEGISLATURES_FILE,
    _rel,
    apply_overrides,
    check_caps,
    document_columns,
    load_common,
    load_profile,
    profile_path,
    validate,
)
from .schema import (
    AnalysisConfig,
    CommonConfig,
    ConfigError,
    CorpusConfig,
    DataOverride,
    DatasetConfig,
    HardwarePreset,
    ModelSpec,
    Profile,
    ResolvedParams,
    default_profile,
    did_you_mean,
)


def resolve_profile(
    root: Path,
    profile: Profile | str,
    overrides: list[str] | None = None,
    common: CommonConfig | None = None,
) -> ResolvedParams:
    """Profile + overrides + common configs -> ResolvedParams, or a ConfigError before any work."""
    from .. import balance, labels  # here, not at the top: both import this package

    overrides = list(overrides or [])
    if isinstance(profile, str):
        prof = load_profile(root, profile, overrides)
    elif overrides:
        prof = validate(Profile, apply_overrides(profile.model_dump(exclude_none=True), overrides), f"profile {profile.profile!r}")
    else:
        prof = profile
    source = _rel(profile_path(root, prof.profile), root) if prof.profile != "default" else "default profile"
    if overrides:
        source += f" + overrides {overrides}"
    common = common or load_common(root)

    dataset = _resolve_dataset(prof, common, source)
    corpora = {cid: common.corpora[cid] for cid in dataset.corpus_ids}
    derived = _check_columns(prof, dataset, corpora, source, common)
    eval_dataset_id = _resolve_eval_dataset(prof, dataset, common, source)
    label_map = labels.load_label_map(root / "configs" / "label_maps" / prof.label_map, root)
    if prof.view not in label_map.views:
        raise ConfigError(
            source,
            "view",
            f"unknown view {prof.view!r}{did_you_mean(prof.view, label_map.views)} (views of {prof.label_map}: {sorted(label_map.views)})",
        )
    fams = _resolve_families(prof, source)
    models = _resolve_models(prof, fams, common, source)
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
        families=fams,
        models=models,
        eval_dataset_id=eval_dataset_id,
        legislatures=common.legislatures if "legislature" in derived else None,
        group_names=_masked_names(root, prof, label_map),
        procedural_patterns=_procedural_patterns(root, prof),
        model_specs=model_specs,
        hardware_preset=prof.hardware_preset,
        hardware=_resolve_hardware(prof, common, source),
        balance_strategy=prof.balance_strategy,
        balance_preset=prof.balance_preset,
        balance=balance.resolve(prof.balance_strategy, prof.balance_preset, prof.balance_params, common.balance_presets, source),
        train_prop=prof.train_prop,
        seed=prof.seed,
        split=prof.split,
        filters=prof.filters,
        formats=prof.formats,
        quality=prof.quality,
    )


def _masked_names(root: Path, prof: Profile, label_map: Any) -> dict[str, list[str]] | None:
    """filters.mask_names: the names of each group that prepare masks (core/diagnostics.py), else None.
    configs/common/label_validity.yml is checked either way (every evaluation reads it: a broken
    file fails here, before any work, not at the first evaluation)."""
    from .. import diagnostics

    config, _ = diagnostics.load_config(root)
    names = diagnostics.group_names(config, label_map)
    return names if prof.filters.mask_names else None


def _procedural_patterns(root: Path, prof: Profile) -> dict[str, list[str]] | None:
    """filters.procedural: the patterns of configs/common/procedural.yml (core/quality.py), checked
    here (a bad pattern fails before any work), else None."""
    if not prof.filters.procedural:
        return None
    from .. import quality

    return quality.load_patterns(root).model_dump()


def resolve_on_dataset(root: Path, params: ResolvedParams, dataset_id: str, common: CommonConfig | None = None) -> ResolvedParams:
    """The parameters of `params`' profile and overrides applied to another dataset: the split a
    cross-dataset evaluation scores on (spec §2.7.3) is prepared like the model's own (seed,
    train_prop, filters, balance, label map), from that dataset's own corpora and settings."""
    if params.profile == "default":
        prof = default_profile(params.dataset_id, params.view)
        if params.overrides:
            prof = validate(Profile, apply_overrides(prof.model_dump(exclude_none=True), params.overrides), "default profile")
    else:
        prof = load_profile(root, params.profile, params.overrides)
    moved = prof.model_copy(
        update={"dataset_id": dataset_id, "data": DataOverride(), "analysis": AnalysisConfig(), "eval_dataset_id": None}
    )
    return resolve_profile(root, moved, [], common).model_copy(update={"overrides": params.overrides})


def _resolve_dataset(prof: Profile, common: CommonConfig, source: str) -> DatasetConfig:
    """The dataset of datasets.yml, or the one a profile file defines (spec §2.4.2), with the
    profile's merge_mode / source_field / compare_by. Its corpora are fixed where it is defined:
    Dagster's dataset x view partitions and their corpus lineage are built from that."""
    for i, cid in enumerate(prof.data.corpus_ids or []):
        if cid not in common.corpora:
            raise ConfigError(
                source,
                f"data.corpus_ids.{i}",
                f"unknown corpus {cid!r}{did_you_mean(cid, common.corpora)} (declared in configs/common/corpora.yml: {sorted(common.corpora)})",
            )
    if prof.dataset_id not in common.datasets:
        how = "declare it in configs/common/datasets.yml or define it in a profile file (dataset_id + data.corpus_ids)"
        raise ConfigError(
            source,
            "dataset_id",
            f"unknown dataset {prof.dataset_id!r}{did_you_mean(prof.dataset_id, common.datasets)}: {how} (known: {sorted(common.datasets)})",
        )
    dataset = common.datasets[prof.dataset_id]
    if prof.data.corpus_ids is not None and prof.data.corpus_ids != dataset.corpus_ids:
        raise ConfigError(
            source,
            "data.corpus_ids",
            f"dataset {prof.dataset_id!r} is made of {dataset.corpus_ids} ({dataset.description or 'configs/common/datasets.yml'}); "
            "other corpora make another dataset: give it its own dataset_id in a profile file or datasets.yml",
        )
    patch = {k: v for k, v in prof.data.model_dump(exclude={"corpus_ids"}).items() if v is not None}
    if prof.analysis.compare_by is not None:
        patch["compare_by"] = prof.analysis.compare_by
    dataset = dataset.model_copy(update=patch) if patch else dataset
    if dataset.merge_mode == "single" and len(dataset.corpus_ids) != 1:
        raise ConfigError(source, "data.merge_mode", f"'single' needs exactly one corpus, got {dataset.corpus_ids}")
    return dataset


def _resolve_eval_dataset(prof: Profile, dataset: DatasetConfig, common: CommonConfig, source: str) -> str | None:
    """eval_dataset_id (spec §2.7.3): a known dataset that shares no corpus with the model's own
    (a shared corpus would put training documents in the job set it is scored on)."""
    eval_id = prof.eval_dataset_id
    if eval_id is None or eval_id == prof.dataset_id:
        return None
    if eval_id not in common.datasets:
        raise ConfigError(
            source,
            "eval_dataset_id",
            f"unknown dataset {eval_id!r}{did_you_mean(eval_id, common.datasets)} (known: {sorted(common.datasets)})",
        )
    shared = sorted(set(dataset.corpus_ids) & set(common.datasets[eval_id].corpus_ids))
    if shared:
        raise ConfigError(
            source,
            "eval_dataset_id",
            f"dataset {eval_id!r} shares corpus {shared} with {prof.dataset_id!r}: its job set could hold the documents the models were trained on",
        )
    return eval_id


def _resolve_families(prof: Profile, source: str) -> list[str]:
    """The families run: the profile's, or every registered one; each `models_<family>` list
    names a registered family."""
    from .. import families

    known = families.REGISTRY.names()
    for i, family in enumerate(prof.families or []):
        if family not in families.REGISTRY:
            raise ConfigError(source, f"families.{i}", f"unknown family {family!r}{did_you_mean(family, known)} (registered: {known})")
    for family in prof.models_by_family:
        if family not in families.REGISTRY:
            raise ConfigError(
                source, f"models_{family}", f"unknown key: no family {family!r}{did_you_mean(family, known)} (registered: {known})"
            )
    return list(prof.families) if prof.families is not None else known


def _resolve_models(prof: Profile, fams: list[str], common: CommonConfig, source: str) -> list[str]:
    """`models:` (explicit ids), else every models.yml entry of the families run, where a
    `models_<family>` list replaces that family's entries."""
    if prof.models is not None:
        for i, model_id in enumerate(prof.models):
            if model_id not in common.models:
                raise ConfigError(
                    source,
                    f"models.{i}",
                    f"unknown model {model_id!r}{did_you_mean(model_id, common.models)} (configs/common/models.yml has: {sorted(common.models)})",
                )
            if common.models[model_id].family not in fams:
                raise ConfigError(
                    source,
                    f"models.{i}",
                    f"model {model_id!r} is of family {common.models[model_id].family!r}, which is not in families {fams}",
                )
        return list(prof.models)
    for family, listed in prof.models_by_family.items():
        for i, model_id in enumerate(listed):
            spec = common.models.get(model_id)
            if spec is None or spec.family != family or family not in fams:
                found = f"of family {spec.family!r}" if spec else f"unknown{did_you_mean(model_id, common.models)}"
                raise ConfigError(
                    source,
                    f"models_{family}.{i}",
                    f"model {model_id!r} is {found}; models_{family} lists {family} models of families {fams}",
                )
    models = [m for m, spec in common.models.items() if spec.family in fams and spec.family not in prof.models_by_family]
    return models + [m for family in fams for m in prof.models_by_family.get(family, [])]


def _resolve_hardware(prof: Profile, common: CommonConfig, source: str) -> HardwarePreset:
    """The preset with the profile's `hardware:` values on top (its caps added to the preset's)."""
    if prof.hardware_preset not in common.hardware:
        raise ConfigError(
            source,
            "hardware_preset",
            f"unknown hardware preset {prof.hardware_preset!r}{did_you_mean(prof.hardware_preset, common.hardware)} (known: {sorted(common.hardware)})",
        )
    hardware = common.hardware[prof.hardware_preset]
    if prof.hardware:
        patch = dict(prof.hardware)
        if isinstance(patch.get("max_train_docs"), dict):  # hardware.max_train_docs.spacy=1000 adds to the preset's caps
            patch["max_train_docs"] = {**hardware.max_train_docs, **patch["max_train_docs"]}
        hardware = validate(HardwarePreset, {**hardware.model_dump(), **patch}, source, "hardware")
    check_caps(hardware, source, "hardware")
    return hardware


def _model_spec(model_id: str, spec: ModelSpec, patch: dict[str, Any] | None, source: str) -> ModelSpec:
    """The models.yml entry with the profile's params for it, validated by its family."""
    from .. import families

    if not patch:
        return spec
    params = {**spec.params, **patch}
    validate(families.REGISTRY.get(spec.family).params_model, params, source, f"models.{model_id}.params")
    return spec.model_copy(update={"params": params})


def _check_columns(prof: Profile, dataset: DatasetConfig, corpora: dict[str, CorpusConfig], source: str, common: CommonConfig) -> set[str]:
    """split.group_by and compare_by name columns of the documents (else the view fails after parsing).
    Returns the columns named that the view derives from the date (core/periods.py): `legislature`
    needs the table of configs/common/legislatures.yml."""
    from ..periods import PERIOD_COLUMNS

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
        if column == "legislature" and not common.legislatures:
            raise ConfigError(
                where,
                key,
                f"column 'legislature' is derived from each document's date with the table of {LEGISLATURES_FILE}, "
                "which is missing or empty: add it (legislatures: {<number>: {start: YYYY-MM-DD, end: YYYY-MM-DD}})",
            )
    return {column for _, _, column in named if column in PERIOD_COLUMNS}
