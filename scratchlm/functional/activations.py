"""Elementwise activations: ReLU, GELU (tanh and erf forms), sigmoid and tanh."""

import math

import numpy as np

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_choice, check_operand
from scratchlm.functional.erf import erf
from scratchlm.ops import Tanh

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


class ReLU(Function):
    """y = max(x, 0);  ∂L/∂x = g · 1[x > 0]."""

    def forward(self, x):
        self.positive = x > 0
        return get_array_module(x).maximum(x, 0)

    def backward(self, g):
        return g * self.positive


class GELUTanh(Function):
    """y = x h,  h = ½(1 + tanh u),  u = √(2/π)(x + 0.044715x³)  (GPT-2's GELU).

    With t = tanh u, dt/du = 1 − t² = (1 − t)(1 + t) = 4h(1 − h), so dh/dx = 2h(1 − h)u' and
        dy/dx = h + x dh/dx = h (1 + 2x u' (1 − h)),   u' = √(2/π)(1 + 3·0.044715x²).
    x and h are saved for backward.
    """

    def forward(self, x):
        xp = get_array_module(x)
        u = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)
        self.x, self.h = x, 0.5 * (1 + xp.tanh(u))
        return x * self.h

    def backward(self, g):
        x, h = self.x, self.h
        du_dx = SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x * x)
        return g * h * (1 + 2 * x * du_dx * (1 - h))


class GELUErf(Function):
    """y = x Φ(x),  Φ(x) = ½(1 + erf(x/√2))  (the exact GELU).

    dy/dx = Φ(x) + x φ(x),  φ(x) = e^(−x²/2)/√(2π), the normal density; Φ(x) is saved.
    """

    def forward(self, x):
        self.x, self.cdf = x, 0.5 * (1 + erf(x / math.sqrt(2)))
        return x * self.cdf

    def backward(self, g):
        x = self.x
        density = get_array_module(x).exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return g * (self.cdf + x * density)


def logistic(x):
    """σ(x) = 1/(1 + e⁻ˣ) on an array. For x ≪ 0, e⁻ˣ overflows to ∞ and 1/(1 + ∞) = 0 is
    the right limit, so the overflow is harmless and NumPy's warning about it is silenced."""
    with np.errstate(over="ignore"):
        return 1 / (1 + get_array_module(x).exp(-x))


class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ);  dy/dx = e⁻ˣ/(1 + e⁻ˣ)² = y(1 − y)."""

    def forward(self, x):
        self.y = logistic(x)
        return self.y

    def backward(self, g):
        return g * self.y * (1 - self.y)


def relu(x):
    """max(x, 0) elementwise."""
    return ReLU()(check_operand("relu", "x", x))


def gelu(x, approximate="tanh"):
    """x Φ(x): ``approximate="tanh"`` for GPT-2's tanh form, ``"none"`` for the erf form."""
    check_operand("gelu", "x", x)
    if check_choice("gelu", "approximate", approximate, ("tanh", "none")) == "tanh":
        return GELUTanh()(x)
    return GELUErf()(x)


def sigmoid(x):
    """1/(1 + e⁻ˣ) elementwise, stable for large |x|."""
    return Sigmoid()(check_operand("sigmoid", "x", x))


def tanh(x):
    """tanh x elementwise (the engine's op: dy/dx = 1 − y²)."""
    return Tanh()(check_operand("tanh", "x", x))
