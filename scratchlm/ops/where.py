"""Elementwise choice: y = a where the condition holds, b elsewhere."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_numbers
from scratchlm.errors import ArgumentError, ArgumentTypeError


class Where(Function):
    """y = cond ? a : b;  ∂L/∂a = g · 1[cond],  ∂L/∂b = g · 1[¬cond]  (cond gets none)."""

    def forward(self, cond, a, b):
        xp = get_array_module(cond, a, b)
        self.cond = xp.asarray(check_numbers("where", "cond", cond))
        if self.cond.dtype != bool:
            raise ArgumentTypeError(f"where: cond has dtype {self.cond.dtype}; expected a "
                                    "boolean condition (a comparison such as x > 0, or "
                                    "cond.astype(bool))", where="where", name="cond",
                                    value=cond)
        try:
            return xp.where(self.cond, a, b)
        except ValueError:
            raise ArgumentError(f"where: shapes {self.cond.shape}, {getattr(a, 'shape', ())} "
                                f"and {getattr(b, 'shape', ())} cannot be broadcast "
                                "together") from None

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = get_array_module(g)
        grad_a = xp.where(self.cond, g, zero) if self.needs_input_grad[1] else None
        grad_b = xp.where(self.cond, zero, g) if self.needs_input_grad[2] else None
        return None, grad_a, grad_b
