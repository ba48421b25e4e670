"""Checking hand-written gradients against central differences.

For a function y = f(x) and a random cotangent c (same shape as y) the scalar
φ(x) = ⟨f(x), c⟩ has gradient ∇φ = Jᵀc — exactly what backward computes from ∂L/∂y = c.
Each entry of ∇φ is also approximated by a central difference

    ∂φ/∂xⱼ ≈ (φ(x + ε eⱼ) − φ(x − ε eⱼ)) / 2ε        (error O(ε²)),

in float64. A random c, unlike summing the outputs, cannot let two wrong entries cancel.

Two modes:
- :func:`gradcheck` checks a whole graph built from Tensors (several ops, the engine too);
- :func:`gradcheck_op` checks one Function's ``backward`` on its own, with no engine in
  between — the mode for writing a new op in the exercises.
"""

import numpy as np

from scratchlm import backend
from scratchlm.autograd.engine import sum_to_shape
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import bad_argument, check_int, check_real, check_type
from scratchlm.errors import ArgumentTypeError


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one."""


def _random_like(array, rng):
    xp = backend.get_array_module(array)
    return xp.asarray(rng.standard_normal(array.shape))


def _numerical_gradient(objective, x, eps):
    """Central differences of ``objective()`` with respect to every entry of ``x`` (in place)."""
    xp = backend.get_array_module(x)
    flat = x.reshape(-1)  # a view: writing to it perturbs x
    grad = np.empty(x.size)
    for j in range(x.size):
        original = flat[j].item()
        flat[j] = original + eps
        f_plus = objective()
        flat[j] = original - eps
        f_minus = objective()
        flat[j] = original
        grad[j] = (f_plus - f_minus) / (2 * eps)
    return xp.asarray(grad.reshape(x.shape))


def _compare(name, analytic, numerical, atol, rtol):
    """Raise :class:`GradcheckError` if any entry is off by more than atol + rtol·|numerical|."""
    analytic, numerical = backend.to_numpy(analytic), backend.to_numpy(numerical)
    error = np.abs(analytic - numerical)
    bad = ~(error <= atol + rtol * np.abs(numerical))  # NaN counts as bad
    if not bad.any():
        return
    relative = error / np.maximum(np.abs(numerical), 1e-12)
    worst = np.argsort(np.where(np.isnan(error), np.inf, error), axis=None)[::-1][:5]
    def index(k):  # plain ints: NumPy 2 would print np.int64(…)
        return str(tuple(int(i) for i in np.unravel_index(k, analytic.shape)))

    rows = "\n".join(
        f"    {index(k):>16}  {analytic.flat[k]: .8e}  "
        f"{numerical.flat[k]: .8e}  {error.flat[k]:.2e}" for k in worst)
    raise GradcheckError(
        f"gradcheck failed for {name} of shape {analytic.shape}: {int(bad.sum())} of "
        f"{bad.size} entries differ; worst absolute error {np.nanmax(error):.3e}, worst "
        f"relative error {np.nanmax(relative):.3e} (atol={atol}, rtol={rtol})\n"
        f"    {'index':>16}  {'analytic':>15}  {'numerical':>15}  abs error\n{rows}")


def _check_float64(name, array):
    if array.dtype != np.float64:
        raise ArgumentTypeError(f"gradcheck: {name} has dtype {array.dtype}; central "
                                "differences need float64 inputs (float32 rounding swamps the "
                                "difference)", where="gradcheck", name=name, value=array)


def _check_settings(where, fn_name, fn, eps, atol, rtol, seed):
    """The settings both checks share: a callable, a step ε > 0, tolerances ≥ 0, a seed."""
    if not callable(fn):
        raise bad_argument(where, fn_name, fn, "a function", error=ArgumentTypeError)
    check_real(where, "eps", eps, 0, low_open=True, hint="(the step of the central "
               "differences, e.g. 1e-6)")
    check_real(where, "atol", atol, 0)
    check_real(where, "rtol", rtol, 0)
    check_int(where, "seed", seed, 0)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``fn``'s backward pass against central differences; True or GradcheckError.

    ``inputs`` are float64 Tensors; those with ``requires_grad=True`` are checked (all of
    them when none is marked). ``fn`` returns a Tensor or a tuple of Tensors.
    """
    _check_settings("gradcheck", "fn", fn, eps, atol, rtol, seed)
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        check_type("gradcheck", f"inputs[{i}]", t, Tensor, "a Tensor")
        if t.dtype.kind == "f":
            _check_float64(f"input {i}", t.data)
    checked = [i for i, t in enumerate(inputs) if t.requires_grad] or [
        i for i, t in enumerate(inputs) if t.dtype.kind == "f"]
    leaves = [Tensor(t.data, requires_grad=i in checked) for i, t in enumerate(inputs)]

    def outputs_of(result):
        return result if isinstance(result, tuple) else (result,)

    outputs = outputs_of(fn(*leaves))
    rng = np.random.default_rng(seed)
    cotangents = [_random_like(y.data, rng) for y in outputs]
    for y, c in zip(outputs, cotangents):
        if y.requires_grad:
            y.backward(c, retain_graph=True)

    def objective():
        with no_grad():
            ys = outputs_of(fn(*leaves))
        return sum(float((y.data * c).sum()) for y, c in zip(ys, cotangents))

    for i in checked:
        leaf = leaves[i]
        xp = backend.get_array_module(leaf.data)
        analytic = leaf.grad if leaf.grad is not None else xp.zeros_like(leaf.data)
        numerical = _numerical_gradient(objective, leaf.data, eps)
        _compare(f"input {i}", analytic, numerical, atol, rtol)
    return True


def gradcheck_op(make_function, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check one Function's ``backward`` alone: ``make_function()`` builds a fresh instance
    (a Function class or a lambda), ``inputs`` are float64 arrays; every input is checked."""
    _check_settings("gradcheck_op", "make_function", make_function, eps, atol, rtol, seed)
    inputs = [backend.get_array_module(x).array(x, copy=True) if hasattr(x, "shape")
              else np.asarray(x, dtype=np.float64) for x in inputs]
    for i, x in enumerate(inputs):
        _check_float64(f"input {i}", x)

    def run_forward():
        function = make_function()
        function.needs_input_grad = (True,) * len(inputs)
        result = function.forward(*inputs)
        return function, (result if isinstance(result, tuple) else (result,))

    function, outputs = run_forward()
    rng = np.random.default_rng(seed)
    cotangents = [_random_like(y, rng) for y in outputs]
    grads = function.backward(*cotangents)
    if not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(inputs):
        raise GradcheckError(f"gradcheck_op: {function.name}.backward returned {len(grads)} "
                             f"gradients for {len(inputs)} inputs")

    def objective():
        return sum(float((y * c).sum()) for y, c in zip(run_forward()[1], cotangents))

    for i, (x, g) in enumerate(zip(inputs, grads)):
        xp = backend.get_array_module(x)
        analytic = xp.zeros_like(x) if g is None else sum_to_shape(g, x.shape, function.name)
        _compare(f"input {i} of {function.name}", analytic,
                 _numerical_gradient(objective, x, eps), atol, rtol)
    return True
