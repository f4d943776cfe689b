# Set-up and everyday commands. `make demo` and `make test` install everything they need into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

.PHONY: install test test-all lint demo paper-table bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PYTEST) -m "not slow"

test-all: install
	$(PYTEST)

lint: install
	$(BIN)/python -m ruff check mmeval tasks model_adapters tests || true

demo: install
	$(BIN)/python -m mmeval.demo

paper-table: install
	$(BIN)/mmeval report paper --paper vl-mamba --results results/runs --out reports
	$(BIN)/mmeval report paper --paper cobra --results results/runs --out reports

bench: install
	$(BIN)/mmeval bench --help

clean:
	rm -rf $(VENV) build *.egg-info
