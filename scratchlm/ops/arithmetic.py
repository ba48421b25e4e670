"""Elementwise arithmetic with NumPy broadcasting: + − × ÷ and powers.

Each backward gives ∂L/∂input at the broadcast shape; the engine then sums it back over the
broadcast axes (∂L/∂a = Σ_broadcast ∂L/∂y), so these formulas ignore broadcasting.
A backward never writes into its incoming gradient: other ops may share that array.
"""

from scratchlm import backend
from scratchlm.autograd.function import Function
from scratchlm.checks import check_operand
from scratchlm.errors import ArgumentError


def shape_of(value):
    return getattr(value, "shape", ())


def broadcast_call(op_name, compute, a, b):
    """``compute(a, b)`` with a broadcast failure reported as the op and both shapes, and an
    operand that is not numbers (a string, None) as the op and that operand. The checks run
    only once NumPy has refused, so they cost nothing on the hot path."""
    try:
        return compute(a, b)
    except ValueError as error:  # shapes that do not broadcast, or a ragged list
        if "broadcast" in str(error):
            raise ArgumentError(f"{op_name}: shapes {shape_of(a)} and {shape_of(b)} cannot "
                                "be broadcast together (each axis, aligned from the right, "
                                "must match or be 1)") from None
        refused = error
    except TypeError as error:
        refused = error
    check_operand(op_name, "a", a)
    check_operand(op_name, "b", b)
    raise refused


class Add(Function):
    """y = a + b;  ∂L/∂a = g,  ∂L/∂b = g  (g = ∂L/∂y)."""

    def forward(self, a, b):
        return broadcast_call("add", lambda u, v: u + v, a, b)

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a − b;  ∂L/∂a = g,  ∂L/∂b = −g."""

    def forward(self, a, b):
        return broadcast_call("sub", lambda u, v: u - v, a, b)

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a · b;  ∂L/∂a = g · b,  ∂L/∂b = g · a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return broadcast_call("mul", lambda u, v: u * v, a, b)

    def backward(self, g):
        grad_a = g * self.b if self.needs_input_grad[0] else None
        grad_b = g * self.a if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Div(Function):
    """y = a / b;  ∂L/∂a = g / b,  ∂L/∂b = −g · a / b² = −g · y / b."""

    def forward(self, a, b):
        self.b = b
        self.y = broadcast_call("div", lambda u, v: u / v, a, b)
        return self.y

    def backward(self, g):
        grad_a = g / self.b if self.needs_input_grad[0] else None
        grad_b = -g * self.y / self.b if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Neg(Function):
    """y = −x;  ∂L/∂x = −g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Function):
    """y = aᵇ;  ∂L/∂a = g · b · aᵇ⁻¹,  ∂L/∂b = g · aᵇ · ln a.

    As PyTorch does, ∂L/∂b is taken as 0 where a = 0 and b ≥ 0 (the limit of aᵇ ln a).
    """

    def forward(self, a, b):
        self.a, self.b = a, b
        self.y = broadcast_call("pow", lambda u, v: u ** v, a, b)
        return self.y

    def backward(self, g):
        a, b = self.a, self.b
        grad_a = g * b * a ** (b - 1) if self.needs_input_grad[0] else None
        grad_b = None
        if self.needs_input_grad[1]:
            xp = backend.get_array_module(self.y)
            a = xp.asarray(a)  # a may be a Python number (2 ** x); CuPy's where needs arrays
            with_log = self.y * xp.log(xp.where(a == 0, 1, a))
            grad_b = g * xp.where((a == 0) & (b >= 0), 0, with_log)
        return grad_a, grad_b
