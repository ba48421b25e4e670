"""CPU helpers of the fast ops: reductions along one axis (each kept as a size-1 axis so the
result broadcasts back against its input) that are faster than NumPy's plain ones,
cache-sized blocks of rows shared among threads, and a cache-aligned matmul."""

import functools
import math

import numpy as np

from scratchlm.backend import get_array_module
from scratchlm.fast import threads


def max_along(x, axis):
    """max x along ``axis`` (NumPy's ``fmax.reduce`` is its fastest maximum)."""
    if get_array_module(x) is np:
        return np.fmax.reduce(x, axis=axis, keepdims=True)
    return x.max(axis=axis, keepdims=True)


def dot_along(a, b, axis):
    """Σ a ⊙ b along ``axis``, by ``einsum`` (no a ⊙ b temporary, about 3x faster)."""
    xp = get_array_module(a)
    if axis in (-1, a.ndim - 1):  # the common case, without moveaxis's Python overhead
        return xp.einsum("...i,...i->...", a, b)[..., None]
    a, b = xp.moveaxis(a, axis, -1), xp.moveaxis(b, axis, -1)
    return xp.expand_dims(xp.einsum("...i,...i->...", a, b), axis)


@functools.lru_cache(maxsize=64)
def _constant_vector(length, dtype, value):
    """A read-only NumPy vector of ``length`` copies of ``value`` (kept: the small ops of
    token-by-token decoding would otherwise spend a good part of their time allocating it)."""
    vector = np.full(length, value, dtype=dtype)
    vector.flags.writeable = False
    return vector


def _filled(x, value):
    """A vector as long as x's last axis, of x's dtype and device, full of ``value``."""
    xp = get_array_module(x)
    if xp is np:
        return _constant_vector(x.shape[-1], x.dtype, value)
    return xp.full(x.shape[-1], value, dtype=x.dtype)


def row_sum(x):
    """Σ x over the last axis, as a GEMV with a ones vector (about 2x faster than
    ``x.sum(axis=-1)``)."""
    return (x @ _filled(x, 1))[..., None]


def row_mean(x):
    """mean x over the last axis, as a GEMV with a vector of 1/C (as :func:`row_sum`)."""
    return (x @ _filled(x, 1 / x.shape[-1]))[..., None]


def as_rows(x):
    """``x`` as a 2-D array of rows along its last axis (a 0-d or empty-last-axis array as
    one column), a view where NumPy can make one."""
    if x.ndim and x.shape[-1]:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


#: Bytes of rows that several passes in a row should find in the CPU's cache (about half
#: of a core's L2 on current x86 CPUs): each pass after the first then reads cache, not RAM.
ROW_BLOCK_BYTES = 1 << 20


def row_blocks(x):
    """Slices of the rows of ``x`` (2-D), each about :data:`ROW_BLOCK_BYTES` big, for ops
    that make several passes over every row. On a GPU, one slice of all rows (its kernels
    are not held up by a cache that small, and each call costs a launch)."""
    rows = x.shape[0]
    step = rows
    if get_array_module(x) is np:
        step = max(1, ROW_BLOCK_BYTES // max(1, x.shape[1] * x.itemsize))
    return [slice(start, start + step) for start in range(0, rows, step)]


def one_block(x):
    """True when ``x`` is a single :func:`row_blocks` block: small enough to stay in cache
    as a whole (a token at a time, in decoding), or on a GPU."""
    return x.nbytes <= ROW_BLOCK_BYTES or get_array_module(x) is not np


def shared_row_blocks(work, x):
    """Call ``work(rows, slot)`` for every :func:`row_blocks` slice of ``x`` (2-D), the
    slices shared out among threads (:func:`scratchlm.fast.threads.run_shared`). An array of one
    block (a token at a time, in decoding) gets a single direct call, without that
    bookkeeping."""
    if one_block(x):
        work(slice(None), 0)
        return
    threads.run_shared(work, row_blocks(x))


#: Bytes of one cache line, and of one AVX-512 register.
CACHE_LINE = 64
#: Products smaller than this are left to NumPy's own allocation (token-by-token decoding).
ALIGNED_OUTPUT_BYTES = 1 << 18


def matmul_cache_aligned(a, b):
    """``a @ b`` (NumPy arrays) written into a new array that starts on a cache-line boundary.

    NumPy's allocations are only 16-byte aligned, and a thin product (inner size 64, such as
    attention's Q Kᵀ over heads of 64 features) spends much of its time writing its output:
    with the output's rows split across cache lines, OpenBLAS's AVX-512 kernels write it
    far more slowly (bench/README.md has the figures).
    """
    batch = a.shape[:-2]
    if b.shape[:-2] != batch:
        batch = np.broadcast_shapes(batch, b.shape[:-2])
    shape = batch + (a.shape[-2], b.shape[-1])
    dtype = a.dtype if a.dtype == b.dtype else np.result_type(a, b)
    size = math.prod(shape)
    if size * dtype.itemsize < ALIGNED_OUTPUT_BYTES:  # small: the setup would cost more
        return a @ b
    raw = np.empty(size * dtype.itemsize + CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    out = raw[start:start + size * dtype.itemsize].view(dtype).reshape(shape)
    return np.matmul(a, b, out=out)
