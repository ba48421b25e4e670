"""Dropout: zero each element with probability p and scale the survivors by 1/(1 − p)
("inverted" dropout), so the expected value is unchanged and evaluation needs no rescaling."""

from scratchlm import backend
from scratchlm.autograd.function import Function
from scratchlm.checks import check_bool, check_operand, check_probability


def keep_mask(shape, p, like):
    """A boolean mask of ``shape``, each entry True (kept) with probability 1 − p, drawn from
    the shared generator of the device of the array ``like`` (``sl.manual_seed`` repeats it)."""
    rng = backend.generator(backend.device_of(like))
    return rng.random(shape, dtype=like.dtype) >= p


def survivor_scale(p):
    """The factor 1/(1 − p) that keeps the expected value; 0 when p = 1 drops everything."""
    return 0.0 if p == 1 else 1.0 / (1.0 - p)


class Dropout(Function):
    """y = x ⊙ m / (1 − p) with m ~ Bernoulli(1 − p);  ∂L/∂x = g ⊙ m / (1 − p) (m is saved).

    p = 1 drops everything: y = 0 and ∂L/∂x = 0.
    """

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        self.keep = keep_mask(x.shape, self.p, x)
        self.scale = survivor_scale(self.p)
        return x * self.keep * self.scale

    def backward(self, g):
        return g * self.keep * self.scale


def dropout(x, p, training=True):
    """Inverted dropout with drop probability ``p`` (0 ≤ p ≤ 1); ``x`` itself when
    ``training`` is False or p = 0."""
    check_operand("dropout", "x", x, number=False)
    check_probability("dropout", "p", p)
    if not check_bool("dropout", "training", training) or p == 0:
        return x
    return Dropout(p)(x)
