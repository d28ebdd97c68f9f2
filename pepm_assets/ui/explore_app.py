"""`pepm explore`: the corpus explorer, a Streamlit page over core/explore.py (which reads the files;
this only draws). Run by `streamlit run` (pepm explore), with PEPM_ROOT naming the project.

The sidebar picks what to look at (the parsed corpora, or a prepared dataset x view and one of the
models evaluated on it) and the filters; the page shows how many documents match, the model's
accuracy on those it scored, a table of them and the full text of the one picked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from pepm_assets.core import explore
from pepm_assets.core.config import ConfigError, project_root

MAX_ROWS = 1000  # rows put in the table (the count says how many match)
PREVIEW = 160  # characters of a text in the table
NO_VIEW = "parsed corpora (no view)"
NO_MODEL = "(none)"
FILTER_KEYS = ("model", "corpora", "speakers", "groups", "labels", "splits", "dates", "tokens", "doc")


@st.cache_data(show_spinner="reading documents…", max_entries=8)
def _documents(root: str, view_key: str | None, model: int | None, stamp: tuple) -> pd.DataFrame:
    """Cached per (view, model) until one of the files read changes (`stamp`)."""
    inv = explore.inventory(Path(root))
    view = next(v for v in inv.views if v.key == view_key) if view_key else None
    evaluation = inv.evaluations_on(view)[model] if view is not None and model is not None else None
    return explore.load_documents(inv, view, evaluation)


@st.cache_data(show_spinner=False, max_entries=16)
def _texts(root: str, rows: pd.DataFrame, stamp: tuple) -> dict[str, str]:
    return explore.read_texts(explore.inventory(Path(root)), rows)


def _clear_filters() -> None:
    """Another view: other speakers, labels, dates; the filters and the model start again."""
    for key in FILTER_KEYS:
        st.session_state.pop(key, None)


def _counted(frame: pd.DataFrame, column: str) -> tuple[list[str], dict[str, int]]:
    counts = frame[column].value_counts()
    return sorted(counts.index), counts.to_dict()


def _multiselect(label: str, frame: pd.DataFrame, column: str, key: str) -> tuple[str, ...]:
    options, counts = _counted(frame, column)
    chosen = st.sidebar.multiselect(label, options, key=key, format_func=lambda v: f"{v or '(none)'} ({counts[v]:,})", placeholder="all")
    return tuple(chosen)


def _dates(frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """A date range; the full range (untouched) filters nothing, so undated documents stay."""
    days = pd.to_datetime(frame["date"].astype(str).str[:10], format="%Y-%m-%d", errors="coerce").dropna()
    if days.empty:
        return None, None
    low, high = days.min().date(), days.max().date()
    picked = st.sidebar.date_input("Date", value=(low, high), min_value=low, max_value=high, key="dates", format="YYYY-MM-DD")
    picked = tuple(picked) if isinstance(picked, (tuple, list)) else (picked,)
    start = picked[0] if picked else low
    end = picked[1] if len(picked) > 1 else high
    return (start.isoformat() if start > low else None), (end.isoformat() if end < high else None)


def _tokens(frame: pd.DataFrame) -> tuple[int | None, int | None]:
    tokens = pd.to_numeric(frame["n_tokens"], errors="coerce").dropna()
    if tokens.empty or tokens.min() == tokens.max():
        return None, None
    low, high = int(tokens.min()), int(tokens.max())
    start, end = st.sidebar.slider("Length (tokens)", low, high, (low, high), key="tokens")
    return (start if start > low else None), (end if end < high else None)


def main() -> None:
    st.set_page_config(page_title="pepm explore", layout="wide")
    st.title("pepm corpus explorer")
    try:
        root = project_root()
        inv = explore.inventory(root)
    except (ConfigError, explore.ExploreError) as exc:
        st.error(str(exc))
        st.stop()
    st.caption(f"project: {root}")

    views = {v.key: v for v in inv.views}
    view_key = st.sidebar.selectbox("Documents of", [NO_VIEW, *views], index=1 if views else 0, key="view", on_change=_clear_filters)
    view = views.get(view_key)
    model = None
    if view is not None:
        evaluations = inv.evaluations_on(view)
        labels = [NO_MODEL, *(e.label for e in evaluations)]
        picked = st.sidebar.selectbox("Model (its predictions on the job set)", labels, key="model")
        model = labels.index(picked) - 1 if picked != NO_MODEL else None
        if model is not None and not inv.is_current(evaluations[model], view):
            st.warning(
                f"{evaluations[model].model_id} was evaluated on an earlier split of {view.key}: its predictions are about "
                "another job set (run `pepm evaluate` or `pepm run` for this split)."
            )
    evaluation = inv.evaluations_on(view)[model] if view is not None and model is not None else None
    try:
        frame = _documents(str(inv.root), view.key if view else None, model, explore.stamp(inv, view, evaluation))
    except explore.ExploreError as exc:
        st.error(str(exc))
        st.stop()

    st.sidebar.header("Filters")
    filters = explore.Filters(
        corpora=_multiselect("Corpus", frame, "corpus_id", "corpora"),
        speakers=_multiselect("Speaker", frame, "speaker", "speakers"),
        groups=_multiselect("Group", frame, "group", "groups"),
        labels=_multiselect("Label", frame, "label", "labels") if view is not None else (),
        splits=_multiselect("Split", frame, "split", "splits") if view is not None else (),
    )
    date_from, date_to = _dates(frame)
    min_tokens, max_tokens = _tokens(frame)
    filters = explore.Filters(
        **{**filters.__dict__, "date_from": date_from, "date_to": date_to, "min_tokens": min_tokens, "max_tokens": max_tokens}
    )
    shown = explore.filter_documents(frame, filters)

    more = f" (the table holds the first {MAX_ROWS:,})" if len(shown) > MAX_ROWS else ""
    st.markdown(f"**{len(shown):,} of {len(frame):,} documents**{more}")
    if evaluation is not None:
        scored = shown[shown["predicted"] != ""]
        if evaluation.supervised and len(scored):
            right = int(scored["correct"].sum())
            st.markdown(f"{evaluation.model_id}: {len(scored):,} of them scored, {right:,} right (accuracy {right / len(scored):.3f})")
        else:
            st.markdown(f"{evaluation.model_id}: {len(scored):,} of them scored")

    rows = shown.head(MAX_ROWS)
    texts = _texts(str(inv.root), rows[["doc_id", "corpus_id"]], explore.stamp(inv))
    table = rows.assign(text=[(texts.get(d) or "")[:PREVIEW] for d in rows["doc_id"]])
    st.dataframe(table, hide_index=True, key="table")

    if len(rows):
        doc = st.selectbox("Read a document", rows["doc_id"].tolist(), key="doc")
        row = rows[rows["doc_id"] == doc].iloc[0]
        shown_facts = ("corpus_id", "speaker", "group", "date", "n_tokens", "split", "label", "predicted", "score")
        facts = [f"{c}: {row[c]}" for c in shown_facts if c in row and not pd.isna(row[c]) and row[c] != ""]
        st.caption(" · ".join(facts))
        with st.container(border=True):
            st.text(texts.get(doc, ""))


main()
