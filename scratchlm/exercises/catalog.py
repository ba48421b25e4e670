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
    #: hints, each unlocked by ``show NAME --hint N``, and one more by each failed grade
    #: (:mod:`scratchlm.exercises.hints`)
    hints: tuple = ()
    #: kind of failure ("shape", "recursion") -> the number of the hint for it
    hint_for: dict = field(default_factory=dict)
    #: the points the exercise is worth (shared equally by its cases)
    points: int = 3
    #: the track: 2 (ops and layers) for every backward exercise
    track: int = 2
    kind: str = "backward"

    @property
    def entry(self):
        """The name of the class the student's file defines."""
        return self.skeleton.__name__

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
        skeleton=skeletons.Mul, input_names=("a", "b"), reference=_mul, hint_for={"shape": 2},
        hints=('For one entry, ∂yᵢ/∂aᵢ = bᵢ: the gradient of a is g ⊙ b.',
               'Return the gradients in the broadcast shape: the engine sums them back to each '
                "input's shape (or sum them yourself)."),
        cases=(Case(((3, 4), (3, 4))), Case(((3, 4), (4,))), Case(((2, 1, 3), (4, 1))))),
    Exercise(
        name="tanh", title="Hyperbolic tangent",
        formula="y = tanh x = (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ)",
        task="Write dy/dx in terms of y alone, then ∂L/∂x = g ⊙ dy/dx.",
        skeleton=skeletons.Tanh, input_names=("x",), reference=F.tanh,
        hints=('d tanh x/dx = 1 − tanh² x.', 'forward saved y = tanh x: use it, do not recompute.'),
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((2, 1, 3),)))),
    Exercise(
        name="sigmoid", title="Sigmoid",
        formula="y = σ(x) = 1/(1 + e⁻ˣ)",
        task="Write dy/dx in terms of y alone, then ∂L/∂x = g ⊙ dy/dx.",
        skeleton=skeletons.Sigmoid, input_names=("x",), reference=F.sigmoid,
        hints=('dσ/dx = σ(x)(1 − σ(x)).', 'forward saved y = σ(x).'),
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((2, 1, 3),)))),
    Exercise(
        name="gelu_tanh", title="GELU, tanh form (GPT-2)",
        formula="y = x h,  h = ½(1 + tanh u),  u = √(2/π)(x + 0.044715x³)",
        task="Product rule on x·h, chain rule through h = ½(1 + tanh u) and u(x).",
        skeleton=skeletons.GELUTanh, input_names=("x",),
        reference=lambda x: F.gelu(x, approximate="tanh"),
        hints=('dy/dx = h + x·dh/dx.',
               'dh/dx = ½(1 − tanh² u)·du/dx and du/dx = √(2/π)(1 + 3·0.044715x²).'),
        cases=(Case(((6,),)), Case(((3, 4),)), Case(((2, 3, 2),)))),
    Exercise(
        name="matmul", title="Matrix product with broadcast batch axes",
        formula="Y = A B,  A (…, n, k),  B (…, k, m)",
        task="Write ∂L/∂Aᵢₖ and ∂L/∂Bₖⱼ as sums over the other index, then as matrix "
             "products that work for every matrix of a batch.",
        skeleton=skeletons.MatMul, input_names=("a", "b"), reference=_matmul,
        hint_for={"shape": 3},
        hints=('∂L/∂A = G Bᵀ and ∂L/∂B = Aᵀ G for plain matrices.',
               'For a batch, transpose only the last two axes: swapaxes(-1, -2), not .T.',
               'A broadcast batch axis gets the sum over the batch: return the broadcast-shaped '
                'gradient; the engine sums it.'),
        cases=(Case(((3, 4), (4, 2))), Case(((2, 3, 4), (4, 5))),
               Case(((2, 1, 3, 4), (5, 4, 2))))),
    Exercise(
        name="embedding", title="Embedding lookup",
        formula="y[…] = W[ids[…]],  W (V, C)",
        task="Which rows of W did each output row come from? What happens to an id that "
             "appears twice?",
        skeleton=skeletons.Embedding, input_names=("ids", "weight"), reference=F.embedding,
        hints=('Row r of W received g at every position where ids == r.',
               'grad[ids] += g keeps one update per repeated id (buffered); use np.add.at or '
                'backend.scatter_add.'),
        cases=(Case((ids([1, 3, 0]), (5, 3))), Case((ids([[2, 2, 0], [4, 2, 2]]), (5, 4))),
               Case((ids([1, 1, 1, 1]), (3, 2))))),
    Exercise(
        name="softmax", title="Softmax",
        formula="yᵢ = e^(xᵢ) / Σⱼ e^(xⱼ)  along an axis",
        task="Derive ∂yⱼ/∂xᵢ, then contract it with g without building the Jacobian.",
        skeleton=skeletons.Softmax, input_names=("x",), reference=F.softmax,
        hints=('∂yⱼ/∂xᵢ = yⱼ(δᵢⱼ − yᵢ).',
               'Contract: ∂L/∂xᵢ = yᵢ(gᵢ − Σⱼ gⱼyⱼ), the sum along the softmax axis with '
               'keepdims.'),
        cases=(Case(((5,),)), Case(((3, 4),)), Case(((3, 4),), {"axis": 0}),
               Case(((2, 3, 4),), {"axis": 1}))),
    Exercise(
        name="log_softmax", title="Log-softmax",
        formula="yᵢ = xᵢ − log Σⱼ e^(xⱼ)  along an axis",
        task="Derive ∂yⱼ/∂xᵢ (the derivative of log Σ eˣ is a softmax), then contract with g.",
        skeleton=skeletons.LogSoftmax, input_names=("x",), reference=F.log_softmax,
        hints=('∂yⱼ/∂xᵢ = δᵢⱼ − softmax(x)ᵢ.',
               'softmax(x) = exp(y); ∂L/∂x = g − softmax(x)·Σⱼ gⱼ.'),
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
        hints=('Per row, ∂(−log softmax(z)[t])/∂z = softmax(z) − onehot(t).',
               'Divide by the number of rows that count and zero the ignored rows; multiply by g.'),
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
        hints=('∂L/∂w = Σ over rows of g ⊙ n; ∂L/∂b = Σ over rows of g.',
               'With dn = g ⊙ w: ∂L/∂x = r (dn − mean(dn) − n · mean(dn ⊙ n)), means over the last '
                'axis.'),
        cases=(Case(((4, 6), (6,), (6,))), Case(((2, 3, 5), (5,), (5,))),
               Case(((1, 8), (8,), (8,))))),
    Exercise(
        name="attention", title="Scaled dot-product attention",
        formula="O = softmax(Q Kᵀ/√d) V  (optionally causal: query i sees keys j ≤ i)",
        task="Go backward through O = P V, the row softmax P = softmax(S) and S = Q Kᵀ/√d, "
             "one matrix product at a time (no dropout, and no attn_mask: return None for it).",
        skeleton=skeletons.ScaledDotProductAttention, input_names=("q", "k", "v", "attn_mask"),
        reference=F.scaled_dot_product_attention,
        hints=('Backward of O = P V: ∂L/∂V = Pᵀ G, ∂L/∂P = G Vᵀ.',
               'Softmax backward per row: ∂L/∂S = P ⊙ (∂L/∂P − rowsum(∂L/∂P ⊙ P)).',
               'S = Q Kᵀ/√d: ∂L/∂Q = ∂L/∂S K/√d, ∂L/∂K = ∂L/∂Sᵀ Q/√d; masked entries have P = 0 and'
                ' need nothing more.'),
        cases=(Case(((3, 4), (5, 4), (5, 2), None)),
               Case(((2, 4, 3), (2, 4, 3), (2, 4, 3), None), {"is_causal": True}),
               Case(((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3), None)))),
    Exercise(
        name="linear", title="Linear layer",
        formula="Y = X Wᵀ + b,  X (…, in), W (out, in), b (out,)",
        task="Write Yᵣₒ = Σᵢ Xᵣᵢ Wₒᵢ + bₒ for the rows r of X (every leading axis flattened) "
             "and differentiate with respect to X, W and b.",
        hints=("∂L/∂X = G W (reshaped back to X's shape).",
               "∂L/∂W = Gᵀ X over all the rows; ∂L/∂b is the sum of G over the rows."),
        skeleton=skeletons.Linear, input_names=("x", "weight", "bias"), reference=F.linear,
        hint_for={"shape": 1},
        cases=(Case(((4, 3), (5, 3), (5,))), Case(((2, 3, 4), (2, 4), (2,))),
               Case(((1, 1, 3), (1, 3), (1,))))),
    Exercise(
        name="cross_entropy_smoothing", title="Cross-entropy with label smoothing",
        formula="q = (1 − ε) onehot(t) + ε/C;  loss per row = −Σ_c q_c log softmax(z)_c;  "
                "reduction mean (over rows not ignored), sum or none",
        task="Differentiate one row's −Σ q_c log softmax(z)_c with respect to z (Σ q = 1), "
             "then weight each row by what reaches it: g/n, g, or its own gᵢ.",
        hints=("∂/∂z of −Σ_c q_c log softmax(z)_c is softmax(z) − q, because Σ_c q_c = 1.",
               "An ignored row gets 0; reduction='none' gives each row its own g entry."),
        points=4, skeleton=skeletons.CrossEntropy, input_names=("logits", "target"),
        reference=F.cross_entropy,
        cases=(Case(((4, 5), ids([0, 3, 1, 4])), {"label_smoothing": 0.1}),
               Case(((2, 3, 6), ids([[5, -100, 0], [2, 2, 1]])),
                    {"label_smoothing": 0.2, "reduction": "sum"}),
               Case(((3, 4), ids([1, -100, 3])), {"label_smoothing": 0.3, "reduction": "none"}),
               Case(((1, 2), ids([1])), {"label_smoothing": 1.0}))),
    Exercise(
        name="attention_masked", title="Attention with a causal or padding mask",
        formula="O = softmax(Q Kᵀ/√d + M) V,  M = 0 where attn_mask is True, −∞ where False",
        task="The masked scores are constants −∞: derive where their gradient goes (P = 0 "
             "there) and check that your attention backward already handles it; the mask "
             "itself gets None.",
        hints=("A masked entry has P = 0, so P ⊙ (…) is 0 there: no special case is needed.",
               "The mask broadcasts over batch and heads; it is an input, so return None for "
               "it."),
        points=4, skeleton=skeletons.ScaledDotProductAttention,
        input_names=("q", "k", "v", "attn_mask"), reference=F.scaled_dot_product_attention,
        cases=(Case(((4, 3), (4, 3), (4, 2), np.tril(np.ones((4, 4), dtype=bool)))),
               Case(((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3),
                     np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 0], dtype=bool).reshape(2, 1, 1, 5))),
               Case(((1, 1, 2), (1, 3, 2), (1, 3, 1), np.array([[[True, False, False]]]))))),
]}


def _tracks():
    """The exercises of every track, track by track (the backward exercises are track 2)."""
    from scratchlm.exercises import (
        track_data,
        track_engine,
        track_layers,
        track_modern,
        track_optim,
    )
    tracks = (track_engine, track_layers, track_modern, track_optim, track_data)
    modules = {task.name: track.__name__.rsplit(".", 1)[1] for track in tracks
               for task in track.TASKS}
    everything = list(EXERCISES.values()) + [task for track in tracks for task in track.TASKS]
    return {exercise.name: exercise
            for exercise in sorted(everything, key=lambda exercise: exercise.track)}, modules


#: every exercise by name; the module each task is defined in (the grading child loads it)
EXERCISES, TRACK_MODULES = _tracks()

#: the tracks, by number
TRACKS = {1: "engine", 2: "ops and layers", 3: "modern ops the library does not ship",
          4: "optimization", 5: "data, decoding, evaluation"}
