"""Softmax and log-softmax: logits turned into (log-)probabilities along one axis.

Both subtract the maximum m first: softmax(x) = softmax(x − m), and with every exponent ≤ 0
nothing overflows, even for logits of ±1e4.
"""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.functional import gpu_kernels
from scratchlm.functional.checks import normalize_axis
from scratchlm.functional.rowwise import dot_along, max_along


class Softmax(Function):
    """y = eˣ / Σ eˣ along ``axis``.

    ∂yⱼ/∂xᵢ = yⱼ(δᵢⱼ − yᵢ), so ∂L/∂xᵢ = Σⱼ gⱼ yⱼ(δᵢⱼ − yᵢ) = yᵢ (gᵢ − Σⱼ gⱼ yⱼ):
    dx = y ⊙ (g − rowsum(g ⊙ y)).
    Along the last axis on the GPU, each direction is one fused kernel with a thread block per
    row (:mod:`~scratchlm.functional.gpu_kernels`); the array code below is their reference.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        self.axis = normalize_axis("softmax", self.axis, x.shape)
        if self.axis == x.ndim - 1 and gpu_kernels.fusable_rows(x):
            self.y = gpu_kernels.softmax_rows(x)[0]
            return self.y
        y = x - max_along(x, self.axis)
        xp.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        self.y = y
        return y

    def backward(self, g):
        if (self.axis == g.ndim - 1 and g.shape == self.y.shape
                and gpu_kernels.fusable_rows(g, self.y)):
            return gpu_kernels.softmax_backward_rows(g, self.y)
        grad = g - dot_along(g, self.y, self.axis)
        grad *= self.y
        return grad


class LogSoftmax(Function):
    """y = x − log Σ eˣ along ``axis`` (computed as (x − m) − log Σ e^(x − m)).

    ∂yⱼ/∂xᵢ = δᵢⱼ − softmax(x)ᵢ, so dx = g − softmax(x) · rowsum(g), with softmax(x) = eʸ.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        self.axis = normalize_axis("log_softmax", self.axis, x.shape)
        y = x - max_along(x, self.axis)
        log_sum_exp = xp.log(xp.exp(y).sum(axis=self.axis, keepdims=True))
        y -= log_sum_exp
        self.y = y
        return y

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.exp(self.y)
        grad *= g.sum(axis=self.axis, keepdims=True)
        return xp.subtract(g, grad, out=grad)


def softmax(x, axis=-1):
    """Probabilities along ``axis``: eˣ / Σ eˣ."""
    return Softmax(axis)(x)


def log_softmax(x, axis=-1):
    """Log-probabilities along ``axis``: x − log Σ eˣ, stable for large logits."""
    return LogSoftmax(axis)(x)
