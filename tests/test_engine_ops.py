"""Every primitive op: float64 gradcheck over several shapes, and PyTorch as an oracle.

One table drives everything: each row is an op written twice — with scratchlm tensors and
with torch tensors — plus the input shapes it is checked on (broadcasting, size-1 axes and
0-d scalars included) and a function that maps raw normals into the op's domain.
"""

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchlm as sl


def positive(x):
    return np.abs(x) + 0.5


def away_from_zero(x):
    return np.sign(x) * (np.abs(x) + 0.5) + (x == 0)


def distinct(x):
    """Spread values so a max never has near-ties that finite differences would straddle."""
    return x + np.arange(x.size).reshape(x.shape) * 0.37 if x.size else x


def same(x):
    return x


# name: (scratchlm fn, torch fn, shape sets, domain per input)
OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b,
            [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3))], (same, same)),
    "sub": (lambda a, b: a - b, lambda a, b: a - b,
            [((3, 4), (3, 4)), ((4,), (3, 4)), ((2, 3, 1), (1, 5)), ((2,), ())], (same, same)),
    "mul": (lambda a, b: a * b, lambda a, b: a * b,
            [((3, 4), (3, 4)), ((3, 4), (3, 1)), ((1, 4), (3, 1)), ((), ())], (same, same)),
    "div": (lambda a, b: a / b, lambda a, b: a / b,
            [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1), (1, 3)), ((3,), ())],
            (same, away_from_zero)),
    "neg": (lambda a: -a, lambda a: -a, [((3, 4),), ((),), ((2, 1, 3),)], (same,)),
    "pow_scalar": (lambda a: a ** 3, lambda a: a ** 3, [((3, 4),), ((),)], (same,)),
    "pow_fractional": (lambda a: a ** 0.5, lambda a: a ** 0.5, [((3, 4),), ((5,),)], (positive,)),
    "pow_tensor": (lambda a, b: a ** b, lambda a, b: a ** b,
                   [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1), ())], (positive, same)),
    "rpow": (lambda b: 2.0 ** b, lambda b: 2.0 ** b, [((3, 4),)], (same,)),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b,
               [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)),
                ((2, 1, 3, 4), (5, 4, 2)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)),
                ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((3, 4), (2, 4, 5))], (same, same)),
    "exp": (lambda a: a.exp(), lambda a: a.exp(), [((3, 4),), ((),), ((2, 3, 4),)], (same,)),
    "log": (lambda a: a.log(), lambda a: a.log(), [((3, 4),), ((),)], (positive,)),
    "sqrt": (lambda a: a.sqrt(), lambda a: a.sqrt(), [((3, 4),), ((),)], (positive,)),
    "tanh": (lambda a: a.tanh(), lambda a: a.tanh(), [((3, 4),), ((),)], (same,)),
    "sum_all": (lambda a: a.sum(), lambda a: a.sum(), [((3, 4),), ((),), ((2, 3, 4),)], (same,)),
    "sum_axis": (lambda a: a.sum(axis=1), lambda a: a.sum(dim=1),
                 [((3, 4),), ((2, 3, 4),), ((3, 1),)], (same,)),
    "sum_axes_keepdims": (lambda a: a.sum(axis=(0, 2), keepdims=True),
                          lambda a: a.sum(dim=(0, 2), keepdim=True), [((2, 3, 4),)], (same,)),
    "mean_all": (lambda a: a.mean(), lambda a: a.mean(), [((3, 4),), ((2, 3, 4),)], (same,)),
    "mean_axis": (lambda a: a.mean(axis=-1, keepdims=True),
                  lambda a: a.mean(dim=-1, keepdim=True), [((3, 4),), ((2, 3, 1),)], (same,)),
    "max_all": (lambda a: a.max(), lambda a: a.amax(), [((3, 4),), ((5,),)], (distinct,)),
    "max_axis": (lambda a: a.max(axis=0), lambda a: a.amax(dim=0),
                 [((3, 4),), ((2, 3, 4),)], (distinct,)),
    "reshape": (lambda a: a.reshape(4, -1), lambda a: a.reshape(4, -1),
                [((2, 6),), ((2, 2, 3),)], (same,)),
    "transpose": (lambda a: a.transpose(2, 0, 1), lambda a: a.permute(2, 0, 1),
                  [((2, 3, 4),), ((1, 3, 1),)], (same,)),
    "transpose_reverse": (lambda a: a.T, lambda a: a.permute(*reversed(range(a.ndim))),
                          [((3, 4),), ((2, 3, 4),)], (same,)),
    "getitem_slice": (lambda a: a[1:, ::2], lambda a: a[1:, ::2], [((3, 4),), ((4, 5, 2),)],
                      (same,)),
    "getitem_int_array": (lambda a: a[np.array([0, 2, 0, 0])], lambda a: a[[0, 2, 0, 0]],
                          [((3, 4),), ((3,),)], (same,)),
    "getitem_mixed": (lambda a: a[np.array([1, 1]), 1:], lambda a: a[[1, 1], 1:],
                      [((3, 4),)], (same,)),
    "getitem_bool": (lambda a: a[a > 0], lambda a: a[a > 0], [((3, 4),)], (same,)),
    "concat": (lambda a, b: sl.concat([a, b, a], axis=1),
               lambda a, b: __import__("torch").cat([a, b, a], dim=1),
               [((3, 4), (3, 2)), ((2, 1, 3), (2, 5, 3))], (same, same)),
    "stack": (lambda a, b: sl.stack([a, b], axis=-1),
              lambda a, b: __import__("torch").stack([a, b], dim=-1),
              [((3, 4), (3, 4)), ((), ())], (same, same)),
    "where": (lambda a, b: sl.where(a > 0, a, b),
              lambda a, b: __import__("torch").where(a > 0, a, b),
              [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 1), (1, 4))], (same, same)),
}

CASES = [pytest.param(name, shapes, id=f"{name}-{'x'.join(map(str, shapes))}")
         for name, (_, _, shape_sets, _) in OPS.items() for shapes in shape_sets]


def make_inputs(name, shapes, seed=0):
    rng = np.random.default_rng(seed)
    domains = OPS[name][3]
    return [domain(rng.standard_normal(shape)) for domain, shape in zip(domains, shapes)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, shapes", CASES)
def test_gradcheck(name, shapes, device):
    fn = OPS[name][0]
    inputs = [sl.tensor(x, requires_grad=True, device=device)
              for x in make_inputs(name, shapes)]
    assert sl.gradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shapes", CASES)
def test_matches_torch(name, shapes, dtype):
    torch = pytest.importorskip("torch")
    fn, torch_fn = OPS[name][:2]
    arrays = [x.astype(dtype) for x in make_inputs(name, shapes, seed=1)]
    ours = [sl.tensor(x, requires_grad=True) for x in arrays]
    theirs = [torch.tensor(x, requires_grad=True) for x in arrays]
    y, y_ref = fn(*ours), torch_fn(*theirs)
    assert y.shape == tuple(y_ref.shape) and y.dtype == dtype
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tol)
    cotangent = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    y.backward(cotangent)
    y_ref.backward(torch.tensor(cotangent))
    for t, t_ref in zip(ours, theirs):
        np.testing.assert_allclose(t.grad, t_ref.grad.numpy(), **tol)


# --------------------------------------------------------------- Hypothesis-drawn shapes
ELEMENTWISE_BINARY = {
    "add": (lambda a, b: a + b, same),
    "sub": (lambda a, b: a - b, same),
    "mul": (lambda a, b: a * b, same),
    "div": (lambda a, b: a / b, away_from_zero),
    "pow": (lambda a, b: a.exp() ** b, same),
}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(ELEMENTWISE_BINARY)),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       seed=st.integers(0, 2 ** 16))
def test_binary_ops_broadcast_hypothesis(name, shapes, seed):
    fn, domain = ELEMENTWISE_BINARY[name]
    rng = np.random.default_rng(seed)
    a = sl.tensor(rng.standard_normal(shapes.input_shapes[0]), requires_grad=True)
    b = sl.tensor(domain(rng.standard_normal(shapes.input_shapes[1])), requires_grad=True)
    y = fn(a, b)
    assert y.shape == shapes.result_shape
    assert sl.gradcheck(fn, [a, b])


ELEMENTWISE_UNARY = {
    "exp": (lambda a: a.exp(), same), "log": (lambda a: a.log(), positive),
    "sqrt": (lambda a: a.sqrt(), positive), "tanh": (lambda a: a.tanh(), same),
    "neg": (lambda a: -a, same), "square": (lambda a: a ** 2, same),
}


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(ELEMENTWISE_UNARY)),
       shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
       seed=st.integers(0, 2 ** 16))
def test_unary_ops_hypothesis(name, shape, seed):
    fn, domain = ELEMENTWISE_UNARY[name]
    x = sl.tensor(domain(np.random.default_rng(seed).standard_normal(shape)), requires_grad=True)
    assert sl.gradcheck(fn, [x])


# ------------------------------------------------------------------ semantics by hand
def test_max_ties_share_the_gradient_like_torch_amax():
    x = sl.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_repeated_integer_indices_accumulate():
    x = sl.tensor(np.zeros(4), requires_grad=True)
    x[np.array([1, 1, 3, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [0, 3, 0, 1])


def test_tensor_index_works_like_array_index():
    x = sl.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    y = x[sl.tensor(np.array([2, 0]))]
    np.testing.assert_array_equal(y.numpy(), [[4, 5], [0, 1]])


def test_reductions_give_0d_tensors():
    x = sl.tensor(np.ones((2, 3)))
    for reduced in (x.sum(), x.mean(), x.max()):
        assert reduced.shape == () and reduced.ndim == 0


def test_pow_exponent_gradient_at_zero_base_is_zero_like_torch():
    torch = pytest.importorskip("torch")
    a = np.array([0.0, 2.0])
    b = np.array([2.0, 3.0])
    ours_b = sl.tensor(b, requires_grad=True)
    (sl.tensor(a) ** ours_b).sum().backward()
    theirs_b = torch.tensor(b, requires_grad=True)
    (torch.tensor(a) ** theirs_b).sum().backward()
    np.testing.assert_allclose(ours_b.grad, theirs_b.grad.numpy())
    assert ours_b.grad[0] == 0
