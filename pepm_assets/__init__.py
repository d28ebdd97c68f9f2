"""pepm: TEI corpora of political speech -> labelled views -> classifiers, as Dagster assets.

`pepm_assets.core` is plain Python (no Dagster import); `pepm_assets.defs` wraps it in assets.
"""

import os

# No network at run time: MLflow 3 sends usage telemetry by default (a config fetch and event
# uploads from a background thread). Off for every pepm process and what it starts (`pepm mlflow`),
# unless the user sets the variable; Dagster's telemetry is off in dagster.yaml.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
