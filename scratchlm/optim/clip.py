"""Gradient clipping by the global L2 norm, as ``torch.nn.utils.clip_grad_norm_``.

    ‖g‖ = √(Σ over every parameter of Σ g²)
    g ← g · c / (‖g‖ + 10⁻⁶)      only when that factor is below 1, i.e. ‖g‖ > c

One norm over all gradients together keeps their directions relative to each other; the
10⁻⁶ guards the division when every gradient is zero.
"""

import math
import numbers

from scratchlm import backend
from scratchlm.autograd.tensor import Tensor


def clip_grad_norm_(params, max_norm):
    """Scale the gradients of ``params`` (a Tensor or an iterable of them) in place so their
    global L2 norm is at most ``max_norm``; return the norm before clipping (a float).
    Parameters whose ``.grad`` is None are skipped."""
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real) or not (
            0 <= max_norm < math.inf):
        raise ValueError(f"clip_grad_norm_: max_norm must be a finite number >= 0, "
                         f"got {max_norm!r}")
    params = [params] if isinstance(params, Tensor) else list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"clip_grad_norm_: params[{i}] is a {type(p).__name__}, expected "
                            "a scratchlm Tensor (e.g. from model.parameters())")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    devices = {backend.device_of(g) for g in grads}
    if len(devices) > 1:
        raise RuntimeError("clip_grad_norm_: the gradients are on different devices "
                           f"({sorted(devices)}); move the model to one device first")
    xp = backend.get_array_module(grads[0])
    # vdot(g, g) = Σ g² as one BLAS dot per array; summed on the device, one transfer.
    squares = sum(xp.vdot(g.reshape(-1), g.reshape(-1)) for g in grads)
    total_norm = math.sqrt(float(squares))
    scale = max_norm / (total_norm + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total_norm
