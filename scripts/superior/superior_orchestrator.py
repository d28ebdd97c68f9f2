"""The spec's entry point (`python -m scripts.superior.superior_orchestrator --exp-config …`), an
alias of `pepm sweep` with the same options (--parallel, --max-ram-gb, --max-runs, --resume, --dry-run)."""

import sys

from pepm_assets.cli import app

if __name__ == "__main__":
    sys.exit(app(["sweep", *sys.argv[1:]]))
