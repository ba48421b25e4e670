"""What the benchmarks share: the import path, equal thread counts, alternating timers.

Fair comparisons need both frameworks on the same number of threads. NumPy's BLAS
(OpenBLAS) and PyTorch's OpenMP read ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` when they load, so :func:`thread_environment` must run before NumPy or
torch is imported; after the imports :func:`limit_threads` also caps them at run time
(``threadpoolctl`` when it is installed, ``torch.set_num_threads`` always).
"""

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Seconds to wait before each timed run, so that it does not share the cores with the other
#: framework's worker threads still spinning after their last call: PyTorch's OpenMP threads
#: spin for a few milliseconds, OpenBLAS's for 2²⁸ cycles (~0.1 s) unless
#: OPENBLAS_THREAD_TIMEOUT says less (tune_process sets 2²⁰, see scratchlm/fast/process.py;
#: with the default, torch's tiny-GPT step measured 12.2 ms right after scratchlm's run and
#: 10.0 ms after a pause). Kept short: after a pause of 0.25 s the CPU had gone idle, and
#: short runs (a tiny GPT's generation) measured up to 4x slower and far noisier.
SETTLE_SECONDS = 0.02
#: Variables this machine may set to pin OpenBLAS's kernels (see the README of bench/).
BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: How long OpenBLAS's idle workers spin; tune_process sets it (scratchlm/fast/process.py).
WAIT_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT",)


def use_repository(fast=True):
    """Import scratchlm from this checkout and the PyTorch reference GPT from tests/, with the
    process tuned as under ``python -m scratchlm`` (``scratchlm.fast.tune_process``: call
    this before NumPy or torch is imported, so that OpenBLAS starts with its setting, and
    before :func:`limit_threads`); ``fast=False`` runs scratchlm's reference ops."""
    for path in (REPO, REPO / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")  # fast/process.py's value
    import scratchlm

    scratchlm.fast.tune_process()
    scratchlm.use_fast(fast)


def thread_environment(threads):
    """Set the thread-count variables for every BLAS/OpenMP that loads after this call."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def limit_threads(threads):
    """Cap NumPy's BLAS and PyTorch at ``threads`` threads; returns a description of the BLAS
    NumPy runs (library, kernel architecture, threads) as far as it can be seen."""
    import torch

    torch.set_num_threads(threads)
    blas = {"threadpoolctl": False}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:  # the environment variables set before the imports still hold
        return blas
    threadpool_limits(threads, user_api="blas")
    for info in threadpool_info():
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", ""):
            blas = {"threadpoolctl": True, "library": info.get("internal_api"),
                    "version": info.get("version"), "architecture": info.get("architecture"),
                    "threads": info.get("num_threads")}
            break
    return blas


def environment(threads, blas):
    """The conditions of a run, for the printed header and the JSON."""
    import numpy as np
    import torch

    return {"threads": threads, "numpy": np.__version__, "torch": torch.__version__,
            "numpy_blas": blas,
            **{name: os.environ.get(name) for name in BLAS_VARIABLES + WAIT_VARIABLES}}


def describe(device, env):
    """One line naming the conditions of a run, for the top of a benchmark's output."""
    blas = env["numpy_blas"]
    variables = ", ".join(f"{name}={env[name]}" for name in BLAS_VARIABLES + WAIT_VARIABLES)
    return (f"device {device}, {env['threads']} threads, NumPy {env['numpy']} "
            f"(BLAS {blas.get('library', '?')} {blas.get('architecture', '?')} kernels), "
            f"torch {env['torch']}; {variables}")


def settle():
    """Wait until the other framework's worker threads have stopped spinning."""
    time.sleep(SETTLE_SECONDS)


def alternate(runners, repeats, warmup=1, budget_s=None):
    """Median seconds of each runner, timed in turn so drifting machine load hits all alike;
    each timed run starts after :func:`settle`.

    ``runners`` maps a name to a callable that does the work once and returns its duration
    in seconds (it synchronizes a GPU itself). ``warmup`` untimed rounds come first. With
    ``budget_s`` a runner stops after the repeat that takes its total past the budget
    (at least one timed run each): slow cases then finish in bounded time.
    Returns ``{name: (median seconds, runs)}``.
    """
    for _ in range(warmup):
        for run in runners.values():
            run()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            if budget_s is not None and times[name] and sum(times[name]) > budget_s:
                continue
            settle()
            times[name].append(run())
    return {name: (statistics.median(t), len(t)) for name, t in times.items()}


def repeated(step, count):
    """``step`` done ``count`` times, as one piece of work to time (a step of a few
    milliseconds is timed in groups, so that one timed run is long enough to measure)."""
    def work():
        for _ in range(count):
            step()
    return work


def stopwatch(work, synchronize=None):
    """A runner for :func:`alternate`: calls ``work()`` and returns the seconds it took,
    waiting for the device (``synchronize()``, None on the CPU) before starting and
    stopping the clock."""
    synchronize = synchronize or (lambda: None)

    def run():
        synchronize()
        start = time.perf_counter()
        work()
        synchronize()
        return time.perf_counter() - start
    return run
