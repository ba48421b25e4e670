"""The engine's behaviour: accumulation, freeing, no_grad, dtypes, devices, errors, gradcheck."""

import numpy as np
import pytest
from conftest import DEVICES

import scratchlm as sl
from scratchlm import backend


def test_leaf_gradients_accumulate_across_backward_calls():
    x = sl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * np.array([1.0, 2.0]) + 3)


def test_a_tensor_used_twice_gets_both_contributions():
    x = sl.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * x + x.exp() * x  # d/dx = 2x + eˣ(1 + x)
    y.sum().backward()
    value = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(x.grad, 2 * value + np.exp(value) * (1 + value))


def test_broadcast_gradient_is_summed_back_to_input_shape():
    a = sl.tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = sl.tensor(np.arange(3.0).reshape(3, 1), requires_grad=True)
    (a * b).sum().backward()
    assert b.grad.shape == (3, 1)
    np.testing.assert_array_equal(b.grad, np.full((3, 1), 8.0))  # 2 · 4 elements each
    np.testing.assert_array_equal(a.grad, np.broadcast_to(np.arange(3.0).reshape(3, 1),
                                                          (2, 3, 4)))


def test_gradient_of_shared_array_is_not_aliased_between_leaves():
    a = sl.tensor(np.ones(3), requires_grad=True)
    b = sl.tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()  # add returns the same array for both inputs
    a.grad += 10
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_long_chain_needs_no_recursion():
    x = sl.tensor(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_intermediate_buffers_are_released_after_backward():
    x = sl.tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    z = (y * y).sum()
    z.backward()
    assert y._ctx._released and not hasattr(y._ctx, "y")
    assert z._ctx._released


def test_second_backward_through_freed_graph_raises():
    x = sl.tensor(np.ones(3), requires_grad=True)
    z = (x.exp() * x).sum()
    z.backward()
    with pytest.raises(sl.GraphReleasedError, match="second time.*retain_graph=True"):
        z.backward()


def test_retain_graph_allows_a_second_backward():
    x = sl.tensor(np.array([0.5, 1.5]), requires_grad=True)
    z = (x.exp() * x).sum()
    z.backward(retain_graph=True)
    first = x.grad.copy()
    z.backward()
    np.testing.assert_allclose(x.grad, 2 * first)


def test_backward_on_non_scalar_needs_grad():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for a scalar.*shape \(2, 3\)"):
        (x * 2).backward()


def test_backward_with_explicit_grad_tensor():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    (x * 2).backward(sl.tensor(np.full((2, 3), 0.5)))
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_backward_grad_of_wrong_shape_raises():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"grad has shape \(3,\).*\(2, 3\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_requires_grad_raises():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        sl.tensor(np.ones(2)).sum().backward()


def test_no_grad_records_nothing():
    x = sl.tensor(np.ones(3), requires_grad=True)
    with sl.no_grad():
        y = x * 2
    assert not y.requires_grad and y._ctx is None
    assert sl.is_grad_enabled()
    with sl.no_grad(), sl.enable_grad():
        assert (x * 2).requires_grad


def test_float32_default_and_float64_preserved():
    assert sl.tensor([1.0, 2.0]).dtype == np.float32
    assert sl.tensor(1.5).dtype == np.float32
    assert sl.tensor([1, 2]).dtype == np.int64
    x = sl.tensor(np.ones(3), requires_grad=True)
    assert x.dtype == np.float64
    y = ((x * 2.0 + 1) ** 2 / 3.0).exp().sum()
    assert y.dtype == np.float64
    y.backward()
    assert x.grad.dtype == np.float64
    f = sl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    z = (f * 2.5 + 1.0).sum()
    assert z.dtype == np.float32
    z.backward()
    assert f.grad.dtype == np.float32


def test_tensor_copies_its_data_and_numpy_returns_a_copy():
    source = np.ones(3)
    t = sl.tensor(source)
    source[0] = 5
    assert t.numpy()[0] == 1
    t.numpy()[1] = 7
    assert t.data[1] == 1


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        sl.tensor([1, 2], requires_grad=True)


def test_detach_cuts_the_graph():
    x = sl.tensor(np.ones(2), requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y._ctx is None


def test_item_and_its_error():
    assert sl.tensor(np.array([[2.5]])).item() == 2.5
    with pytest.raises(ValueError, match=r"item\(\).*shape \(2,\)"):
        sl.tensor([1.0, 2.0]).item()


def test_manual_seed_makes_the_generator_reproducible():
    sl.manual_seed(123)
    first = backend.generator().standard_normal(5)
    sl.manual_seed(123)
    np.testing.assert_array_equal(backend.generator().standard_normal(5), first)


# --------------------------------------------------------------------------- errors
def test_matmul_shape_error_names_op_and_shapes():
    a, b = sl.tensor(np.ones((2, 3))), sl.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\)"):
        a @ b


def test_matmul_batch_broadcast_error():
    a, b = sl.tensor(np.ones((2, 3, 4))), sl.tensor(np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"matmul: batch axes.*\(2, 3, 4\).*\(3, 4, 5\)"):
        a @ b


def test_broadcast_error_names_op_and_shapes():
    a, b = sl.tensor(np.ones((2, 3))), sl.tensor(np.ones((4,)))
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(4,\)"):
        a * b


def test_reshape_axis_and_index_errors_name_the_op():
    x = sl.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"reshape: .*\(2, 3\).*\(4,\)"):
        x.reshape(4)
    with pytest.raises(ValueError, match=r"sum: axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(IndexError, match=r"getitem: .*\(2, 3\)"):
        x[5]
    with pytest.raises(ValueError, match=r"transpose: axes \(0,\)"):
        x.transpose(0)
    with pytest.raises(ValueError, match=r"concat: cannot join shapes"):
        sl.concat([x, sl.tensor(np.ones((3, 3)))], axis=1)


def test_cuda_without_gpu_says_how_to_install(monkeypatch):
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    with pytest.raises(RuntimeError, match=r"no GPU was found.*scratchlm\[gpu\]"):
        sl.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="no GPU was found"):
        sl.tensor([1.0]).to("cuda")


class _FakeGpuArray(np.ndarray):
    """A NumPy array the backend is told to take for a CuPy one (tests device checks)."""


def test_mixing_devices_names_both(monkeypatch):
    monkeypatch.setattr(backend, "cupy", object())
    monkeypatch.setattr(backend, "is_gpu_array", lambda a: isinstance(a, _FakeGpuArray))
    cpu = sl.Tensor._wrap(np.ones(3))
    gpu = sl.Tensor._wrap(np.ones(3).view(_FakeGpuArray))
    assert gpu.device == "cuda" and cpu.device == "cpu"
    with pytest.raises(RuntimeError, match=r"Add: inputs are on different devices \(cpu and cuda"):
        cpu + gpu


@pytest.mark.parametrize("device", DEVICES)
def test_device_round_trip(device):
    x = sl.tensor(np.arange(4.0), requires_grad=True, device=device)
    assert x.device == device
    y = (x * x).sum()
    y.backward()
    assert backend.device_of(x.grad) == device
    np.testing.assert_array_equal(x.to("cpu").numpy(), np.arange(4.0))
    assert isinstance(x.numpy(), np.ndarray)


# ------------------------------------------------------------------------ gradcheck
class WrongSquare(sl.Function):
    """A planted bug: the derivative of x² written as x instead of 2x."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return g * self.x


class RightSquare(WrongSquare):
    def backward(self, g):
        return 2 * g * self.x


def test_gradcheck_catches_a_planted_wrong_backward():
    x = sl.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    assert sl.gradcheck(lambda t: RightSquare()(t), [x])
    with pytest.raises(sl.GradcheckError) as info:
        sl.gradcheck(lambda t: WrongSquare()(t), [x])
    message = str(info.value)
    assert "input 0 of shape (3, 4)" in message
    assert "worst absolute error" in message and "worst relative error" in message
    assert "analytic" in message and "numerical" in message


def test_gradcheck_op_checks_one_function_alone():
    x = np.random.default_rng(1).standard_normal((2, 3))
    assert sl.gradcheck_op(RightSquare, [x])
    with pytest.raises(sl.GradcheckError, match="input 0 of WrongSquare"):
        sl.gradcheck_op(WrongSquare, [x])


def test_gradcheck_catches_errors_that_a_summed_output_would_hide():
    class SwappedRows(sl.Function):
        """y = 2x, but backward gives each row the other row's gradient."""

        def forward(self, x):
            return 2 * x

        def backward(self, g):
            return 2 * g[::-1]

    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(sl.GradcheckError):
        sl.gradcheck(lambda t: SwappedRows()(t), [x])


def test_gradcheck_demands_float64():
    with pytest.raises(TypeError, match="float64"):
        sl.gradcheck(lambda t: t * 2, [sl.tensor([1.0, 2.0], requires_grad=True)])


def test_custom_function_with_two_outputs():
    class SplitHalves(sl.Function):
        """(a, b) = (x[:n], x[n:]);  ∂L/∂x = [g_a, g_b]."""

        def forward(self, x):
            self.n = x.shape[0] // 2
            return x[:self.n], x[self.n:]

        def backward(self, ga, gb):
            return np.concatenate([ga, gb])

    x = sl.tensor(np.arange(4.0), requires_grad=True)
    a, b = SplitHalves()(x)
    (a * 3).sum().backward()  # b unused: its gradient arrives as zeros
    np.testing.assert_array_equal(x.grad, [3, 3, 0, 0])
    assert sl.gradcheck(lambda t: SplitHalves()(t), [sl.tensor(np.ones(6), requires_grad=True)])
