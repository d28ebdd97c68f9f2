"""The one place that imports Evidently (a heavy library: ~2-4 s, plotly, statsmodels, litestar):
only when a report is built, never when pepm_assets is imported.

Before the import:

- usage telemetry off. Evidently sends usage events (iterative-telemetry) from its UI service and
  its legacy collector, which pepm never starts; `DO_NOT_TRACK=1` and
  `EVIDENTLY_DISABLE_TELEMETRY=1` turn both senders off anyway, in case a later version sends from
  elsewhere. What pepm calls (Report.run, Snapshot.save_html / dict) opens no connection and
  downloads nothing: pepm_assets_tests/test_drift_core.py runs it with every socket connection and
  name lookup made to fail, in this process and in a fresh interpreter.
- pandas >= 3.1 compatibility. Evidently 0.7.23 (the latest release) imports the private
  `pandas.core.dtypes.common.infer_dtype_from_object` at import time, which pandas 3.1 removed, so
  `import evidently` fails. Where it is missing pepm puts back an equivalent (the numpy scalar type
  of a dtype). Its only caller is Evidently's legacy `TestColumnsType`, which pepm does not use.

`gated_method` registers, in Evidently's stat-test registry, "a distance, counted as drift only when
a two-sample test is also significant" (a column rule's `p_value`), so that Evidently's own report,
its drift table and its count of drifted columns give pepm's verdicts.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

_API: SimpleNamespace | None = None


def _infer_dtype_from_object(dtype: Any) -> type:
    import numpy as np
    import pandas as pd

    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        return dtype
    try:
        return pd.api.types.pandas_dtype(dtype).type
    except TypeError:
        return np.object_


def evidently() -> SimpleNamespace:
    """Evidently's report API (Report, Dataset, DataDefinition, DataDriftPreset, version), imported once."""
    global _API
    if _API is None:
        os.environ.setdefault("DO_NOT_TRACK", "1")  # any value turns it off
        os.environ["EVIDENTLY_DISABLE_TELEMETRY"] = "1"  # only "1" does
        import pandas.core.dtypes.common as dtypes_common

        if not hasattr(dtypes_common, "infer_dtype_from_object"):
            dtypes_common.infer_dtype_from_object = _infer_dtype_from_object  # type: ignore[attr-defined]

        with warnings.catch_warnings():  # deprecation notices of Evidently's dependencies (plotly, litestar) on import
            warnings.simplefilter("ignore")
            import evidently as ev
            from evidently.presets import DataDriftPreset

        _API = SimpleNamespace(
            Report=ev.Report, Dataset=ev.Dataset, DataDefinition=ev.DataDefinition, DataDriftPreset=DataDriftPreset, version=ev.__version__
        )
    return _API


def two_sample_p_value(reference: Any, current: Any, kind: str) -> float:
    """p-value of a two-sample test that both sides come from one distribution: Kolmogorov-Smirnov
    (numerical) or chi-square on the contingency table of category counts (categorical); NaN dropped.
    1.0 where there is nothing to test (one category in all)."""
    import numpy as np
    import pandas as pd
    from scipy import stats

    ref, cur = pd.Series(reference).dropna(), pd.Series(current).dropna()
    if ref.empty or cur.empty:
        return 1.0
    if kind == "numerical":
        return float(stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float)).pvalue)
    table = pd.concat([ref.astype(str).value_counts(), cur.astype(str).value_counts()], axis=1).fillna(0).to_numpy()
    if table.shape[0] < 2:
        return 1.0
    return float(stats.chi2_contingency(np.asarray(table, dtype=float), correction=False).pvalue)


def gated_method(method: str, p_value: float) -> str:
    """The name of a stat test, registered in Evidently once, whose score is `method`'s (a distance)
    and which counts as drift when that distance passes its threshold AND `two_sample_p_value` is
    below `p_value`: a difference both large enough to matter and too large to be sampling noise."""
    evidently()
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    name = f"{method}_if_p<{p_value:g}"
    if name in registry._registered_stat_tests:
        return name
    bases = registry._registered_stat_tests[method]
    kinds = {ColumnType.Numerical: "numerical", ColumnType.Categorical: "categorical"}

    def gated(reference: Any, current: Any, feature_type: Any, threshold: float) -> tuple[float, bool]:
        base = bases[feature_type](reference, current, feature_type, threshold)
        significant = two_sample_p_value(reference, current, kinds[feature_type]) < p_value
        return base.drift_score, bool(base.drifted and significant)

    any_base = next(iter(bases.values()))
    test = registry.StatTest(
        name=name,
        display_name=f"{any_base.display_name} (drift if also two-sample p < {p_value:g})",
        allowed_feature_types=list(bases),
        default_threshold=any_base.default_threshold,
    )
    registry.register_stattest(test, default_impl=gated)
    return name


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silences the deprecation warnings Evidently's own code raises under pandas 3.1 / numpy 2.4
    (`dropna(inplace=...)`, `numpy.core`): they are about Evidently, not about the data."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"(evidently|plotly)(\.|$)")
        yield
