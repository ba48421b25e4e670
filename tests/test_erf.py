"""scratchlm.functional.erf.erf: Cephes' rational approximations against `math.erf` (the C
library's erf) in float64 and float32, and against torch.special.erf."""

import math

import numpy as np
import pytest

from scratchlm.functional.erf import SATURATES, erf

#: The largest relative error measured against math.erf on the points below: 3 units in the
#: last place (at |x| < 1; 1 unit beyond), about 4.4e-16.
MAX_RELATIVE_ERROR = 4.5e-16

SPECIAL = [0.0, -0.0, math.inf, -math.inf, 5e-324, -5e-324, 1e-310, 2.2250738585072014e-308,
           1e-200, 1e-20, 1e-8, np.nextafter(1.0, 0.0), 1.0, np.nextafter(1.0, 2.0),
           np.nextafter(SATURATES, 0.0), SATURATES, 26.5, 27.3, 1e5, 1e300, 1.7976931348623157e308]


def grid():
    """100,001 evenly spaced points of [-10, 10], random points where the two
    approximations meet and near 0, the special values and their negatives."""
    rng = np.random.default_rng(0)
    return np.concatenate([np.linspace(-10.0, 10.0, 100_001), rng.uniform(0.9, 1.1, 10_000),
                           10.0 ** rng.uniform(-300, 0, 10_000), SPECIAL, np.negative(SPECIAL)])


def math_erf(x):
    return np.array([math.erf(v) for v in x.ravel().tolist()]).reshape(x.shape)


def relative_error(ours, reference):
    return np.abs(ours - reference) / np.maximum(np.abs(reference), np.finfo(np.float64).tiny)


def test_float64_within_a_few_ulp_of_math_erf():
    x = grid()
    y = erf(x)
    assert y.dtype == np.float64 and y.shape == x.shape
    assert relative_error(y, math_erf(x)).max() <= MAX_RELATIVE_ERROR


def test_float64_on_random_points_where_each_approximation_holds():
    rng = np.random.default_rng(1)
    for low, high in [(0.0, 1.0), (1.0, 2.0), (2.0, SATURATES), (SATURATES, 40.0)]:
        x = rng.uniform(low, high, 20_000) * rng.choice([-1.0, 1.0], 20_000)
        assert relative_error(erf(x), math_erf(x)).max() <= MAX_RELATIVE_ERROR, (low, high)


def test_special_values():
    y = erf(np.array([0.0, -0.0, math.inf, -math.inf, math.nan, 1e300, -1e300]))
    assert y[:4].tolist() == [0.0, -0.0, 1.0, -1.0]
    assert not np.signbit(y[0]) and np.signbit(y[1])  # erf(−0) = −0
    assert np.isnan(y[4]) and y[5:].tolist() == [1.0, -1.0]
    assert erf(np.array([5e-324]))[0] == 5e-324  # 2/√π · the smallest subnormal rounds back
    assert erf(np.nextafter(SATURATES, 0.0)) == 1.0  # it has rounded to 1 before SATURATES


def test_odd_and_monotone():
    x = np.linspace(0.0, 7.0, 70_001)
    y = erf(x)
    np.testing.assert_array_equal(erf(-x), -y)
    assert np.all(np.diff(y) >= 0.0) and np.all((y >= 0.0) & (y <= 1.0))


def test_float32_matches_the_float64_value_rounded():
    special = [v for v in SPECIAL if abs(v) <= float(np.finfo(np.float32).max) or math.isinf(v)]
    x32 = np.concatenate([np.linspace(-10, 10, 100_001), special, np.negative(special)],
                         dtype=np.float32)
    y32 = erf(x32)
    assert y32.dtype == np.float32
    reference = math_erf(x32.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(y32, reference)


def test_shapes_scalars_and_integers():
    x = np.random.default_rng(2).normal(size=(3, 1000)).T  # not contiguous
    assert relative_error(erf(x), math_erf(x)).max() <= MAX_RELATIVE_ERROR
    assert erf(x).shape == x.shape
    assert erf(np.zeros((0, 4))).shape == (0, 4)
    assert erf(0.5).shape == () and erf(0.5) == pytest.approx(math.erf(0.5), rel=1e-16)
    assert erf(np.array([1, 2])).dtype == np.float64
    assert erf(np.float16(0.5)).dtype == np.float16


def test_against_torch():
    torch = pytest.importorskip("torch")
    x = grid()
    x = x[np.isfinite(x)]
    theirs = torch.special.erf(torch.from_numpy(x)).numpy()
    assert relative_error(erf(x), theirs).max() <= 2 * MAX_RELATIVE_ERROR
    x32 = x[np.abs(x) <= np.finfo(np.float32).max].astype(np.float32)
    theirs32 = torch.special.erf(torch.from_numpy(x32)).numpy()
    # torch computes float32 in float32: within 2 units of float32's last place of ours.
    ulp32 = np.spacing(np.abs(theirs32)).astype(np.float64)
    assert np.all(np.abs(erf(x32).astype(np.float64) - theirs32) <= 2 * ulp32)
