"""Exercise skeletons: each op's forward is written; its backward is yours.

Copy a class (``python -m scratchlm.exercises show NAME`` prints it with its imports),
replace the ``raise NotImplementedError`` by the gradient of the loss with respect to each
input, and grade it::

    from scratchlm.exercises import grade
    print(grade("softmax", Softmax))

The rules of every backward:

* ``g`` is ∂L/∂y, shaped like forward's output; return one gradient per input of forward,
  in order, shaped like that input (or like the broadcast shape: the engine sums it back),
  and ``None`` for an input that gets no gradient (integer ids and targets);
* use what forward saved on ``self``; do not recompute the forward pass;
* never modify ``g`` in place (another op may hold the same array): write into new arrays;
* work on whole arrays: no Python loop over rows, batch or time.
"""

import math

import scratchlm as sl
from scratchlm.backend import get_array_module


class Mul(sl.Function):
    """y = a ⊙ b, elementwise, with NumPy broadcasting: a (3, 4) times b (4,) multiplies every
    row of a by b. Saves a and b."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        raise NotImplementedError("return (∂L/∂a, ∂L/∂b) from g = ∂L/∂y, self.a and self.b")


class Tanh(sl.Function):
    """y = tanh x = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), elementwise. Saves y."""

    def forward(self, x):
        xp = get_array_module(x)
        self.y = xp.tanh(x)
        return self.y

    def backward(self, g):
        raise NotImplementedError("return ∂L/∂x from g = ∂L/∂y and self.y")


class Sigmoid(sl.Function):
    """y = σ(x) = 1/(1 + e⁻ˣ), elementwise. Saves y."""

    def forward(self, x):
        xp = get_array_module(x)
        self.y = 1.0 / (1.0 + xp.exp(-x))
        return self.y

    def backward(self, g):
        raise NotImplementedError("return ∂L/∂x from g = ∂L/∂y and self.y")


class GELUTanh(sl.Function):
    """y = ½x(1 + t),  t = tanh u,  u = √(2/π)(x + 0.044715x³)  (GPT-2's GELU). Saves x, t."""

    def forward(self, x):
        xp = get_array_module(x)
        u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
        self.x, self.t = x, xp.tanh(u)
        return 0.5 * x * (1.0 + self.t)

    def backward(self, g):
        raise NotImplementedError("return ∂L/∂x from g, self.x and self.t")


class MatMul(sl.Function):
    """Y = A B for a (…, n, k) and b (…, k, m), batch axes broadcast as NumPy's ``@``.
    Saves a, b."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        raise NotImplementedError("return (∂L/∂A, ∂L/∂B) from g = ∂L/∂Y")


class Embedding(sl.Function):
    """y[…] = W[ids[…]]: a row of the table W (V, C) for every integer id.
    Saves the ids and W's shape."""

    def forward(self, ids, weight):
        self.ids, self.weight_shape = ids, weight.shape
        return weight[ids]

    def backward(self, g):
        raise NotImplementedError("return (None, ∂L/∂W); an id that "
                                  "appears twice gets both gradient rows")


class Softmax(sl.Function):
    """y = eˣ / Σ eˣ along ``axis`` (the maximum subtracted first: same y, no overflow).
    Saves y."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, g):
        raise NotImplementedError("return ∂L/∂x from g and self.y")


class LogSoftmax(sl.Function):
    """y = x − log Σ eˣ along ``axis`` (the maximum subtracted first). Saves y."""

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.y = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.y

    def backward(self, g):
        raise NotImplementedError("return ∂L/∂x from g and self.y")


class CrossEntropy(sl.Function):
    """L = (1/n) Σᵣ −log softmax(zᵣ)[tᵣ] over the n rows r whose target tᵣ ≠ ignore_index.

    Logits z (…, C), integer targets t (…). Saves the probabilities softmax(z) as rows
    (N, C), the row numbers, the targets (0 where ignored), the mask of counted rows and n.
    """

    def __init__(self, ignore_index=-100):
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        xp = get_array_module(logits)
        z = logits.reshape(-1, logits.shape[-1])
        t = target.reshape(-1)
        shifted = z - z.max(axis=1, keepdims=True)
        log_probs = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        self.logits_shape = logits.shape
        self.probs = xp.exp(log_probs)
        self.rows = xp.arange(len(t))
        self.counted = t != self.ignore_index
        self.targets = xp.where(self.counted, t, 0)
        self.n = max(int(self.counted.sum()), 1)
        losses = -log_probs[self.rows, self.targets] * self.counted
        return xp.asarray(losses.sum() / self.n)

    def backward(self, g):
        raise NotImplementedError("return (∂L/∂logits, None) from the "
                                  "0-d g = ∂Loss/∂L and what forward saved")


class LayerNorm(sl.Function):
    """y = n ⊙ w + b,  n = (x − μ) r,  μ = mean(x),  r = 1/√(var(x) + ε), over the last axis
    of x (…, C); w and b have shape (C,). Saves n, r and w."""

    def __init__(self, eps=1e-5):
        self.eps = eps

    def forward(self, x, weight, bias):
        xp = get_array_module(x)
        centered = x - x.mean(axis=-1, keepdims=True)
        variance = (centered * centered).mean(axis=-1, keepdims=True)
        self.rstd = 1.0 / xp.sqrt(variance + self.eps)
        self.norm = centered * self.rstd
        self.weight = weight
        return self.norm * weight + bias

    def backward(self, g):
        raise NotImplementedError("return (∂L/∂x, ∂L/∂w, ∂L/∂b) from g, "
                                  "self.norm, self.rstd and self.weight")


class ScaledDotProductAttention(sl.Function):
    """O = P V,  P = softmax(S) along the keys,  S = Q Kᵀ/√d  for q (…, Tq, d), k (…, Tk, d),
    v (…, Tk, dv). With ``is_causal`` query i may attend only keys j ≤ i (S = −∞ elsewhere,
    so P = 0 there). Saves q, k, v, P and the scale 1/√d."""

    def __init__(self, is_causal=False):
        self.is_causal = is_causal

    def forward(self, q, k, v):
        xp = get_array_module(q)
        self.scale = 1.0 / math.sqrt(q.shape[-1])
        scores = (q @ k.swapaxes(-1, -2)) * self.scale
        if self.is_causal:
            allowed = xp.tril(xp.ones(scores.shape[-2:], dtype=bool))
            scores = xp.where(allowed, scores, -xp.inf)
        e = xp.exp(scores - scores.max(axis=-1, keepdims=True))
        self.probs = e / e.sum(axis=-1, keepdims=True)
        self.q, self.k, self.v = q, k, v
        return self.probs @ v

    def backward(self, g):
        raise NotImplementedError("return (∂L/∂Q, ∂L/∂K, "
                                  "∂L/∂V) from g = ∂L/∂O and what forward saved")
