# The two commands of the README. Each sets up everything it needs on a fresh machine.
VENV   ?= .venv
PYTHON ?= $(shell command -v python3.11 || command -v python3)
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fedxnor-installed
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test setup sysdeps lint clean

demo: setup
	$(BIN)/fedxnor flow

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: sysdeps $(STAMP)

sysdeps:
	@bash scripts/sysdeps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install -q -e '.[dev,qonnx]'
	@touch $@

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf runs build sim_build .pytest_cache
