"""scratchlm.fast.rows.matmul_cache_aligned, the CPU helper of the fast attention that is
not covered through the ops that use it: ``a @ b`` written to a cache-line-aligned array."""

import numpy as np
import pytest

from scratchlm.fast import rows


@pytest.mark.parametrize("a_shape, b_shape", [
    ((24, 256, 64), (24, 64, 256)),    # attention's Q Kᵀ over batch × heads
    ((2, 1, 5, 3), (4, 3, 7)),         # broadcast leading axes
    ((5, 3), (3, 7)),                  # plain matrices
    ((0, 4, 3), (3, 2)),               # empty
])
def test_matmul_cache_aligned_is_matmul_on_a_cache_line(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s, dtype=np.float32) for s in (a_shape, b_shape))
    expected = a @ b
    out = rows.matmul_cache_aligned(a, b)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    if out.nbytes >= rows.ALIGNED_OUTPUT_BYTES:
        assert out.ctypes.data % rows.CACHE_LINE == 0


def test_the_big_case_takes_the_aligned_path():
    """The first case above is big enough for the aligned output (so the alignment assert
    there runs), and its output starts on a cache line in several tries (NumPy's own
    allocation is only 16-byte aligned, so chance alone would fail some)."""
    a = np.ones((24, 256, 64), np.float32)
    b = np.ones((24, 64, 256), np.float32)
    assert rows.ALIGNED_OUTPUT_BYTES <= 24 * 256 * 256 * 4
    for _ in range(8):
        assert rows.matmul_cache_aligned(a, b).ctypes.data % rows.CACHE_LINE == 0


def test_matmul_cache_aligned_promotes_like_matmul():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 2), np.float64)
    out = rows.matmul_cache_aligned(a, b)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.full((3, 2), 4.0))


def test_matmul_cache_aligned_promotes_when_big():
    a = np.ones((128, 64), np.float32)
    b = np.ones((64, 512), np.float64)
    out = rows.matmul_cache_aligned(a, b)
    assert out.nbytes >= rows.ALIGNED_OUTPUT_BYTES and out.dtype == np.float64
    assert out.ctypes.data % rows.CACHE_LINE == 0
    np.testing.assert_array_equal(out, np.full((128, 512), 64.0))
