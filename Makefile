# paretotune: `make demo` runs the example study, `make test` runs the suite (every tier),
# `make test-unit` its unit tier (no Ray, no server, no subprocess; fails over 90 s).
# Both set up a virtual environment first (torch pinned to the CPU build on this machine).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# `make test`'s pytest-xdist workers, each with its own session Ray, a test file to each
# (its module fixtures start once). Most integration and system tests wait on processes
# they started (a Ray node, a server, a CLI): 3 workers keep 2 cores busy (on the 2-core
# machine, beside another user's benchmarks, all tiers took 8.8 min with 3, 11.9 with 2).
TEST_WORKERS ?= 3

.PHONY: setup demo test test-unit lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0   # first and pinned: any other spec pulls GBs of CUDA wheels
	$(PIP) -e ".[dev]"
	touch $@

demo: setup
	RAY_AUTH_MODE=disabled $(VENV)/bin/paretotune run spaces/examples/digits.yaml

test: lint
	RAY_AUTH_MODE=disabled $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

# What a developer runs while working: the tests tests/conftest.py tiers `unit`. The run
# fails when it takes more than $$PARETOTUNE_UNIT_BUDGET_S seconds (90 unless set).
test-unit: setup
	RAY_AUTH_MODE=disabled $(VENV)/bin/pytest -m unit

# mypy reads the package as it is installed (`paretotune` = search/ with spaces/ and
# objectives/ inside), from links to the sources under build/typecheck.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	rm -rf build/typecheck && mkdir -p build/typecheck/paretotune
	for entry in search/*; do ln -s "$(CURDIR)/$$entry" build/typecheck/paretotune/; done
	ln -s "$(CURDIR)/spaces" "$(CURDIR)/objectives" build/typecheck/paretotune/
	$(VENV)/bin/mypy

clean:
	rm -rf mlflow.db mlartifacts paretotune.journal*
