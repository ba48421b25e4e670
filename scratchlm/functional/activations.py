"""Elementwise activations: ReLU, GELU (tanh and erf forms), sigmoid and tanh."""

import math

import numpy as np

from scratchlm import backend
from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.ops import Tanh

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class ReLU(Function):
    """y = max(x, 0);  ∂L/∂x = g · 1[x > 0]."""

    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, g):
        return g * self.positive


class GELUTanh(Function):
    """y = ½x(1 + t),  t = tanh u,  u = √(2/π)(x + 0.044715x³)  (GPT-2's GELU).

    dy/dx = ½(1 + t) + ½x(1 − t²) u',  u' = √(2/π)(1 + 3·0.044715x²); t is cached.
    """

    def forward(self, x):
        xp = get_array_module(x)
        u = xp.multiply(x, x, out=xp.empty_like(x))  # a buffer we own, an array even if 0-d
        u *= SQRT_2_OVER_PI * GELU_CUBIC
        u += SQRT_2_OVER_PI
        u *= x  # u = x(√(2/π) + √(2/π)·0.044715x²)
        self.x, self.t = x, xp.tanh(u, out=u)
        y = self.t + 1
        y *= x
        y *= 0.5
        return y

    def backward(self, g):
        xp = get_array_module(g)
        x, t = self.x, self.t
        grad = xp.multiply(x, x, out=xp.empty_like(x))
        grad *= 3 * SQRT_2_OVER_PI * GELU_CUBIC
        grad += SQRT_2_OVER_PI  # u'
        grad *= x
        t_squared_minus_1 = t * t
        t_squared_minus_1 -= 1
        grad *= t_squared_minus_1  # −x(1 − t²)u'
        xp.subtract(t, grad, out=grad)
        grad += 1
        grad *= 0.5  # ½(1 + t) + ½x(1 − t²)u'
        grad *= g
        return grad


class GELUErf(Function):
    """y = x Φ(x),  Φ(x) = ½(1 + erf(x/√2))  (the exact GELU).

    dy/dx = Φ(x) + x φ(x),  φ(x) = e^(−x²/2)/√(2π); Φ(x) is cached.
    """

    def forward(self, x):
        cdf = backend.erf(x * SQRT_HALF)
        cdf += 1
        cdf *= 0.5
        self.x, self.cdf = x, cdf
        return x * cdf

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.multiply(self.x, self.x, out=xp.empty_like(self.x))
        grad *= -0.5
        xp.exp(grad, out=grad)
        grad *= INV_SQRT_2PI  # φ(x)
        grad *= self.x
        grad += self.cdf
        grad *= g
        return grad


def logistic(x):
    """σ(x) = 1/(1 + e⁻ˣ) on an array. For x ≪ 0, e⁻ˣ overflows to ∞ and 1/(1 + ∞) = 0 is
    the right limit, so the overflow is harmless and NumPy's warning about it is silenced
    (branch-free, unlike choosing between two formulas by the sign of x, and about 5x faster)."""
    xp = get_array_module(x)
    with np.errstate(over="ignore"):
        y = xp.negative(x, out=xp.empty_like(x))
        xp.exp(y, out=y)
    y += 1
    return xp.reciprocal(y, out=y)


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = e⁻ˣ/(1 + e⁻ˣ)² = y(1 − y)."""

    def forward(self, x):
        self.y = logistic(x)
        return self.y

    def backward(self, g):
        grad = 1 - self.y
        grad *= self.y
        grad *= g
        return grad


def relu(x):
    """max(x, 0) elementwise."""
    return ReLU()(x)


def gelu(x, approximate="tanh"):
    """x Φ(x): ``approximate="tanh"`` for GPT-2's tanh form, ``"none"`` for the erf form."""
    if approximate == "tanh":
        return GELUTanh()(x)
    if approximate == "none":
        return GELUErf()(x)
    raise ValueError(f"gelu: approximate={approximate!r}; expected 'tanh' or 'none'")


def sigmoid(x):
    """1/(1 + e⁻ˣ) elementwise, stable for large |x|."""
    return Sigmoid()(x)


def tanh(x):
    """tanh x elementwise (the engine's op: dy/dx = 1 − y²)."""
    return Tanh()(x)
