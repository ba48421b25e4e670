"""A LoRA-adapted linear map (Hu et al., 2021): a frozen W plus a trainable low-rank update.

    y = x Wᵀ + b + s · (d(x) Aᵀ) Bᵀ,      A (r, in), B (out, r), s = α / r,

where d is dropout on the LoRA path only (d(x) = x ⊙ m / (1 − p), m ~ Bernoulli(1 − p); the
identity when p = 0 or in evaluation). The update ΔW = s·BA has rank ≤ r, so it costs
r·(in + out) numbers instead of in·out. It is computed as two thin GEMMs through the
r-dimensional h = d(x) Aᵀ, never as the full ΔW.
"""

from scratchlm.autograd.function import Function
from scratchlm.checks import check_probability
from scratchlm.errors import ArgumentError
from scratchlm.functional.dropout import keep_mask, survivor_scale


def _check_shapes(x, weight, lora_a, lora_b, bias):
    out_features, in_features = weight.shape
    if x.ndim == 0 or x.shape[-1] != in_features:
        raise ArgumentError(f"lora_linear: input of shape {x.shape} does not fit weight of shape "
                            f"{weight.shape}; expected the input's last axis to be "
                            f"in_features={in_features}")
    if lora_a.ndim != 2 or lora_a.shape[1] != in_features:
        raise ArgumentError(f"lora_linear: lora_A of shape {lora_a.shape} should be "
                            f"(r, in_features={in_features})")
    if lora_b.shape != (out_features, lora_a.shape[0]):
        raise ArgumentError(f"lora_linear: lora_B of shape {lora_b.shape} should be "
                            f"(out_features={out_features}, r={lora_a.shape[0]})")
    if bias is not None and bias.shape != (out_features,):
        raise ArgumentError(f"lora_linear: bias of shape {bias.shape} should be ({out_features},)")


class LoRALinear(Function):
    """Y = X Wᵀ + b + s·(D Aᵀ) Bᵀ over the rows of X, D = X ⊙ M·c (M the dropout's keep mask,
    c = 1/(1 − p); D = X without dropout). With G = ∂L/∂Y and H = D Aᵀ (rows × r):

        Yᵣₒ = Σᵢ Xᵣᵢ Wₒᵢ + bₒ + s Σₖ Hᵣₖ Bₒₖ,   Hᵣₖ = Σᵢ Dᵣᵢ Aₖᵢ
        ∂L/∂B = s Gᵀ H                      (out × r)
        ∂L/∂H = s G B                       (rows × r), call it G_H
        ∂L/∂A = G_Hᵀ D                      (r × in)
        ∂L/∂X = G W + (G_H A) ⊙ M·c         (the LoRA path reaches X through the dropout)
        ∂L/∂W = Gᵀ X,   ∂L/∂b = 1ᵀ G        (skipped when W and b are frozen, as in LoRA)

    ``keep`` (a boolean mask of X's shape) fixes the dropout mask, for tests; otherwise a
    mask is drawn when ``dropout_p > 0``.
    """

    def __init__(self, scaling, dropout_p=0.0, keep=None):
        check_probability("lora_linear", "dropout_p", dropout_p)
        self.scaling, self.dropout_p, self.keep = float(scaling), dropout_p, keep

    def forward(self, x, weight, lora_a, lora_b, bias=None):
        _check_shapes(x, weight, lora_a, lora_b, bias)
        self.x_shape = x.shape
        rows = x.reshape(-1, x.shape[-1])
        if self.keep is None and self.dropout_p > 0:
            self.keep = keep_mask(x.shape, self.dropout_p, x)
        self.mask_scale = survivor_scale(self.dropout_p)
        if self.keep is not None:
            self.keep_rows = self.keep.reshape(rows.shape)
            dropped = rows * self.keep_rows * self.mask_scale
        else:
            dropped = rows
        h = dropped @ lora_a.T
        y = rows @ weight.T + self.scaling * (h @ lora_b.T)
        if bias is not None:
            y += bias
        self.rows, self.dropped, self.h = rows, dropped, h
        self.weight, self.lora_a, self.lora_b = weight, lora_a, lora_b
        self.has_bias = bias is not None
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        g_rows = g.reshape(-1, g.shape[-1])
        needs = self.needs_input_grad
        grad_x = grad_w = grad_a = grad_b = grad_bias = None
        g_h = None
        if needs[0] or needs[2]:
            g_h = self.scaling * (g_rows @ self.lora_b)
        if needs[0]:
            lora_x = g_h @ self.lora_a
            if self.keep is not None:
                lora_x = lora_x * self.keep_rows * self.mask_scale
            grad_x = (g_rows @ self.weight + lora_x).reshape(self.x_shape)
        if needs[1]:
            grad_w = g_rows.T @ self.rows
        if needs[2]:
            grad_a = g_h.T @ self.dropped
        if needs[3]:
            grad_b = self.scaling * (g_rows.T @ self.h)
        if not self.has_bias:
            return grad_x, grad_w, grad_a, grad_b
        if needs[4]:
            grad_bias = g_rows.sum(axis=0)
        return grad_x, grad_w, grad_a, grad_b, grad_bias


def lora_linear(x, weight, lora_a, lora_b, bias=None, scaling=1.0, dropout_p=0.0,
                training=True):
    """y = x Wᵀ + b + scaling · (dropout(x) lora_Aᵀ) lora_Bᵀ; no dropout unless
    ``training``."""
    op = LoRALinear(scaling, dropout_p if training else 0.0)
    if bias is None:
        return op(x, weight, lora_a, lora_b)
    return op(x, weight, lora_a, lora_b, bias)
