# Two entry points for a new user: `make nightly` (the main job) and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup nightly test test-fast lint bench clean-state

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

setup: $(STAMP)

nightly: $(STAMP)
	$(BIN)/harness nightly

test: $(STAMP)
	$(BIN)/ruff check harness tests bench
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not llama and not chroma_server"

lint: $(STAMP)
	$(BIN)/ruff check harness tests bench

bench: $(STAMP)
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/local_fleet.py
	$(BIN)/python bench/gateway.py

clean-state:
	$(BIN)/harness fleet down || true
	rm -rf .harness
