"""Softmax and log-softmax: scores turned into (log-)probabilities along one axis.

:func:`shifted_exp` is the one place that computes eˣ / Σ eˣ safely; softmax, log-softmax,
cross-entropy, attention and decoding all start from it. It subtracts the maximum m first:
softmax(x) = softmax(x − m) (the factor e⁻ᵐ cancels), and with every exponent ≤ 0 nothing
overflows, even for scores of ±1e4.
"""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_operand, normalize_axis


def shifted_exp(x, axis=-1):
    """(e, s, m) with m = max x, e = e^(x − m) and s = Σ e along ``axis`` (m and s keep the
    axis, size 1, so they broadcast against x). Then

        softmax(x) = e / s,    log Σ eˣ = m + log s,    log softmax(x) = x − m − log s.

    A row of −∞ only (nothing to attend to) gets m = 0, e = 0 and s = 0 instead of NaNs."""
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(m == -xp.inf, 0, m).astype(x.dtype, copy=False)
    e = xp.exp(x - m)
    return e, e.sum(axis=axis, keepdims=True), m


def softmax_array(x, axis=-1):
    """eˣ / Σ eˣ along ``axis`` of an array (no graph)."""
    e, s, _ = shifted_exp(x, axis)
    return e / s


def log_softmax_array(x, axis=-1):
    """x − log Σ eˣ along ``axis`` of an array (no graph)."""
    _, s, m = shifted_exp(x, axis)
    return x - m - get_array_module(x).log(s)


class Softmax(Function):
    """y = eˣ / Σ eˣ along ``axis``.

    ∂yⱼ/∂xᵢ = yⱼ(δᵢⱼ − yᵢ), so ∂L/∂xᵢ = Σⱼ gⱼ yⱼ(δᵢⱼ − yᵢ) = yᵢ (gᵢ − Σⱼ gⱼ yⱼ):
        ∂L/∂x = y ⊙ (g − Σ(g ⊙ y)).
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.axis = normalize_axis("softmax", self.axis, x.shape)
        self.y = softmax_array(x, self.axis)
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x − log Σ eˣ along ``axis``.

    ∂yⱼ/∂xᵢ = δᵢⱼ − softmax(x)ᵢ, so ∂L/∂x = g − softmax(x) Σ g, with softmax(x) = eʸ.
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.axis = normalize_axis("log_softmax", self.axis, x.shape)
        self.y = log_softmax_array(x, self.axis)
        return self.y

    def backward(self, g):
        xp = get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


def softmax(x, axis=-1):
    """Probabilities along ``axis``: eˣ / Σ eˣ."""
    return Softmax(axis)(check_operand("softmax", "x", x, number=False))


def log_softmax(x, axis=-1):
    """Log-probabilities along ``axis``: x − log Σ eˣ, stable for large scores."""
    return LogSoftmax(axis)(check_operand("log_softmax", "x", x, number=False))
