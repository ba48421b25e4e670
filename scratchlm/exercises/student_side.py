"""What a graded file sees of scratchlm: the skeletons' base classes, and nothing of the
library's implementations.

The grading child (:mod:`scratchlm.exercises.child`) never loads the library. When a graded
file imports ``scratchlm``, ``scratchlm.backend`` or ``scratchlm.exercises.skeletons``, it
gets this module: a ``Function`` base class (forward and backward on arrays), the two
backend helpers a backward may use on NumPy arrays, and the skeleton of every backward
exercise — the forward of the library's op written out in NumPy (the same formula, saving
the same attributes, so a backward written against ``show``'s listing runs unchanged) and
a backward that is not written. No backward of the library is here, and no engine: a
submission cannot call the library's gradient, because there is none to call.
"""

import math

import numpy as np


class Function:
    """An op on arrays: ``forward(*inputs)`` returns the output and saves on ``self`` what
    ``backward(g)`` needs; ``backward`` returns one gradient per input (None for inputs
    that get none). ``needs_input_grad`` says, per input, whether it gets a gradient."""

    needs_input_grad = ()

    def forward(self, *inputs):
        raise NotImplementedError("forward is not written")

    def backward(self, g):
        raise NotImplementedError("backward is not written")


# --------------------------------------------------------------------- backend helpers
def get_array_module(*arrays):
    """NumPy (a graded file runs on the CPU)."""
    return np


def scatter_add(target, indices, values):
    """target[indices[i]] += values[i] for every i, repeated indices adding up (in place)."""
    np.add.at(target, indices, values)
    return target


# --------------------------------------------------------------------------- skeletons
#: per skeleton: what its forward saves on ``self`` for backward, in words
SAVED = {
    "Mul": "self.a, self.b",
    "Tanh": "self.y",
    "Sigmoid": "self.y",
    "GELUTanh": "self.x, self.h = ½(1 + tanh u)",
    "MatMul": "self.a, self.b",
    "Embedding": "self.ids, self.weight_shape",
    "Softmax": "self.y, self.axis",
    "LogSoftmax": "self.y, self.axis",
    "CrossEntropy": "self.probs (softmax of the rows, N × C), self.rows, self.targets (0 "
                    "where ignored), self.valid (the rows that count), self.count (how many), "
                    "self.logits_shape",
    "LayerNorm": "self.norm (n), self.rstd (r), self.weight (w)",
    "ScaledDotProductAttention": "self.q, self.k, self.v, self.weights (P), self.scale (1/√d), "
                                 "self.mask_is_float, self.keep (with dropout only: "
                                 "self.dropped(P) applies it)",
    "Linear": "self.x_rows (x as rows, R × in), self.x_shape, self.weight, self.has_bias",
}
#: per skeleton: the inputs of forward whose gradient is None
NO_GRADIENT = {"Embedding": ("ids",), "CrossEntropy": ("target",),
               "ScaledDotProductAttention": ("attn_mask",)}


def backward_hint(name, inputs):
    """What a skeleton's backward asks for: the gradients to return, and what forward
    saved."""
    gradients = ["None" if x in NO_GRADIENT.get(name, ()) else f"∂L/∂{x}" for x in inputs]
    returns = gradients[0] if len(gradients) == 1 else f"({', '.join(gradients)})"
    return f"return {returns} from g and what forward saved: {SAVED[name]}"


def _not_written(name, inputs):
    hint = backward_hint(name, inputs)

    def backward(self, g):
        raise NotImplementedError(hint)
    backward.__qualname__ = f"{name}.backward"
    return backward


def _softmax_parts(x, axis):
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(x - m)
    return e, e.sum(axis=axis, keepdims=True), m


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b


class Tanh(Function):
    def forward(self, x):
        self.y = np.tanh(x)
        return self.y


class Sigmoid(Function):
    def forward(self, x):
        with np.errstate(over="ignore"):
            self.y = 1 / (1 + np.exp(-x))
        return self.y


class GELUTanh(Function):
    def forward(self, x):
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        self.x, self.h = x, 0.5 * (1 + np.tanh(u))
        return x * self.h


class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b


class Embedding(Function):
    def forward(self, ids, weight):
        self.ids, self.weight_shape = np.asarray(ids, dtype=np.int64), weight.shape
        return np.take(weight, self.ids, axis=0)


class Softmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.axis = self.axis % x.ndim
        e, s, _ = _softmax_parts(x, self.axis)
        self.y = e / s
        return self.y


class LogSoftmax(Function):
    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        self.axis = self.axis % x.ndim
        _, s, m = _softmax_parts(x, self.axis)
        self.y = x - m - np.log(s)
        return self.y


class CrossEntropy(Function):
    def __init__(self, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        self.ignore_index, self.smoothing, self.reduction = (
            ignore_index, label_smoothing, reduction)

    def forward(self, logits, target):
        target = np.asarray(target, dtype=np.int64)
        self.target_shape, self.logits_shape = target.shape, logits.shape
        self.valid = target.reshape(-1) != self.ignore_index
        self.targets = np.where(self.valid, target.reshape(-1), 0)
        self.count = max(int(self.valid.sum()), 1)
        z = logits.reshape(-1, logits.shape[-1])
        self.rows = np.arange(z.shape[0])
        e, s, m = _softmax_parts(z, -1)
        self.probs = e / s
        log_sum_exp = m[:, 0] + np.log(s[:, 0])
        losses = (log_sum_exp - (1 - self.smoothing) * z[self.rows, self.targets]
                  - self.smoothing / z.shape[1] * z.sum(axis=1))
        losses = (losses * self.valid).reshape(self.target_shape)
        if self.reduction == "none":
            return losses
        total = losses.sum()
        return np.asarray(total if self.reduction == "sum" else total / self.count)


class LayerNorm(Function):
    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, weight, bias):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        self.rstd = 1 / (var + self.eps) ** 0.5
        self.norm = (x - mean) * self.rstd
        self.weight = weight
        y = self.norm if weight is None else self.norm * weight
        return y if bias is None else y + bias


class ScaledDotProductAttention(Function):
    def __init__(self, is_causal=False, dropout_p=0.0):
        if dropout_p:
            raise ValueError("a graded attention has no dropout (dropout_p=0)")
        self.is_causal, self.dropout_p = is_causal, dropout_p

    def forward(self, q, k, v, attn_mask):
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        self.mask_is_float = attn_mask is not None and np.asarray(attn_mask).dtype != bool
        scores = q @ k.swapaxes(-1, -2) * self.scale
        if attn_mask is not None and not self.mask_is_float:
            scores = np.where(attn_mask, scores, -math.inf)
        elif attn_mask is not None:
            scores = scores + np.asarray(attn_mask, dtype=scores.dtype)
        if self.is_causal:  # query i attends keys j ≤ i (top-left aligned, as PyTorch)
            scores = np.where(np.tril(np.ones(scores.shape[-2:], dtype=bool)), scores, -math.inf)
        e, s, _ = _softmax_parts(scores, -1)
        weights = e / np.where(s > 0, s, 1)  # a query with no key to attend: P = 0
        self.q, self.k, self.v, self.weights = q, k, v, weights
        return self.dropped(weights) @ v

    def dropped(self, weights):
        """The weights themselves (a graded attention has no dropout)."""
        return weights


class Linear(Function):
    def forward(self, x, weight, bias=None):
        self.x_shape = x.shape
        self.x_rows = x.reshape(-1, x.shape[-1])
        self.weight, self.has_bias = weight, bias is not None
        y = self.x_rows @ weight.T
        if bias is not None:
            y = y + bias
        return y.reshape(x.shape[:-1] + (weight.shape[0],))


SKELETONS = (Mul, Tanh, Sigmoid, GELUTanh, MatMul, Embedding, Softmax, LogSoftmax, CrossEntropy,
             LayerNorm, ScaledDotProductAttention, Linear)
for _skeleton in SKELETONS:
    _inputs = tuple(_skeleton.forward.__code__.co_varnames[1:_skeleton.forward.__code__
                                                           .co_argcount])
    _skeleton.backward = _not_written(_skeleton.__name__, _inputs)
    _skeleton.saved, _skeleton.hint = SAVED[_skeleton.__name__], backward_hint(
        _skeleton.__name__, _inputs)
