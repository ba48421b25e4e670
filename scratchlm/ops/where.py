"""Elementwise choice: y = a where the condition holds, b elsewhere."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module


class Where(Function):
    """y = cond ? a : b;  ∂L/∂a = g · 1[cond],  ∂L/∂b = g · 1[¬cond]  (cond gets none)."""

    def forward(self, cond, a, b):
        xp = get_array_module(cond, a, b)
        self.cond = xp.asarray(cond, dtype=bool)
        try:
            return xp.where(self.cond, a, b)
        except ValueError:
            raise ValueError(f"where: shapes {self.cond.shape}, {getattr(a, 'shape', ())} and "
                             f"{getattr(b, 'shape', ())} cannot be broadcast together") from None

    def backward(self, g):
        zero = g.dtype.type(0)
        xp = get_array_module(g)
        grad_a = xp.where(self.cond, g, zero) if self.needs_input_grad[1] else None
        grad_b = xp.where(self.cond, zero, g) if self.needs_input_grad[2] else None
        return None, grad_a, grad_b
