"""SGD, Adam and AdamW against torch.optim; parameter groups; state_dict; argument errors.

The main table feeds both frameworks the same random gradient arrays for 20 steps (one
parameter has no gradient on some steps, so it must be skipped) and compares every
parameter after every step. It runs with the reference update rules (``sl.use_fast(False)``)
and with the fast ones (``scratchlm.fast.optim``), these with the default chunk size and
with pieces of 7 elements, so the chunked in-place update is checked across piece
boundaries too; one parameter is Fortran-ordered, which takes the whole-array path. The
other tests that step an optimizer run with fast mode on and off too.
"""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.optim as optim
from scratchlm import backend
from scratchlm.autograd import dispatch
from scratchlm.fast import optim as fast_optim
from scratchlm.fast import registry

SHAPES = [(3, 4), (5,), (1,), (2, 3, 4), (6, 7)]
FORTRAN_ORDERED = 4  # index in SHAPES of the parameter stored column-major
SKIPPED = {1: (3, 7), 2: (3, 4, 5, 6, 7, 8, 9)}  # parameter -> steps where its .grad is None
STEPS = 20

#: Agreement with torch after 20 steps, relative to the parameters' scale (they start as
#: N(0, 1) draws, so atol = rtol: an entry passing near 0 keeps the absolute error of an O(1)
#: number). Rounding differs by an ulp where torch fuses a multiply-add.
OPTIMIZER_TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-6, atol=1e-6),
                       np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12)}

CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd-nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd-dampening": ("SGD", dict(lr=0.1, momentum=0.8, dampening=0.3)),
    "sgd-weight-decay": ("SGD", dict(lr=0.1, weight_decay=0.05)),
    "sgd-all": ("SGD", dict(lr=0.05, momentum=0.7, weight_decay=0.1, nesterov=True)),
    "adam": ("Adam", dict(lr=1e-2)),
    "adam-weight-decay": ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6,
                                       weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=1e-2)),
    "adamw-strong": ("AdamW", dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-4, weight_decay=0.3)),
}


def initial_arrays(dtype, shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def make_params(arrays, device="cpu"):
    params = [sl.tensor(a, requires_grad=True, device=device) for a in arrays]
    if len(params) > FORTRAN_ORDERED:
        fortran = params[FORTRAN_ORDERED]
        fortran.data = backend.get_array_module(fortran.data).asfortranarray(fortran.data)
    return params


def gradient_sequence(dtype, steps=STEPS, shapes=SHAPES, seed=1):
    """Per step, one gradient array (or None: no gradient this step) per parameter."""
    rng = np.random.default_rng(seed)
    return [[None if step in SKIPPED.get(i, ()) else rng.standard_normal(s).astype(dtype)
             for i, s in enumerate(shapes)] for step in range(steps)]


def run(optimizer, params, gradients, device="cpu"):
    """Feed ``gradients`` to ``optimizer`` step by step; the parameters after each step."""
    trajectory = []
    for step_gradients in gradients:
        for p, g in zip(params, step_gradients):
            p.grad = None if g is None else backend.to_device(g.copy(), device)
        optimizer.step()
        trajectory.append([p.numpy() for p in params])
    return trajectory


def run_torch(torch, name, kwargs, arrays, gradients, groups=None):
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    spec = params if groups is None else [{**g, "params": [params[i] for i in g["params"]]}
                                          for g in groups]
    optimizer = getattr(torch.optim, name)(spec, foreach=False, **kwargs)
    trajectory = []
    for step_gradients in gradients:
        for p, g in zip(params, step_gradients):
            p.grad = None if g is None else torch.tensor(g)
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def assert_same_trajectory(ours, theirs, tolerance):
    for step, (ours_step, theirs_step) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(ours_step, theirs_step)):
            np.testing.assert_allclose(a, b, **tolerance,
                                       err_msg=f"parameter {i} after step {step + 1}")


@pytest.fixture(params=[True, False], ids=["fast", "reference"])
def fast(request):
    """Fast mode on (the registered fast update rules run) or off (the reference rules)."""
    with sl.use_fast(request.param):
        yield request.param


def spy_on_rules(monkeypatch):
    """The update rules ``Optimizer.step`` looked up, one per parameter update: the fast
    function it found, or None (the reference rule ran)."""
    found = []

    def recording(reference, device):
        rule = registry.fast_version(reference, device)
        if getattr(reference, "__name__", None) == "update_parameter":
            found.append(rule)
        return rule
    monkeypatch.setattr(dispatch, "faster", recording)
    return found


IMPLEMENTATIONS = {"reference": (False, None), "fast": (True, None), "fast-chunks-of-7": (True, 7)}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_over_20_steps(case, dtype, implementation, device, monkeypatch):
    torch = pytest.importorskip("torch")
    fast_on, chunk_size = IMPLEMENTATIONS[implementation]
    if chunk_size is not None:
        monkeypatch.setattr(fast_optim, "CHUNK_SIZE", chunk_size)
    rules = spy_on_rules(monkeypatch)
    name, kwargs = CASES[case]
    arrays, gradients = initial_arrays(dtype), gradient_sequence(dtype)
    params = make_params(arrays, device)
    with sl.use_fast(fast_on):
        ours = run(getattr(optim, name)(params, **kwargs), params, gradients, device)
    theirs = run_torch(torch, name, kwargs, arrays, gradients)
    assert_same_trajectory(ours, theirs, OPTIMIZER_TOLERANCE[np.dtype(dtype)])
    assert all(p.dtype == dtype and p.device == device for p in params)
    # the implementation asked for is the one that ran
    assert len(rules) == sum(g is not None for step in gradients for g in step)
    with sl.use_fast(True):
        reference_rule = getattr(optim, name).update_parameter
        expected = registry.fast_version(reference_rule, device) if fast_on else None
    assert all(rule is expected for rule in rules)
    if fast_on and device == "cpu":
        assert expected is not None and expected.__module__ == "scratchlm.fast.optim"


@pytest.mark.parametrize("name, kwargs", [
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.05, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
])
def test_minimises_a_quadratic_like_torch(name, kwargs, fast):
    """Gradients from each framework's own autograd: L = ‖Ax − b‖² over 20 steps."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a, b, x0 = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.standard_normal(4)
    x = sl.tensor(x0, requires_grad=True)
    ours = getattr(optim, name)([x], **kwargs)
    x_torch = torch.tensor(x0, requires_grad=True)
    theirs = getattr(torch.optim, name)([x_torch], foreach=False, **kwargs)
    a_torch, b_torch = torch.tensor(a), torch.tensor(b)
    for step in range(20):
        loss = ((sl.tensor(a) @ x - sl.tensor(b)) ** 2).sum()
        loss_torch = ((a_torch @ x_torch - b_torch) ** 2).sum()
        assert loss.item() == pytest.approx(loss_torch.item(), rel=1e-12), f"step {step}"
        ours.zero_grad()
        theirs.zero_grad()
        loss.backward()
        loss_torch.backward()
        ours.step()
        theirs.step()
    np.testing.assert_allclose(x.numpy(), x_torch.detach().numpy(), rtol=1e-12)
    assert loss.item() < 0.5 * ((a @ x0 - b) ** 2).sum()


def test_param_groups_with_their_own_lr_and_weight_decay_match_torch(fast):
    torch = pytest.importorskip("torch")
    arrays, gradients = initial_arrays(np.float64), gradient_sequence(np.float64)
    groups = [{"params": [0, 3], "lr": 0.05, "weight_decay": 0.2},
              {"params": [1, 2], "betas": (0.5, 0.6)},
              {"params": [4], "weight_decay": 0.0}]
    params = make_params(arrays)
    ours = optim.AdamW([{**g, "params": [params[i] for i in g["params"]]} for g in groups],
                       lr=0.01, weight_decay=0.01)
    assert [g["lr"] for g in ours.param_groups] == [0.05, 0.01, 0.01]
    assert [g["weight_decay"] for g in ours.param_groups] == [0.2, 0.01, 0.0]
    assert [g["betas"] for g in ours.param_groups] == [(0.9, 0.999), (0.5, 0.6), (0.9, 0.999)]
    trajectory = run(ours, params, gradients)
    # Parameter positions count through the groups: 0, 3 | 1, 2 | 4.
    order = [0, 3, 1, 2, 4]
    reference = run_torch(torch, "AdamW", dict(lr=0.01, weight_decay=0.01), arrays, gradients,
                          groups=groups)
    assert_same_trajectory(trajectory, reference, OPTIMIZER_TOLERANCE[np.dtype(np.float64)])
    assert sorted(ours.state) == [0, 1, 2, 3, 4]
    assert ours.state[order.index(1)]["step"] == STEPS - len(SKIPPED[1])
    assert ours.state[order.index(2)]["step"] == STEPS - len(SKIPPED[2])


def test_zero_grad_sets_every_gradient_to_none():
    params = make_params(initial_arrays(np.float32))
    optimizer = optim.SGD([{"params": params[:2]}, {"params": params[2:]}], lr=0.1)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


def test_step_leaves_the_gradient_arrays_unchanged(fast):
    params = make_params(initial_arrays(np.float32))
    gradients = gradient_sequence(np.float32, steps=1)[0]
    for p, g in zip(params, gradients):
        p.grad = None if g is None else g.copy()
    optim.Adam(params, weight_decay=0.1).step()
    for p, g in zip(params, gradients):
        if g is not None:
            np.testing.assert_array_equal(p.grad, g)


# --------------------------------------------------------------------------- state_dict
ROUND_TRIP = {
    "sgd-nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": ("Adam", dict(lr=1e-2, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=1e-2, betas=(0.8, 0.95))),
}


def named(params):
    return [(f"layer{i}.weight", p) for i, p in enumerate(params)]


@pytest.mark.parametrize("with_names", [False, True], ids=["positions", "names"])
@pytest.mark.parametrize("case", ROUND_TRIP)
def test_state_dict_through_a_checkpoint_resumes_the_same_trajectory(case, with_names,
                                                                    tmp_path, fast):
    name, kwargs = ROUND_TRIP[case]
    arrays, gradients = initial_arrays(np.float32), gradient_sequence(np.float32)
    wrap = named if with_names else list

    def make_optimizer(params, **overrides):
        return getattr(optim, name)([{"params": wrap(params)[:2], "lr": 0.03},
                                     {"params": wrap(params)[2:]}], **{**kwargs, **overrides})

    uninterrupted = make_params(arrays)
    run(make_optimizer(uninterrupted), uninterrupted, gradients)

    first_half = make_params(arrays)
    optimizer = make_optimizer(first_half)
    run(optimizer, first_half, gradients[:10])
    sl.save({"optimizer": optimizer.state_dict()}, tmp_path / "checkpoint.npz")
    saved = sl.load(tmp_path / "checkpoint.npz")["optimizer"]
    expected_keys = [n for n, _ in named(first_half)] if with_names else list(range(5))
    assert [k for g in saved["param_groups"] for k in g["params"]] == expected_keys

    resumed = make_params([p.numpy() for p in first_half])
    fresh = make_optimizer(resumed, lr=123.0)  # hyperparameters come from the state dict
    fresh.load_state_dict(saved)
    assert [g["lr"] for g in fresh.param_groups] == [0.03, kwargs["lr"]]
    run(fresh, resumed, gradients[10:])
    for i, (a, b) in enumerate(zip(resumed, uninterrupted)):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"parameter {i}")


def test_state_dict_is_a_numpy_snapshot_keyed_by_position(fast):
    params = make_params(initial_arrays(np.float32))
    optimizer = optim.Adam(params, lr=0.1)
    run(optimizer, params, gradient_sequence(np.float32, steps=4))
    snapshot = optimizer.state_dict()
    assert sorted(snapshot["state"]) == [0, 1, 2, 3, 4]
    # Parameters 1 and 2 had no gradient at step index 3: their counts did not advance.
    assert [snapshot["state"][i]["step"] for i in range(5)] == [4, 3, 3, 4, 4]
    entry = snapshot["state"][0]
    assert type(entry["step"]) is int and entry["step"] == 4
    assert type(entry["exp_avg"]) is np.ndarray and entry["exp_avg"].dtype == np.float32
    before = entry["exp_avg"].copy()
    run(optimizer, params, gradient_sequence(np.float32, steps=1, seed=9))
    np.testing.assert_array_equal(entry["exp_avg"], before)
    assert snapshot["param_groups"] == [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8,
                                         "weight_decay": 0.0, "params": [0, 1, 2, 3, 4]}]


def adam_state_dict(params=None, **kwargs):
    params = params or make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    optimizer = optim.Adam(params, **kwargs)
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    optimizer.step()
    return optimizer.state_dict()


def replace(d, **changes):
    return {**d, **changes}


LOAD_ERRORS = {
    "not a state dict": (lambda sd: sd["state"], "expected a dict with keys"),
    "group count": (lambda sd: replace(sd, param_groups=sd["param_groups"] * 2),
                    r"has 2 parameter group\(s\) but this optimizer has 1"),
    "parameter count": (lambda sd: replace(sd, param_groups=[
        replace(sd["param_groups"][0], params=[0])]),
        r"group 0 has 1 parameter\(s\) in the state dict but 2 here"),
    "shape": (lambda sd: replace(sd, state={0: sd["state"][0], 1: replace(
        sd["state"][1], exp_avg=np.zeros(5, np.float32))}),
        r"exp_avg of parameter 1 has shape \(5,\) but the parameter has shape \(4,\)"),
    "missing hyperparameter": (lambda sd: replace(sd, param_groups=[{
        k: v for k, v in sd["param_groups"][0].items() if k != "betas"}]),
        r"lacks \['betas'\]; was it saved from another kind of optimizer"),
    "bad hyperparameter": (lambda sd: replace(sd, param_groups=[
        replace(sd["param_groups"][0], betas=(1.5, 0.9))]), r"betas\[0\]=1.5; expected"),
    "state entries": (lambda sd: replace(sd, state={0: sd["state"][0], 1: {
        "step": 1, "exp_avg": sd["state"][1]["exp_avg"]}}),
        r"has entries \['exp_avg', 'step'\] but Adam keeps"),
    "unknown parameter": (lambda sd: replace(sd, state={**sd["state"], 7: sd["state"][0]}),
                          "state for parameter 7, which none of its groups lists"),
    "negative step": (lambda sd: replace(sd, state={0: sd["state"][0], 1: replace(
        sd["state"][1], step=-1)}), "step -1 < 0"),
}


@pytest.mark.parametrize("case", LOAD_ERRORS)
def test_load_state_dict_rejects_a_mismatch_and_changes_nothing(case):
    mutate, message = LOAD_ERRORS[case]
    params = make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    optimizer = optim.Adam(params, lr=0.5)
    with pytest.raises(ValueError, match=r"Adam\.load_state_dict.*: .*" + message):
        optimizer.load_state_dict(mutate(adam_state_dict(lr=0.1)))
    assert optimizer.state == {} and optimizer.param_groups[0]["lr"] == 0.5


def test_load_state_dict_matches_names_and_rejects_other_names():
    params = make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    source = optim.Adam(named(params))
    for p in params:
        p.grad = np.ones(p.shape, np.float32)
    source.step()
    state = source.state_dict()
    assert sorted(state["state"]) == ["layer0.weight", "layer1.weight"]
    # Listed in the other order, matched by name: each state keeps its parameter's shape.
    target = optim.Adam(named(params)[::-1])
    target.load_state_dict(state)
    assert target.state["layer1.weight"]["exp_avg"].shape == (4,)
    renamed = optim.Adam([("encoder.w", params[0]), ("layer1.weight", params[1])])
    with pytest.raises(ValueError, match=r"names in parameter group 0 differ; not in the "
                       r"state dict: \['encoder.w'\], not in this optimizer: "
                       r"\['layer0.weight'\]"):
        renamed.load_state_dict(state)


def test_load_state_dict_refuses_another_optimizers_state():
    params = make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"lacks \['betas', 'eps'\]"):
        optim.Adam(params).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match=r"lacks \['dampening', 'momentum', 'nesterov'\]"):
        sgd.load_state_dict(adam_state_dict(params))


# ------------------------------------------------------------------------ bad arguments
BAD_ARGUMENTS = {
    "negative lr": (lambda p: optim.SGD(p, lr=-0.1), ValueError,
                    r"SGD: lr=-0.1; expected a finite number ≥ 0"),
    "lr not a number": (lambda p: optim.Adam(p, lr="0.1"), ValueError,
                        r"Adam: lr='0.1' \(a str\); expected a finite number ≥ 0"),
    "beta1 = 1": (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ValueError,
                  r"Adam: betas\[0\]=1.0; expected a finite number in \[0, 1\)"),
    "negative beta2": (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), ValueError,
                       r"AdamW: betas\[1\]=-0.1; expected a finite number in \[0, 1\)"),
    "one beta": (lambda p: optim.AdamW(p, betas=(0.9,)), ValueError,
                 r"betas must be a pair \(beta1, beta2\), got \(0.9,\)"),
    "negative eps": (lambda p: optim.Adam(p, eps=-1e-8), ValueError,
                     r"eps=-1e-08; expected a finite number > 0"),
    "negative weight decay": (lambda p: optim.AdamW(p, weight_decay=-0.1), ValueError,
                              r"weight_decay=-0.1; expected a finite number ≥ 0"),
    "negative momentum": (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ValueError,
                          r"momentum=-0.5; expected a finite number ≥ 0"),
    "nesterov without momentum": (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError,
                                  "nesterov=True needs momentum > 0 and dampening = 0"),
    "nesterov with dampening": (
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
        ValueError, "got momentum=0.9, dampening=0.1"),
    "bad lr in a group": (lambda p: optim.Adam([{"params": p[:1]}, {"params": p[1:], "lr": -1}]),
                          ValueError, r"Adam \(parameter group 1\): lr=-1; expected"),
    "misspelt hyperparameter": (lambda p: optim.Adam([{"params": p, "weight_deacy": 0.1}]),
                                ValueError, r"unknown hyperparameter\(s\) \['weight_deacy'\]"),
    "empty": (lambda p: optim.Adam([]), ValueError, "Adam: got an empty parameter list"),
    "empty group": (lambda p: optim.Adam([{"params": []}]), ValueError,
                    "empty parameter list"),
    "repeated parameter": (lambda p: optim.Adam(p + p[:1]), ValueError, "more than once"),
    "parameter in two groups": (lambda p: optim.Adam([{"params": p}, {"params": p[:1]}]),
                                ValueError, "more than once"),
    "repeated name": (lambda p: optim.Adam([("a", p[0]), ("a", p[1])]), ValueError,
                      r"name\(s\) \['a'\] appear more than once"),
    "names in one group only": (lambda p: optim.Adam([{"params": named(p)[:1]},
                                                      {"params": p[1:]}]),
                                ValueError, "not a mix"),
    "names for some parameters": (lambda p: optim.Adam([("a", p[0]), p[1]]), ValueError,
                                  "not a mix"),
    "a bare tensor": (lambda p: optim.SGD(p[0], lr=0.1), TypeError,
                      "params must be an iterable .* got Tensor"),
    "a set": (lambda p: optim.SGD([{"params": set()}], lr=0.1), TypeError,
              "a set has no stable order"),
    "an ndarray": (lambda p: optim.SGD([p[0], np.zeros(3)], lr=0.1), TypeError,
                   r"parameter #1 is a ndarray"),
    "not a leaf": (lambda p: optim.SGD([p[0] * 2], lr=0.1), ValueError,
                   "must be a floating-point leaf tensor"),
}


@pytest.mark.parametrize("case", BAD_ARGUMENTS)
def test_bad_arguments_raise_clear_errors(case):
    make, error, message = BAD_ARGUMENTS[case]
    params = make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    with pytest.raises(error, match=message):
        make(params)


def test_step_rejects_a_gradient_of_the_wrong_shape():
    params = make_params(initial_arrays(np.float32, shapes=[(3,), (4,)]))
    optimizer = optim.AdamW(named(params))
    params[1].grad = np.ones(3, np.float32)
    with pytest.raises(ValueError, match=r"AdamW.step: parameter 'layer1.weight' has shape "
                       r"\(4,\) but its .grad has shape \(3,\)"):
        optimizer.step()
