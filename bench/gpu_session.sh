#!/usr/bin/env bash
# The GPU half of the tests and benchmarks, for a short session on a machine with an NVIDIA
# GPU where NumPy, CuPy, PyTorch and pytest are already installed (it installs nothing, and
# needs no network). Two parts, each under ten minutes, so that each fits one command:
#
#     OUT=results/folder bash bench/gpu_session.sh tests   # GPU tests, fast on and off
#     OUT=results/folder bash bench/gpu_session.sh bench   # benchmarks, the main job on cuda
#
# Into $OUT (default bench/results/gpu) "tests" writes environment.txt, tests.log (every
# test that runs on the GPU: the fused kernels against their reference, each op, layer and
# model on device "cuda") and tests-reference.log (the same with SCRATCHLM_FAST=0); "bench"
# writes run.log with bench/run.py's cuda.json and cuda.png, layers.log and main-job.log
# (the README's main job on cuda, timed, its validation loss to compare with the CPU's).
# Each step has a time limit and the next one runs whatever happened.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
PART=${1:-tests}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PYTHON=${PYTHON:-python3}

if [ "$PART" = tests ]; then
    {
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
        "$PYTHON" -c "import numpy, cupy, torch, scratchlm.backend as b
print('numpy', numpy.__version__, '| cupy', cupy.__version__, '| torch', torch.__version__)
print('scratchlm sees a GPU:', b.gpu_available())"
    } 2>&1 | tee "$OUT/environment.txt"
    # Only the tests with a GPU case ("cuda" in their ids) and the kernel tests: the CPU
    # cases are CI's, and each CuPy kernel compiles on its first call (NVRTC).
    timeout 300 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" \
        -k "cuda or gpu_kernels" tests 2>&1 | tee "$OUT/tests.log"
    SCRATCHLM_FAST=0 timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" \
        -k "cuda" tests 2>&1 | tee "$OUT/tests-reference.log"
else
    timeout 240 "$PYTHON" bench/run.py --device cuda --configs medium,gpt2 --repeats 3 \
        2>&1 | tee "$OUT/run.log"
    cp bench/results/cuda.json bench/results/cuda.png "$OUT/" 2>/dev/null
    timeout 60 "$PYTHON" bench/layers.py --device cuda 2>&1 | tee "$OUT/layers.log"
    { time timeout 240 "$PYTHON" -m scratchlm train --device cuda --run-name gpu-main-job \
        --out-dir "$OUT/runs" --no-progress; } 2>&1 | tail -n 30 | tee "$OUT/main-job.log"
fi
