"""Track 2 beyond one library op's backward: dropout with its mask given, the multi-head
split and merge, and a whole pre-LN Transformer block's backward ("backprop ninja")."""

import numpy as np

from scratchlm.exercises.tasks import OP_IMPORTS, Task, TaskCase, op_stub


def _dropout_case(shape, p, rng_keep=True):
    def make(rng):
        keep = rng.random(shape) >= p if rng_keep else np.zeros(shape, dtype=bool)
        return rng.standard_normal(shape), keep
    return TaskCase(f"x {shape}, p={p}", make, {"p": p})


BLOCK_SHAPES = ("x", "ln1_w", "ln1_b", "w_qkv", "b_qkv", "w_o", "b_o", "ln2_w", "ln2_b", "w_1",
                "b_1", "w_2", "b_2")


def _block_inputs(B, T, C):
    shapes = [(B, T, C), (C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,),
              (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return lambda rng: tuple(rng.standard_normal(s) * (0.5 if len(s) == 2 else 1.0)
                             for s in shapes)


BLOCK_STUB = f"""{OP_IMPORTS}from scratchlm.exercises.blocks import PreLNBlockForward


class PreLNBlock(PreLNBlockForward):
    \"\"\"The block's forward is PreLNBlockForward's (read it: scratchlm/exercises/blocks.py);
    write its backward: one gradient per input of forward, in order.\"\"\"

    def backward(self, g):
        h1, q, k, v, p, att, h2, m = self.saved
        raise NotImplementedError("return the 13 gradients, from ∂L/∂x to ∂L/∂b_2")
"""

TASKS = [
    Task(
        name="dropout", title="Inverted dropout, mask given", track=2, points=2,
        formula="y = x ⊙ keep / (1 − p);  p = 1 drops everything: y = 0",
        task="Write forward and backward; keep (a boolean array) is an input, so return None "
             "for its gradient.",
        hints=("∂y/∂x = keep/(1 − p) entrywise: the same mask scales the gradient.",
               "p = 1 must give zeros, not a division by zero."),
        entry="MaskedDropout", kind="op", input_names=("x", "keep"),
        stub=op_stub("MaskedDropout", "p", ("x", "keep"),
                     "y = x * keep / (1 - p), zeros when p = 1"),
        solution="layers:MaskedDropout",
        library=("scratchlm.functional.dropout.Dropout.backward",),
        cases=(_dropout_case((3, 4), 0.5), _dropout_case((1, 5), 0.1),
               _dropout_case((2, 3), 1.0, rng_keep=False), _dropout_case((4,), 0.0))),
    Task(
        name="split_heads", title="Multi-head split (and its backward: the merge)", track=2,
        points=2,
        formula="(…, T, C) → (…, H, T, C/H): reshape to (…, T, H, C/H), swap axes −2 and −3",
        task="Write forward (the split) and backward, which must undo it exactly.",
        hints=("Only moves entries: the gradient moves them back.",
               "Backward: swap axes −2 and −3 again, then reshape to the input's shape."),
        entry="SplitHeads", kind="op", input_names=("x",),
        stub=op_stub("SplitHeads", "n_head", ("x",), "(…, T, C) -> (…, n_head, T, C/n_head)"),
        hint_for={"shape": 2},
        solution="layers:SplitHeads",
        cases=(TaskCase("x (2, 3, 8), 2 heads", lambda rng: (rng.standard_normal((2, 3, 8)),),
                        {"n_head": 2}),
               TaskCase("x (1, 1, 4), 4 heads", lambda rng: (rng.standard_normal((1, 1, 4)),),
                        {"n_head": 4}),
               TaskCase("x (5, 6), 1 head", lambda rng: (rng.standard_normal((5, 6)),),
                        {"n_head": 1}))),
    Task(
        name="transformer_block", title="Backprop ninja: a whole pre-LN block by hand",
        track=2, points=8,
        formula="h1 = LN₁(x); qkv = h1 W_qkv + b_qkv; P = softmax(q kᵀ/√D, causal); "
                "x2 = x + merge(P v) W_o + b_o; h2 = LN₂(x2); y = x2 + gelu(h2 W_1 + b_1) W_2 "
                "+ b_2",
        task="The forward is given (scratchlm/exercises/blocks.py). Write backward, layer by "
             "layer from the top, returning all 13 gradients; every one is checked against "
             "central differences.",
        hints=("Go backward in the order of forward reversed; a residual x2 + f(x2) sends g "
               "both ways and adds.",
               "For h @ W + b over rows: ∂W = hᵀ g over all rows, ∂b = Σ g, ∂h = g Wᵀ.",
               "Attention per head: ∂v = Pᵀ ∂o, ∂P = ∂o vᵀ, ∂S = P ⊙ (∂P − rowsum(∂P ⊙ P)), "
               "then the 1/√D and ∂q = ∂S k, ∂k = ∂Sᵀ q; merge the heads back and concatenate "
               "∂q, ∂k, ∂v along the last axis.",
               "LayerNorm: with dn = g ⊙ w, ∂x = rstd (dn − mean(dn) − n mean(dn ⊙ n))."),
        entry="PreLNBlock", kind="op", input_names=BLOCK_SHAPES, stub=BLOCK_STUB,
        solution="layers:PreLNBlock",
        cases=(TaskCase("B=2, T=3, C=4, 2 heads", _block_inputs(2, 3, 4), {"n_head": 2}),
               TaskCase("B=1, T=1, C=2, 1 head", _block_inputs(1, 1, 2), {"n_head": 1}),
               TaskCase("B=1, T=4, C=6, 3 heads", _block_inputs(1, 4, 6), {"n_head": 3}))),
]
