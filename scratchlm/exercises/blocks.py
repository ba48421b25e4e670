"""The forward pass of a pre-LN Transformer block, written out for the "backprop ninja"
exercise (``python -m scratchlm.exercises show transformer_block``): you write its backward.

    h1 = LN₁(x);  q, k, v = split(h1 W_qkv + b_qkv) into H heads of D = C/H
    P = softmax(q kᵀ/√D, causal);  att = merge(P v);  x2 = x + att W_o + b_o
    h2 = LN₂(x2);  a = h2 W_1 + b_1;  m = gelu_tanh(a);  y = x2 + m W_2 + b_2

Weights are (in, out) here (``h @ W``). Forward saves every intermediate backward needs.
"""

import math

import numpy as np

import scratchlm as sl


def layer_norm(x, w, b, eps=1e-5):
    """LN over the last axis; returns the output and (n, rstd, w) for backward."""
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps)
    n = (x - mu) * rstd
    return n * w + b, (n, rstd, w)


def gelu_tanh(x):
    """GPT-2's GELU; returns the output and (x, u, h) for backward."""
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    h = 0.5 * (1 + np.tanh(u))
    return x * h, (x, u, h)


class PreLNBlockForward(sl.Function):
    def __init__(self, n_head):
        self.n_head = n_head

    def forward(self, x, ln1_w, ln1_b, w_qkv, b_qkv, w_o, b_o, ln2_w, ln2_b, w_1, b_1, w_2,
                b_2):
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        self.params = (w_qkv, w_o, w_1, w_2)
        h1, self.ln1 = layer_norm(x, ln1_w, ln1_b)
        qkv = h1 @ w_qkv + b_qkv
        q, k, v = (qkv[..., i * C:(i + 1) * C].reshape(B, T, H, D).swapaxes(1, 2)
                   for i in range(3))
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(D)
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        p = e / e.sum(-1, keepdims=True)
        att = (p @ v).swapaxes(1, 2).reshape(B, T, C)
        x2 = x + att @ w_o + b_o
        h2, self.ln2 = layer_norm(x2, ln2_w, ln2_b)
        a = h2 @ w_1 + b_1
        m, self.gelu = gelu_tanh(a)
        #: the intermediates: h1, q, k, v (B, H, T, D), P (B, H, T, T), att, h2, m
        self.saved = (h1, q, k, v, p, att, h2, m)
        return x2 + m @ w_2 + b_2
