"""Independent pieces of CPU work, shared out among a few threads.

NumPy's ufuncs and BLAS calls release the GIL while they run, so Python threads that each
take a share of the pieces of a big array (the row blocks of a GELU or of attention scores,
the slices of an optimizer update) work in parallel on several cores. Only worth it for
pieces big enough that the arithmetic, not Python, takes the time: each piece here is
~1 MB or more.
"""

import concurrent.futures
import os

#: Threads used: two measured 1.4-1.9x faster than one on a 2-core machine (GELU and
#: cross-entropy row blocks, the AdamW update; layer norm's blocks measured no faster, and
#: stay on one thread). Elementwise work is bound by memory bandwidth, so more threads than
#: that gain little. NumPy's BLAS threads should not spin meanwhile (see
#: :func:`scratchlm.fast.tune_process`).
THREADS = min(2, os.cpu_count() or 1)
_pool = None
_limit = None  # at most this many (set by scratchlm.fast.load under load); None: THREADS


def thread_limit():
    """The limit set by :func:`set_thread_limit` (None: none)."""
    return _limit


def set_thread_limit(count):
    """Share work out among at most ``count`` threads from now on (None: :data:`THREADS`)."""
    global _limit
    _limit = count


def active_threads():
    """How many threads shared work goes to now: :data:`THREADS`, or fewer under a limit."""
    return THREADS if _limit is None else max(1, min(_limit, THREADS))


def _thread_pool():
    """The pool, started at the first shared piece of work (never at import)."""
    global _pool
    if _pool is None:
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_forget_pool)
        _pool = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="scratchlm")
    return _pool


def _forget_pool():
    """A forked child has none of its parent's threads: it starts a pool of its own."""
    global _pool
    _pool = None


def run_shared(work, pieces):
    """Call ``work(piece, slot)`` for every piece, the pieces dealt out in turn among
    :func:`active_threads` threads; ``slot`` (0, 1, …) says which thread runs it, so ``work`` can
    keep scratch arrays per thread. One piece, or one thread, runs here, inline. Returns
    when all are done and re-raises the first error."""
    pieces = list(pieces)
    threads = min(active_threads(), len(pieces))
    if threads <= 1:
        for piece in pieces:
            work(piece, 0)
        return

    def run_every_nth(slot):
        for piece in pieces[slot::threads]:
            work(piece, slot)
    list(_thread_pool().map(run_every_nth, range(threads)))
