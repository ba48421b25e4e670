"""Threads that fit the cores actually free: BLAS's and the fast layer's, set from Python.

NumPy's BLAS (OpenBLAS, or MKL) shares a matrix product out over one thread per core, and
waits for the slowest. When another process keeps a core busy, the thread on that core gets
only slices of it, and every product waits for that thread: on a 2-core machine a step can
take many times longer instead of twice as long. Two remedies, both here:

* :func:`one_thread` — work too small to gain from threads (decoding a token at a time) runs
  on one BLAS thread and one fast-layer thread, whatever the load;
* :class:`ThreadsFollowLoad` — a training loop checks now and then how many cores other
  processes used since the last check, and gives BLAS and the fast layer the rest.

Both change nothing unless the fast layer is on, and restore the previous thread counts on
exit. The BLAS library is found among the shared libraries this process has loaded (Linux's
``/proc/self/maps``); where there is none to find, BLAS's threads are left alone.
"""

import ctypes
import functools
import os
import time
from contextlib import contextmanager

from scratchlm.fast import threads
from scratchlm.fast.registry import is_fast_enabled

#: (library file name contains, set function, get function): OpenBLAS as NumPy's wheels
#: ship it (symbols prefixed scipy_, 64-bit integers), plain OpenBLAS, and MKL.
_BLAS_SYMBOLS = [
    ("openblas", "scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas", "scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas", "openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("openblas", "openblas_set_num_threads", "openblas_get_num_threads"),
    ("mkl_rt", "MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
]


@functools.cache
def _blas_controls():
    """[(set, get)] for each BLAS library loaded in this process (found once)."""
    import numpy  # noqa: F401  (loads NumPy's BLAS, if nothing has yet)

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return []
    controls = []
    for path in sorted(paths):
        for fragment, set_name, get_name in _BLAS_SYMBOLS:
            if fragment not in os.path.basename(path).lower():
                continue
            library = ctypes.CDLL(path)
            if hasattr(library, set_name) and hasattr(library, get_name):
                controls.append((getattr(library, set_name), getattr(library, get_name)))
                break
    return controls


def blas_threads():
    """The threads NumPy's BLAS uses now (None where no BLAS library was found)."""
    controls = _blas_controls()
    return int(controls[0][1]()) if controls else None


def set_blas_threads(count):
    """Make NumPy's BLAS use ``count`` threads (a no-op where no BLAS library was found)."""
    for set_threads, _ in _blas_controls():
        set_threads(int(count))


@contextmanager
def _threads(count):
    """BLAS and the fast layer on ``count`` threads inside the block, restored after."""
    blas_before, limit_before = blas_threads(), threads.thread_limit()
    set_blas_threads(count)
    threads.set_thread_limit(count)
    try:
        yield
    finally:
        if blas_before is not None:
            set_blas_threads(blas_before)
        threads.set_thread_limit(limit_before)


@contextmanager
def one_thread():
    """Inside the block, BLAS and the fast layer's shared work run on one thread (with the
    fast layer on; with it off, nothing changes). For work made of many small products, as
    decoding a token at a time is: threads would gain nothing there, and beside a busy
    process they lose a lot."""
    if not is_fast_enabled():
        yield
        return
    with _threads(1):
        yield


def _machine_busy_seconds():
    """CPU-seconds every core of the machine has spent busy since boot (None off Linux)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_seconds():
    """CPU-seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system


class ThreadsFollowLoad:
    """A context manager for a loop of heavy steps: call :meth:`check` once a step. Every
    ``interval_s`` seconds it measures the cores other processes kept busy,

        others = (Δ busy time of the whole machine − Δ this process's CPU time) / Δ wall time,

    and sets BLAS's and the fast layer's threads to the cores left, ``round(cores − others)``,
    at least 1 and at most the count each had on entry (restored on exit). This process's
    own time is taken out, so the count does not depend on how many threads it ran itself.
    ``start_threads``: the count to run on until the first check measures, when one was
    measured just before (a run's time estimate): otherwise a loop beside a busy process
    would spend its first ``interval_s`` on every core's thread, waiting for the one that
    lost its core. With the fast layer off, or off Linux, it changes nothing.
    """

    def __init__(self, interval_s=2.0, cores=None, clock=time.monotonic,
                 machine_busy=_machine_busy_seconds, own=_own_seconds, start_threads=None):
        self.interval_s, self.cores = interval_s, cores or os.cpu_count() or 1
        self.clock, self.machine_busy, self.own = clock, machine_busy, own
        self.start_threads = start_threads
        self.threads = None  # the cores left at the last check (None: not checked yet)

    def __enter__(self):
        self.active = is_fast_enabled() and self.machine_busy() is not None
        if self.active:
            self.blas_before, self.limit_before = blas_threads(), threads.thread_limit()
            self.shared_most = threads.active_threads()
            if self.start_threads is not None:
                self._fit(max(1, int(self.start_threads)))
            self._mark()
        return self

    def _fit(self, count):
        """Run BLAS and the fast layer on ``count`` threads (at most what each had)."""
        self.threads = count
        if self.blas_before is not None:
            set_blas_threads(min(count, self.blas_before))
        threads.set_thread_limit(min(count, self.shared_most))

    def _mark(self):
        self.last = (self.clock(), self.machine_busy(), self.own())

    def check(self):
        """Set the thread counts from the load since the last check, if ``interval_s`` has
        passed. Returns the others' cores measured, or None when it did not measure."""
        if not self.active or self.clock() - self.last[0] < self.interval_s:
            return None
        (wall_0, busy_0, own_0), now = self.last, (self.clock(), self.machine_busy(),
                                                   self.own())
        self.last = now
        others = max(0.0, (now[1] - busy_0) - (now[2] - own_0)) / max(now[0] - wall_0, 1e-9)
        self._fit(max(1, round(self.cores - others)))
        return others

    def __exit__(self, *exc):
        if self.active:
            if self.blas_before is not None:
                set_blas_threads(self.blas_before)
            threads.set_thread_limit(self.limit_before)
        return False
