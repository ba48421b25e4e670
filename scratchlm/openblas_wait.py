"""How long OpenBLAS's idle worker threads busy-wait: set before NumPy loads its BLAS.

After every BLAS call OpenBLAS keeps its worker threads spinning for 2²⁸ CPU cycles (about
0.1 s) in case another call follows. On a machine with few cores that spinning thread takes
a core away from the elementwise work that comes after a matmul, which scratchlm shares out
between threads (:mod:`scratchlm.threads`): GELU, the attention softmax, cross-entropy, the
AdamW update. ``OPENBLAS_THREAD_TIMEOUT=20`` (2²⁰ cycles, ~0.25 ms) lets the workers sleep
soon after the last of a run of matmuls while still catching the next matmul of a run.
Measured per training step on 2 cores (one process each): GPT-2 124M 1230 → 1171 ms
(OpenBLAS variables unset), 6 layers × 384 wide 794 → 763 ms, 4 layers × 128 wide 82 → 81
ms, 2 layers × 64 wide 7.6 → 7.7 ms. 2¹⁶ cycles saved a little more on the big models but
cost the small ones 5% and token-by-token generation more: every matmul woke the workers.

OpenBLAS reads the variable once, when NumPy is first imported: this module is imported
first by ``scratchlm/__init__.py`` and takes effect only if NumPy was not imported before
scratchlm. A value already in the environment is kept.
"""

import os

THREAD_TIMEOUT = "20"

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", THREAD_TIMEOUT)
