"""The array-backend helpers that are not covered through the ops that use them."""

import numpy as np
import pytest

from scratchlm import backend


@pytest.mark.parametrize("a_shape, b_shape", [
    ((24, 256, 64), (24, 64, 256)),    # attention's Q Kᵀ over batch × heads
    ((2, 1, 5, 3), (4, 3, 7)),         # broadcast leading axes
    ((5, 3), (3, 7)),                  # plain matrices
    ((0, 4, 3), (3, 2)),               # empty
])
def test_matmul_cache_aligned_is_matmul_on_a_cache_line(device, a_shape, b_shape):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s, dtype=np.float32) for s in (a_shape, b_shape))
    expected = a @ b
    xp = backend.xp_for(device)
    a_dev, b_dev = xp.asarray(a), xp.asarray(b)
    out = backend.matmul_cache_aligned(a_dev, b_dev)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    assert out.flags.c_contiguous
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-5, atol=1e-5)
    if device == "cpu" and out.nbytes >= backend.ALIGNED_OUTPUT_BYTES:
        assert out.ctypes.data % backend.CACHE_LINE == 0


def test_matmul_cache_aligned_promotes_like_matmul():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 2), np.float64)
    out = backend.matmul_cache_aligned(a, b)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.full((3, 2), 4.0))
