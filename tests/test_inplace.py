"""In-place change detection: every tensor counts its in-place changes (``_version``), each
op records its inputs' versions at forward, and a backward through an op whose input changed
since raises :class:`sl.InPlaceChangeError` — the classic bug of an ``optimizer.step()``
between forward and backward. Normal training (including retained graphs and gradient
accumulation) never raises. Writes into ``.data`` are not tracked (as in PyTorch), but inside
``sl.detect_anomaly()`` a write into an array an op saved is caught at its backward."""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim

HINT = ("an optimizer step or an in-place change happened between forward and backward; "
        "call backward first, or compute the forward again")

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd-momentum": lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    "adam": lambda p: optim.Adam(p, lr=1e-2),
    "adamw": lambda p: optim.AdamW(p, lr=1e-2),
}


@pytest.fixture(params=[True, False], ids=["fast", "reference"])
def fast(request):
    with sl.use_fast(request.param):
        yield request.param


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 4)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.norm(self.linear(x)).tanh()).sum()


def batch(seed=0):
    return sl.tensor(np.random.default_rng(seed).standard_normal((5, 3)).astype(np.float32))


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_a_step_between_forward_and_backward_raises(fast, make_optimizer):
    sl.manual_seed(0)
    net = Net()
    opt = make_optimizer(net.parameters())
    net(batch()).backward()  # populates the gradients, so that step() changes every parameter
    opt.step()
    assert net.head.weight._version == 1
    loss = net(batch(1))
    opt.step()  # the bug: the graph above saw the parameters before this step
    with pytest.raises(sl.InPlaceChangeError) as caught:
        loss.backward()
    message = str(caught.value)
    assert HINT in message
    assert "backward of Linear" in message  # the head, the first op backward reaches
    assert "input 1 (shape (2, 4), dtype float32" in message
    assert "is at version 2, but was at version 1 when the forward ran" in message
    assert isinstance(caught.value, RuntimeError)


def test_the_reference_op_is_named_when_a_fast_one_ran():
    weight = sl.tensor(np.ones(4, np.float32), requires_grad=True)
    x = sl.tensor(np.arange(8, dtype=np.float32).reshape(2, 4), requires_grad=True)
    y = F.layer_norm(x, weight, None)
    weight.bump_version()
    with pytest.raises(sl.InPlaceChangeError, match=r"backward of LayerNorm( \(fast|:)"):
        y.sum().backward()


def test_normal_training_never_raises(fast):
    sl.manual_seed(0)
    net = Net()
    opt = optim.AdamW(net.parameters(), lr=1e-2)
    for step in range(4):  # forward, backward, step, repeat
        opt.zero_grad()
        net(batch(step)).backward()
        opt.step()
    assert all(p._version == 4 for p in net.parameters())


def test_gradient_accumulation_over_several_forwards_before_one_step(fast):
    sl.manual_seed(0)
    net = Net()
    opt = optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):
        losses = [net(batch(i)) for i in range(3)]  # three graphs alive at once
        for loss in losses:
            loss.backward()
        opt.step()
        opt.zero_grad()
        for i in range(3):  # and forward, backward, forward, backward, ..., step
            net(batch(i)).backward()
        opt.step()
        opt.zero_grad()
    assert net.linear.weight._version == 4


def test_retain_graph_twice_without_a_step_is_fine_and_with_one_raises(fast):
    sl.manual_seed(0)
    net = Net()
    opt = optim.SGD(net.parameters(), lr=0.1)
    loss = net(batch())
    loss.backward(retain_graph=True)
    first = net.linear.weight.grad.copy()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(net.linear.weight.grad, 2 * first, rtol=1e-6)
    opt.step()
    with pytest.raises(sl.InPlaceChangeError, match="call backward first"):
        loss.backward()


def test_load_state_dict_between_forward_and_backward_raises(fast):
    sl.manual_seed(0)
    net, other = Net(), Net()
    net.load_state_dict(other.state_dict())  # before the forward: fine
    loss = net(batch())
    loss.backward()
    loss = net(batch())
    net.load_state_dict(other.state_dict())
    with pytest.raises(sl.InPlaceChangeError, match="version 2, but was at version 1"):
        loss.backward()


def test_a_step_of_an_unrelated_model_does_not_raise(fast):
    sl.manual_seed(0)
    net, other = Net(), Net()
    other_opt = optim.SGD(other.parameters(), lr=0.1)
    other(batch()).backward()
    loss = net(batch())
    other_opt.step()  # moves the change clock, but changes nothing net's graph kept
    loss.backward()
    assert net.linear.weight.grad is not None


def test_frozen_parameters_are_not_bumped_and_ops_check_only_what_needs_a_gradient():
    sl.manual_seed(0)
    net = Net()
    for p in net.norm.parameters():
        p.requires_grad_(False)
    opt = optim.SGD(net.parameters(), lr=0.1)
    net(batch()).backward()
    opt.step()
    assert net.norm.weight._version == 0 and net.linear.weight._version == 1
    x = sl.tensor(np.ones(3))  # needs no gradient: the op keeps no reference to it
    w = sl.tensor(np.ones(3), requires_grad=True)
    y = x * w
    x.bump_version()
    y.sum().backward()


def test_bump_version_by_hand_on_an_intermediate_and_exact_versions():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    h = x * 2
    y = h * h
    assert h._version == 0
    for _ in range(3):
        assert h.bump_version() is h
    assert h._version == 3
    with pytest.raises(sl.InPlaceChangeError) as caught:
        y.sum().backward()
    message = str(caught.value)
    assert "backward of Mul: its input 0 (shape (2, 3), dtype float64, an op's output)" \
        in message
    assert "is at version 3, but was at version 0" in message


def test_the_version_at_forward_is_exact_after_many_changes():
    w = sl.tensor(np.ones(2), requires_grad=True)
    for _ in range(3):
        w.bump_version()
    y = w * w
    for _ in range(40):
        w.bump_version()
    with pytest.raises(sl.InPlaceChangeError, match="version 43, but was at version 3 when"):
        y.sum().backward()


def test_changes_before_the_forward_are_fine():
    w = sl.tensor(np.ones(2), requires_grad=True)
    w.bump_version()
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])


def test_an_op_recorded_after_the_change_in_the_same_graph_is_fine():
    w = sl.tensor(np.ones(2), requires_grad=True)
    a = w * 3  # recorded before the change: its backward would raise ...
    w.bump_version()
    b = w * w  # ... recorded after: fine
    b.sum().backward(retain_graph=True)
    with pytest.raises(sl.InPlaceChangeError):
        (a + b).sum().backward()


# ------------------------------------------------------------------ writes into .data
def test_a_write_into_data_is_not_tracked_outside_anomaly_mode(fast):
    """As in PyTorch, ``.data`` bypasses tracking: the gradient comes from the new values
    (∂(x·w)/∂w = x, read at backward), not the ones the forward saw; README says so."""
    x = sl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = sl.tensor(np.array([3.0, 4.0]), requires_grad=True)
    y = (x * w).sum()
    x.data[0] = 10.0
    y.backward()
    np.testing.assert_array_equal(w.grad, [10.0, 2.0])
    assert x._version == 0


def test_anomaly_mode_catches_a_write_into_a_leafs_data(fast):
    x = sl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = sl.tensor(np.array([3.0, 4.0]), requires_grad=True)
    with sl.detect_anomaly():
        y = (x * w).sum()
        x.data[0] = 10.0
        with pytest.raises(sl.InPlaceChangeError) as caught:
            y.backward()
    message = str(caught.value)
    assert message.startswith("backward of Mul: the array it saved at forward as self.a "
                              "changed before its backward"), message
    assert "write into a copy" in message
    assert w.grad is None  # nothing was accumulated from the wrong values


def test_anomaly_mode_catches_a_write_into_an_ops_output(fast):
    x = sl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with sl.detect_anomaly():
        y = x.exp()  # Exp saves its output y for ∂L/∂x = g · y
        y.data[1] = 0.0
        with pytest.raises(sl.InPlaceChangeError, match="backward of Exp: the array it saved "
                                                        "at forward as self.y changed"):
            y.sum().backward()


def test_anomaly_mode_lets_a_write_nothing_saved_through(fast):
    """A write into an array no op saved cannot change a gradient: no error, the right one."""
    x = sl.tensor(np.array([0.0, 1.0]), requires_grad=True)
    with sl.detect_anomaly():
        y = x.exp()  # Exp keeps y, not x
        x.data[0] = 5.0
        y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.0, 1.0]))


def test_anomaly_mode_passes_a_whole_training_step_without_a_false_alarm(fast):
    """Every op of a GPT step, fast ones writing into their saved arrays in their last
    backward included, with a retained graph differentiated twice."""
    from scratchlm.models import GPT, GPTConfig

    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    ids = np.random.default_rng(0).integers(0, 11, size=(2, 8))
    with sl.detect_anomaly():
        loss = model(ids, ids)[1]
        loss.backward(retain_graph=True)
        first = [p.grad.copy() for p in model.parameters()]
        loss.backward()
    for p, g in zip(model.parameters(), first):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6, atol=1e-7)
