"""Process-wide settings that speed up training on the CPU: opt-in, never made at import.

:func:`tune_process` is called by the command line (``python -m scratchlm``), the
``Trainer`` and the benchmarks. A notebook or a program that imports scratchlm keeps its
process as it was unless it calls it too.
"""

import ctypes
import os
import platform
import sys

#: How many CPU cycles OpenBLAS's idle worker threads busy-wait for the next call, as a
#: power of two: 2²⁰ (about 0.25 ms) instead of OpenBLAS's 2²⁸ (about 0.1 s).
OPENBLAS_THREAD_TIMEOUT = "20"

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def keep_freed_memory():
    """Ask the C allocator (glibc's malloc) to keep freed memory for reuse, as CuPy's memory
    pool does on the GPU. Returns True where it applied (Linux with glibc).

    A training step frees hundreds of megabytes of activations and gradients and allocates
    them again in the next step. By default glibc returns large freed blocks to the system,
    so every forward then writes into fresh pages that the kernel must first zero. With both
    thresholds high, freed memory stays in the process and is reused; the peak memory stays
    about the same (it is not returned to the system until exit).
    """
    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        return False
    libc = ctypes.CDLL(None)
    libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)  # blocks up to 1 GiB from the reused heap
    libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)  # never give the heap's top back
    return True


def set_openblas_wait():
    """Put ``OPENBLAS_THREAD_TIMEOUT`` in the environment (a value already there is kept).

    After every call OpenBLAS keeps its worker threads spinning in case another call follows;
    on a machine with few cores a spinning thread takes a core from the elementwise work that
    follows a matmul. OpenBLAS reads the variable once, when NumPy loads it: so this takes
    effect for child processes, and for this one only if NumPy is not loaded yet (never the
    case once scratchlm is imported). The command line therefore restarts itself with the
    variable set (:func:`scratchlm.__main__.main`). Returns True when the variable is in
    force in this process."""
    already_set = "OPENBLAS_THREAD_TIMEOUT" in os.environ
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", OPENBLAS_THREAD_TIMEOUT)
    return already_set or "numpy" not in sys.modules


def tune_process():
    """Tune this process for training on the CPU, and say what was changed:

    * the C allocator keeps freed memory for reuse (:func:`keep_freed_memory`);
    * ``OPENBLAS_THREAD_TIMEOUT`` is set for OpenBLAS's idle threads (:func:`set_openblas_wait`).

    The fast ops' thread pool (:mod:`scratchlm.fast.threads`) needs no call: it starts at
    the first op that shares out work. Returns ``{"allocator": bool, "openblas_wait": bool}``,
    each True where the setting is in force."""
    return {"allocator": keep_freed_memory(), "openblas_wait": set_openblas_wait()}
