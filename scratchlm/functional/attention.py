"""Scaled dot-product attention, softmax(Q Kᵀ/√d + M) V, fused into one op with PyTorch's
``scaled_dot_product_attention`` semantics (boolean mask: True = may attend)."""

import math

import numpy as np

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module, matmul_cache_aligned
from scratchlm.functional.checks import check_probability
from scratchlm.functional.regularization import keep_mask, survivor_scale
from scratchlm.functional.rowwise import dot_along, max_along, one_block, row_sum, shared_row_blocks

OP = "scaled_dot_product_attention"


def _check_shapes(q, k, v):
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ValueError(f"{OP}: q, k and v need at least 2 axes (…, T, d), got shapes "
                         f"{q.shape}, {k.shape} and {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{OP}: shapes q {q.shape}, k {k.shape}, v {v.shape} do not fit; "
                         "expected q (…, Tq, d), k (…, Tk, d) and v (…, Tk, dv)")


def _scores_shape(q, k):
    if q.shape[:-2] == k.shape[:-2]:
        return q.shape[:-1] + k.shape[-2:-1]
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except ValueError:
        raise ValueError(f"{OP}: the leading (batch) axes of q {q.shape} and k {k.shape} "
                         "cannot be broadcast together") from None
    return batch + (q.shape[-2], k.shape[-2])


def _check_mask(mask, scores_shape):
    if mask.dtype.kind not in "bf":
        raise TypeError(f"{OP}: attn_mask must be boolean (True = may attend) or an additive "
                        f"float mask, got dtype {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, scores_shape) == scores_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{OP}: attn_mask of shape {mask.shape} cannot be broadcast to the "
                         f"attention scores' shape (…, Tq, Tk) = {scores_shape}")


def _exponentiate_rows(scores, may_mask_whole_rows):
    """E = exp(S − rowmax S) in place of ``scores``; returns the row sums of E (…, 1)."""
    xp = get_array_module(scores)
    row_max = max_along(scores, -1)
    if may_mask_whole_rows:  # causal masking alone leaves every query a key
        row_max[row_max == -math.inf] = 0  # a fully masked row: exp(−∞ − 0) = 0, not NaN
    scores -= row_max
    xp.exp(scores, out=scores)
    return row_sum(scores)


def _exponentiate(scores, may_mask_whole_rows):
    """Turn S into E = exp(S − rowmax S) in place; returns the row sums s of E, (…, Tq, 1).

    Block by block of rows on the threads: the four passes over the (Tq, Tk) scores cost
    more than the matmuls around them, and each block stays in cache across them. Scores
    of one block (a token at a time, in decoding) go in one direct call.
    """
    if one_block(scores):
        sums = _exponentiate_rows(scores, may_mask_whole_rows)
    else:
        score_rows = scores.reshape(-1, scores.shape[-1])
        sums = np.empty((score_rows.shape[0], 1), dtype=scores.dtype)

        def exponentiate_block(rows, slot):
            sums[rows] = _exponentiate_rows(score_rows[rows], may_mask_whole_rows)
        shared_row_blocks(exponentiate_block, score_rows)
        sums = sums.reshape(scores.shape[:-1] + (1,))
    if may_mask_whole_rows:  # a row that attends somewhere sums to ≥ 1 (its max gives e⁰)
        get_array_module(sums).maximum(sums, 1, out=sums)  # fully masked: 0 → 1
    return sums


def _softmax_backward(grad_scores, row_terms, exp_scores):
    """∂L/∂S = E ⊙ (Ĝ Vᵀ − D/s), in place of ``grad_scores`` (Ĝ Vᵀ), block by block of rows
    on the threads (as :func:`_exponentiate`); ``row_terms`` is D/s, shaped (…, Tq, 1)."""
    grad_rows = grad_scores.reshape(-1, grad_scores.shape[-1])
    exp_rows = exp_scores.reshape(grad_rows.shape)
    term_rows = row_terms.reshape(-1, 1)

    def backward_rows(rows, slot):
        block = grad_rows[rows]
        block -= term_rows[rows]
        block *= exp_rows[rows]
    shared_row_blocks(backward_rows, grad_rows)


class ScaledDotProductAttention(Function):
    """O = P' V,  P = softmax(S) along keys,  S = Q Kᵀ/√d + M,  P' = dropout(P).

    M is 0 where a query may attend a key and −∞ where it may not (a boolean mask, the causal
    triangle, or an additive float mask). A query that may attend no key gets P = 0, so O = 0.
    Backward (batched over every leading axis), with G = ∂L/∂O:
        ∂L/∂V = P'ᵀ G,   ∂L/∂P' = G Vᵀ,   ∂L/∂P = ∂L/∂P' ⊙ (dropout mask)/(1 − p),
        ∂L/∂S = P ⊙ (∂L/∂P − D),   D = rowsum(∂L/∂P ⊙ P) = rowsum(G ⊙ O)   (softmax backward),
        ∂L/∂Q = ∂L/∂S K/√d,   ∂L/∂K = ∂L/∂Sᵀ Q/√d,   ∂L/∂M = ∂L/∂S (a float mask).
    (D: Σⱼ ∂L/∂P'ᵢⱼ P'ᵢⱼ = Σⱼ Σₖ Gᵢₖ Vⱼₖ P'ᵢⱼ = Σₖ Gᵢₖ Oᵢₖ, a sum over d features, not keys.)

    Every pass over the (Tq, Tk) score arrays costs more than the matmuls around them, so, as
    FlashAttention does, the scale 1/√d is applied to Q (d wide, not Tk), and P is kept
    unnormalized: E = exp(S − rowmax S) with row sums s, P = E/s, and the 1/s goes on the
    (Tq, dv) rows instead: O = (E' V)/s (E' = E ⊙ mask/(1 − p)), and with Ĝ = G/s,
        ∂L/∂V = E'ᵀ Ĝ,   ∂L/∂S = E ⊙ (Ĝ Vᵀ ⊙ mask/(1 − p) − D/s),   D/s = rowsum(Ĝ ⊙ O).
    Also as FlashAttention does, causal self-attention (no other mask, no dropout) skips the
    scores that the mask would zero: the queries go in blocks, each block against the keys
    up to its last query only (:func:`query_blocks`). The formulas hold block by block, with
    ∂L/∂K and ∂L/∂V summed over the blocks that see each key.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, is_causal=False, dropout_p=0.0):
        self.is_causal, self.dropout_p = is_causal, dropout_p

    def forward(self, q, k, v, attn_mask):
        xp = get_array_module(q, k, v)
        _check_shapes(q, k, v)
        scores_shape = _scores_shape(q, k)
        if attn_mask is not None:
            attn_mask = xp.asarray(attn_mask)
            _check_mask(attn_mask, scores_shape)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        causal_only = self.is_causal and attn_mask is None and not self.dropout_p
        same_batch = q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
        self.blocks = query_blocks(q.shape[-2], k.shape[-2], causal_only and same_batch)
        q_scaled = q * self.scale
        self.exp_scores, self.sums, outs = [], [], []
        for first, end, keys in self.blocks:
            scores = matmul_cache_aligned(q_scaled[..., first:end, :],
                                          k[..., :keys, :].swapaxes(-1, -2))
            # masks are added as 0 / −∞ biases (far faster than a masked copy)
            if attn_mask is not None and attn_mask.dtype == bool:
                scores += xp.where(attn_mask, scores.dtype.type(0), scores.dtype.type(-math.inf))
            elif attn_mask is not None:
                scores += attn_mask
            if self.is_causal:  # query i attends keys j ≤ i (top-left aligned, as PyTorch)
                scores += xp.triu(xp.full(scores.shape[-2:], -math.inf, dtype=scores.dtype),
                                  k=first + 1)
            sums = _exponentiate(scores, may_mask_whole_rows=attn_mask is not None)
            exp_scores = scores  # exponentiated in place
            if self.dropout_p:  # (dropout keeps to one block)
                self.keep = keep_mask(exp_scores.shape, self.dropout_p, exp_scores)
            weights = self._dropped(exp_scores) if self.dropout_p else exp_scores
            out = weights @ v[..., :keys, :]
            out /= sums
            self.exp_scores.append(exp_scores)
            self.sums.append(sums)
            outs.append(out)
        self.q, self.k, self.v = q, k, v
        self.mask_is_float = attn_mask is not None and attn_mask.dtype != bool
        self.out = outs[0] if len(outs) == 1 else xp.concatenate(outs, axis=-2)
        return self.out

    def _dropped(self, weights):
        """weights ⊙ keep/(1 − p), a new array."""
        dropped = weights * self.keep
        dropped *= survivor_scale(self.dropout_p)
        return dropped

    def backward(self, g):
        xp = get_array_module(g)
        grad_q_blocks, grad_k, grad_v, grad_mask = [], None, None, None
        # the last block sees every key: its ∂L/∂K and ∂L/∂V are the arrays the others add to
        for (first, end, keys), exp_scores, sums in zip(reversed(self.blocks),
                                                         reversed(self.exp_scores),
                                                         reversed(self.sums)):
            k, v = self.k[..., :keys, :], self.v[..., :keys, :]
            g_hat = g[..., first:end, :] / sums  # Ĝ = G/s
            if self.needs_input_grad[2]:
                dropped = self._dropped(exp_scores) if self.dropout_p else exp_scores
                grad_v = _add_prefix(grad_v, dropped.swapaxes(-1, -2) @ g_hat)
            grad_scores = matmul_cache_aligned(g_hat, v.swapaxes(-1, -2))  # Ĝ Vᵀ = ∂L/∂P'/s
            if self.dropout_p:
                grad_scores *= self.keep
                grad_scores *= survivor_scale(self.dropout_p)
            _softmax_backward(grad_scores, dot_along(g_hat, self.out[..., first:end, :], -1),
                              exp_scores)
            if self.needs_input_grad[0]:
                grad_q_blocks.append(grad_scores @ k)
            if self.needs_input_grad[1]:
                grad_k = _add_prefix(grad_k, grad_scores.swapaxes(-1, -2)
                                     @ self.q[..., first:end, :])
            if self.needs_input_grad[3] and self.mask_is_float:
                grad_mask = grad_scores
        grad_q = None
        if grad_q_blocks:
            grad_q = (grad_q_blocks[0] if len(grad_q_blocks) == 1
                      else xp.concatenate(grad_q_blocks[::-1], axis=-2))
            grad_q *= self.scale
        if grad_k is not None:
            grad_k *= self.scale
        return grad_q, grad_k, grad_v, grad_mask


#: Causal self-attention over at least 2 × this many positions goes in blocks of queries
#: (up to :data:`QUERY_BLOCKS` of them), each against only the keys it may attend: with 2
#: blocks 3/4 of the scores are computed, with 4 blocks 5/8. Measured forward + backward at
#: 8 × 6 heads × 256 positions × 64: 17.8 ms in one block, 15.6 in 2 blocks of 128 queries,
#: 16.2 in 4 of 64; at 128 positions 2 blocks of 64 were slower than one (4.9 against 4.2).
MIN_BLOCK_QUERIES = 128
QUERY_BLOCKS = 4


def query_blocks(queries, keys, causal_self_attention):
    """(first query, end query, keys seen) of each block of queries computed together: one
    block of all queries and keys, or for causal self-attention (``queries == keys``)
    blocks whose queries see only the keys up to their last one."""
    count = min(QUERY_BLOCKS, queries // MIN_BLOCK_QUERIES)
    if not causal_self_attention or queries != keys or count < 2:
        return [(0, queries, keys)]
    size = -(-queries // count)
    return [(first, min(first + size, queries), min(first + size, keys))
            for first in range(0, queries, size)]


def _add_prefix(total, part):
    """``total`` with ``part`` added to its first ``part.shape[-2]`` rows (the keys a block of
    queries saw), or ``part`` itself when there is no total yet."""
    if total is None:
        return part
    total[..., :part.shape[-2], :] += part
    return total


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0):
    """softmax(Q Kᵀ/√d + mask) V for q (…, Tq, d), k (…, Tk, d), v (…, Tk, dv).

    ``attn_mask`` broadcasts to (…, Tq, Tk): boolean (True = may attend) or an additive float
    mask; ``is_causal`` lets query i attend keys j ≤ i; both may be combined. A query with
    no key to attend gets zeros. ``dropout_p`` drops attention weights (always, as PyTorch).
    """
    check_probability(OP, dropout_p, "dropout_p")
    return ScaledDotProductAttention(is_causal, dropout_p)(q, k, v, attn_mask)
