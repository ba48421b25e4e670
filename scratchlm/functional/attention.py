"""Scaled dot-product attention, softmax(Q Kᵀ/√d + M) V, fused into one op with PyTorch's
``scaled_dot_product_attention`` semantics (boolean mask: True = may attend)."""

import math

import numpy as np

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_bool, check_operand, check_probability
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.functional.dropout import keep_mask, survivor_scale
from scratchlm.functional.softmax import shifted_exp

OP = "scaled_dot_product_attention"


def _check_shapes(q, k, v):
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ArgumentError(f"{OP}: q, k and v need at least 2 axes (…, T, d), got shapes "
                            f"{q.shape}, {k.shape} and {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ArgumentError(f"{OP}: shapes q {q.shape}, k {k.shape}, v {v.shape} do not fit; "
                            "expected q (…, Tq, d), k (…, Tk, d) and v (…, Tk, dv)")


def _scores_shape(q, k):
    if q.shape[:-2] == k.shape[:-2]:
        return q.shape[:-1] + k.shape[-2:-1]
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except ValueError:
        raise ArgumentError(f"{OP}: the leading (batch) axes of q {q.shape} and k {k.shape} "
                            "cannot be broadcast together") from None
    return batch + (q.shape[-2], k.shape[-2])


def _check_mask(mask, scores_shape):
    if mask.dtype.kind not in "bf":
        raise ArgumentTypeError(f"{OP}: attn_mask must be boolean (True = may attend) or an "
                                f"additive float mask, got dtype {mask.dtype}")
    if mask.dtype.kind == "f" and bool(((mask == 0) | (mask == 1)).all() and (mask == 1).any()):
        raise ArgumentError(f"{OP}: attn_mask holds only 0s and 1s as {mask.dtype}, but a float "
                            "mask is added to the scores, so its 1s block nothing; expected a "
                            "boolean mask (mask.astype(bool)) or a float one of 0 (may attend) "
                            "and -inf (may not)")
    try:
        fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ArgumentError(f"{OP}: attn_mask of shape {mask.shape} cannot be broadcast to "
                            f"the attention scores' shape (…, Tq, Tk) = {scores_shape}")


def checked_mask(q, k, v, attn_mask):
    """Raise unless q, k, v and the mask fit; the mask as an array of q's module (or None)."""
    _check_shapes(q, k, v)
    scores_shape = _scores_shape(q, k)  # raises if the batch axes do not broadcast
    if attn_mask is not None:
        attn_mask = get_array_module(q).asarray(attn_mask)
        _check_mask(attn_mask, scores_shape)
    return attn_mask


class ScaledDotProductAttention(Function):
    """O = P' V,  P = softmax(S) along keys,  S = Q Kᵀ/√d + M,  P' = dropout(P).

    M is 0 where a query may attend a key and −∞ where it may not (a boolean mask, the causal
    triangle, or an additive float mask). A query that may attend no key gets P = 0, so O = 0.
    Backward (batched over every leading axis), with G = ∂L/∂O:
        ∂L/∂V = P'ᵀ G,   ∂L/∂P' = G Vᵀ,   ∂L/∂P = ∂L/∂P' ⊙ (dropout mask)/(1 − p),
        ∂L/∂S = P ⊙ (∂L/∂P − D),   D = rowsum(∂L/∂P ⊙ P) = rowsum(G ⊙ O)   (softmax backward),
        ∂L/∂Q = ∂L/∂S K/√d,   ∂L/∂K = ∂L/∂Sᵀ Q/√d,   ∂L/∂M = ∂L/∂S (a float mask).
    (D: Σⱼ ∂L/∂P'ᵢⱼ P'ᵢⱼ = Σⱼ Σₖ Gᵢₖ Vⱼₖ P'ᵢⱼ = Σₖ Gᵢₖ Oᵢₖ, a sum over d features, not keys.)
    """

    def __init__(self, is_causal=False, dropout_p=0.0):
        self.is_causal, self.dropout_p = is_causal, dropout_p

    def forward(self, q, k, v, attn_mask):
        attn_mask = checked_mask(q, k, v, attn_mask)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        self.mask_is_float = attn_mask is not None and attn_mask.dtype != bool
        xp = get_array_module(q, k, v)
        scores = q @ k.swapaxes(-1, -2) * self.scale
        if attn_mask is not None and attn_mask.dtype == bool:
            scores = xp.where(attn_mask, scores, -math.inf)
        elif attn_mask is not None:
            scores = scores + attn_mask.astype(scores.dtype, copy=False)
        if self.is_causal:  # query i attends keys j ≤ i (top-left aligned, as PyTorch)
            scores = xp.where(xp.tril(xp.ones(scores.shape[-2:], dtype=bool)), scores, -math.inf)
        e, s, _ = shifted_exp(scores)
        weights = e / xp.where(s > 0, s, 1)  # a query with no key to attend: P = 0
        if self.dropout_p:
            self.keep = keep_mask(weights.shape, self.dropout_p, weights)
        self.q, self.k, self.v, self.weights = q, k, v, weights
        return self.dropped(weights) @ v

    def backward(self, g):
        q, k, v, weights = self.q, self.k, self.v, self.weights
        grad_v = self.dropped(weights).swapaxes(-1, -2) @ g           # P'ᵀ G
        grad_weights = self.dropped(g @ v.swapaxes(-1, -2))            # G Vᵀ, dropped as P
        grad_scores = weights * (grad_weights
                                 - (grad_weights * weights).sum(axis=-1, keepdims=True))
        grad_q = grad_scores @ k * self.scale
        grad_k = grad_scores.swapaxes(-1, -2) @ q * self.scale
        grad_mask = grad_scores if self.mask_is_float else None
        return grad_q, grad_k, grad_v, grad_mask

    def dropped(self, weights):
        """weights ⊙ keep/(1 − p) with dropout, else the weights themselves."""
        if not self.dropout_p:
            return weights
        return weights * self.keep * survivor_scale(self.dropout_p)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0):
    """softmax(Q Kᵀ/√d + mask) V for q (…, Tq, d), k (…, Tk, d), v (…, Tk, dv).

    ``attn_mask`` broadcasts to (…, Tq, Tk): boolean (True = may attend) or an additive float
    mask; ``is_causal`` lets query i attend keys j ≤ i; both may be combined. A query with
    no key to attend gets zeros. ``dropout_p`` drops attention weights (always, as PyTorch).
    A float mask of only 0s and 1s is refused: added to the scores it would block nothing,
    so a boolean mask was meant.
    """
    for name, value in (("q", q), ("k", k), ("v", v)):
        check_operand(OP, name, value, number=False)
    is_causal = check_bool(OP, "is_causal", is_causal)
    check_probability(OP, "dropout_p", dropout_p)
    return ScaledDotProductAttention(is_causal, dropout_p)(q, k, v, attn_mask)
