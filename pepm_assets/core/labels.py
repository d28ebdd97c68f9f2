"""Ideology label maps (spec §3): a conceptual `ideology.yml` -> views.

`ideology.yml` places each parliamentary group in a global category (far_left ... far_right) and
an intra-wing cluster, per corpus where names differ; `coalitions` says, per corpus, which groups
formed the government's centre bloc (and when) and the one rule applied to all of them;
`ideology_actors.yml` corrects individual actors (non-attached deputies, mostly), optionally for a
date range only. A *view* reads one of those fields:

- `category` (ideology_global), `wing` (left_right), `cluster` restricted to a wing (left_intra,
  right_intra), or `meta:<column>` (e.g. the MPT final vote).

Every document either gets a label or an exclusion reason (chair_speaker, no_group, ...): nothing
is dropped silently, and the counts by reason, and by reason x group, go into meta_view.json.
Dated rules (an actor override or a coalition membership with `from`/`to`) are read against the
document's date; a document whose date cannot say whether such a rule applies is excluded as
`no_date` rather than labelled by a guess (docs/LABELS.md).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from .config.loading import _rel, load_yaml, validate
from .config.schema import ConfigError, Strict
from .periods import date_span

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pandas as pd

NO_DATE = "no_date"  # a dated rule may apply to the document, whose date cannot say whether it does
NO_GROUP_KEY = "(none)"  # the group of a document without one, in the exclusions by group


class GroupEntry(Strict):
    category: str
    cluster: str
    note: str = ""


class DateRange(Strict):
    """`from` / `to`: ISO dates, both inclusive, either optional (open-ended)."""

    from_: date | None = Field(None, alias="from")
    to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.from_ is not None and self.to is not None and self.from_ > self.to:
            raise ValueError(f"from {self.from_} is after to {self.to}")
        return self

    @property
    def dated(self) -> bool:
        return self.from_ is not None or self.to is not None

    def covers(self, span: tuple[date, date] | None) -> bool | None:
        """True / False when the document's span of days is inside / outside the range; None when
        it cannot say (no date, or a month or year that straddles a bound)."""
        if not self.dated:
            return True
        if span is None:
            return None
        first, last = span
        lo, hi = self.from_ or date.min, self.to or date.max
        if lo <= first and last <= hi:
            return True
        if last < lo or first > hi:
            return False
        return None


class ActorEntry(DateRange):
    category: str | None = None
    cluster: str | None = None
    exclude: str | None = Field(None, description="exclusion reason code instead of a label")
    note: str = ""


class CoalitionMember(DateRange):
    note: str = ""


class Coalition(Strict):
    """One corpus's rule for the groups of the government's centre bloc: `own_class` gives every
    partner `category` (whatever its group's own category), `exclude` gives each of them the
    exclusion `reason` in every view, `none` keeps each group's own category (the members are
    then a record of who governed, nothing more)."""

    rule: Literal["own_class", "exclude", "none"]
    name: str = "government_coalition"
    category: str | None = None
    reason: str = "government_coalition"
    members: dict[str, list[CoalitionMember]] = {}
    note: str = ""

    @field_validator("members", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if isinstance(value, dict):  # `GROUP: {from: ...}` or `GROUP: null` is one range
            return {k: _as_list(v) for k, v in value.items()}
        return value


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
    coalitions: dict[str, Coalition] = {}
    actors_file: str | None = None
    actors: dict[str, dict[str, list[ActorEntry]]] = {}
    views: dict[str, ViewSpec]
    fingerprint: str = ""

    @field_validator("actors", mode="before")
    @classmethod
    def _actor_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):  # one mapping per actor, or a list of dated ones
            return {c: {a: _as_list(e) for a, e in t.items()} if isinstance(t, dict) else t for c, t in value.items()}
        return value

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
            for name, entries in table.items():
                for i, entry in enumerate(entries):
                    if entry.category is not None and entry.category not in known:
                        key = f"actors.{corpus}.{name}" + (f".{i}" if len(entries) > 1 else "")
                        raise ValueError(f"{key}.category: unknown category {entry.category!r} (known: {sorted(known)})")
                _check_disjoint(entries, f"actors.{corpus}.{name}")
        for corpus, coalition in self.coalitions.items():
            key = f"coalitions.{corpus}"
            if coalition.rule == "own_class" and coalition.category is None:
                raise ValueError(f"{key}.category: rule own_class needs the category its members get (e.g. center)")
            if coalition.category is not None and coalition.category not in known:
                raise ValueError(f"{key}.category: unknown category {coalition.category!r} (known: {sorted(known)})")
            for group, ranges in coalition.members.items():
                if group in self.excluded_groups:
                    raise ValueError(f"{key}.members.{group}: group {group} is in excluded_groups, it cannot be a coalition partner")
                _check_disjoint(ranges, f"{key}.members.{group}")
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

    def is_dated(self, corpus_id: str, speaker: str, group: str) -> bool:
        """Whether a rule of this actor / group in this corpus depends on the date."""
        entries = self.actors.get(corpus_id, {}).get(speaker) or self.actors.get("*", {}).get(speaker) or []
        coalition = self.coalitions.get(corpus_id)
        members = coalition.members.get(group, []) if coalition is not None and coalition.rule != "none" else []
        return any(e.dated for e in entries) or any(m.dated for m in members)


def _as_list(value: Any) -> Any:
    if value is None:
        return [{}]
    return value if isinstance(value, list) else [value]


def _check_disjoint(ranges: list[Any], key: str) -> None:
    """Two ranges of one actor (or coalition member) that share a day would make the answer depend
    on their order in the file: refused."""
    for i, a in enumerate(ranges):
        for j in range(i + 1, len(ranges)):
            b = ranges[j]
            if (a.from_ or date.min) <= (b.to or date.max) and (b.from_ or date.min) <= (a.to or date.max):
                raise ValueError(f"{key}: ranges {i} and {j} overlap (give each day to one entry: from / to are inclusive)")


def load_label_map(path: Path, root: Path) -> LabelMap:
    raw = load_yaml(path, root)
    digest = hashlib.sha256(path.read_bytes())
    actors_name = raw.get("actors_file")
    if actors_name:
        actors_path = path.parent / actors_name
        raw["actors"] = _load_actors(actors_path, root)
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


def _load_actors(path: Path, root: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """ideology_actors.yml, each entry validated on its own so that an error names the file and the
    actor's key (`actors.<corpus>.<actor>`, `.<i>` for the i-th range of a list)."""
    source = _rel(path, root)
    data = load_yaml(path, root)
    extra = sorted(set(data) - {"actors"})
    if extra:
        raise ConfigError(source, extra[0], "unknown key (expected: actors)")
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for corpus, table in (data.get("actors") or {}).items():
        if not isinstance(table, dict):
            raise ConfigError(source, f"actors.{corpus}", f"expected a mapping of actors, got {type(table).__name__}")
        out[corpus] = {}
        for actor, value in table.items():
            key = f"actors.{corpus}.{actor}"
            items = value if isinstance(value, list) else [value]
            if not items:
                raise ConfigError(source, key, "empty list (give at least one entry, or remove the actor)")
            try:
                entries = [
                    validate(ActorEntry, item, source, key + (f".{i}" if isinstance(value, list) else "")) for i, item in enumerate(items)
                ]
                _check_disjoint(entries, key)
            except ConfigError as exc:
                raise ConfigError(source, exc.key, exc.message.removeprefix("Value error, ")) from None
            except ValueError as exc:
                raise ConfigError(source, key, str(exc).partition(": ")[2]) from None
            out[corpus][actor] = [e.model_dump(by_alias=True) for e in entries]
    return out


# ---------------------------------------------------------------- labelling
def actor_category(
    label_map: LabelMap, corpus_id: str, speaker: str, group: str, role: str, when: str | None = ""
) -> tuple[str | None, str | None, str | None]:
    """(category, cluster, exclusion reason) of one actor in one corpus, for a document dated
    `when` (ISO; "" or None: no date). Precedence: role, actor override in force, no group,
    excluded group, coalition rule in force, the group's own entry."""
    reason = label_map.excluded_roles.get(role)
    if reason:
        return None, None, reason
    span = date_span(when) if when else None
    entries = label_map.actors.get(corpus_id, {}).get(speaker) or label_map.actors.get("*", {}).get(speaker) or []
    for override in entries:
        applies = override.covers(span)
        if applies is None:
            return None, None, NO_DATE
        if applies:
            if override.exclude:
                return None, None, override.exclude
            if override.category:
                return override.category, override.cluster, None
            break
    if not group:
        return None, None, "no_group"
    reason = label_map.excluded_groups.get(group)
    if reason:
        return None, None, reason
    entry = label_map.corpus_groups.get(corpus_id, {}).get(group) or label_map.groups.get(group)
    coalition = label_map.coalitions.get(corpus_id)
    if coalition is not None and coalition.rule != "none":
        for member in coalition.members.get(group, []):
            applies = member.covers(span)
            if applies is None:
                return None, None, NO_DATE
            if applies:
                if coalition.rule == "exclude":
                    return None, None, coalition.reason
                return coalition.category, entry.cluster if entry is not None else None, None
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
    """Add `label` and `exclusion` columns (exactly one of them is set on every row). The map is
    read once per actor, and once per actor and date only for the actors a dated rule concerns."""
    import pandas as pd

    spec = label_map.views[view]
    keys = ["corpus_id", "speaker", "group", "role"]
    dates = docs["date"].fillna("").astype(str) if "date" in docs.columns else pd.Series("", index=docs.index)
    actors = docs[keys].drop_duplicates()
    dated = [label_map.is_dated(c, s, g) for c, s, g in actors[["corpus_id", "speaker", "group"]].itertuples(index=False)]
    dated_actors = actors[dated]
    when = pd.Series("", index=docs.index)
    if not dated_actors.empty:  # the date matters to these actors only: elsewhere it stays "" (one row per actor)
        hit = docs[keys].merge(dated_actors.assign(_dated=True), on=keys, how="left")["_dated"].fillna(False).to_numpy(dtype=bool)
        when[hit] = dates[hit]
    work = docs[keys].assign(_when=when.to_numpy())
    rows = []
    for corpus_id, speaker, group, role, day in work.drop_duplicates().itertuples(index=False):
        category, cluster, reason = actor_category(label_map, corpus_id, speaker, group, role, day)
        label = None
        if reason is None and not spec.field.startswith("meta:"):
            label, reason = view_label(label_map, view, category, cluster)
        rows.append((corpus_id, speaker, group, role, day, label, reason))
    table = pd.DataFrame(rows, columns=[*keys, "_when", "label", "exclusion"])
    out = docs.assign(_when=when.to_numpy()).merge(table, on=[*keys, "_when"], how="left", validate="many_to_one")
    out = out.drop(columns=["_when"])
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
    """For the actor skeleton: each actor's category and its label (or reason) in every view. An
    actor a dated rule concerns is read at its first and its last date (`first_date`, `last_date`
    columns, when the table has them): "a -> b" where they differ."""
    out = actors.copy()
    firsts = actors["first_date"].fillna("").tolist() if "first_date" in actors.columns else [""] * len(actors)
    lasts = actors["last_date"].fillna("").tolist() if "last_date" in actors.columns else firsts
    places = []
    for (speaker, group, role), first, last in zip(actors[["speaker", "group", "role"]].itertuples(index=False), firsts, lasts):
        days = [first, last] if label_map.is_dated(corpus_id, speaker, group) and first != last else [first]
        places.append([actor_category(label_map, corpus_id, speaker, group, role, day) for day in days])
    out["category"] = [_joined(p, lambda c, k, r: c or "") for p in places]
    out["cluster"] = [_joined(p, lambda c, k, r: k or "") for p in places]
    out["exclusion"] = [_joined(p, lambda c, k, r: r or "") for p in places]
    for view, spec in label_map.views.items():
        if not spec.field.startswith("meta:"):
            out[f"view:{view}"] = [_joined(p, lambda c, k, r, v=view: _cell(label_map, v, c or "", k or "", r or "")) for p in places]
    return out


def _joined(places: list[tuple], cell: Any) -> str:
    values = list(dict.fromkeys(cell(*p) for p in places))
    return " -> ".join(values) if len(values) > 1 else values[0]


def _cell(label_map: LabelMap, view: str, category: str, cluster: str, reason: str) -> str:
    if reason:
        return f"({reason})"
    label, why = view_label(label_map, view, category or None, cluster or None)
    return label or f"({why})"


# ---------------------------------------------------------------- exclusions
class Exclusions(Counter):
    """Excluded documents by reason (the Counter itself, as before) and by reason x group
    (`by_group`: reason -> group -> n), so that a reader sees whose documents a reason removed
    (meta_view.json `excluded_by_group`). Both always sum to the same totals: every count is
    added through `add`, with the groups of the documents it counts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.by_group: dict[str, Counter] = {}

    @classmethod
    def of(cls, labelled: pd.DataFrame) -> Exclusions:
        """The exclusions of `assign_labels`' output (column `exclusion`)."""
        out = cls()
        excluded = labelled[labelled["exclusion"].notna()]
        for reason, rows in excluded.groupby("exclusion", sort=False):
            out.add(str(reason), rows)
        return out

    def add(self, reason: str, rows: pd.DataFrame) -> None:
        """Count `rows` (documents, with their `group`) under `reason`."""
        import pandas as pd

        if rows.empty:
            return
        groups = (
            rows["group"].fillna("").astype(str).replace("", NO_GROUP_KEY)
            if "group" in rows.columns
            else pd.Series(NO_GROUP_KEY, index=rows.index)
        )
        self[reason] += len(rows)
        self.by_group.setdefault(reason, Counter()).update(groups.value_counts().to_dict())

    def add_duplicates(self, before: pd.DataFrame, kept: pd.DataFrame) -> None:
        """The documents `split.drop_duplicates` removed from `before` (keeping `kept`, with its
        `text_key`): a copy whose text has a kept copy is a `duplicate_text`, one whose text has none
        was a `conflicting_duplicate` (every copy of a text the labels disagree on is removed)."""
        from .split import text_key

        dropped = before[~before.index.isin(kept.index)]
        if dropped.empty:
            return
        repeated = text_key(dropped["text"]).isin(set(kept["text_key"]))
        self.add("duplicate_text", dropped[repeated.to_numpy()])
        self.add("conflicting_duplicate", dropped[~repeated.to_numpy()])

    def table(self) -> dict[str, dict[str, int]]:
        """reason -> group -> n, reasons and groups by decreasing count."""
        return {reason: dict(self.by_group.get(reason, Counter()).most_common()) for reason, _ in self.most_common()}


def exclusions_by_group(excluded: Counter) -> dict[str, dict[str, int]]:
    """meta_view.json's `excluded_by_group` ({} for a plain Counter, which has no groups)."""
    return excluded.table() if isinstance(excluded, Exclusions) else {}


def exclusion_rows(by_group: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    """meta_view.json's `excluded_by_group` as (reason, group, n) rows, in its order."""
    return [(reason, group, n) for reason, groups in by_group.items() for group, n in groups.items()]


def exclusions_note(meta: dict[str, Any], reasons: int = 3, groups: int = 3) -> str:
    """One short line for the leaderboard: the main exclusion reasons of a view, each with its main
    groups, e.g. "label_not_in_view 816 (LREM 433, RE 79, MODEM 71), no_group 55"."""
    by_reason = meta.get("excluded_by_reason") or {}
    by_group = meta.get("excluded_by_group") or {}
    parts = []
    for reason, n in list(by_reason.items())[:reasons]:
        top = list((by_group.get(reason) or {}).items())
        shown = ", ".join(f"{g} {c}" for g, c in top[:groups]) + (", ..." if len(top) > groups else "")
        parts.append(f"{reason} {n}" + (f" ({shown})" if shown else ""))
    more = len(by_reason) - reasons
    return "; ".join(parts) + (f"; +{more} other reason{'s' if more > 1 else ''}" if more > 0 else "")


def exclusion_notes(meta_view: Path) -> list[str]:
    """The leaderboard's note on a view's exclusions (every row of its table was trained and scored on
    that view): [] when meta_view.json is missing or unreadable (the view is then stale anyway)."""
    import json

    try:
        meta = json.loads(meta_view.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    note = exclusions_note(meta)
    return (
        [f"excluded before the split ({meta.get('n_docs_labelled', '?')} of {meta.get('n_docs_in', '?')} documents kept): {note}"]
        if note
        else []
    )


def coalition_summary(label_map: LabelMap, corpus_ids: list[str]) -> dict[str, Any]:
    """meta_view.json: the coalition rule each corpus of the dataset was labelled with."""
    out: dict[str, Any] = {}
    for cid in corpus_ids:
        c = label_map.coalitions.get(cid)
        if c is None:
            out[cid] = {"rule": "none", "members": {}}
            continue
        out[cid] = {
            "rule": c.rule,
            "name": c.name,
            **({"category": c.category} if c.rule == "own_class" else {}),
            **({"reason": c.reason} if c.rule == "exclude" else {}),
            "members": {g: [_range_text(r) for r in ranges] for g, ranges in c.members.items()},
        }
    return out


def _range_text(r: DateRange) -> str:
    if not r.dated:
        return "always"
    return f"{r.from_.isoformat() if r.from_ else '...'} to {r.to.isoformat() if r.to else '...'}"
