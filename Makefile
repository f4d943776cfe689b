# Set-up and everyday commands. `make demo` and `make test` install everything they need into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

# Tests marked `gpu` need CUDA: selected where torch sees a GPU, deselected elsewhere (never skipped).
# Evaluated when a recipe runs, after the install. Override with `make test-all GPU=1` (or GPU=0).
GPU ?= $(shell $(BIN)/python -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
NO_GPU_TESTS = $(filter-out 1,$(GPU))

.PHONY: install test test-all lint demo demo-train paper-table bench clean

# The library's dependencies are ranges (pyproject.toml); constraints.txt holds the exact releases of the
# dev/CI machines (they lie on their disk), so `make install` needs no download for torch.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The quick loop: everything but the tests marked slow (about two minutes on 2 cores).
test: install
	$(PYTEST) -m "not slow$(if $(NO_GPU_TESTS), and not gpu)"

# The gate (.ci/run): every test, the slow ones included.
test-all: install
	$(PYTEST) $(if $(NO_GPU_TESTS),-m "not gpu")

lint: install
	$(BIN)/ruff check mmeval tasks model_adapters tests bench

demo: install
	$(BIN)/python -m mmeval.demo

# Retrain the shipped demo models from scratch (both side by side, ~10 min on 2 CPU cores) and say whether
# they equal mmeval/synth/demo_weights/ bit for bit; REPLACE=1 makes the result the shipped weights.
demo-train: install
	$(BIN)/python -m mmeval.synth.demo_train $(if $(filter 1,$(REPLACE)),--replace)

paper-table: install
	$(BIN)/mmeval report paper --paper vl-mamba --results results/runs --out reports
	$(BIN)/mmeval report paper --paper cobra --results results/runs --out reports
	$(BIN)/mmeval report html --results results/runs --out reports

# A real benchmark, small: tiny VL-Mamba and Cobra on the CPU (a few seconds each), its table printed.
# The full-size GPU benchmark: `mmeval bench --out bench.json` (docs/performance.md).
bench: install
	$(BIN)/mmeval bench --tiny --device cpu --out .cache/bench/tiny.json

clean:
	rm -rf $(VENV) build *.egg-info
