"""Hidden reference of the track-2 exercises that are not one library op's backward
(instructor source only)."""

import math

import numpy as np

import scratchlm as sl
from scratchlm.exercises.blocks import PreLNBlockForward


class MaskedDropout(sl.Function):
    def __init__(self, p):
        self.p = p

    def forward(self, x, keep):
        self.scale = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        self.keep = keep
        return x * keep * self.scale

    def backward(self, g):
        return g * self.keep * self.scale, None


class SplitHeads(sl.Function):
    def __init__(self, n_head):
        self.n_head = n_head

    def forward(self, x):
        *lead, t, c = x.shape
        self.shape = x.shape
        return x.reshape(*lead, t, self.n_head, c // self.n_head).swapaxes(-2, -3)

    def backward(self, g):
        return g.swapaxes(-2, -3).reshape(self.shape)


def _layer_norm_backward(g, cache):
    n, rstd, w = cache
    dn = g * w
    dx = rstd * (dn - dn.mean(axis=-1, keepdims=True)
                 - n * (dn * n).mean(axis=-1, keepdims=True))
    return dx, (g * n).reshape(-1, n.shape[-1]).sum(0), g.reshape(-1, n.shape[-1]).sum(0)


def _gelu_backward(g, cache):
    x, u, h = cache
    du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)
    return g * (h + x * 0.5 * (1 - np.tanh(u) ** 2) * du)


class PreLNBlock(PreLNBlockForward):
    def backward(self, g):
        w_qkv, w_o, w_1, w_2 = self.params
        h1, q, k, v, p, att, h2, m = self.saved
        B, T, C = g.shape
        H, D = self.n_head, C // self.n_head

        def rows(a):
            return a.reshape(-1, a.shape[-1])

        d_w2, d_b2 = rows(m).T @ rows(g), rows(g).sum(0)
        da = _gelu_backward(g @ w_2.T, self.gelu)
        d_w1, d_b1 = rows(h2).T @ rows(da), rows(da).sum(0)
        dx2_ln, d_ln2w, d_ln2b = _layer_norm_backward(da @ w_1.T, self.ln2)
        dx2 = g + dx2_ln
        d_wo, d_bo = rows(att).T @ rows(dx2), rows(dx2).sum(0)
        datt = (dx2 @ w_o.T).reshape(B, T, H, D).swapaxes(1, 2)
        dv = p.swapaxes(-1, -2) @ datt
        dp = datt @ v.swapaxes(-1, -2)
        ds = p * (dp - (dp * p).sum(-1, keepdims=True)) / math.sqrt(D)
        dq, dk = ds @ k, ds.swapaxes(-1, -2) @ q
        dqkv = np.concatenate([d.swapaxes(1, 2).reshape(B, T, C) for d in (dq, dk, dv)], -1)
        d_wqkv, d_bqkv = rows(h1).T @ rows(dqkv), rows(dqkv).sum(0)
        dx1_ln, d_ln1w, d_ln1b = _layer_norm_backward(dqkv @ w_qkv.T, self.ln1)
        return (dx2 + dx1_ln, d_ln1w, d_ln1b, d_wqkv, d_bqkv, d_wo, d_bo, d_ln2w, d_ln2b,
                d_w1, d_b1, d_w2, d_b2)
