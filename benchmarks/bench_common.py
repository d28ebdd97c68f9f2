"""What the benchmark scripts share: models.yml cut to the installed families, and what each does
last (the figures to --json, the temporary project removed or kept with --keep). The scripts run as files, so this folder is on their sys.path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def drop_unregistered_models(root: Path) -> list[str]:
    """models.yml of the temporary project without the models whose family is not installed here
    (the hf family without torch): the ids dropped."""
    import yaml

    from pepm_assets.core import families

    models_yml = root / "configs" / "common" / "models.yml"
    models = yaml.safe_load(models_yml.read_text(encoding="utf-8"))
    unknown = [m for m, spec in models["models"].items() if spec.get("family") not in families.REGISTRY]
    if unknown:
        for m in unknown:
            del models["models"][m]
        models_yml.write_text(yaml.safe_dump(models, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return unknown


def finish(args: Any, results: dict[str, Any], tmp: Path, console: Any) -> int:
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if args.keep:
        console.print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
