#!/usr/bin/env bash
# The GPU half of the tests and benchmarks in one go, for a short session on a machine with
# an NVIDIA GPU where NumPy, CuPy, PyTorch and pytest are already installed (it installs
# nothing, and needs no network):
#
#     OUT=results/folder bash bench/gpu_session.sh
#
# Into $OUT (default bench/results/gpu) it writes environment.txt, tests.log (every test
# that runs on the GPU: the fused kernels against their array reference, and each op,
# layer and model on device "cuda"), run.log with bench/run.py's cuda.json and cuda.png,
# and layers.log. Each part has a time limit and the next one runs whatever happened, so
# about nine minutes bound the whole.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PYTHON=${PYTHON:-python3}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PYTHON" -c "import numpy, cupy, torch, scratchlm.backend as b
print('numpy', numpy.__version__, '| cupy', cupy.__version__, '| torch', torch.__version__)
print('scratchlm sees a GPU:', b.gpu_available())"
} 2>&1 | tee "$OUT/environment.txt"

# Only the tests with a GPU case ("cuda" in their ids) and the kernel tests: the CPU cases
# are CI's, and each CuPy kernel compiles on its first call (NVRTC), which takes the time here.
timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" -k "cuda or gpu_kernels" \
    tests 2>&1 | tee "$OUT/tests.log"

timeout 240 "$PYTHON" bench/run.py --device cuda --repeats 3 2>&1 | tee "$OUT/run.log"
cp bench/results/cuda.json bench/results/cuda.png "$OUT/" 2>/dev/null

timeout 60 "$PYTHON" bench/layers.py --device cuda 2>&1 | tee "$OUT/layers.log"
