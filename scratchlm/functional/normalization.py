"""Layer normalization over the last axis, as PyTorch's ``layer_norm`` with
``normalized_shape=(C,)`` and llm.c's layernorm forward/backward pair."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.functional import gpu_kernels
from scratchlm.functional.rowwise import dot_along, row_mean, row_sum


def _check_shapes(x, weight, bias):
    if x.ndim == 0:
        raise ValueError("layer_norm: input must have at least one axis (the C features to "
                         "normalize over), got a 0-d input")
    features = x.shape[-1:]
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and param.shape != features:
            raise ValueError(f"layer_norm: {name} of shape {param.shape} does not fit input "
                             f"of shape {x.shape}; expected {features}")


class LayerNorm(Function):
    """y = n ⊙ w + b,  n = (x − μ) r,  μ = mean(x),  r = 1/√(var(x) + ε), per row of C features.

    ∂nⱼ/∂xᵢ = r (δᵢⱼ − 1/C − nᵢnⱼ/C), so with dn = g ⊙ w (per row)
        ∂L/∂x = r (dn − mean(dn) − n · mean(dn ⊙ n)),
        ∂L/∂w = Σ_rows g ⊙ n,   ∂L/∂b = Σ_rows g.
    n and r are saved (n costs one array, and recomputing it two passes in backward).
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
        norm = x - row_mean(x)
        variance = dot_along(norm, norm, -1)
        variance /= x.shape[-1]
        variance += self.eps
        rstd = xp.reciprocal(xp.sqrt(variance, out=variance), out=variance)
        norm *= rstd
        self.norm, self.rstd, self.weight = norm, rstd, weight
        # the output is a new array, so that backward may overwrite n (may_overwrite_saved)
        y = norm * weight if weight is not None else norm.copy()
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        xp = get_array_module(g)
        features = g.shape[-1]
        norm = self.norm
        grad_weight = grad_bias = None
        if self.needs_input_grad[1]:
            grad_weight = xp.einsum("rc,rc->c", g.reshape(-1, features),
                                    norm.reshape(-1, features))
        if self.needs_input_grad[2]:
            grad_bias = row_sum(g.reshape(-1, features).T)[:, 0]
        grad_x = None
        if (self.needs_input_grad[0] and g.shape == norm.shape
                and gpu_kernels.fusable_rows(g, norm, self.rstd, self.weight)):
            grad_x = gpu_kernels.layer_norm_backward_rows(g, norm, self.weight, self.rstd)
        elif self.needs_input_grad[0]:
            dnorm = g if self.weight is None else g * self.weight
            mean_dnorm_norm = dot_along(dnorm, norm, -1)
            mean_dnorm_norm /= features
            # dn − mean(dn), into dn's buffer when it is ours (never into g)
            grad_x = xp.subtract(dnorm, row_mean(dnorm), out=None if dnorm is g else dnorm)
            grad_x -= xp.multiply(norm, mean_dnorm_norm,
                                  out=norm if self.may_overwrite_saved else None)
            grad_x *= self.rstd
        return grad_x, grad_weight, grad_bias


def layer_norm(x, weight, bias, eps=1e-5):
    """Normalize each row over the last axis to mean 0, variance 1, then scale and shift
    (``weight`` and ``bias`` of shape (C,), or None)."""
    return LayerNorm(eps)(x, weight, bias)
