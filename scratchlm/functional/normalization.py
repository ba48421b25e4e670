"""Layer normalization over the last axis, as PyTorch's ``layer_norm`` with
``normalized_shape=(C,)`` and llm.c's layernorm forward/backward pair."""

import math

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.functional import gpu_kernels
from scratchlm.functional.rowwise import dot_along, one_block, row_blocks, row_mean, row_sum


def _check_shapes(x, weight, bias):
    if x.ndim == 0:
        raise ValueError("layer_norm: input must have at least one axis (the C features to "
                         "normalize over), got a 0-d input")
    features = x.shape[-1:]
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and param.shape != features:
            raise ValueError(f"layer_norm: {name} of shape {param.shape} does not fit input "
                             f"of shape {x.shape}; expected {features}")


def _normalize_rows(x, weight, bias, eps, norm=None, rstd=None, y=None):
    """(n, r, y) for a 2-D block of rows: n = (x − μ) r, r = 1/√(var + ε), y = n ⊙ w + b,
    written into ``norm``, ``rstd`` and ``y`` (new arrays where they are None)."""
    xp = get_array_module(x)
    features = x.shape[-1]
    norm = xp.subtract(x, row_mean(x), out=norm)
    # r = 1/√(var + ε) = √C / √(Σ(x − μ)² + Cε)
    r = dot_along(norm, norm, -1)
    r += features * eps
    rstd = xp.divide(math.sqrt(features), xp.sqrt(r, out=r), out=rstd)
    norm *= rstd
    # y is its own array, so that backward may overwrite n (may_overwrite_saved)
    if weight is not None:
        y = xp.multiply(norm, weight, out=y)
    elif y is None:
        y = norm.copy()
    else:
        y[...] = norm
    if bias is not None:
        y += bias
    return norm, rstd, y


class LayerNorm(Function):
    """y = n ⊙ w + b,  n = (x − μ) r,  μ = mean(x),  r = 1/√(var(x) + ε), per row of C features.

    ∂nⱼ/∂xᵢ = r (δᵢⱼ − 1/C − nᵢnⱼ/C), so with dn = g ⊙ w (per row)
        ∂L/∂x = r (dn − mean(dn) − n · mean(dn ⊙ n)),
        ∂L/∂w = Σ_rows g ⊙ n,   ∂L/∂b = Σ_rows g.
    n and r are saved (n costs one array, and recomputing it two passes in backward). On the
    CPU both directions go block by block of rows that stay in cache across their passes
    (on one thread: sharing the blocks out among two measured no faster here).
    On the GPU, the forward and ∂L/∂x are each one fused kernel with a thread block per row
    (:mod:`~scratchlm.functional.gpu_kernels`); the array code below is their reference.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, weight, bias):
        _check_shapes(x, weight, bias)
        if gpu_kernels.fusable_rows(x, weight, bias):
            y, self.norm, self.rstd = gpu_kernels.layer_norm_rows(x, weight, bias, self.eps)
            self.weight = weight
            return y
        xp = get_array_module(x)
        x_rows = x.reshape(-1, x.shape[-1])
        if one_block(x_rows):
            norm, rstd, y = _normalize_rows(x_rows, weight, bias, self.eps)
        else:
            norm, y = xp.empty_like(x_rows), xp.empty_like(x_rows)
            rstd = xp.empty((x_rows.shape[0], 1), dtype=x.dtype)
            for rows in row_blocks(x_rows):  # each block stays in cache across its passes
                _normalize_rows(x_rows[rows], weight, bias, self.eps,
                                norm[rows], rstd[rows], y[rows])
        self.norm, self.rstd, self.weight = norm, rstd, weight
        return y.reshape(x.shape)

    def backward(self, g):
        xp = get_array_module(g)
        features = g.shape[-1]
        g_rows = g.reshape(-1, features)
        norm = self.norm.reshape(-1, features)
        rstd = self.rstd.reshape(-1, 1)
        grad_weight = grad_bias = None
        if self.needs_input_grad[1]:
            grad_weight = xp.einsum("rc,rc->c", g_rows, norm)
        if self.needs_input_grad[2]:
            grad_bias = row_sum(g_rows.T)[:, 0]
        if not self.needs_input_grad[0]:
            return None, grad_weight, grad_bias
        if gpu_kernels.fusable_rows(g_rows, norm, rstd, self.weight):
            grad_x = gpu_kernels.layer_norm_backward_rows(g_rows, norm, self.weight, rstd)
            return grad_x.reshape(g.shape), grad_weight, grad_bias
        grad_x = xp.empty_like(g_rows)
        for rows in row_blocks(g_rows):
            dnorm = grad_x[rows]  # dn = g ⊙ w, then the formula, in this block of ∂L/∂x
            if self.weight is None:
                dnorm[...] = g_rows[rows]
            else:
                xp.multiply(g_rows[rows], self.weight, out=dnorm)
            mean_dnorm_norm = dot_along(dnorm, norm[rows], -1)
            mean_dnorm_norm /= features
            dnorm -= row_mean(dnorm)
            dnorm -= xp.multiply(norm[rows], mean_dnorm_norm,
                                 out=norm[rows] if self.may_overwrite_saved else None)
            dnorm *= rstd[rows]
        return grad_x.reshape(g.shape), grad_weight, grad_bias


def layer_norm(x, weight, bias, eps=1e-5):
    """Normalize each row over the last axis to mean 0, variance 1, then scale and shift
    (``weight`` and ``bias`` of shape (C,), or None)."""
    return LayerNorm(eps)(x, weight, bias)
