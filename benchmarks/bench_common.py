"""What every benchmark script does last: the figures to --json, the temporary project removed
(or kept with --keep). The scripts run as files, so this folder is on their sys.path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def finish(args: Any, results: dict[str, Any], tmp: Path, console: Any) -> int:
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if args.keep:
        console.print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0
