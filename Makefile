# The README's commands: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= 2

.PHONY: env demo demo-consortium test test-all lint bench lock clean schemas

env: $(STAMP)

$(STAMP): requirements.lock pyproject.toml tools/system-packages.sh
	bash tools/system-packages.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) reports/demo/report.html
	@echo "The demo report is at reports/demo/report.html"

demo-consortium: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/consortium.yaml
	@echo "The pooled report is at reports/consortia/goals_network/pooled.html"

# The tests run in one process per core (pytest-xdist), a test file's tests in one process, so its
# module fixtures (a workflow run, a SLURM cluster) are made once.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

test-all: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile --runslow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src tests workflow/scripts
	$(BIN)/snakemake --lint

# `make bench SIZES=1000000` benchmarks the sizes given (a million clients: opt-in, about an hour).
bench: $(STAMP)
	$(BIN)/python -m accord.bench $(if $(SIZES),--clients $(SIZES))

# Update the pinned versions on purpose: resolve the ranges in pyproject.toml afresh.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check setuptools wheel -e '.[dev]'
	(echo "# Exact versions installed by 'make'; regenerate deliberately with 'make lock'."; \
	 .lock-venv/bin/python -m pip freeze --all --exclude-editable | grep -v -E '^pip==') > requirements.lock
	rm -rf .lock-venv

clean:
	rm -rf results reports logs data/demo data/goals_network .snakemake

schemas: $(STAMP)
	$(BIN)/python -c "from accord.core.contract import export_schemas; export_schemas('data/schemas')"
