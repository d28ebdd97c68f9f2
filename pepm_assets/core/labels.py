"""Ideology label maps (spec §3): a conceptual `ideology.yml` -> views.

`ideology.yml` places each parliamentary group in a global category (far_left ... far_right) and
an intra-wing cluster, per corpus where names differ; `ideology_actors.yml` corrects individual
actors (non-attached deputies, mostly). A *view* reads one of those fields:

- `category` (ideology_global), `wing` (left_right), `cluster` restricted to a wing (left_intra,
  right_intra), or `meta:<column>` (e.g. the MPT final vote).

Every document either gets a label or an exclusion reason (chair_speaker, no_group, ...): nothing
is dropped silently, and the counts by reason go into meta_view.json.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from pydantic import Field, model_validator

from .config.loading import _rel, load_yaml, validate
from .config.schema import ConfigError, Strict


class GroupEntry(Strict):
    category: str
    cluster: str
    note: str = ""


class ActorEntry(Strict):
    category: str | None = None
    cluster: str | None = None
    exclude: str | None = Field(None, description="exclusion reason code instead of a label")
    note: str = ""


class ViewSpec(Strict):
    field: str = Field(description="category | wing | cluster | meta:<column>")
    wing: str | None = None
    values: list[str] | None = None
    description: str = ""


class LabelMap(Strict):
    categories: list[str]
    wings: dict[str, list[str]]
    groups: dict[str, GroupEntry]
    corpus_groups: dict[str, dict[str, GroupEntry]] = {}
    excluded_groups: dict[str, str] = {}
    excluded_roles: dict[str, str] = {}
    actors_file: str | None = None
    actors: dict[str, dict[str, ActorEntry]] = {}
    views: dict[str, ViewSpec]
    fingerprint: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> LabelMap:
        known = set(self.categories)
        for wing, cats in self.wings.items():
            bad = set(cats) - known
            if bad:
                raise ValueError(f"wings.{wing}: unknown categories {sorted(bad)}")
        for scope, table in [("groups", self.groups), *[(f"corpus_groups.{c}", t) for c, t in self.corpus_groups.items()]]:
            for name, entry in table.items():
                if entry.category not in known:
                    raise ValueError(f"{scope}.{name}.category: unknown category {entry.category!r}")
        for corpus, table in self.actors.items():  # a typo here would otherwise become a class of its own
            for name, entry in table.items():
                if entry.category is not None and entry.category not in known:
                    raise ValueError(f"actors.{corpus}.{name}.category: unknown category {entry.category!r} (known: {sorted(known)})")
        for name, view in self.views.items():
            if view.field not in ("category", "wing", "cluster") and not view.field.startswith("meta:"):
                raise ValueError(f"views.{name}.field: expected category | wing | cluster | meta:<column>, got {view.field!r}")
            if view.wing is not None and view.wing not in self.wings:
                raise ValueError(f"views.{name}.wing: unknown wing {view.wing!r}")
            if view.values == []:  # every document would be excluded, found only after parsing
                raise ValueError(f"views.{name}.values: empty list, no document could get a label (leave the key out to keep every value)")
        return self

    def wing_of(self, category: str) -> str | None:
        for wing, cats in self.wings.items():
            if category in cats:
                return wing
        return None


class _ActorsFile(Strict):
    actors: dict[str, dict[str, ActorEntry]] = {}


def load_label_map(path: Path, root: Path) -> LabelMap:
    raw = load_yaml(path, root)
    digest = hashlib.sha256(path.read_bytes())
    actors_name = raw.get("actors_file")
    if actors_name:
        actors_path = path.parent / actors_name
        actors = validate(_ActorsFile, load_yaml(actors_path, root), _rel(actors_path, root))
        raw["actors"] = {c: {a: e.model_dump() for a, e in t.items()} for c, t in actors.actors.items()}
        digest.update(actors_path.read_bytes())
    raw["fingerprint"] = digest.hexdigest()[:16]
    try:
        return validate(LabelMap, raw, _rel(path, root))
    except ConfigError as exc:
        # model-level checks come back as "Value error, views.x.field: ..." -> keep the key
        msg = exc.message.removeprefix("Value error, ")
        key, _, rest = msg.partition(": ")
        if exc.key is None and rest:
            raise ConfigError(exc.source, key, rest) from None
        raise


# ---------------------------------------------------------------- labelling
def actor_category(label_map: LabelMap, corpus_id: str, speaker: str, group: str, role: str) -> tuple[str | None, str | None, str | None]:
    """(category, cluster, exclusion reason) of one actor in one corpus."""
    reason = label_map.excluded_roles.get(role)
    if reason:
        return None, None, reason
    override = label_map.actors.get(corpus_id, {}).get(speaker) or label_map.actors.get("*", {}).get(speaker)
    if override is not None:
        if override.exclude:
            return None, None, override.exclude
        if override.category:
            return override.category, override.cluster, None
    if not group:
        return None, None, "no_group"
    reason = label_map.excluded_groups.get(group)
    if reason:
        return None, None, reason
    entry = label_map.corpus_groups.get(corpus_id, {}).get(group) or label_map.groups.get(group)
    if entry is None:
        return None, None, "unmapped_group"
    return entry.category, entry.cluster, None


def view_label(label_map: LabelMap, view: str, category: str | None, cluster: str | None) -> tuple[str | None, str | None]:
    """(label, exclusion reason) of an actor's category/cluster in `view` (non-meta views)."""
    spec = label_map.views[view]
    if category is None:
        return None, "no_category"
    wing = label_map.wing_of(category)
    if spec.wing is not None and wing != spec.wing:
        return None, "outside_view_wing"
    value = {"category": category, "wing": wing, "cluster": cluster}[spec.field]
    if value is None:
        return None, f"no_{spec.field}"
    if spec.values is not None and value not in spec.values:
        return None, "label_not_in_view"
    return value, None


def assign_labels(docs: pd.DataFrame, label_map: LabelMap, view: str) -> pd.DataFrame:
    """Add `label` and `exclusion` columns (exactly one of them is set on every row)."""
    spec = label_map.views[view]
    keys = ["corpus_id", "speaker", "group", "role"]
    actors = docs[keys].drop_duplicates()
    rows = []
    for corpus_id, speaker, group, role in actors.itertuples(index=False):
        category, cluster, reason = actor_category(label_map, corpus_id, speaker, group, role)
        label = None
        if reason is None and not spec.field.startswith("meta:"):
            label, reason = view_label(label_map, view, category, cluster)
        rows.append((corpus_id, speaker, group, role, label, reason))
    table = pd.DataFrame(rows, columns=[*keys, "label", "exclusion"])
    out = docs.merge(table, on=keys, how="left", validate="many_to_one")
    if spec.field.startswith("meta:"):
        column = spec.field.split(":", 1)[1]
        ok = out["exclusion"].isna()
        if column not in out.columns:
            out.loc[ok, "exclusion"] = f"no_{column}"
        else:
            values = out[column].fillna("").astype(str)
            allowed = values.isin(spec.values) if spec.values is not None else values.ne("")
            out.loc[ok & allowed, "label"] = values[ok & allowed]
            out.loc[ok & ~allowed & values.eq(""), "exclusion"] = f"no_{column}"
            out.loc[ok & ~allowed & values.ne(""), "exclusion"] = "label_not_in_view"
    return out


def views_table(label_map: LabelMap, corpus_id: str, actors: pd.DataFrame) -> pd.DataFrame:
    """For the actor skeleton: each actor's category and its label (or reason) in every view."""
    out = actors.copy()
    cats, clusters, reasons = [], [], []
    for speaker, group, role in actors[["speaker", "group", "role"]].itertuples(index=False):
        c, k, r = actor_category(label_map, corpus_id, speaker, group, role)
        cats.append(c or "")
        clusters.append(k or "")
        reasons.append(r or "")
    out["category"], out["cluster"], out["exclusion"] = cats, clusters, reasons
    for view, spec in label_map.views.items():
        if not spec.field.startswith("meta:"):
            out[f"view:{view}"] = [_cell(label_map, view, c, k, r) for c, k, r in zip(cats, clusters, reasons)]
    return out


def _cell(label_map: LabelMap, view: str, category: str, cluster: str, reason: str) -> str:
    if reason:
        return f"({reason})"
    label, why = view_label(label_map, view, category or None, cluster or None)
    return label or f"({why})"
