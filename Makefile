# pepm: `make demo` (README command 1), `make test` (README command 2), and the older interface
# `make run STAGE=pipeline PROFILE=ideo_quick SEED=7 TRAIN_PROP=0.7 OVERRIDES="split.group_by=speaker"` (prepare | train |
# evaluate | pipeline; the spec's Make variables: pepm_assets/core/make_vars.py).
PYTHON ?= python3
VENV   := .venv
PEPM   := $(VENV)/bin/pepm
DVC    := .venv-dvc/bin/dvc
STAGE    ?= pipeline
PROFILE  ?= ideo_quick
OVERRIDES ?=
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export PEPM_ROOT ?= $(CURDIR)
export PEPM_LAUNCHED_BY ?= make

.PHONY: setup demo test lint run dev mlflow bench fuzz mutation clean

# Two environments on purpose: DVC (hydra -> antlr4 4.9) and Dagster (antlr4 4.13) cannot share one.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[hf,test]"
	touch $@

$(DVC):
	$(PYTHON) -m venv .venv-dvc
	.venv-dvc/bin/pip install -q --upgrade pip
	.venv-dvc/bin/pip install -q "dvc==3.67.1"

setup: $(VENV)/.installed $(DVC)

demo: setup
	$(PEPM) demo

# the browser tests need Debian's chromium, the multi-host engine test PostgreSQL, Redis and the
# dagster-postgres / dagster-celery pins: the two scripts install them (apt, as root) or say why they cannot
test: setup
	bash pepm_assets_tests/install_browser.sh $(VENV)
	bash pepm_assets_tests/install_engine.sh $(VENV)
	$(VENV)/bin/python -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mutation testing of the core (docs/mutation.md; not in CI: hours on 2 cores), e.g. MUTATION_ARGS="--module split"
MUTATION_ARGS ?=
mutation: setup
	$(VENV)/bin/python scripts/mutation.py --jobs $$(nproc) $(MUTATION_ARGS)

# the TEI reader's long fuzz run (docs/fuzzing.md; the suite runs a short one): 10^5 inputs, ~6 min on 2 cores
fuzz: setup
	$(VENV)/bin/python scripts/fuzz_tei.py --inputs 100000 --seed 0 --allow-known --json reports/fuzz_tei/long_seed0.json

# every other variable given on make's command line (SEED=3 TRAIN_PROP=0.7 ...) goes to pepm, which maps
# the spec's Make variables onto profile parameters and refuses an unknown one (a typo is never ignored)
NOT_MAKE_VARS := STAGE PROFILE OVERRIDES PYTHON DAGSTER_HOME PEPM_ROOT
MAKE_VARS := $(filter-out $(NOT_MAKE_VARS),$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v))))

run: setup
	$(PEPM) run --stage $(STAGE) --profile $(PROFILE) $(foreach o,$(OVERRIDES),--override $(o)) $(foreach v,$(MAKE_VARS),--make-var '$(v)=$($(v))')

dev: setup
	$(PEPM) dev

mlflow: setup
	$(PEPM) mlflow

bench: setup
	$(PEPM) data import
	$(PEPM) bench extract --corpus mpt --replicas 20
	$(VENV)/bin/python benchmarks/bench_pipeline.py --replicas 10

clean:
	rm -rf data/interim data/processed models reports mlruns .dagster
