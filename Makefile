# Two set-up commands on a fresh machine with Python 3.11+:  `make run`  and  `make test`.
# Each creates ./.venv on first use and installs the project from pyproject.toml.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check clean compiled

$(STAMP): pyproject.toml setup.py bot/_native.c
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mmbot run $(ARGS)

# One worker per core (at most 4), a test module per worker: the socket and soak tests wait on the
# clock as much as they compute, so two workers on two cores halve the suite's wall time.
# `make test ARGS="-n 0"` runs it in one process.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadscope $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy bot
	$(BIN)/lint-imports

check: lint test

# The same bot with its pure core compiled by mypyc (setup.py: MMBOT_MYPYC); the .so files shadow the
# .py files they come from: rebuild after editing one of them, `make clean` goes back to plain Python.
compiled: $(STAMP)
	$(BIN)/python -m pip install -q "setuptools>=77"
	MMBOT_MYPYC=1 $(BIN)/python -m pip install -q --no-build-isolation -e ".[dev]"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build
	find bot -name "*.so" -delete
	rm -f *__mypyc.*.so
