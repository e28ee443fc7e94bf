#!/usr/bin/env bash
# One lent GPU, one call (the workplace's `device` tool: 15 minutes a session, 10 a command):
# the CUDA checks, then the bundled slice model's training run, whose files come back under $OUT.
#
# Here, once:   make device-kit            (wheels the GPU machine lacks, in .device/, git-ignored)
# Then:         run(command="bash benchmarks/device_session.sh", carry=[".device"], timeout_s=600)
# Dry run here: ACCELERATOR=cpu SLICE_MINUTES=1 PYTHON=.venv/bin/python OUT=/tmp/device-out bash benchmarks/device_session.sh
#
# What comes back (at most 8 files): cuda_tests.log, train_slice.log, model.pt, summary.json,
# metrics.csv, versions.txt. Afterwards, here: `make bench-real-slices SLICE_MODEL=<that model.pt>` and
# `python benchmarks/slice_quality.py --models <that model.pt> src/posereg/weights/slice_t1_64.pt ...`; if it
# beats the bundled model on both, it replaces src/posereg/weights/slice_t1_64.pt (float16:
# ModelArtifact.half), and SliceThresholds is set again from slice_quality.md.
set -u
OUT=${OUT:-/tmp/device-out}
SLICE_MINUTES=${SLICE_MINUTES:-4}
ACCELERATOR=${ACCELERATOR:-gpu}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

# The machine's Python has torch, Lightning, pytest and hypothesis, not posereg's medical-imaging
# dependencies: install the carried wheels into a folder of their own (SimpleITK is too large to
# carry and is not needed: the modules run here import it lazily or not at all).
if compgen -G ".device/whl/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .device/whl/*.whl || { echo "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:src${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi -L 2>/dev/null; "$PYTHON" -c "import torch, lightning, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.cuda.is_available())"; } | tee "$OUT/versions.txt"

CUDA_TESTS=(tests/geometry/test_on_cuda.py tests/data/test_synthesis_on_cuda.py tests/registration/test_on_cuda.py
            tests/models/test_device.py "tests/geometry/test_mismatch.py::test_cpu_and_cuda_arguments_are_a_value_error")
stamp "CUDA checks"
# The compiled-synthesis checks last (their first compilation takes a minute): the training run
# must not wait on them.
timeout 90 "$PYTHON" -m pytest -q -p no:cacheprovider "${CUDA_TESTS[@]}" -k "not compiled" >"$OUT/cuda_tests.log" 2>&1
echo "pytest exit status $?" >>"$OUT/cuda_tests.log"
tail -n 3 "$OUT/cuda_tests.log"

stamp "head model"
"$PYTHON" - <<'EOF' || { echo "head model failed"; exit 1; }
from posereg.data import load_atlas
from posereg.data.head_model import build_head_model, save_head_model

save_head_model(build_head_model(load_atlas()), "/tmp/head.pt")  # as the Makefile's runs/head_model.pt
EOF

stamp "slice training, $SLICE_MINUTES minutes"
# The run's own clock (optim.max_minutes) ends it; timeout is the backstop that keeps the copy below.
timeout $(( ${SLICE_MINUTES%.*} * 60 + 180 )) "$PYTHON" benchmarks/train_synthetic_heads.py \
    --config configs/slice_pose_heads_gpu.yaml --head-model /tmp/head.pt --budget-minutes "$SLICE_MINUTES" \
    --accelerator "$ACCELERATOR" --output runs/slice_gpu >"$OUT/train_slice.log" 2>&1
echo "training exit status $?" >>"$OUT/train_slice.log"
tail -n 2 "$OUT/train_slice.log"
for f in model.pt summary.json logs/metrics.csv; do
    if [ -f "runs/slice_gpu/$f" ]; then cp "runs/slice_gpu/$f" "$OUT/"; fi
done
stamp "compiled synthesis on CUDA"
timeout 60 "$PYTHON" -m pytest -q -p no:cacheprovider "${CUDA_TESTS[@]}" -k "compiled" >>"$OUT/cuda_tests.log" 2>&1
echo "pytest (compiled) exit status $?" >>"$OUT/cuda_tests.log"
tail -n 2 "$OUT/cuda_tests.log"
stamp "done"
