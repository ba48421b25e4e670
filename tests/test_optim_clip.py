"""clip_grad_norm_ against torch.nn.utils.clip_grad_norm_, and its argument errors."""

import numpy as np
import pytest
from conftest import TOLERANCE

import scratchlm as sl
import scratchlm.optim as optim
from scratchlm import backend

SHAPES = [(3, 4), (5,), (2, 2, 3), (1,)]


def params_with_grads(dtype, device="cpu", seed=0):
    """Parameters with random gradients (scaled so their global norm is about 9), plus one
    parameter without a gradient."""
    rng = np.random.default_rng(seed)
    params = [sl.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True, device=device)
              for s in SHAPES + [(2,)]]
    for p, s in zip(params, SHAPES):
        p.grad = backend.to_device(2 * rng.standard_normal(s).astype(dtype), device)
    return params


@pytest.mark.parametrize("max_norm", [1.0, 5.0, 100.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(max_norm, dtype, device):
    torch = pytest.importorskip("torch")
    ours = params_with_grads(dtype, device)
    theirs = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    for p, q in zip(ours, theirs):
        q.grad = None if p.grad is None else torch.tensor(backend.to_numpy(p.grad))
    norm = optim.clip_grad_norm_(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, foreach=False)
    assert type(norm) is float
    assert norm == pytest.approx(expected.item(), rel=TOLERANCE[np.dtype(dtype)]["rtol"])
    for i, (p, q) in enumerate(zip(ours, theirs)):
        if q.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(backend.to_numpy(p.grad), q.grad.numpy(),
                                       **TOLERANCE[np.dtype(dtype)], err_msg=f"grad {i}")


def test_scales_to_max_norm_and_returns_the_norm_before():
    params = params_with_grads(np.float64)
    grads = [p.grad.copy() for p in params if p.grad is not None]
    norm_before = np.sqrt(sum((g ** 2).sum() for g in grads))
    assert norm_before > 2.0  # the draw must need clipping for this test to mean anything
    assert optim.clip_grad_norm_(params, 2.0) == pytest.approx(norm_before, rel=1e-12)
    norm_after = np.sqrt(sum((p.grad ** 2).sum() for p in params if p.grad is not None))
    assert norm_after == pytest.approx(2.0 * norm_before / (norm_before + 1e-6), rel=1e-12)
    scale = 2.0 / (norm_before + 1e-6)
    for g, p in zip(grads, [p for p in params if p.grad is not None]):
        np.testing.assert_allclose(p.grad, g * scale, rtol=1e-12)


def test_below_max_norm_the_gradients_are_untouched():
    param = sl.tensor(np.zeros(2), requires_grad=True)
    param.grad = np.array([3.0, 4.0])
    assert optim.clip_grad_norm_(param, 5.1) == 5.0  # a single Tensor is accepted too
    np.testing.assert_array_equal(param.grad, [3.0, 4.0])


def test_without_gradients_the_norm_is_zero():
    params = [sl.tensor(np.zeros(3), requires_grad=True)]
    assert optim.clip_grad_norm_(params, 1.0) == 0.0
    params[0].grad = np.zeros(3)
    assert optim.clip_grad_norm_(params, 0.0) == 0.0
    np.testing.assert_array_equal(params[0].grad, np.zeros(3))


@pytest.mark.parametrize("max_norm, error, message", [
    (-1.0, ValueError, r"clip_grad_norm_: max_norm must be a finite number >= 0, got -1.0"),
    (float("nan"), ValueError, "max_norm must be a finite number"),
    ("1", ValueError, "max_norm must be a finite number"),
])
def test_bad_max_norm(max_norm, error, message):
    with pytest.raises(error, match=message):
        optim.clip_grad_norm_(params_with_grads(np.float32), max_norm)


def test_rejects_arrays_in_place_of_tensors():
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray, expected a scratchlm Tensor"):
        optim.clip_grad_norm_([sl.tensor([1.0], requires_grad=True), np.ones(2)], 1.0)
