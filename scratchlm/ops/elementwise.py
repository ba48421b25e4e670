"""Elementwise functions of one tensor, each with its derivative written out."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module as _xp


class Exp(Function):
    """y = eˣ;  ∂L/∂x = g · y."""

    def forward(self, x):
        self.y = _xp(x).exp(x)
        return self.y

    def backward(self, g):
        return g * self.y


class Log(Function):
    """y = ln x;  ∂L/∂x = g / x."""

    def forward(self, x):
        self.x = x
        return _xp(x).log(x)

    def backward(self, g):
        return g / self.x


class Sqrt(Function):
    """y = √x;  ∂L/∂x = g / (2y)."""

    def forward(self, x):
        self.y = _xp(x).sqrt(x)
        return self.y

    def backward(self, g):
        return g / (2 * self.y)


class Tanh(Function):
    """y = tanh x;  ∂L/∂x = g · (1 − y²)."""

    def forward(self, x):
        self.y = _xp(x).tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)


class Cast(Function):
    """y = x as another float dtype;  ∂L/∂x = g cast back to x's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.input_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.input_dtype)
