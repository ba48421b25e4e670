"""Layer normalization over the last axis, as PyTorch's ``layer_norm`` with
``normalized_shape=(C,)`` and llm.c's layernorm forward/backward pair."""

from scratchlm.autograd.function import Function
from scratchlm.checks import check_operand, check_real
from scratchlm.errors import ArgumentError


def check_layer_norm_shapes(x, weight, bias):
    if x.ndim == 0:
        raise ArgumentError("layer_norm: input must have at least one axis (the C features "
                            "to normalize over), got a 0-d input")
    features = x.shape[-1:]
    for name, param in (("weight", weight), ("bias", bias)):
        if param is not None and param.shape != features:
            raise ArgumentError(f"layer_norm: {name} of shape {param.shape} does not fit "
                                f"input of shape {x.shape}; expected {features}")


class LayerNorm(Function):
    """y = n ⊙ w + b,  n = (x − μ) r,  μ = mean(x),  r = 1/√(var(x) + ε), per row of C features.

    ∂nⱼ/∂xᵢ = r (δᵢⱼ − 1/C − nᵢnⱼ/C), so with dn = g ⊙ w (per row)
        ∂L/∂x = r (dn − mean(dn) − n · mean(dn ⊙ n)),
        ∂L/∂w = Σ_rows g ⊙ n,   ∂L/∂b = Σ_rows g.
    n and r are saved for backward. ``weight`` and ``bias`` may be None (no affine part).
    """

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, weight, bias):
        check_layer_norm_shapes(x, weight, bias)
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1 / (var + self.eps) ** 0.5
        self.norm = (x - mean) * self.rstd
        self.weight = weight
        y = self.norm if weight is None else self.norm * weight
        return y if bias is None else y + bias

    def backward(self, g):
        norm, rstd, weight = self.norm, self.rstd, self.weight
        rows = tuple(range(g.ndim - 1))  # every axis but the features
        grad_weight = (g * norm).sum(axis=rows) if self.needs_input_grad[1] else None
        grad_bias = g.sum(axis=rows) if self.needs_input_grad[2] else None
        dnorm = g if weight is None else g * weight
        grad_x = rstd * (dnorm - dnorm.mean(axis=-1, keepdims=True)
                         - norm * (dnorm * norm).mean(axis=-1, keepdims=True))
        return grad_x, grad_weight, grad_bias


def layer_norm(x, weight, bias, eps=1e-5):
    """Normalize each row over the last axis to mean 0, variance 1, then scale and shift
    (``weight`` and ``bias`` of shape (C,), or None; ``eps`` ≥ 0 is added to the variance)."""
    for name, value in (("x", x), ("weight", weight), ("bias", bias)):
        check_operand("layer_norm", name, value, number=False, optional=name != "x")
    check_real("layer_norm", "eps", eps, 0, hint="(added to the variance, e.g. 1e-5)")
    return LayerNorm(eps)(x, weight, bias)
