"""A linear layer's affine map: y = x Wᵀ + b, as PyTorch's ``linear``."""

from scratchlm.autograd.function import Function
from scratchlm.checks import check_operand
from scratchlm.errors import ArgumentError


def _check_shapes(x, weight, bias):
    if weight.ndim != 2:
        raise ArgumentError(f"linear: weight must be 2-D (out_features, in_features), got "
                            f"shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ArgumentError(f"linear: input of shape {x.shape} does not fit weight of shape "
                            f"{weight.shape}; expected the input's last axis to be "
                            f"in_features={weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ArgumentError(f"linear: bias of shape {bias.shape} does not fit weight of "
                            f"shape {weight.shape}; expected ({weight.shape[0]},)")


class Linear(Function):
    """Y = X Wᵀ + b over the rows of X (every leading axis flattened into rows: one GEMM).

    Yᵣₒ = Σᵢ Xᵣᵢ Wₒᵢ + bₒ, so  ∂L/∂X = G W,  ∂L/∂W = Gᵀ X,  ∂L/∂b = Σᵣ Gᵣ = 1ᵀ G.
    """

    def forward(self, x, weight, bias=None):
        _check_shapes(x, weight, bias)
        self.x_shape = x.shape
        self.x_rows = x.reshape(-1, x.shape[-1])
        self.weight, self.has_bias = weight, bias is not None
        y = self.x_rows @ weight.T
        if bias is not None:
            y += bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g_rows = g.reshape(-1, g.shape[-1])
        grad_x = grad_weight = None
        if self.needs_input_grad[0]:
            grad_x = (g_rows @ self.weight).reshape(self.x_shape)
        if self.needs_input_grad[1]:
            grad_weight = g_rows.T @ self.x_rows
        if not self.has_bias:
            return grad_x, grad_weight
        grad_bias = g_rows.sum(axis=0) if self.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None):
    """y = x Wᵀ + b for x (…, in_features), weight (out_features, in_features), bias (out,)."""
    check_operand("linear", "x", x, number=False)
    check_operand("linear", "weight", weight, number=False)
    check_operand("linear", "bias", bias, number=False, optional=True)
    if bias is None:
        return Linear()(x, weight)
    return Linear()(x, weight, bias)
