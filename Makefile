# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install torch first (pinned; pip picks the build for this platform,
# the CPU build here) and then posereg with its extras, never letting pip replace torch.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION := 2.13.0
CONSTRAINTS := $(VENV)/constraints.txt
POSE_STEPS ?= 2
CORRECTION_STEPS ?= 2

.PHONY: demo test bench-geometry bench-losses bench-volume bench-reloc bench-real bench-real-slices train-volume train-slice device-kit clean

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

# The wheels a lent GPU machine lacks (its Python is 3.12 and has torch, Lightning, pytest), for
# benchmarks/device_session.sh: downloaded here into .device/whl (git-ignored) and carried with the
# working tree (the workplace's device tool: run(..., carry=[".device"])). SimpleITK (53 MB) is left
# out: the tree and the carried files must stay under 64 MiB, and the device checks do not need it.
DEVICE_WHEELS := monai==1.6.1 nibabel==5.4.2 nilearn==0.14.1 pydantic==2.14.4 pydantic_core==2.50.5 \
	annotated-types==0.8.0 typing-inspection==0.4.5 isal==1.9.1
device-kit:
	rm -rf .device/whl && mkdir -p .device/whl
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .device/whl $(DEVICE_WHEELS)
	du -sh .device

# The synthetic-head model both trainings draw from (built once from nilearn's MNI152 2009a maps).
runs/head_model.pt: $(VENV)/.installed
	mkdir -p runs
	$(BIN)/python -c "from posereg.data import load_atlas; from posereg.data.head_model import build_head_model, save_head_model; save_head_model(build_head_model(load_atlas()), 'runs/head_model.pt')"

# Retrain the bundled volume model on synthetic heads and rewrite its training curves. Sized for
# one GPU (the bundled model: 7-11 min on an H200, docs/benchmarks/volume_training_heads.md);
# on a CPU, lower BUDGET_MINUTES and expect a weaker model (synthesis: ~12 samples/s on 2 cores with
# data.compile_synthesis, ~4 without; configs/volume_correction_heads_finetune.yaml fine-tunes on a CPU).
WEIGHTS := src/posereg/weights/volume_pipeline_t1_64.pt
ACCELERATOR ?= gpu
BUDGET_MINUTES ?= 11
train-volume: runs/head_model.pt
	$(BIN)/python benchmarks/train_synthetic_heads.py --config configs/volume_pose_heads.yaml --head-model runs/head_model.pt \
		--budget-minutes $(BUDGET_MINUTES) --accelerator $(ACCELERATOR) --output runs/heads/pose
	$(BIN)/python benchmarks/train_synthetic_heads.py --config configs/volume_correction_heads.yaml --head-model runs/head_model.pt \
		--budget-minutes $(BUDGET_MINUTES) --accelerator $(ACCELERATOR) --output runs/heads/correction
	$(BIN)/posereg bundle --pose runs/heads/pose/model.pt --correction runs/heads/correction/model.pt \
		--pose-steps $(POSE_STEPS) --correction-steps $(CORRECTION_STEPS) --half --output $(WEIGHTS)
	$(BIN)/python benchmarks/training_curves.py runs/heads/pose runs/heads/correction --output docs/benchmarks/volume_training_heads.md

# Train the slice model on slices of synthetic heads (only the slices' pixels are rendered, so it
# trains on a CPU: 66 min on 2 cores gave 66 degrees mean validation error, too weak to bundle;
# docs/benchmarks/slice_training_log.md). Writes runs/slice_heads/model.pt (locate-slice --model).
SLICE_ACCELERATOR ?= cpu
SLICE_BUDGET_MINUTES ?= 70
train-slice: runs/head_model.pt
	$(BIN)/python benchmarks/train_synthetic_heads.py --config configs/slice_pose_heads.yaml --head-model runs/head_model.pt \
		--budget-minutes $(SLICE_BUDGET_MINUTES) --accelerator $(SLICE_ACCELERATOR) --output runs/slice_heads
	$(BIN)/python benchmarks/training_curves.py runs/slice_heads --title "Training curves of the slice model on synthetic heads" --output docs/benchmarks/slice_training_heads.md

# posereg register on real scans that packages ship (about an hour here; needs the bench extra for ANTs).
bench-real: $(VENV)/.bench
	$(BIN)/python benchmarks/real_scans.py --output docs/benchmarks/real_scans.md

# posereg locate-slice on slices of those real scans (run bench-real first: it stores their reference
# alignments), with the bundled slice model (SLICE_MODEL=runs/slice_heads/model.pt for a new run's).
SLICE_MODEL ?= src/posereg/weights/slice_t1_64.pt
bench-real-slices: $(VENV)/.bench
	$(BIN)/python benchmarks/real_slices.py --model $(SLICE_MODEL) --output docs/benchmarks/real_slices.md --figure docs/benchmarks/real_slices.png

# Salehi et al.'s Table 2/3 experiment with the bundled model (about 30 min here).
bench-volume: $(VENV)/.installed
	$(BIN)/python benchmarks/volume_registration.py --model $(WEIGHTS) --mse-model runs/pose/model_after_mse.pt \
		--output docs/benchmarks/volume_registration.md

# Kendall & Cipolla / Hou et al. loss comparison on the two synthetic scenes (about 45 min here).
bench-reloc: $(VENV)/.installed
	$(BIN)/python benchmarks/relocalisation.py --output docs/benchmarks/relocalisation.md

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
