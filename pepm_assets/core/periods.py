"""Time columns of documents: `year` and `legislature`, derived from each document's `date`.

Derived when a view is built (prepare.load_docs), not when a corpus is parsed: the parsed corpora
(docs.parquet, their format and versions) stay as they are, and the legislature table
(configs/common/legislatures.yml) can be corrected without parsing anything again. They are
columns like the dialects' own: `analysis.compare_by: [year]`, `split.group_by: legislature`.

- `year`: the year of the date, an integer (pandas Int64), whatever the date's precision.
- `legislature`: the number of the Assemblée nationale's legislature in session on that date,
  from the table; a date known only to the month or year counts only when the whole month or
  year falls within one legislature. Outside every legislature (before the table, or between a
  dissolution and the next Assembly's first sitting), none.

Dates are ISO 8601 as TEI's @when writes them: YYYY, YYYY-MM, YYYY-MM-DD, optionally followed by
a time (YYYY-MM-DDThh:mm:ss). An empty date, or one that is not of these forms, gives nulls; the
view's meta_view.json counts them (`describe`).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from .config.schema import Legislature

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pandas as pd

PERIOD_COLUMNS = ("year", "legislature")
_ISO = re.compile(r"^\s*(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:[T ].*)?\s*$")


def date_span(text: Any) -> tuple[date, date] | None:
    """The first and last day an ISO date (or year, or month) can mean; None when empty or unreadable."""
    if not isinstance(text, str):
        return None
    match = _ISO.match(text)
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if month is None:
            return date(year, 1, 1), date(year, 12, 31)
        if day is None:
            return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])
        return date(year, month, day), date(year, month, day)
    except ValueError:  # month 13, 31 February, year 0
        return None


def legislature_of(span: tuple[date, date] | None, table: Mapping[int, Legislature]) -> int | None:
    """The legislature whose days hold the whole span (an open `end`: in session to this day)."""
    if span is None:
        return None
    first, last = span
    for number, leg in table.items():
        if leg.start <= first and (leg.end is None or last <= leg.end):
            return int(number)
    return None


def add_period_columns(docs: pd.DataFrame, legislatures: Mapping[int, Legislature] | None) -> pd.DataFrame:
    """`docs` with `year` and, when a legislature table is given, `legislature` (Int64, null where the
    date says nothing), computed once per distinct date. A column of that name the corpus already
    has (a dialect's own field) is kept as it is."""
    import pandas as pd

    dates = docs["date"] if "date" in docs.columns else pd.Series("", index=docs.index)
    spans = {d: date_span(d) for d in pd.unique(dates.fillna(""))}
    if "year" not in docs.columns:
        years = {d: (s[0].year if s is not None else None) for d, s in spans.items()}
        docs["year"] = pd.array(dates.fillna("").map(years), dtype="Int64")
    if legislatures is not None and "legislature" not in docs.columns:
        numbers = {d: legislature_of(s, legislatures) for d, s in spans.items()}
        docs["legislature"] = pd.array(dates.fillna("").map(numbers), dtype="Int64")
    return docs


def describe(docs: pd.DataFrame) -> dict[str, Any]:
    """meta_view.json's account of the view's dates: documents without a date, with a date that
    could not be read, dated but outside every legislature, and the documents per year."""
    import pandas as pd

    dates = docs["date"].fillna("").astype(str).str.strip() if "date" in docs.columns else pd.Series("", index=docs.index)
    empty = dates.eq("")
    unreadable = ~empty & (docs["year"].isna() if "year" in docs.columns else True)
    out: dict[str, Any] = {
        "n_docs": len(docs),
        "no_date": int(empty.sum()),
        "unreadable_date": int(unreadable.sum()),
    }
    if "legislature" in docs.columns:
        out["outside_legislatures"] = int((docs["legislature"].isna() & ~empty & ~unreadable).sum())
    if "year" in docs.columns:
        out["docs_per_year"] = {str(y): int(n) for y, n in docs["year"].dropna().value_counts().sort_index().items()}
    return out
