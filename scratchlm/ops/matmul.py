"""Matrix product with NumPy's ``@`` semantics: batched, broadcast, 1-D operands.

For Y = A B (one matrix of a batch):  ∂L/∂A = G Bᵀ,  ∂L/∂B = Aᵀ G.

A 1-D A is treated as a row (1, k) and a 1-D B as a column (k, 1), as NumPy does, and the
gradient is reshaped back. Batch axes that broadcasting added are summed away by the engine,
except in the common linear-layer case — an (…, k) batch times one (k, n) matrix — where
∂L/∂B = A₂ᵀ G₂ over the batch flattened into rows is one BLAS call instead of a batched
product and a sum.
"""

from scratchlm.autograd.function import Function
from scratchlm.checks import check_operand
from scratchlm.errors import ArgumentError


def _check_operands(a, b):
    """Two tensors (arrays by now) of numbers, each with an axis, whose inner sizes match."""
    check_operand("matmul", "a", a, number=False, hint="(use * to scale by a number)")
    check_operand("matmul", "b", b, number=False, hint="(use * to scale by a number)")
    if a.ndim == 0 or b.ndim == 0:
        raise ArgumentError(f"matmul: operands must have at least one axis, got shapes "
                            f"{a.shape} and {b.shape} (use * to scale by a scalar)")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ArgumentError(f"matmul: shapes {a.shape} and {b.shape} do not line up: the "
                            f"last axis of the first ({a.shape[-1]}) must equal the "
                            f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the "
                            f"second ({b.shape[-2 if b.ndim > 1 else 0]})")


class MatMul(Function):
    def forward(self, a, b):
        _check_operands(a, b)
        self.a, self.b = a, b
        try:
            return a @ b
        except ValueError:
            raise ArgumentError(f"matmul: batch axes of shapes {a.shape} and {b.shape} cannot "
                                "be broadcast together") from None

    def backward(self, g):
        a, b = self.a, self.b
        # Work with ≥2-D operands: a row for a 1-D A, a column for a 1-D B.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = g[..., None, :] if b.ndim > 1 else g[..., None]
        if b.ndim == 1:
            g = g[..., None]
        grad_a = grad_b = None
        if self.needs_input_grad[0]:
            grad_a = g @ b2.swapaxes(-1, -2)
            if a.ndim == 1:
                grad_a = grad_a.reshape(grad_a.shape[:-2] + (a.shape[0],)) if grad_a.ndim > 2 \
                    else grad_a.reshape(a.shape)
        if self.needs_input_grad[1]:
            if b2.ndim == 2 and a2.ndim > 2:  # linear layer: fold the batch into rows
                grad_b = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                grad_b = a2.swapaxes(-1, -2) @ g
            if b.ndim == 1:
                grad_b = grad_b.reshape(grad_b.shape[:-2] + (b.shape[0],))
        return grad_a, grad_b
