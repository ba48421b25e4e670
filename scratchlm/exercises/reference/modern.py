"""Hidden reference of track 3, modern ops the library does not ship (instructor source only)."""

import math

import numpy as np

import scratchlm as sl


class RMSNorm(sl.Function):
    def __init__(self, eps=1e-6):
        self.eps = eps

    def forward(self, x, weight):
        self.rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)
        self.norm, self.weight = x * self.rstd, weight
        return self.norm * weight

    def backward(self, g):
        dnorm = g * self.weight
        dx = self.rstd * (dnorm - self.norm * (dnorm * self.norm).mean(axis=-1, keepdims=True))
        dw = (g * self.norm).reshape(-1, g.shape[-1]).sum(axis=0)
        return dx, dw


class SwiGLU(sl.Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.s = 1.0 / (1.0 + np.exp(-a))
        return a * self.s * b

    def backward(self, g):
        a, b, s = self.a, self.b, self.s
        return g * b * s * (1.0 + a * (1.0 - s)), g * a * s


def rotary_angles(length, dim, base, offset):
    inverse = base ** (-np.arange(0, dim // 2) * 2.0 / dim)
    angles = np.arange(offset, offset + length)[:, None] * inverse[None, :]
    return np.cos(angles), np.sin(angles)


class Rotary(sl.Function):
    def __init__(self, base=10000.0, offset=0):
        self.base, self.offset = base, offset

    def forward(self, x):
        half = x.shape[-1] // 2
        self.cos, self.sin = rotary_angles(x.shape[-2], x.shape[-1], self.base, self.offset)
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * self.cos - x2 * self.sin,
                               x1 * self.sin + x2 * self.cos], axis=-1)

    def backward(self, g):
        half = g.shape[-1] // 2
        g1, g2 = g[..., :half], g[..., half:]
        return np.concatenate([g1 * self.cos + g2 * self.sin,
                               -g1 * self.sin + g2 * self.cos], axis=-1)


def attend(q, k, v, bias=None, causal=False):
    """softmax(q kᵀ/√d + bias, causal) v and the weights."""
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    if causal:
        scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = e / e.sum(axis=-1, keepdims=True)
    return weights @ v, weights


def attend_backward(g, q, k, v, weights):
    scale = 1.0 / math.sqrt(q.shape[-1])
    dv = weights.swapaxes(-1, -2) @ g
    dp = g @ v.swapaxes(-1, -2)
    ds = weights * (dp - (dp * weights).sum(axis=-1, keepdims=True))
    return ds @ k * scale, ds.swapaxes(-1, -2) @ q * scale, dv


class GroupedQueryAttention(sl.Function):
    def __init__(self, is_causal=False):
        self.is_causal = is_causal

    def forward(self, q, k, v):
        self.group = q.shape[-3] // k.shape[-3]
        self.q = q
        self.k, self.v = np.repeat(k, self.group, axis=-3), np.repeat(v, self.group, axis=-3)
        out, self.weights = attend(q, self.k, self.v, causal=self.is_causal)
        return out

    def backward(self, g):
        dq, dk, dv = attend_backward(g, self.q, self.k, self.v, self.weights)

        def fold(d):
            *lead, heads, length, dim = d.shape
            return d.reshape(*lead, heads // self.group, self.group, length, dim).sum(axis=-3)
        return dq, fold(dk), fold(dv)


def alibi_slopes(heads):
    return 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)


class ALiBiAttention(sl.Function):
    def forward(self, q, k, v):
        heads, t, s = q.shape[-3], q.shape[-2], k.shape[-2]
        distance = np.arange(s)[None, :] - np.arange(t)[:, None]
        bias = alibi_slopes(heads)[:, None, None] * distance
        self.q, self.k, self.v = q, k, v
        out, self.weights = attend(q, k, v, bias, causal=True)
        return out

    def backward(self, g):
        return attend_backward(g, self.q, self.k, self.v, self.weights)
