# checkout-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup lint typecheck imports unit test bench crds golden clean image

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python  ## create .venv and install the project with its dev, services and tracing extras
	$(BIN)/pip install -q -e '.[dev,services,tracing]'

lint:  ## ruff (lint + format check)
	$(BIN)/ruff check lib operator services hack tests
	$(BIN)/ruff format --check lib operator services hack tests

typecheck:  ## mypy --strict on checkout_operator
	$(BIN)/mypy

imports:  ## import-linter layer contracts
	$(BIN)/lint-imports

unit:  ## pytest without the real-stack tests
	$(BIN)/pytest -m 'not stack and not bench'

test: lint typecheck imports  ## everything CI runs: lint, types, layers, all tests
	$(BIN)/pytest -m 'not bench' --durations=25

bench:  ## benchmarks (print p50/p95/p99, throughput, RSS; installs the clients the Kubernetes-client comparison measures)
	$(BIN)/pip install -q -e '.[dev,services,tracing,bench-clients]'
	$(BIN)/pytest -m bench -s tests/bench

image:  ## the operator and services images (podman, no Docker; cached by content hash)
	time hack/stack build --only images

crds:  ## regenerate crds/ (and the Helm chart's copy in files/crds/, templated by templates/crds.yaml) from the API models
	$(BIN)/checkout-operator crds --output-dir crds
	cp crds/*.yaml charts/checkout-operator/files/crds/

golden:  ## regenerate the golden render outputs (review the diff!)
	$(BIN)/pytest tests/unit/test_golden.py --update-golden

clean:  ## remove caches and the venv
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# --- the three-region demo and its GameDay (hack/checkout_demo) ---
.PHONY: demo gameday demo-kind
SCENARIO ?= kill-region
REGION ?= us-east-1

demo:  ## three regions, checkouts, a GameDay (kill-region), and the promises report (< 10 min)
	PYTHONPATH=hack $(BIN)/python -m checkout_demo demo $(DEMO_ARGS)

gameday:  ## one GameDay scenario: make gameday SCENARIO=kill-region|hang-probes|slow-psp|partition-kafka REGION=us-east-1
	PYTHONPATH=hack $(BIN)/python -m checkout_demo gameday --scenario $(SCENARIO) --region $(REGION) $(DEMO_ARGS)

demo-kind:  ## for Docker users: the same fleet in kind (NOT tested here: no Docker on this machine)
	bash hack/demo-kind.sh
