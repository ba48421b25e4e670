"""Anomaly mode: ``sl.detect_anomaly()`` names the first op whose forward or backward made a
NaN or an Inf, forward or backward (and which input's gradient), its inputs, and the line of
this file that created it; nothing is checked outside the context."""

import os

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm.autograd import anomaly

HERE = os.path.abspath(__file__)


def line_of(marker):
    """The line number of the one line of this file that ends with ``marker``."""
    with open(HERE) as f:
        hits = [i + 1 for i, line in enumerate(f) if line.rstrip().endswith(marker)]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.fixture(params=[True, False], ids=["fast", "reference"])
def fast(request):
    with sl.use_fast(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def quiet_numpy():
    with np.errstate(all="ignore"):  # the planted NaNs would warn
        yield


def assert_site(error, marker):
    assert os.path.abspath(error.filename) == HERE
    assert error.lineno == line_of(marker)
    assert f"{os.path.basename(HERE)}:{line_of(marker)}" in str(error)


class LogModel(nn.Module):
    """Linear → log: a negative pre-activation makes the log NaN."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        h = self.linear(x)
        return h.log().sum()  # @log


class InfBackward(sl.Function):
    """y = 2x whose backward claims an infinite gradient for its second input."""

    def forward(self, x, w):
        return 2 * x * w

    def backward(self, g):
        return 2 * g, np.full((), np.inf, dtype=g.dtype)


# ---------------------------------------------------------------------------- forward
def test_forward_nan_names_the_op_and_the_users_line(fast):
    model = LogModel()
    x = sl.tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    model.linear.bias.data[:] = -100.0  # every pre-activation negative
    with pytest.raises(sl.AnomalyError) as caught, sl.detect_anomaly():
        model(x)
    error = caught.value
    assert error.op == "Log" and error.phase == "forward" and error.input_index is None
    assert_site(error, "# @log")
    message = str(error)
    assert "forward of Log produced NaN" in message
    assert "shape (4, 2), dtype float32" in message
    assert "its inputs were all finite" in message
    assert error.inputs == [((4, 2), "float32", None)]
    assert not sl.is_anomaly_enabled()


def test_outside_the_context_nothing_is_checked_or_recorded(fast):
    model = LogModel()
    model.linear.bias.data[:] = -100.0
    x = sl.tensor(np.ones((4, 3), dtype=np.float32))
    loss = model(x)  # NaN, silently, as without anomaly mode
    assert np.isnan(loss.item())
    loss.backward()  # ∂log h/∂h = 1/h: finite, and nothing looks
    assert model.linear.weight.grad is not None
    y = sl.tensor(np.zeros(3), requires_grad=True).sqrt()
    assert "_anomaly_stack" not in y._ctx.__dict__
    y.sum().backward()  # an infinite gradient, silently


def test_layer_norm_names_the_reference_op_on_fast_and_reference_paths(fast, device):
    # eps=0 and a constant row: variance 0, so (x - μ)/√(var + ε) = 0/0
    x = sl.tensor(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]], np.float32),
                  requires_grad=True, device=device)
    weight = sl.tensor(np.ones(4, np.float32), requires_grad=True, device=device)
    bias = sl.tensor(np.zeros(4, np.float32), requires_grad=True, device=device)
    with pytest.raises(sl.AnomalyError) as caught, sl.detect_anomaly():
        F.layer_norm(x, weight, bias, eps=0.0)  # @layer_norm
    error = caught.value
    assert error.op == "LayerNorm" and error.phase == "forward"
    if fast:  # a fast LayerNorm is registered on both devices: it ran, the reference is named
        assert error.implementation != "LayerNorm"
        assert f"LayerNorm (fast implementation {error.implementation} ran)" in str(error)
    else:
        assert error.implementation == "LayerNorm"
        assert "fast implementation" not in str(error)
    assert_site(error, "# @layer_norm")
    assert "shape (2, 4), dtype float32" in str(error)
    assert "shape (4,), dtype float32" in str(error)


def test_the_first_op_is_named_not_the_ones_that_use_its_output(fast):
    scores = sl.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    mask = np.array([[True, True, True], [False, False, False]])
    with pytest.raises(sl.AnomalyError) as caught, sl.detect_anomaly():
        masked = sl.where(mask, scores, -np.inf)  # @where
        F.softmax(masked)  # a row of -inf: NaN, but the Inf came first
    assert caught.value.op == "Where" and caught.value.phase == "forward"
    assert "produced Inf" in str(caught.value)
    assert_site(caught.value, "# @where")


def test_an_input_that_already_held_nan_is_reported_as_such(fast):
    x = sl.tensor(np.array([[1.0, np.nan, 3.0, 4.0]], np.float32), requires_grad=True)
    layer = nn.LayerNorm(4)
    with pytest.raises(sl.AnomalyError) as caught, sl.detect_anomaly():
        layer(x)  # @nan_input
    error = caught.value
    assert error.op == "LayerNorm" and error.phase == "forward"
    assert error.inputs[0] == ((1, 4), "float32", "NaN")
    assert error.inputs[1][2] is None and error.inputs[2][2] is None
    assert "already contained NaN when the op got it" in str(error)
    assert "an input already held NaN/Inf" in str(error)
    assert_site(error, "# @nan_input")


def test_forward_is_checked_under_no_grad_too():
    x = sl.tensor(np.array([-1.0, 1.0]))
    with pytest.raises(sl.AnomalyError, match="forward of Log"), sl.detect_anomaly(), \
            sl.no_grad():
        x.log()


# --------------------------------------------------------------------------- backward
def test_backward_inf_from_a_custom_function_names_op_input_and_line(fast):
    x = sl.tensor(np.ones(3), requires_grad=True)
    w = sl.tensor(np.ones(3), requires_grad=True)
    with sl.detect_anomaly():
        y = InfBackward()(x, w)  # @custom
        loss = (y * y).sum()
        assert np.isfinite(loss.item())
        with pytest.raises(sl.AnomalyError) as caught:
            loss.backward()
    error = caught.value
    assert error.op == "InfBackward" and error.phase == "backward"
    assert error.input_index == 1
    assert_site(error, "# @custom")
    message = str(error)
    assert "backward of InfBackward returned Inf in the gradient for its input 1" in message
    assert "arriving at its output was finite" in message
    assert "input 0: shape (3,), dtype float64" in message
    assert x.grad is None and w.grad is None  # raised before anything accumulated


def test_sqrt_at_zero_in_backward(fast):
    t = sl.tensor(np.array([0.0, 4.0]), requires_grad=True)
    with sl.detect_anomaly():
        r = t.sqrt()  # @sqrt
        loss = (r * 3).sum()  # forward finite: √0 = 0
        with pytest.raises(sl.AnomalyError) as caught:
            loss.backward()  # ∂√t/∂t = 1/(2√t) = ∞ at 0
    error = caught.value
    assert (error.op, error.phase, error.input_index) == ("Sqrt", "backward", 0)
    assert_site(error, "# @sqrt")


def test_backward_of_a_model_layer_names_the_line_in_the_models_forward(fast):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return (self.linear(x) * 0.0).sqrt().sum()  # @net_sqrt

    net = Net()
    with sl.detect_anomaly():
        loss = net(sl.tensor(np.ones((3, 2), np.float32)))
        with pytest.raises(sl.AnomalyError) as caught:
            loss.backward()
    assert (caught.value.op, caught.value.phase) == ("Sqrt", "backward")
    assert_site(caught.value, "# @net_sqrt")
    # the user frames outside the library, innermost first: Net.forward, then this test
    assert caught.value.stack[1][2] == "test_backward_of_a_model_layer_names_the_line_in_" \
                                       "the_models_forward"


def test_a_nan_gradient_given_to_backward_is_reported_as_arriving():
    x = sl.tensor(np.ones(2), requires_grad=True)
    with sl.detect_anomaly():
        y = x * 2
        with pytest.raises(sl.AnomalyError, match="arriving at its output already contained"
                                                  " NaN"):
            y.backward(np.array([np.nan, 1.0]))


def test_a_graph_recorded_outside_the_context_is_checked_without_a_line():
    t = sl.tensor(np.zeros(2), requires_grad=True)
    loss = t.sqrt().sum()
    with pytest.raises(sl.AnomalyError) as caught, sl.detect_anomaly():
        loss.backward()
    assert caught.value.op == "Sqrt" and caught.value.filename is None
    assert "created outside detect_anomaly()" in str(caught.value)
    assert "input 0: shape (2,), dtype float64" in str(caught.value)


# ------------------------------------------------------------------------- the context
def test_context_restores_the_mode_nests_and_decorates():
    assert not sl.is_anomaly_enabled()
    with sl.detect_anomaly():
        assert sl.is_anomaly_enabled()
        with sl.detect_anomaly(False):
            assert not sl.is_anomaly_enabled()
            sl.tensor(np.array([-1.0])).log()  # not checked here
        assert sl.is_anomaly_enabled()
    assert not sl.is_anomaly_enabled()
    with pytest.raises(sl.AnomalyError), sl.detect_anomaly():
        sl.tensor(np.array([-1.0])).log()
    assert not anomaly.enabled

    @sl.detect_anomaly()
    def run():
        assert sl.is_anomaly_enabled()
        return sl.tensor(np.array([-1.0])).log()

    with pytest.raises(sl.AnomalyError):
        run()
    assert not sl.is_anomaly_enabled()


def test_finite_training_inside_the_context_raises_nothing(fast):
    import scratchlm.optim as optim
    from scratchlm.models import GPT, GPTConfig

    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    idx = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    with sl.detect_anomaly():
        for _ in range(2):
            _, loss = model(idx, idx)
            loss.backward()
            opt.step()
            opt.zero_grad()
    assert np.isfinite(loss.item())


def test_anomaly_error_is_a_runtime_error():
    assert issubclass(sl.AnomalyError, RuntimeError)
