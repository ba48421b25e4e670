"""Fast GPU versions of the reference ops: each direction one fused CUDA kernel.

A chain of CuPy array expressions launches one kernel per operation, and each reads and
writes the whole array; these ops are memory-bound, so a kernel that reads its inputs once
and writes its outputs once (:mod:`scratchlm.fast.cuda_kernels`) is what makes them fast.
Each class subclasses its reference op, is registered for ``"cuda"``, and falls back to the
reference where the kernels do not apply (an axis other than the last, mixed dtypes).
"""

import math

from scratchlm.fast import cuda_kernels as kernels
from scratchlm.fast.engine import returns_new_gradients
from scratchlm.fast.registry import implements
from scratchlm.functional.activations import GELUTanh
from scratchlm.functional.attention import ScaledDotProductAttention, checked_mask
from scratchlm.functional.cross_entropy import CrossEntropy
from scratchlm.functional.layer_norm import LayerNorm, check_layer_norm_shapes
from scratchlm.functional.softmax import Softmax


@implements(LayerNorm, "cuda")
@returns_new_gradients
class LayerNormKernel(LayerNorm):
    """:class:`LayerNorm`: the forward and ∂L/∂x each one kernel with a thread block per row."""

    def forward(self, x, weight, bias):
        if not kernels.fusable_rows(x, weight, bias):
            return super().forward(x, weight, bias)
        check_layer_norm_shapes(x, weight, bias)
        y, self.norm, self.rstd = kernels.layer_norm_rows(x, weight, bias, self.eps)
        self.weight = weight
        return y

    def backward(self, g):
        features = g.shape[-1]
        g_rows, norm = g.reshape(-1, features), self.norm.reshape(-1, features)
        rstd = self.rstd.reshape(-1, 1)
        if not kernels.fusable_rows(g_rows, norm, rstd, self.weight):
            return super().backward(g)
        grad_weight = (g_rows * norm).sum(axis=0) if self.needs_input_grad[1] else None
        grad_bias = g_rows.sum(axis=0) if self.needs_input_grad[2] else None
        grad_x = None
        if self.needs_input_grad[0]:
            grad_x = kernels.layer_norm_backward_rows(g_rows, norm, self.weight, rstd)
            grad_x = grad_x.reshape(g.shape)
        return grad_x, grad_weight, grad_bias


@implements(GELUTanh, "cuda")
@returns_new_gradients
class GELUTanhKernel(GELUTanh):
    """:class:`GELUTanh`: each direction one elementwise kernel (h is saved, as there)."""

    def forward(self, x):
        if not kernels.fusable(x):
            return super().forward(x)
        y, self.h = kernels.gelu_tanh_forward(x)
        self.x = x
        return y

    def backward(self, g):
        if not kernels.fusable(g, self.x, self.h):
            return super().backward(g)
        return kernels.gelu_tanh_backward(g, self.x, self.h)


@implements(Softmax, "cuda")
@returns_new_gradients
class SoftmaxKernel(Softmax):
    """:class:`Softmax` along the last axis: each direction one kernel, a block per row."""

    def forward(self, x):
        if not (self.axis in (-1, x.ndim - 1) and kernels.fusable_rows(x)):
            return super().forward(x)
        self.axis = x.ndim - 1
        self.y = kernels.softmax_rows(x)[0]
        return self.y

    def backward(self, g):
        if not (self.axis == g.ndim - 1 and g.shape == self.y.shape
                and kernels.fusable_rows(g, self.y)):
            return super().backward(g)
        return kernels.softmax_backward_rows(g, self.y)


@implements(ScaledDotProductAttention, "cuda")
@returns_new_gradients
class AttentionKernels(ScaledDotProductAttention):
    """:class:`ScaledDotProductAttention` without a mask or dropout (a GPT's training step,
    cached decoding): the scale, the causal mask and the softmax are one row kernel forward,
    and the softmax backward with the scale another; the four products are cuBLAS's. Masks,
    dropout and broadcast batch axes take the reference code."""

    def forward(self, q, k, v, attn_mask):
        self.fused = (attn_mask is None and not self.dropout_p and k.ndim >= 2
                      and k.shape[-2] > 0 and q.shape[:-2] == k.shape[:-2] == v.shape[:-2]
                      and kernels.fusable_rows(q, k, v))
        if not self.fused:
            return super().forward(q, k, v, attn_mask)
        checked_mask(q, k, v, None)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        weights = kernels.attention_softmax_rows(q @ k.swapaxes(-1, -2), self.scale,
                                                 self.is_causal)
        self.q, self.k, self.v, self.weights = q, k, v, weights
        return weights @ v

    def backward(self, g):
        if not self.fused:
            return super().backward(g)
        q, k, v, weights = self.q, self.k, self.v, self.weights
        grad_v = weights.swapaxes(-1, -2) @ g
        grad_scores = kernels.softmax_backward_rows(g @ v.swapaxes(-1, -2), weights,
                                                    self.scale)
        return grad_scores @ k, grad_scores.swapaxes(-1, -2) @ q, grad_v, None


@implements(CrossEntropy, "cuda")
@returns_new_gradients
class CrossEntropyKernel(CrossEntropy):
    """:class:`CrossEntropy` with softmax(z), max z and log Σ e^(z − max z) per row from one
    kernel; backward is the reference's."""

    def forward(self, logits, target):
        z = self.check_and_save_targets(logits, target)
        if not kernels.fusable_rows(z):
            return super().forward(logits, target)
        self.probs, row_max, log_sum_exp = kernels.softmax_rows(z)
        losses = log_sum_exp - (1 - self.smoothing) * (z[self.rows, self.targets] - row_max)
        if self.smoothing:
            losses -= self.smoothing / z.shape[1] * (z - row_max[:, None]).sum(axis=1)
        return self.reduce(losses)

