"""ANSWER KEY of the gradient-check exercises — try each one before reading it.

Each class completes the skeleton of the same name in :mod:`scratchlm.exercises.skeletons`
(forward is inherited unchanged) with its backward and the derivation behind it. The tests
grade every one of these as passing.
"""

import math

from scratchlm import backend
from scratchlm.backend import get_array_module
from scratchlm.exercises import skeletons


class Mul(skeletons.Mul):
    """yᵢ = aᵢbᵢ, so ∂yᵢ/∂aᵢ = bᵢ and ∂yᵢ/∂bᵢ = aᵢ:  ∂L/∂a = g ⊙ b,  ∂L/∂b = g ⊙ a, both in
    y's (broadcast) shape. An input that broadcasting copied was used once per copy, so its
    gradient is the sum over the copies; the engine takes that sum (``sum_to_shape``)."""

    def backward(self, g):
        return g * self.b, g * self.a


class Tanh(skeletons.Tanh):
    """dy/dx = 1 − tanh² x = 1 − y²,  so  ∂L/∂x = g ⊙ (1 − y²)."""

    def backward(self, g):
        return g * (1.0 - self.y * self.y)


class Sigmoid(skeletons.Sigmoid):
    """dy/dx = e⁻ˣ/(1 + e⁻ˣ)² = y(1 − y),  so  ∂L/∂x = g ⊙ y ⊙ (1 − y)."""

    def backward(self, g):
        return g * self.y * (1.0 - self.y)


class GELUTanh(skeletons.GELUTanh):
    """dy/dx = ½(1 + t) + ½x (1 − t²) u',  u' = √(2/π)(1 + 3·0.044715x²)
    (product rule on ½x·(1 + t), then dt/du = 1 − t²);  ∂L/∂x = g ⊙ dy/dx."""

    def backward(self, g):
        x, t = self.x, self.t
        du_dx = math.sqrt(2.0 / math.pi) * (1.0 + 3 * 0.044715 * x * x)
        return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du_dx)


class MatMul(skeletons.MatMul):
    """Yᵢⱼ = Σₖ Aᵢₖ Bₖⱼ, so ∂L/∂Aᵢₖ = Σⱼ Gᵢⱼ Bₖⱼ and ∂L/∂Bₖⱼ = Σᵢ Aᵢₖ Gᵢⱼ:
    ∂L/∂A = G Bᵀ,  ∂L/∂B = Aᵀ G, per matrix of the batch (Bᵀ swaps the last two axes only).
    Where a batch axis was broadcast the result has the broadcast shape; the engine sums it
    back, because a broadcast input was used once per copy and its gradient adds up."""

    def backward(self, g):
        return g @ self.b.swapaxes(-1, -2), self.a.swapaxes(-1, -2) @ g


class Embedding(skeletons.Embedding):
    """y = O W with O the one-hot rows of the ids, so ∂L/∂W = Oᵀ G: row v of ∂L/∂W is the
    sum of the gradient rows of every position whose id is v. ``W[ids] += G`` would keep
    only one of the repeated ids, so the rows are scatter-added. The ids get no gradient."""

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.weight_shape, dtype=g.dtype)
        backend.scatter_add(grad, self.ids.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        return None, grad


class Softmax(skeletons.Softmax):
    """∂yⱼ/∂xᵢ = yⱼ(δᵢⱼ − yᵢ), so ∂L/∂xᵢ = Σⱼ gⱼ yⱼ(δᵢⱼ − yᵢ) = yᵢ(gᵢ − Σⱼ gⱼ yⱼ):
    ∂L/∂x = y ⊙ (g − Σ(g ⊙ y)) with the sum along ``axis`` — no Jacobian is ever built."""

    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(skeletons.LogSoftmax):
    """∂yⱼ/∂xᵢ = δᵢⱼ − softmax(x)ᵢ, so ∂L/∂x = g − softmax(x) Σⱼ gⱼ, with softmax(x) = eʸ."""

    def backward(self, g):
        xp = get_array_module(g)
        return g - xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True)


class CrossEntropy(skeletons.CrossEntropy):
    """Per counted row, −log softmax(z)[t] = logsumexp(z) − z_t has gradient softmax(z) − onehot(t)
    (∂ logsumexp/∂z = softmax). The mean divides by n, ignored rows add nothing, and the
    0-d upstream gradient g scales everything:  ∂L/∂z = (g/n)·counted ⊙ (P − onehot(t))."""

    def backward(self, g):
        grad = self.probs.copy()
        grad[self.rows, self.targets] -= 1.0
        grad *= (self.counted * (g / self.n))[:, None]
        return grad.reshape(self.logits_shape), None


class LayerNorm(skeletons.LayerNorm):
    """With dn = g ⊙ w and ∂nⱼ/∂xᵢ = r(δᵢⱼ − 1/C − nᵢnⱼ/C) per row of C features:
        ∂L/∂x = r (dn − mean(dn) − n ⊙ mean(dn ⊙ n)),
        ∂L/∂w = Σ_rows g ⊙ n,   ∂L/∂b = Σ_rows g   (w and b are shared by every row)."""

    def backward(self, g):
        features = g.shape[-1]
        dnorm = g * self.weight
        grad_x = self.rstd * (dnorm - dnorm.mean(axis=-1, keepdims=True)
                              - self.norm * (dnorm * self.norm).mean(axis=-1, keepdims=True))
        grad_weight = (g * self.norm).reshape(-1, features).sum(axis=0)
        grad_bias = g.reshape(-1, features).sum(axis=0)
        return grad_x, grad_weight, grad_bias


class ScaledDotProductAttention(skeletons.ScaledDotProductAttention):
    """Backward through O = P V, the softmax and S = Q Kᵀ/√d, with G = ∂L/∂O:
        ∂L/∂V = Pᵀ G,   ∂L/∂P = G Vᵀ,   ∂L/∂S = P ⊙ (∂L/∂P − rowsum(∂L/∂P ⊙ P)),
        ∂L/∂Q = ∂L/∂S K/√d,   ∂L/∂K = (∂L/∂S)ᵀ Q/√d.
    Masked entries have P = 0, so ∂L/∂S is 0 there and the mask needs no extra step."""

    def backward(self, g):
        probs = self.probs
        grad_v = probs.swapaxes(-1, -2) @ g
        grad_probs = g @ self.v.swapaxes(-1, -2)
        grad_scores = probs * (grad_probs - (grad_probs * probs).sum(axis=-1, keepdims=True))
        grad_q = (grad_scores @ self.k) * self.scale
        grad_k = (grad_scores.swapaxes(-1, -2) @ self.q) * self.scale
        return grad_q, grad_k, grad_v
