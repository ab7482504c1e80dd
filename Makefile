# The README's two commands: `make run` (the local stack) and `make test` (the test suite).
# Each creates .venv/ at the repository root when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint mutate mutate-sample bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run: pyproject.toml setup.py src/microforum/lb/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test environment from the lock file (every file checked against its hash; CI runs this),
# then the project itself; requirements/update.sh regenerates the lock from pyproject.toml.
$(VENV)/.test: pyproject.toml setup.py src/microforum/lb/_speedups.c requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes --requirement requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.run

# The load balancer compiled with mypyc when a C compiler and Python headers are here (else one
# line, and it runs interpreted); `up` uses a build only if it matches the source exactly.
$(VENV)/.native: pyproject.toml | $(VENV)/.run
	$(BIN)/python -m pip install --quiet -e '.[native]'
	touch $@

# Serves at once: a missing compiled build is made in the background for the next start (`up`
# says in one line whether it runs compiled or interpreted; docs/operations.md).
run: $(VENV)/.native
	$(BIN)/python -m microforum.lb.native --background
	$(BIN)/microforum up

test: $(VENV)/.test
	$(BIN)/python -m pytest

lint: $(VENV)/.test
	$(BIN)/ruff check src tests bench mutation
	$(BIN)/ruff format --check src tests bench mutation
	$(BIN)/mypy

# Mutation testing of the pure cores listed in mutation/modules.toml, each against its own unit
# tests (docs/testing.md); writes docs/mutation-report.md, fails under 95 % killed in a module.
mutate: $(VENV)/.test
	$(BIN)/python mutation/run.py

# CI's bounded pass: a fixed-seed sample of each module's mutants; fails on a survivor that
# docs/mutation-report.md does not list.
mutate-sample: $(VENV)/.test
	$(BIN)/python mutation/run.py --sample 30

# Benchmarks against the original architecture (issue 6): bench/REPORT.md and its plots.
bench: $(VENV)/.native
	bench/setup.sh
	$(BIN)/python -m microforum.lb.native --if-possible
	$(BIN)/python bench/run.py

bench-quick: $(VENV)/.native
	bench/setup.sh
	$(BIN)/python -m microforum.lb.native --if-possible
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .microforum data
