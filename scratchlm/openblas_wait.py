"""How long OpenBLAS's idle worker threads busy-wait: set before NumPy loads its BLAS.

After every BLAS call OpenBLAS keeps its worker threads spinning for 2²⁸ CPU cycles (about
0.1 s) in case another call follows. On a machine with few cores that spinning thread takes
a core away from the elementwise work that comes after a matmul, which scratchlm shares out
between threads (:mod:`scratchlm.threads`): GELU, the attention softmax, cross-entropy, the
AdamW update. ``OPENBLAS_THREAD_TIMEOUT=16`` (2¹⁶ cycles, ~20 µs) lets the workers sleep
almost at once. Measured per training step on 2 cores: GPT-2 124M 1230 → 1161 ms (OpenBLAS
variables unset), 6 layers × 384 wide 794 → 746 ms, 4 layers × 128 wide 82 → 79 ms; the
2-layer, 64-wide GPT, all small matmuls that each wake the workers, 7.6 → 8.0 ms.

OpenBLAS reads the variable once, when NumPy is first imported: this module is imported
first by ``scratchlm/__init__.py`` and takes effect only if NumPy was not imported before
scratchlm. A value already in the environment is kept.
"""

import os

THREAD_TIMEOUT = "16"

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", THREAD_TIMEOUT)
