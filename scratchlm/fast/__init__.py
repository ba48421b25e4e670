"""The fast layer: speed-only implementations of the reference ops and optimizers.

The library's ops (``scratchlm/functional``, ``scratchlm/nn``) and optimizers
(``scratchlm/optim``) are each written once, as their formula on arrays. This package holds
the second, faster implementation of some of them, each registered for one reference class
and one device and tested equal to it:

* :mod:`~scratchlm.fast.cpu` — row blocks that stay in cache, threads, in-place ufuncs;
* :mod:`~scratchlm.fast.cuda` — fused CUDA kernels (:mod:`~scratchlm.fast.cuda_kernels`);
* :mod:`~scratchlm.fast.optim` — optimizer updates in cache-sized pieces, or one kernel.

Fast is the default. ``sl.use_fast(False)`` (or the environment variable
``SCRATCHLM_FAST=0``) runs the reference everywhere; :func:`tune_process` is the opt-in
process tuning (allocator, OpenBLAS's idle threads); :func:`one_thread` and
:class:`ThreadsFollowLoad` (:mod:`~scratchlm.fast.load`) fit the threads to the work and to
the cores other processes leave free.
"""

from scratchlm.fast.load import ThreadsFollowLoad, one_thread
from scratchlm.fast.process import tune_process
from scratchlm.fast.registry import implements, is_fast_enabled, use_fast

__all__ = ["use_fast", "is_fast_enabled", "implements", "tune_process", "one_thread",
           "ThreadsFollowLoad"]
