# paretotune: `make demo` runs the example study, `make test` runs the suite (every tier),
# `make test-unit` its unit tier (no Ray, no server, no subprocess; fails over 90 s).
# Both set up a virtual environment first (torch pinned to the CPU build on this machine).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

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
	RAY_AUTH_MODE=disabled $(VENV)/bin/pytest

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
