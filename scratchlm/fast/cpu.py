"""Fast CPU versions of the reference ops: the same formulas, arranged for the CPU.

Each class here subclasses the reference op it speeds up (``scratchlm/functional``), keeps
its checks and its meaning, and is registered for the CPU with :func:`implements`. The
tricks, all tested equal to the reference (``tests/test_op_table.py``):

* **Row blocks.** Ops that make several passes over every row (layer norm, GELU, the
  softmax inside cross-entropy and attention) go block by block of rows about 1 MB big
  (:func:`~scratchlm.fast.rows.row_blocks`), so every pass after the first reads the CPU's
  cache rather than memory; the blocks are shared out among two threads where the
  arithmetic is heavy enough to pay (:mod:`scratchlm.fast.threads`).
* **No temporaries.** ufuncs write into ``out=`` arrays; a backward may write into arrays
  its own forward saved when the fast engine says they are freed right after
  (``may_overwrite_saved``), and every op here is marked as returning new gradient arrays
  (:func:`~scratchlm.fast.engine.returns_new_gradients`), which the fast engine keeps and
  adds into instead of copying (:mod:`scratchlm.fast.engine`).
* **Fewer passes.** Softmax stays unnormalized (E = e^(x − m) with row sums s) and 1/s goes
  on the smaller array; attention scales Q by 1/√d rather than the scores; causal
  self-attention skips the scores its mask would zero (FlashAttention's two ideas).
* **Faster reductions.** Row sums as a GEMV with a ones vector, ``einsum`` for Σ a ⊙ b,
  ``fmax.reduce`` for the maximum (:mod:`scratchlm.fast.rows`).
"""

import math

import numpy as np

from scratchlm.checks import normalize_axis
from scratchlm.fast.engine import returns_new_gradients
from scratchlm.fast.registry import implements
from scratchlm.fast.rows import (
    as_rows,
    dot_along,
    matmul_cache_aligned,
    max_along,
    one_block,
    row_blocks,
    row_mean,
    row_sum,
    shared_row_blocks,
)
from scratchlm.functional.activations import GELUErf, GELUTanh, ReLU, Sigmoid
from scratchlm.functional.attention import ScaledDotProductAttention, checked_mask
from scratchlm.functional.cross_entropy import CrossEntropy
from scratchlm.functional.dropout import Dropout, keep_mask, survivor_scale
from scratchlm.functional.embedding import Embedding
from scratchlm.functional.layer_norm import LayerNorm, check_layer_norm_shapes
from scratchlm.functional.linear import Linear
from scratchlm.functional.losses import BinaryCrossEntropyWithLogits, MSELoss
from scratchlm.functional.softmax import LogSoftmax, Softmax
from scratchlm.nn.heads import SplitHeads

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_CUBIC = 0.044715


# ------------------------------------------------------------------------------ layer norm
def _normalize_rows(x, weight, bias, eps, norm=None, rstd=None, y=None):
    """(n, r, y) for a 2-D block of rows: n = (x − μ) r, r = 1/√(var + ε), y = n ⊙ w + b,
    written into ``norm``, ``rstd`` and ``y`` (new arrays where they are None)."""
    features = x.shape[-1]
    norm = np.subtract(x, row_mean(x), out=norm)
    # r = 1/√(var + ε) = √C / √(Σ(x − μ)² + Cε)
    r = dot_along(norm, norm, -1)
    r += features * eps
    rstd = np.divide(math.sqrt(features), np.sqrt(r, out=r), out=rstd)
    norm *= rstd
    # y is its own array, so that backward may overwrite n (may_overwrite_saved)
    if weight is not None:
        y = np.multiply(norm, weight, out=y)
    elif y is None:
        y = norm.copy()
    else:
        y[...] = norm
    if bias is not None:
        y += bias
    return norm, rstd, y


@implements(LayerNorm, "cpu")
@returns_new_gradients
class LayerNormRowBlocks(LayerNorm):
    """:class:`LayerNorm` block by block of rows that stay in cache across their passes (on
    one thread: sharing the blocks out among two measured no faster)."""

    #: set True by the fast engine when the saved arrays are freed right after backward
    may_overwrite_saved = False

    def forward(self, x, weight, bias):
        check_layer_norm_shapes(x, weight, bias)
        x_rows = x.reshape(-1, x.shape[-1])
        if one_block(x_rows):
            norm, rstd, y = _normalize_rows(x_rows, weight, bias, self.eps)
        else:
            norm, y = np.empty_like(x_rows), np.empty_like(x_rows)
            rstd = np.empty((x_rows.shape[0], 1), dtype=x.dtype)
            for rows in row_blocks(x_rows):
                _normalize_rows(x_rows[rows], weight, bias, self.eps,
                                norm[rows], rstd[rows], y[rows])
        self.norm, self.rstd, self.weight = norm, rstd, weight
        return y.reshape(x.shape)

    def backward(self, g):
        features = g.shape[-1]
        g_rows = g.reshape(-1, features)
        norm, rstd = self.norm, self.rstd
        grad_weight = grad_bias = None
        if self.needs_input_grad[1]:
            grad_weight = np.einsum("rc,rc->c", g_rows, norm)
        if self.needs_input_grad[2]:
            grad_bias = row_sum(g_rows.T)[:, 0]
        if not self.needs_input_grad[0]:
            return None, grad_weight, grad_bias
        grad_x = np.empty_like(g_rows)
        for rows in row_blocks(g_rows):
            dnorm = grad_x[rows]  # dn = g ⊙ w, then the formula, in this block of ∂L/∂x
            if self.weight is None:
                dnorm[...] = g_rows[rows]
            else:
                np.multiply(g_rows[rows], self.weight, out=dnorm)
            mean_dnorm_norm = dot_along(dnorm, norm[rows], -1)
            mean_dnorm_norm /= features
            dnorm -= row_mean(dnorm)
            dnorm -= np.multiply(norm[rows], mean_dnorm_norm,
                                 out=norm[rows] if self.may_overwrite_saved else None)
            dnorm *= rstd[rows]
        return grad_x.reshape(g.shape), grad_weight, grad_bias


# ------------------------------------------------------------------------------------ GELU
@implements(GELUTanh, "cpu")
@returns_new_gradients
class GELUTanhRowBlocks(GELUTanh):
    """:class:`GELUTanh` in place, block by block of rows shared out among the threads (tanh
    costs enough that two threads pay). u is computed as x(√(2/π) + √(2/π)·0.044715x²) and
    2x u' as x(2√(2/π) + 6·√(2/π)·0.044715x²): fewer passes."""

    def forward(self, x):
        x_rows = as_rows(x)
        h, y = np.empty_like(x_rows), np.empty_like(x_rows)

        def forward_rows(rows, slot):
            x_block, h_block = x_rows[rows], h[rows]
            np.multiply(x_block, x_block, out=h_block)
            h_block *= SQRT_2_OVER_PI * GELU_CUBIC
            h_block += SQRT_2_OVER_PI
            h_block *= x_block  # u
            np.tanh(h_block, out=h_block)
            h_block += 1
            h_block *= 0.5
            np.multiply(x_block, h_block, out=y[rows])
        shared_row_blocks(forward_rows, x_rows)
        self.x, self.h = x_rows, h
        return y.reshape(x.shape)

    def backward(self, g):
        x, h, g_rows = self.x, self.h, g.reshape(self.x.shape)
        grad = np.empty_like(g_rows)

        def backward_rows(rows, slot):
            grad_block, x_block, h_block = grad[rows], x[rows], h[rows]
            np.multiply(x_block, x_block, out=grad_block)
            grad_block *= 6 * SQRT_2_OVER_PI * GELU_CUBIC
            grad_block += 2 * SQRT_2_OVER_PI
            grad_block *= x_block  # 2x u'
            grad_block *= 1 - h_block
            grad_block += 1
            grad_block *= h_block
            grad_block *= g_rows[rows]
        shared_row_blocks(backward_rows, g_rows)
        return grad.reshape(g.shape)


# --------------------------------------------------------------------------------- softmax
@implements(Softmax, "cpu")
@returns_new_gradients
class SoftmaxInPlace(Softmax):
    """:class:`Softmax` with the exponent and the normalization in place, and Σ g ⊙ y by
    ``einsum`` (no g ⊙ y temporary)."""

    def forward(self, x):
        self.axis = normalize_axis("softmax", self.axis, x.shape)
        y = x - max_along(x, self.axis)
        np.exp(y, out=y)
        y /= y.sum(axis=self.axis, keepdims=True)
        self.y = y
        return y

    def backward(self, g):
        grad = g - dot_along(g, self.y, self.axis)
        grad *= self.y
        return grad


@implements(LogSoftmax, "cpu")
@returns_new_gradients
class LogSoftmaxInPlace(LogSoftmax):
    """:class:`LogSoftmax` with the shift and the subtraction in place."""

    def forward(self, x):
        self.axis = normalize_axis("log_softmax", self.axis, x.shape)
        y = x - max_along(x, self.axis)
        y -= np.log(np.exp(y).sum(axis=self.axis, keepdims=True))
        self.y = y
        return y

    def backward(self, g):
        grad = np.exp(self.y)
        grad *= g.sum(axis=self.axis, keepdims=True)
        return np.subtract(g, grad, out=grad)


# --------------------------------------------------------------------------- cross-entropy
@implements(CrossEntropy, "cpu")
@returns_new_gradients
class CrossEntropyRowBlocks(CrossEntropy):
    """:class:`CrossEntropy` with m = max z, E = e^(z − m) and s = Σ_c E_c made block by block
    of rows on the threads; softmax = E/s is never stored: backward forms w softmax(z) =
    E · (w/s) in one pass, in place of E when it is freed right after."""

    #: set True by the fast engine when the saved arrays are freed right after backward
    may_overwrite_saved = False

    def forward(self, logits, target):
        z = self.check_and_save_targets(logits, target)
        exp_shifted = np.empty_like(z)
        row_max = np.empty((z.shape[0], 1), dtype=z.dtype)
        sum_exp = np.empty((z.shape[0], 1), dtype=z.dtype)

        def exponentiate(rows, _):
            row_max[rows] = max_along(z[rows], 1)
            block = np.subtract(z[rows], row_max[rows], out=exp_shifted[rows])
            np.exp(block, out=block)
            sum_exp[rows] = row_sum(block)
        shared_row_blocks(exponentiate, z)
        # loss = log s − (1 − ε)(z_t − m) − (ε/C) Σ_c (z_c − m)
        classes, row_max = z.shape[1], row_max[:, 0]
        losses = z[self.rows, self.targets] - row_max
        losses *= -(1.0 - self.smoothing)
        if self.smoothing:
            losses -= (self.smoothing / classes) * (row_sum(z)[:, 0] - classes * row_max)
        losses += np.log(sum_exp[:, 0])
        self.exp_shifted, self.sum_exp = exp_shifted, sum_exp
        return self.reduce(losses)

    def backward(self, g):
        weights = self.weights(g)
        scale = weights[:, None] / self.sum_exp
        numerator = self.exp_shifted
        grad = numerator if self.may_overwrite_saved else np.empty_like(numerator)
        shared_row_blocks(lambda rows, _: np.multiply(numerator[rows], scale[rows],
                                                      out=grad[rows]), grad)
        grad[self.rows, self.targets] -= (1.0 - self.smoothing) * weights
        if self.smoothing:
            grad -= (self.smoothing / grad.shape[1]) * weights[:, None]
        return grad.reshape(self.logits_shape), None


# ------------------------------------------------------------------------------- attention
#: Causal self-attention over at least 2 × this many positions goes in blocks of queries
#: (up to :data:`QUERY_BLOCKS` of them), each against only the keys it may attend: with 2
#: blocks 3/4 of the scores are computed, with 4 blocks 5/8 (bench/README.md: the block
#: sizes measured).
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


def _exponentiate_rows(scores, may_mask_whole_rows):
    """E = exp(S − rowmax S) in place of ``scores``; returns the row sums of E (…, 1)."""
    row_max = max_along(scores, -1)
    if may_mask_whole_rows:  # causal masking alone leaves every query a key
        row_max[row_max == -math.inf] = 0  # a fully masked row: exp(−∞ − 0) = 0, not NaN
    scores -= row_max
    np.exp(scores, out=scores)
    return row_sum(scores)


def _exponentiate(scores, may_mask_whole_rows):
    """Turn S into E = exp(S − rowmax S) in place, block by block of rows on the threads;
    returns the row sums s of E, (…, Tq, 1) (1 for a row with no key, whose E is 0)."""
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
        np.maximum(sums, 1, out=sums)  # fully masked: 0 → 1
    return sums


def _softmax_backward(grad_scores, row_terms, exp_scores):
    """∂L/∂S = E ⊙ (Ĝ Vᵀ − D/s), in place of ``grad_scores`` (Ĝ Vᵀ), block by block of rows
    on the threads; ``row_terms`` is D/s, shaped (…, Tq, 1)."""
    grad_rows = grad_scores.reshape(-1, grad_scores.shape[-1])
    exp_rows = exp_scores.reshape(grad_rows.shape)
    term_rows = row_terms.reshape(-1, 1)

    def backward_rows(rows, slot):
        block = grad_rows[rows]
        block -= term_rows[rows]
        block *= exp_rows[rows]
    shared_row_blocks(backward_rows, grad_rows)


@implements(ScaledDotProductAttention, "cpu")
@returns_new_gradients
class AttentionBlocks(ScaledDotProductAttention):
    """:class:`ScaledDotProductAttention` with FlashAttention's arithmetic on the CPU.

    Every pass over the (Tq, Tk) scores costs more than the matmuls around them, so the
    scale 1/√d goes on Q (d wide, not Tk), and P stays unnormalized: E = exp(S − rowmax S)
    with row sums s, P = E/s, and 1/s goes on the (Tq, dv) rows instead: O = (E' V)/s
    (E' = E ⊙ keep/(1 − p)), and with Ĝ = G/s,
        ∂L/∂V = E'ᵀ Ĝ,   ∂L/∂S = E ⊙ (Ĝ Vᵀ ⊙ keep/(1 − p) − D/s),   D/s = rowsum(Ĝ ⊙ O).
    Causal self-attention (no other mask, no dropout) skips the scores the mask would zero:
    the queries go in blocks, each against the keys up to its last query only
    (:func:`query_blocks`), with ∂L/∂K and ∂L/∂V summed over the blocks that see each key.
    Masks are added as 0 / −∞ biases, the thin products Q Kᵀ and Ĝ Vᵀ written to
    cache-aligned arrays, the exponentials and their backward block by block of rows on
    the threads.
    """

    def forward(self, q, k, v, attn_mask):
        attn_mask = checked_mask(q, k, v, attn_mask)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        self.mask_is_float = attn_mask is not None and attn_mask.dtype != bool
        causal_only = self.is_causal and attn_mask is None and not self.dropout_p
        same_batch = q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
        self.blocks = query_blocks(q.shape[-2], k.shape[-2], causal_only and same_batch)
        q_scaled = q * self.scale
        self.exp_scores, self.sums, outs = [], [], []
        for first, end, keys in self.blocks:
            scores = matmul_cache_aligned(q_scaled[..., first:end, :],
                                          k[..., :keys, :].swapaxes(-1, -2))
            if attn_mask is not None and attn_mask.dtype == bool:
                scores += np.where(attn_mask, scores.dtype.type(0), scores.dtype.type(-math.inf))
            elif attn_mask is not None:
                scores += attn_mask
            if self.is_causal:
                scores += np.triu(np.full(scores.shape[-2:], -math.inf, dtype=scores.dtype),
                                  k=first + 1)
            sums = _exponentiate(scores, may_mask_whole_rows=attn_mask is not None)
            exp_scores = scores  # exponentiated in place
            if self.dropout_p:  # (dropout keeps to one block)
                self.keep = keep_mask(exp_scores.shape, self.dropout_p, exp_scores)
            out = self.dropped(exp_scores) @ v[..., :keys, :]
            out /= sums
            self.exp_scores.append(exp_scores)
            self.sums.append(sums)
            outs.append(out)
        self.q, self.k, self.v = q, k, v
        self.out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-2)
        return self.out

    def backward(self, g):
        grad_q_blocks, grad_k, grad_v, grad_mask = [], None, None, None
        # the last block sees every key: its ∂L/∂K and ∂L/∂V are the arrays the others add to
        for (first, end, keys), exp_scores, sums in zip(reversed(self.blocks),
                                                         reversed(self.exp_scores),
                                                         reversed(self.sums)):
            k, v = self.k[..., :keys, :], self.v[..., :keys, :]
            g_hat = g[..., first:end, :] / sums  # Ĝ = G/s
            if self.needs_input_grad[2]:
                grad_v = _add_prefix(grad_v, self.dropped(exp_scores).swapaxes(-1, -2) @ g_hat)
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
                      else np.concatenate(grad_q_blocks[::-1], axis=-2))
            grad_q *= self.scale
        if grad_k is not None:
            grad_k *= self.scale
        return grad_q, grad_k, grad_v, grad_mask


# ------------------------------------------------------------------------------- embedding
#: Up to this many rows the one-hot GEMM is the fastest embedding backward on the CPU (it
#: costs ids·vocab·C flops, the sort-and-sum about ids·C + ids log ids).
ONE_HOT_MAX_ROWS = 128


@implements(Embedding, "cpu")
@returns_new_gradients
class EmbeddingSortedBackward(Embedding):
    """:class:`Embedding` whose ∂L/∂W = Oᵀ G is that one-hot GEMM for a small table, else
    the gradient rows sorted by id and each run of equal ids summed (``np.add.reduceat``),
    both faster than NumPy's scatter-add (``np.add.at``)."""

    def backward(self, g):
        vocab, features = self.weight_shape
        ids, g_rows = self.ids.reshape(-1), g.reshape(-1, features)
        if vocab <= ONE_HOT_MAX_ROWS:
            one_hot = np.zeros((ids.size, vocab), dtype=g.dtype)
            one_hot[np.arange(ids.size), ids] = 1
            return None, one_hot.T @ g_rows
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        run_starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
        grad = np.zeros((vocab, features), dtype=g.dtype)
        if ids.size:
            grad[sorted_ids[run_starts]] = np.add.reduceat(g_rows[order], run_starts, axis=0)
        return None, grad


# ------------------------------------------------ ops whose reference backward is already fast
# Their backward returns only arrays it allocated itself, so the fast engine may keep them.
for _op in (Linear, ReLU, Sigmoid, GELUErf, Dropout, BinaryCrossEntropyWithLogits, MSELoss,
            SplitHeads, LogSoftmax, Embedding):
    returns_new_gradients(_op)
