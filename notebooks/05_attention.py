# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5 · Attention
#
# A Transformer mixes information between positions with **scaled dot-product attention**.
# Each position asks a query $q$; every position offers a key $k$ and a value $v$ (the rows
# of $Q$, $K$, $V$). The answer
# is an average of the values, weighted by how well the query matches each key:
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q
# K^\top}{\sqrt{d_k}}\right) V$$
#
# with $Q \in \mathbb{R}^{T_q \times d_k}$, $K \in \mathbb{R}^{T_k \times d_k}$,
# $V \in \mathbb{R}^{T_k \times d_v}$ and the softmax taken
# along each row (over the keys). We compute it by hand on NumPy arrays, then compare with
# `F.scaled_dot_product_attention`, one fused op with its own hand-derived backward.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm import viz

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)


# %%
def softmax_rows(scores):
    """softmax along the last axis, the maximum subtracted first (same result, no overflow)."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


T_q, T_k, d_k, d_v = 3, 5, 4, 2
Q = rng.standard_normal((T_q, d_k))
K = rng.standard_normal((T_k, d_k))
V = rng.standard_normal((T_k, d_v))

weights = softmax_rows(Q @ K.T / np.sqrt(d_k))  # (T_q, T_k): each row sums to 1
by_hand = weights @ V
library = F.scaled_dot_product_attention(sl.tensor(Q), sl.tensor(K), sl.tensor(V))
print("attention weights (rows sum to 1):\n", weights.round(3))
print("by hand:\n", by_hand)
print("F.scaled_dot_product_attention:\n", library.numpy())
assert np.allclose(library.numpy(), by_hand)

# %% [markdown]
# ## Why divide by $\sqrt{d_k}$?
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ has variance $d_k$; dividing by $\sqrt{d_k}$ brings the
# variance back to 1 whatever the head size:

# %%
for d in (4, 64, 512):
    q, k = rng.standard_normal((2, 10_000, d))
    dots = (q * k).sum(axis=1)
    scaled = dots / np.sqrt(d)
    print(f"d_k = {d:3d}: std(q·k) = {dots.std():6.2f},  std(q·k/√d_k) = {scaled.std():.2f}")

# %% [markdown]
# Why it matters: the softmax's Jacobian is $\partial p_i/\partial s_j = p_i(\delta_{ij} - p_j)$,
# so the gradient reaching the scores is $\partial L/\partial s = p \odot (g - p\cdot g)$ for an
# upstream gradient $g = \partial L/\partial p$. When large scores make $p$ almost one-hot
# ($p_i \approx 1$ for one key, $\approx 0$ for the rest), every factor $p_i(\delta_{ij}-p_j)$ is
# near 0, and so is the gradient. Below, one query against 16 random keys, 500 times per head
# size; the gradient comes from the engine (`F.softmax`'s backward) for a random $g$, checked
# once against the formula.

# %%
def softmax_gradient_norms(d, scale, samples=500, keys=16):
    """Mean largest weight, and the median ‖∂L/∂s‖ through F.softmax for a random g."""
    q = rng.standard_normal((samples, 1, d))
    k = rng.standard_normal((samples, keys, d))
    scores = sl.tensor((q * k).sum(axis=-1) * scale, requires_grad=True)  # (samples, keys)
    g = rng.standard_normal((samples, keys))
    p = F.softmax(scores, axis=-1)
    (p * sl.tensor(g)).sum().backward()
    P = p.numpy()
    formula = P * (g - (P * g).sum(axis=-1, keepdims=True))  # p ⊙ (g − p·g), row by row
    assert np.allclose(scores.grad, formula, atol=1e-10)
    return P.max(axis=-1).mean(), np.median(np.linalg.norm(scores.grad, axis=-1))


print("d_k   largest weight: q·k   q·k/√d_k     median ‖∂L/∂s‖: q·k   q·k/√d_k")
for d in (4, 64, 512):
    raw_top, raw_grad = softmax_gradient_norms(d, 1.0)
    top, grad = softmax_gradient_norms(d, 1 / np.sqrt(d))
    print(f"{d:3d}   {raw_top:21.3f} {top:10.3f}   {raw_grad:22.2e} {grad:10.2e}")
    if d == 512:
        assert raw_top > 0.9 and raw_grad < 0.01 * grad  # one-hot weights, vanished gradient

# %% [markdown]
# ## Masks
#
# A boolean mask says which keys each query **may** attend (True), as in PyTorch. Blocked
# scores become $-\infty$ before the softmax, so their weights are exactly 0.
#
# * A **causal** mask lets position $i$ see only positions $j \le i$: an **autoregressive**
#   language model (GPT) predicts each token from the ones before it and must not peek at the
#   token it is predicting: `is_causal=True`. A **reverse** language model predicts each token
#   from the ones after it: its mask is the transpose, $j \ge i$, the same as causal attention
#   on the reversed sequence (checked below).
# * A **padding** mask hides the padding keys of shorter sequences in a batch.

# %%
T = 4
X = rng.standard_normal((T, d_k))
causal = np.tril(np.ones((T, T), dtype=bool))
scores = X @ X.T / np.sqrt(d_k)
causal_weights = softmax_rows(np.where(causal, scores, -np.inf))
print("causal attention weights:\n", causal_weights.round(3))

Xt = sl.tensor(X)
out = F.scaled_dot_product_attention(Xt, Xt, Xt, is_causal=True)
assert np.allclose(out.numpy(), causal_weights @ X)
same = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=causal)
assert np.allclose(same.numpy(), out.numpy())

padding = np.array([True, True, True, False])  # the last key is padding
padded = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=padding)
assert np.allclose(padded.numpy(), softmax_rows(np.where(padding, scores, -np.inf)) @ X)
reverse = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=causal.T)  # j ≥ i
flipped = sl.tensor(X[::-1].copy())
backwards = F.scaled_dot_product_attention(flipped, flipped, flipped, is_causal=True)
assert np.allclose(reverse.numpy(), backwards.numpy()[::-1])
print("causal, reverse and padding masks agree with the hand computation")

# %% [markdown]
# The op's backward was derived by hand (see its docstring): with $P$ the weights and
# $G = \partial L/\partial O$,
# $\partial L/\partial V = P^\top G$,
# $\partial L/\partial S = P \odot (G V^\top - \operatorname{rowsum}(G V^\top \odot P))$,
# $\partial L/\partial Q = \partial L/\partial S\, K/\sqrt{d_k}$,
# $\partial L/\partial K = (\partial L/\partial S)^\top Q/\sqrt{d_k}$.
# A float64 gradient check confirms it, batched and causal:

# %%
q, k, v = (sl.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True) for _ in range(3))
print(sl.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                   [q, k, v]))

# %% [markdown]
# ## Multi-head attention
#
# One attention averages with one set of weights. **Multi-head** attention runs $H$ of them
# in parallel on $d/H$-dimensional projections and concatenates the results:
#
# $$\operatorname{MultiHead}(X) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_H)\,
# W_O^\top, \qquad \text{head}_h = \operatorname{Attention}(X W_{Q,h}^\top, X W_{K,h}^\top, X
# W_{V,h}^\top).$$
#
# `nn.MultiHeadAttention` computes $Q, K, V$ with one fused projection `c_attn`
# ($d \to 3d$: rows for $Q$, then $K$, then $V$) and splits heads as strided views, with no loop
# over heads. Below, the same thing head by head from its weights:

# %%
sl.manual_seed(0)
d_model, n_heads, T = 8, 2, 5
mha = nn.MultiHeadAttention(d_model, n_heads)
x = rng.standard_normal((1, T, d_model)).astype(np.float32)

W_qkv, b_qkv = mha.c_attn.weight.numpy(), mha.c_attn.bias.numpy()
W_o, b_o = mha.c_proj.weight.numpy(), mha.c_proj.bias.numpy()
Q_all, K_all, V_all = np.split(x[0] @ W_qkv.T + b_qkv, 3, axis=-1)  # each (T, d_model)
head_dim = d_model // n_heads
heads = []
for h in range(n_heads):  # a loop for reading; the library does all heads at once
    cols = slice(h * head_dim, (h + 1) * head_dim)
    w = softmax_rows(Q_all[:, cols] @ K_all[:, cols].T / np.sqrt(head_dim))
    heads.append(w @ V_all[:, cols])
by_hand = np.concatenate(heads, axis=-1) @ W_o.T + b_o

library = mha(sl.tensor(x)).numpy()[0]
print("max |library − by hand| =", np.abs(library - by_hand).max())
assert np.allclose(library, by_hand, atol=1e-5)

# %% [markdown]
# ## Sinusoidal positional encoding
#
# Attention itself ignores order: permuting the positions permutes the outputs. The original
# Transformer adds to each token vector a fixed code of its position,
#
# $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad PE_{(pos,\,2i+1)} =
# \cos\!\left(\frac{pos}{10000^{2i/d}}\right),$$
#
# one sine–cosine pair per frequency, the frequencies falling geometrically from 1 to
# 1/10000. `nn.SinusoidalPositionalEncoding` holds this table; we rebuild it from the formula.

# %%
d_model, max_len = 64, 100
encoding = nn.SinusoidalPositionalEncoding(d_model, max_len)
table = encoding(sl.tensor(np.zeros((1, max_len, d_model), dtype=np.float32))).numpy()[0]

pos = np.arange(max_len)[:, None]
two_i = np.arange(0, d_model, 2)[None, :]
angle = pos / 10000 ** (two_i / d_model)
formula = np.empty((max_len, d_model))
formula[:, 0::2], formula[:, 1::2] = np.sin(angle), np.cos(angle)
assert np.allclose(table, formula, atol=1e-6)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
image = left.imshow(table, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
left.set(xlabel="feature", ylabel="position", title="PE(pos, feature)")
fig.colorbar(image, ax=left)
for feature in (10, 16, 24, 40):
    right.plot(table[:, feature], label=f"feature {feature}")
right.set(xlabel="position", title="low features oscillate fast, high ones slowly")
right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.show()

# %% [markdown]
# Because $\sin$ and $\cos$ of $pos + k$ are a rotation of those of $pos$, the dot product of
# two codes depends only on their distance $k$ — relative positions are easy to read off:

# %%
dots = table @ table.T
for k in (1, 5, 20):
    along_diagonal = np.diagonal(dots, offset=k)
    spread = np.ptp(along_diagonal)
    print(f"PE(pos)·PE(pos+{k:2d}) = {along_diagonal[:3].round(4)} … (spread {spread:.1e})")
    assert spread < 1e-3

# %% [markdown]
# ## Summary
#
# - Attention averages the values with weights $\operatorname{softmax}(QK^\top/\sqrt{d_k})$,
#   one row per query; computed by hand it equals `F.scaled_dot_product_attention`.
# - Unscaled, $q\cdot k$ has standard deviation $\sqrt{d_k}$ (22 at $d_k = 512$); the softmax
#   then puts 0.94 of the weight on one key on average, and the gradient reaching the scores
#   shrinks to 2·10⁻⁴ against 0.27 with the $1/\sqrt{d_k}$ scaling.
# - Masks set blocked scores to $-\infty$: causal (no peeking ahead) and padding.
# - Multi-head attention runs $H$ attentions on $d/H$-dimensional projections and
#   concatenates them; sinusoidal encodings give each position a code whose dot products
#   depend only on the distance.
#
# ## Exercises
#
# 1. Repeat the gradient table with 256 keys instead of 16: does the unscaled softmax get
#    more or less one-hot?
# 2. Show that with the causal mask, $\partial L/\partial K_j$ gets no contribution from queries
#    $i < j$: run a gradient through `is_causal=True` with $g$ nonzero only in row 0.
# 3. Graded exercises of week 6 of [COURSE.md](COURSE.md): **`attention`** (its backward, one
#    matrix product at a time), **`attention_masked`** and **`split_heads`**
#    (`python -m scratchlm.exercises show attention`).
