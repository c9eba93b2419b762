# nnlab: `make train` (default experiment on digits) and `make test` (the test suite). Both create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# datasets are looked for (and downloads cached) here; CI points it at its shared copy
export DATA_DIR ?= $(abspath data)
export TORCHINDUCTOR_CACHE_DIR ?= $(abspath logs/.inductor)

.PHONY: install train test test-slow test-all lint format sweep-demo bench-peers clean help

help:
	@echo "make train [ARGS='model=mlp data=fashion_mnist']   train (default: ConvNet on digits)"
	@echo "make test                                         run the test suite (fast tests)"
	@echo "make test-slow / test-all                          the slow tests / everything"
	@echo "make lint | format | clean"

install: $(VENV)/.installed

# torch first and pinned: an unpinned torch (or one pulled in by another package) is a multi-GB CUDA build.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

train: install
	$(PY) train.py $(ARGS)

test: install
	$(PY) -m pytest $(ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(ARGS)

test-all: install
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports   # the layer contracts of docs/architecture.md (pyproject.toml)

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# 2 norms x 3 pools x 2 seeds on digits (two jobs at a time), then the report: summary.md, plots, report.html
ifndef SWEEP_DEMO_DIR
SWEEP_DEMO_DIR := logs/sweep-demo/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
sweep-demo: install
	$(PY) train.py experiment=sweep_demo hydra.sweep.dir=$(SWEEP_DEMO_DIR)
	$(PY) scripts/report.py sweep_dir=$(SWEEP_DEMO_DIR)

# Peer programs for side-by-side benchmarks only (the C++ fastText), in their own venv: they need numpy 1.26.
bench-peers: install
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q -r scripts/requirements-peers.txt
	$(PY) scripts/bench_fasttext.py peer_python=.venv-peers/bin/python

clean:
	rm -rf logs .pytest_cache .ruff_cache
