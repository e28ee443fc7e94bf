# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch first (pinned; pip picks the build for this platform,
# the CPU build here) and then posereg with its extras, never letting pip replace torch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
CONSTRAINTS := $(VENV)/constraints.txt
POSE_STEPS ?= 2
CORRECTION_STEPS ?= 1

.PHONY: demo test bench-geometry bench-losses bench-volume bench-reloc train-volume clean

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

# Retrain the bundled volume model (about 30 min on a 2-core CPU) and rewrite its training curves.
WEIGHTS := src/posereg/weights/volume_pipeline_t1_64.pt
train-volume: $(VENV)/.installed
	$(BIN)/posereg train volume --config configs/volume_pose.yaml --output runs/pose --quiet
	$(BIN)/posereg train volume --config configs/volume_correction.yaml --output runs/correction --quiet
	$(BIN)/posereg bundle --pose runs/pose/model.pt --correction runs/correction/model.pt \
		--pose-steps $(POSE_STEPS) --correction-steps $(CORRECTION_STEPS) --half --output $(WEIGHTS)
	$(BIN)/python benchmarks/training_curves.py runs/pose runs/correction --output docs/benchmarks/volume_training.md

# Salehi et al.'s Table 2/3 experiment with the bundled model (about 30 min here).
bench-volume: $(VENV)/.installed
	$(BIN)/python benchmarks/volume_registration.py --model $(WEIGHTS) --mse-model runs/pose/model_after_mse.pt \
		--output docs/benchmarks/volume_registration.md

# Kendall & Cipolla / Hou et al. loss comparison on the two synthetic scenes (about 45 min here).
bench-reloc: $(VENV)/.installed
	$(BIN)/python benchmarks/relocalisation.py --output docs/benchmarks/relocalisation.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
