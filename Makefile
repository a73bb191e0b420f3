# lipnet_pl: every target works from a fresh clone with only Python 3.11+ present.
# The project-local virtual environment (.venv) is (re)built only when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help install test lint format demo bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lipnet_pl needs Python 3.11+, found " + sys.version.split()[0] + ": set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package (editable) with the dev extra

test: $(STAMP) ## Run the test suite (slow tests included; GPU tests skip without CUDA)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Ruff lint and format check
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

format: $(STAMP) ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix src tests
	$(PY) -m ruff format src tests

demo: $(STAMP) ## Synthetic LIP data -> train on CPU -> evaluate -> predict -> figures (< 10 min on 2 cores)
	$(PY) -m lipnet_pl.demo

bench: $(STAMP) ## Inference/training throughput of LIP-Net and smp peers at 473x473 (reduced config on CPU)
	$(PY) -m lipnet_pl.bench $(BENCH_ARGS)

clean: ## Remove run outputs (keeps .venv)
	rm -rf outputs multirun wandb lightning_logs bench_results demo_output .pytest_cache
