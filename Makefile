# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch first (pinned; pip picks the build for this platform,
# the CPU build here) and then posereg with its extras, never letting pip replace torch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
CONSTRAINTS := $(VENV)/constraints.txt

.PHONY: demo test bench-geometry bench-losses clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	echo "torch==$(TORCH_VERSION)" > $(CONSTRAINTS)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test]"
	touch $@

$(VENV)/.bench: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[test,bench]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/posereg demo

test: $(VENV)/.installed
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench-geometry: $(VENV)/.bench
	$(BIN)/python benchmarks/geometry.py --output docs/benchmarks/geometry.md

bench-losses: $(VENV)/.installed
	$(BIN)/python benchmarks/losses_toy.py --output docs/benchmarks/losses_toy.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
