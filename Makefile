# Liaison Exchange — the two commands of the README, and the checks around them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck schemas bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## create .venv, install, play the seed scenario
	$(BIN)/liaison demo

test: $(STAMP) lint typecheck  ## install what tests need and run the whole suite
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check schemas services tests bench
	$(BIN)/ruff format --check schemas services tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)  ## re-export the JSON Schemas after changing the models
	$(BIN)/python -m schemas.export

BENCH_ARGS ?=
bench: $(STAMP)  ## whole pipeline: figures next to this machine's raw limits (bench/results/latest.md)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
