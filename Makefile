# paretotune: `make demo` runs the example study, `make test` runs the suite.
# Both set up a virtual environment first (torch pinned to the CPU build on this machine).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0   # first and pinned: any other spec pulls GBs of CUDA wheels
	$(PIP) -e ".[dev]"
	touch $@

demo: setup
	RAY_AUTH_MODE=disabled $(VENV)/bin/paretotune run spaces/examples/digits.yaml

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	RAY_AUTH_MODE=disabled $(VENV)/bin/pytest

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

clean:
	rm -rf mlflow.db mlartifacts paretotune.journal
