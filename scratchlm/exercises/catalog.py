"""The exercises: for each op its forward formula, what to derive, the skeleton to complete,
the library op it is graded against and the input shapes it is graded on.

The skeleton is the library's reference class with its backward taken away
(:mod:`scratchlm.exercises.skeletons`), so that class is also the answer key.

A case lists one entry per input of forward: a shape tuple for a float input (filled with
float64 normals), an integer array for ids and targets (used as given) or None for an
optional input left out (attention's mask), and the constructor arguments of the Function.
Cases cover the awkward spots: size-1 axes, broadcast batch axes, repeated ids, ignored
targets, a causal mask.
"""

from dataclasses import dataclass, field

import numpy as np

import scratchlm.functional as F
from scratchlm.exercises import skeletons


@dataclass(frozen=True)
class Case:
    #: per input of forward: a shape (float input), an integer array (ids, targets) or None
    inputs: tuple
    #: keyword arguments of the Function's constructor
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    #: the forward formula, as the student sees it
    formula: str
    #: what to derive, without the answer
    task: str
    #: the class to complete: the library's class with its backward taken away
    skeleton: type
    #: names of forward's inputs, in order
    input_names: tuple
    #: the library's op on Tensors: reference(*inputs, **config) -> Tensor
    reference: object
    cases: tuple

    @property
    def reference_class(self):
        """The library's Function class of the op: the skeleton's parent, the answer key."""
        return self.skeleton.reference


def ids(values):
    """Integer ids or targets of a case."""
    return np.asarray(values, dtype=np.int64)


def _mul(a, b):
    return a * b


def _matmul(a, b):
    return a @ b


EXERCISES = {exercise.name: exercise for exercise in [
    Exercise(
        name="mul", title="Elementwise product with broadcasting",
        formula="y = a ⊙ b  (NumPy broadcasting)",
        task="Differentiate one entry yᵢ = aᵢbᵢ; then ask what the gradient of an input that "
             "broadcasting copied must be.",
        skeleton=skeletons.Mul, input_names=("a", "b"), reference=_mul,
        cases=(Case(((3, 4), (3, 4))), Case(((3, 4), (4,))), Case(((2, 1, 3), (4, 1))))),
    Exercise(
        name="tanh", title="Hyperbolic tangent",
        formula="y = tanh x = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)",
        task="Write dy/dx in terms of y alone, then ∂L/∂x = g ⊙ dy/dx.",
        skeleton=skeletons.Tanh, input_names=("x",), reference=F.tanh,
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((2, 1, 3),)))),
    Exercise(
        name="sigmoid", title="Sigmoid",
        formula="y = σ(x) = 1/(1 + e⁻ˣ)",
        task="Write dy/dx in terms of y alone, then ∂L/∂x = g ⊙ dy/dx.",
        skeleton=skeletons.Sigmoid, input_names=("x",), reference=F.sigmoid,
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((2, 1, 3),)))),
    Exercise(
        name="gelu_tanh", title="GELU, tanh form (GPT-2)",
        formula="y = x h,  h = ½(1 + tanh u),  u = √(2/π)(x + 0.044715x³)",
        task="Product rule on x·h, chain rule through h = ½(1 + tanh u) and u(x).",
        skeleton=skeletons.GELUTanh, input_names=("x",),
        reference=lambda x: F.gelu(x, approximate="tanh"),
        cases=(Case(((6,),)), Case(((3, 4),)), Case(((2, 3, 2),)))),
    Exercise(
        name="matmul", title="Matrix product with broadcast batch axes",
        formula="Y = A B,  A (…, n, k),  B (…, k, m)",
        task="Write ∂L/∂Aᵢₖ and ∂L/∂Bₖⱼ as sums over the other index, then as matrix "
             "products that work for every matrix of a batch.",
        skeleton=skeletons.MatMul, input_names=("a", "b"), reference=_matmul,
        cases=(Case(((3, 4), (4, 2))), Case(((2, 3, 4), (4, 5))),
               Case(((2, 1, 3, 4), (5, 4, 2))))),
    Exercise(
        name="embedding", title="Embedding lookup",
        formula="y[…] = W[ids[…]],  W (V, C)",
        task="Which rows of W did each output row come from? What happens to an id that "
             "appears twice?",
        skeleton=skeletons.Embedding, input_names=("ids", "weight"), reference=F.embedding,
        cases=(Case((ids([1, 3, 0]), (5, 3))), Case((ids([[2, 2, 0], [4, 2, 2]]), (5, 4))),
               Case((ids([1, 1, 1, 1]), (3, 2))))),
    Exercise(
        name="softmax", title="Softmax",
        formula="yᵢ = e^(xᵢ) / Σⱼ e^(xⱼ)  along an axis",
        task="Derive ∂yⱼ/∂xᵢ, then contract it with g without building the Jacobian.",
        skeleton=skeletons.Softmax, input_names=("x",), reference=F.softmax,
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((3, 4),), {"axis": 0}),
               Case(((2, 3, 4),), {"axis": 1}))),
    Exercise(
        name="log_softmax", title="Log-softmax",
        formula="yᵢ = xᵢ − log Σⱼ e^(xⱼ)  along an axis",
        task="Derive ∂yⱼ/∂xᵢ (the derivative of log Σ eˣ is a softmax), then contract with g.",
        skeleton=skeletons.LogSoftmax, input_names=("x",), reference=F.log_softmax,
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((3, 4),), {"axis": 0}),
               Case(((2, 3, 4),), {"axis": 1}))),
    Exercise(
        name="cross_entropy", title="Cross-entropy with ignored targets",
        formula="L = (1/n) Σᵣ −log softmax(zᵣ)[tᵣ]  over the n rows with tᵣ ≠ ignore_index",
        task="Differentiate one row's −log softmax(z)[t] with respect to z, then account for "
             "the mean, the ignored rows and the upstream gradient g (the cases use the "
             'defaults: reduction="mean", no label smoothing).',
        skeleton=skeletons.CrossEntropy, input_names=("logits", "target"),
        reference=F.cross_entropy,
        cases=(Case(((4, 5), ids([0, 3, 1, 4]))), Case(((2, 3, 6), ids([[5, -100, 0], [2, 2, 1]]))),
               Case(((1, 3), ids([2]))))),
    Exercise(
        name="layer_norm", title="Layer normalization",
        formula="y = n ⊙ w + b,  n = (x − μ)/√(σ² + ε),  μ, σ² the mean and variance of each "
                "row over the last axis",
        task="Derive ∂nⱼ/∂xᵢ within a row (μ and σ² depend on every xᵢ), contract it with "
             "dn = g ⊙ w; w and b are shared by all rows.",
        skeleton=skeletons.LayerNorm, input_names=("x", "weight", "bias"),
        reference=F.layer_norm,
        cases=(Case(((4, 6), (6,), (6,))), Case(((2, 3, 5), (5,), (5,))),
               Case(((1, 8), (8,), (8,))))),
    Exercise(
        name="attention", title="Scaled dot-product attention",
        formula="O = softmax(Q Kᵀ/√d) V  (optionally causal: query i sees keys j ≤ i)",
        task="Go backward through O = P V, the row softmax P = softmax(S) and S = Q Kᵀ/√d, "
             "one matrix product at a time (no dropout, and no attn_mask: return None for it).",
        skeleton=skeletons.ScaledDotProductAttention, input_names=("q", "k", "v", "attn_mask"),
        reference=F.scaled_dot_product_attention,
        cases=(Case(((3, 4), (5, 4), (5, 2), None)),
               Case(((2, 4, 3), (2, 4, 3), (2, 4, 3), None), {"is_causal": True}),
               Case(((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), None)))),
]}
