# lipnet_pl: every target works from a fresh clone with only Python 3.11+ present.
# The project-local virtual environment (.venv) is (re)built only when pyproject.toml changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# test-min: a second environment with the LOWEST versions pyproject.toml allows for every direct
# dependency (uv's lowest-direct resolution), to prove the declared floors. uv comes from PyPI
# into that environment itself, so a fresh clone with only Python 3.11+ is enough.
VENV_MIN := .venv-min
PY_MIN := $(VENV_MIN)/bin/python
STAMP_MIN := $(VENV_MIN)/.installed
PYTEST_ARGS ?=
# make test runs the suite on this many pytest-xdist workers: the end-to-end tests wait on
# subprocesses, schedulers and sleeps, so two workers keep both cores busy on a 2-core machine.
# Each worker and the commands it starts get their share of the cores as torch threads
# (tests/conftest.py). TEST_WORKERS=0 runs it in one process (pytest-xdist's -n 0).
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

.PHONY: help install test test-quick test-e2e test-slurm test-min lint format demo bench gpu-check clean

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lipnet_pl needs Python 3.11+, found " + sys.version.split()[0] + ": set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet --progress-bar off -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the package (editable) with the dev extra

test: $(STAMP) ## Run the whole suite, unit + end-to-end, on TEST_WORKERS=2 processes (GPU tests skip without CUDA)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test-quick: $(STAMP) ## Unit tests only: no subprocess, no sleeps, no slow tests (~1 min)
	$(PY) -m pytest tests --ignore=tests/e2e -m "not slow" $(PYTEST_ARGS)

test-e2e: $(STAMP) ## Only the end-to-end tests (tests/e2e/: real commands, SLURM, signals, DDP, sweeps, streams)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test-slurm: $(STAMP) ## Only the real-SLURM tests: the sweep and the sbatch recipe (part of `test`; starts a local SLURM as root; ~2-4 min)
	$(PY) -m pytest -m slurm $(PYTEST_ARGS)

$(STAMP_MIN): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lipnet_pl needs Python 3.11+, found " + sys.version.split()[0] + ": set PYTHON=python3.11")'
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	$(PY_MIN) -m pip install --quiet --progress-bar off 'uv>=0.5'
	$(VENV_MIN)/bin/uv pip install --python $(PY_MIN) --resolution lowest-direct -e '.[dev]'
	$(VENV_MIN)/bin/uv pip freeze --python $(PY_MIN) > $(VENV_MIN)/versions.txt
	@touch $(STAMP_MIN)

test-min: $(STAMP_MIN) ## Lint + tests at the lowest dependency versions pyproject.toml allows (.venv-min; ~15 min)
	@grep -iE '^(torch|torchvision|lightning|hydra-core|omegaconf|segmentation-models-pytorch|timm|torchmetrics|wandb|tensorboard|rich|matplotlib|numpy|pillow|av|huggingface-hub|safetensors|pytest|pytest-timeout|ruff|onnx|onnxruntime|onnxscript|openvino|nncf)==' $(VENV_MIN)/versions.txt | paste -sd' '
	$(PY_MIN) -m ruff check src tests
	$(PY_MIN) -m ruff format --check src tests
	$(PY_MIN) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Ruff lint and format check, and the layering contracts (import-linter, pyproject.toml)
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests
	$(VENV)/bin/lint-imports

format: $(STAMP) ## Apply ruff fixes and formatting
	$(PY) -m ruff check --fix src tests
	$(PY) -m ruff format src tests

demo: $(STAMP) ## Synthetic LIP data -> train on CPU -> evaluate -> predict -> figures (< 10 min on 2 cores)
	$(PY) -m lipnet_pl.demo

bench: $(STAMP) ## Throughput per backend (PyTorch fp32/pt2e int8, ONNX Runtime and OpenVINO fp32/int8) of LIP-Net, lipnet_rt and peers at 473x473
	$(PY) -m lipnet_pl.bench $(BENCH_ARGS)

gpu-check: $(STAMP) ## CUDA paths, quick profile (GPU_CHECK_ARGS="--profile full" for all) -> outputs/gpu_check/<date>/gpu_check.md
	$(PY) -m lipnet_pl.workflows.gpu_check $(GPU_CHECK_ARGS)

clean: ## Remove run outputs (keeps .venv and .venv-min)
	rm -rf outputs multirun wandb lightning_logs bench_results demo_output .pytest_cache
