"""Drift and quality monitoring, plain Python: two sets of documents (or of a model's predictions)
compared through French, offline text descriptors, the label and the metadata, with Evidently's
stat tests; a report folder (Evidently HTML + JSON, PNG histograms, summary, alerts) per comparison.

    config.py       configs/common/drift.yml -> DriftConfig (columns, stat tests, thresholds, severities)
    descriptors.py  n_chars, n_tokens, nonletter_share, type_token_ratio, oov_share (spaCy's French vocabulary)
    report.py       compare, prediction_drift, write_alerts, load_result; DriftResult, ColumnDrift, Alert
    plots.py        the PNG histograms
    _evidently.py   the only Evidently import (telemetry off, pandas 3.1 shim), inside the functions that need it

Importing this package imports neither Evidently nor matplotlib.
"""

from .config import (
    DEFAULT_CHECKS,
    DEFAULT_COLUMNS,
    DRIFT_FILE,
    STANDARD_CHECKS,
    CheckConfig,
    ColumnRule,
    DriftConfig,
    load_drift_config,
)
from .descriptors import DESCRIPTORS, Vocabulary, load_vocabulary, text_descriptors
from .report import Alert, ColumnDrift, DriftInputError, DriftResult, compare, load_result, prediction_drift, write_alerts

__all__ = [
    "DEFAULT_CHECKS",
    "DEFAULT_COLUMNS",
    "DESCRIPTORS",
    "DRIFT_FILE",
    "STANDARD_CHECKS",
    "Alert",
    "CheckConfig",
    "ColumnDrift",
    "ColumnRule",
    "DriftConfig",
    "DriftInputError",
    "DriftResult",
    "Vocabulary",
    "compare",
    "load_drift_config",
    "load_result",
    "load_vocabulary",
    "prediction_drift",
    "text_descriptors",
    "write_alerts",
]
