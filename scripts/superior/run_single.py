"""The spec's entry point (`python -m scripts.superior.run_single --exp-id … --run-id …`): one planned
run of superior/<exp_id>/plan.tsv in this process (pepm_assets/core/sweep/run_single.py)."""

import sys

from pepm_assets.core.sweep.run_single import main

if __name__ == "__main__":
    sys.exit(main())
