"""Track 3: modern ops the library does not ship (RMSNorm, SwiGLU, rotary embeddings,
grouped-query attention, ALiBi). The student writes forward and backward; the forward is
graded against the hidden reference, the backward against central differences."""

import numpy as np

from scratchlm.exercises.tasks import Task, TaskCase, op_stub


def normals(*shapes):
    return lambda rng: tuple(rng.standard_normal(shape) for shape in shapes)


def _label(names, shapes):
    return ", ".join(f"{n} {s}" for n, s in zip(names, shapes))


def _cases(names, shape_sets, configs=None):
    configs = configs or [{}] * len(shape_sets)
    return tuple(TaskCase(_label(names, shapes) + "".join(f", {k}={v!r}" for k, v in c.items()),
                          normals(*shapes), c)
                 for shapes, c in zip(shape_sets, configs))


TASKS = [
    Task(
        name="rmsnorm", title="RMSNorm (LLaMA's normalization)", track=3, points=4,
        formula="y = x ⊙ r ⊙ w,  r = 1/√(mean(x²) + ε) over the last axis",
        task="Write forward and backward. Derive ∂r/∂xᵢ within a row (r depends on every "
             "entry of it); w is shared by all rows.",
        hints=("With n = x ⊙ r and dn = g ⊙ w: ∂L/∂w = Σ over rows of g ⊙ n.",
               "∂r/∂xᵢ = −r³ xᵢ / D, D the row length.",
               "∂L/∂x = r (dn − n · mean(dn ⊙ n)), the mean over the last axis."),
        entry="RMSNorm", kind="op", input_names=("x", "weight"),
        stub=op_stub("RMSNorm", "eps=1e-6", ("x", "weight"),
                     "y = x / sqrt(mean(x², last axis) + eps) * weight"),
        solution="modern:RMSNorm",
        cases=_cases(("x", "weight"), [((4, 6), (6,)), ((2, 3, 5), (5,)), ((3, 1), (1,)),
                                       ((1, 8), (8,))],
                     [{}, {}, {"eps": 1e-2}, {}])),
    Task(
        name="swiglu", title="SwiGLU gate", track=3, points=3,
        formula="y = silu(a) ⊙ b = a σ(a) ⊙ b",
        task="Write forward and backward of the gated unit (a: the gate projection, b: the "
             "up projection; a broadcast b is summed back by the grader).",
        hints=("∂y/∂b = a σ(a).", "d(a σ(a))/da = σ(a) + a σ(a)(1 − σ(a))."),
        entry="SwiGLU", kind="op", input_names=("a", "b"),
        stub=op_stub("SwiGLU", "", ("a", "b"), "y = a * sigmoid(a) * b"),
        solution="modern:SwiGLU",
        cases=_cases(("a", "b"), [((3, 4), (3, 4)), ((2, 3, 5), (2, 3, 5)), ((2, 4), (4,)),
                                  ((1,), (1,))])),
    Task(
        name="rope", title="Rotary position embeddings", track=3, points=5,
        formula="for x (…, T, D), D even, positions t = 0…T−1 along axis −2, i = 0…D/2−1, "
                "θᵢ = base^(−2i/D), aₜᵢ = (t + offset)θᵢ:  y[…, t, i] = x[…, t, i] cos aₜᵢ − "
                "x[…, t, D/2+i] sin aₜᵢ  and  y[…, t, D/2+i] = x[…, t, i] sin aₜᵢ + "
                "x[…, t, D/2+i] cos aₜᵢ (the half-split form; an odd D is not graded)",
        task="Write forward and backward. Each pair (x₁ᵢ, x₂ᵢ) at position t is rotated by "
             "an angle: what is the transpose of a rotation?",
        hints=("The rotation by angle a is the matrix [[cos a, −sin a], [sin a, cos a]].",
               "Its transpose is the rotation by −a: ∂L/∂x₁ = g₁ cos + g₂ sin, "
               "∂L/∂x₂ = −g₁ sin + g₂ cos.",
               "Positions run along axis −2 starting at offset; broadcast (T, D/2) angles over "
               "the leading axes."),
        entry="Rotary", kind="op", input_names=("x",),
        stub=op_stub("Rotary", "base=10000.0, offset=0", ("x",),
                     "Rotate the half-split pairs of x (…, T, D) by (t + offset)·base^(−2i/D)"),
        solution="modern:Rotary",
        cases=_cases(("x",), [((5, 4),), ((2, 2, 3, 8),), ((1, 1, 2),), ((3, 6),)],
                     [{}, {"base": 100.0}, {}, {"offset": 7}])),
    Task(
        name="gqa", title="Grouped-query attention", track=3, points=5,
        formula="q (…, Hq, T, d), k (…, Hkv, S, d), v (…, Hkv, S, dᵥ) (dᵥ may differ from d), "
                "Hq = G·Hkv: query head h uses key/value head h // G;  O = softmax(Q Kᵀ/√d) V "
                "per head, O (…, Hq, T, dᵥ); is_causal: query i sees keys j ≤ i, aligned at "
                "the top left (as PyTorch), also when T ≠ S",
        task="Write forward and backward. Each key/value head serves G query heads: what does "
             "that make its gradient?",
        hints=("np.repeat(k, G, axis=-3) makes the key head of every query head.",
               "Backward through the repeat: add up the G copies' gradients "
               "(reshape (…, Hkv, G, S, d) and sum over the G axis).",
               "The rest is attention's backward: ∂L/∂S = P ⊙ (∂L/∂P − rowsum(∂L/∂P ⊙ P))."),
        entry="GroupedQueryAttention", kind="op", input_names=("q", "k", "v"),
        stub=op_stub("GroupedQueryAttention", "is_causal=False", ("q", "k", "v"),
                     "Attention where each key/value head serves Hq/Hkv query heads"),
        solution="modern:GroupedQueryAttention",
        cases=_cases(("q", "k", "v"),
                     [((4, 3, 2), (2, 5, 2), (2, 5, 3)),
                      ((2, 4, 3, 4), (2, 1, 3, 4), (2, 1, 3, 2)),
                      ((2, 2, 4), (2, 4, 4), (2, 4, 1)),
                      ((6, 1, 2), (3, 2, 2), (3, 2, 2))],
                     [{}, {"is_causal": True}, {"is_causal": True}, {}])),
    Task(
        name="alibi", title="ALiBi attention (linear biases, causal)", track=3, points=4,
        formula="S = Q Kᵀ/√d + mₕ (j − i),  mₕ = 2^(−8(h+1)/H) for head h of H (axis −3), "
                "masked to j ≤ i;  O = softmax(S) V",
        task="Write forward and backward. The bias is a constant: where does it leave the "
             "gradient?",
        hints=("The bias does not depend on Q, K or V: backward is causal attention's.",
               "Build the (T, S) distance j − i with broadcasting: arange(S)[None] − "
               "arange(T)[:, None]; slopes[:, None, None] gives each head its mₕ."),
        entry="ALiBiAttention", kind="op", input_names=("q", "k", "v"),
        stub=op_stub("ALiBiAttention", "", ("q", "k", "v"),
                     "Causal attention with ALiBi's per-head linear distance bias"),
        solution="modern:ALiBiAttention",
        cases=_cases(("q", "k", "v"),
                     [((2, 4, 3), (2, 4, 3), (2, 4, 2)),
                      ((2, 4, 3, 2), (2, 4, 3, 2), (2, 4, 3, 2)),
                      ((1, 1, 2), (1, 1, 2), (1, 1, 1))])),
]

assert all(isinstance(task.cases[0].make(np.random.default_rng(0)), tuple) for task in TASKS)
