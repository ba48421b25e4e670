# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3 · Gradient-check exercises: the workflow
#
# Every op in scratchlm is a `Function` whose `backward` someone derived by hand (notebook 1
# wrote one, `Cube`, and checked it). In the coursework you do the deriving, and more: forty
# exercises in five tracks, from the engine
# itself (a topological order, the backward pass) through ops and layers, modern ops the
# library does not ship, optimizers, to data, decoding and evaluation. This notebook shows the
# workflow on the ops of track 2 and leaves the answers to you.
#
# Each op exercise gives a forward formula and a skeleton — the library's own `Function` for
# that op with its `backward` taken away (`skeletons.Softmax` is
# `scratchlm.functional.softmax.Softmax` without a backward) — and asks for the `backward`.
# The grader then checks your gradients two ways, over several input shapes (size-1 axes,
# broadcast batch axes, repeated ids, ignored targets, a causal mask):
#
# 1. against **central differences** in float64, with a random cotangent $c$:
#    $\nabla_x \langle f(x), c\rangle \approx$
#    $\big(\langle f(x + \varepsilon e_j), c\rangle$
#    $- \langle f(x - \varepsilon e_j), c\rangle\big) / 2\varepsilon$
#    (`sl.gradcheck_op`, or `sl.gradcheck` when integer ids or targets, or an input left out,
#    are among the inputs);
# 2. against the library's own op, to float64 precision.
#
# It also checks the rules every backward follows: one gradient per input (`None` for
# integer inputs), shaped like the input (or like the broadcast shape — the engine sums it
# back), and the incoming gradient `g` never modified in place.
#
# The exercises by track, with their points:

# %%
import tempfile
from pathlib import Path

import numpy as np

from scratchlm.exercises import EXERCISES, grade, skeletons
from scratchlm.exercises.__main__ import hints, listing, main, statement

print(listing())
print(f"{len(EXERCISES)} exercises, {sum(e.points for e in EXERCISES.values())} points")

# %% [markdown]
# ## Reading an exercise
#
# `python -m scratchlm.exercises show softmax > my_softmax.py` writes this to a file: the
# formula, what to derive, and the class to complete. Its docstring holds the library's
# forward, read from the reference class, and what that forward saves on `self` for backward.

# %%
print(statement("softmax"))

# %% [markdown]
# The skeleton fails until its backward is written — the grader says so for every case:

# %%
print(grade("softmax", skeletons.Softmax))


# %% [markdown]
# ## A tempting first attempt
#
# For $y = \operatorname{softmax}(x)$ it is tempting to treat each output as depending on its own
# input only, $\partial y_i/\partial x_i = y_i(1 - y_i)$, as for the sigmoid. Subclassing the
# skeleton keeps its `forward` (the library's):

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return g * self.y * (1 - self.y)  # only the diagonal of the Jacobian


report = grade("softmax", Softmax)
print(report)
assert not report.passed


# %% [markdown]
# Read the report: every case fails at the comparison with central differences, so the
# structure is right (one gradient, the right shape) and the formula is not. The entries side
# by side are off everywhere, not at a few positions: a term is missing from every entry.
# That term is the off-diagonal of the Jacobian — every $y_j$ depends on every $x_i$ through
# the normalising sum $\sum_k e^{x_k}$. Derive $\partial y_j/\partial x_i$ for $i \ne j$ as well,
# then contract the whole Jacobian with $g$ along the softmax axis without ever building it
# (an $n \times n$ matrix per row would not scale).
#
# **Your turn.** Write the backward below and run the cell until the report says PASSED. It
# runs as it is (the grader reports "not written yet").

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        # ∂L/∂x from g and what forward saved (self.y, self.axis); keepdims=True helps
        raise NotImplementedError("your softmax backward")


print(grade("softmax", Softmax))


# %% [markdown]
# ## A subtler mistake: repeated ids
#
# An embedding lookup $y = W[\text{ids}]$ copies rows. Writing the gradient rows back with
# `grad[ids] += g` looks right, and passes when every id is distinct — but NumPy's buffered
# fancy-index assignment keeps only one row per repeated id, while the true gradient is the
# **sum** over every position that used that row. The grader's second and third cases repeat
# ids:

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g
        return None, grad


report = grade("embedding", Embedding)
print(report)
assert not report.passed


# %% [markdown]
# **Your turn.** Accumulate every row of `g` into the row of `W` it came from, repeated ids
# included (an unbuffered add: see the imports `show embedding` prints).

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        # (None, ∂L/∂weight) from g, self.ids and self.weight_shape
        raise NotImplementedError("your embedding backward")


print(grade("embedding", Embedding))

# %% [markdown]
# ## Calling the library does not count
#
# The answer key is the library itself: each skeleton's parent
# (`scratchlm.functional.softmax.Softmax` for softmax), with the derivation in its docstring.
# Try each exercise before reading it. Calling the library's backward from yours does not
# count — while your class is graded, the library's backward of that op (and of its fast
# versions) refuses to run:

# %%
from scratchlm.functional.softmax import Softmax as LibrarySoftmax


class Softmax(skeletons.Softmax):
    def backward(self, g):
        return LibrarySoftmax.backward(self, g)


report = grade("softmax", Softmax)
print(report.cases[0].failure)
assert not report.passed and "delegates to the library's implementation" in str(report)

# %% [markdown]
# ## Grading from the command line, and hints one at a time
#
# Most exercises are files: `show NAME > FILE` writes one, you complete it, and `grade NAME
# FILE` grades it in a separate process with a time and a memory limit (a file that loops,
# exits or patches NumPy fails with the reason). The exit status is 0 only when every case
# passes, so a course can run it in its own checks:
#
# ```
# python -m scratchlm.exercises                        # the list above
# python -m scratchlm.exercises show layer_norm > my_layer_norm.py
# # ... write LayerNorm.backward in my_layer_norm.py ...
# python -m scratchlm.exercises grade layer_norm my_layer_norm.py
# python -m scratchlm.exercises show layer_norm --hint 1   # hints 1 to K, whenever you like
# ```
#
# A failed `grade` shows one hint: the one for that kind of failure where the exercise has one
# (a shape mismatch, recursion too deep), else the next one still locked — one more with each
# failed attempt, the progress kept in `.scratchlm_hints.json` beside your file. A tempting
# tanh that forgets a square, graded twice:

# %%
folder = Path(tempfile.mkdtemp())
attempt = folder / "my_tanh.py"
attempt.write_text("""\
from scratchlm.exercises import skeletons


class Tanh(skeletons.Tanh):
    def backward(self, g):
        return g * (1 - self.y)  # tempting, and wrong
""", encoding="utf-8")
for _ in range(2):
    status = main(["grade", "tanh", str(attempt)])
    print(f"exit status {status}\n")
print((folder / ".scratchlm_hints.json").read_text(encoding="utf-8"))

# %% [markdown]
# `show NAME --hint K` prints the first K hints at any time; in Python, `hints(name, K)` does:

# %%
print(hints("layer_norm", 1))

# %% [markdown]
# Your teacher hands out `python -m scratchlm.exercises release OUT_DIR`: every statement, the
# student notebooks, and `OUT_DIR/expected/`, the results the hidden references give on the
# grader's inputs. That copy holds no solution, and grades every exercise against those stored
# results (`grade` finds them above your file, or takes `--expected DIR`); the grade that
# counts is the teacher's `grade-all`.
#
# The exercises of this track besides softmax and embedding, and what each asks:

# %%
for name, exercise in EXERCISES.items():
    if exercise.track == 2 and name not in ("softmax", "embedding"):
        print(f"{name:24s} {exercise.points} pt  {exercise.task}")

# %% [markdown]
# ## Summary
#
# - An op exercise gives a forward formula and a skeleton (the library's `Function` without its
#   backward); the grader checks your backward against central differences and against the
#   library, over several shapes, and checks the rules every backward follows.
# - A report that fails on every entry points to a missing term (softmax's off-diagonal); one
#   that fails only where ids repeat points to an accumulation (`grad[ids] += g` keeps one row
#   per repeated id).
# - Delegating to the library's backward is refused; `grade NAME FILE` grades a file in a
#   separate process, and each failed attempt unlocks one more hint.
#
# ## Exercises
#
# 1. Finish the two "your turn" cells above until their reports say PASSED.
# 2. Week 3 of [COURSE.md](COURSE.md): **`mul`**, **`tanh`**, **`sigmoid`**, **`gelu_tanh`**,
#    **`matmul`** and **`linear`**; week 4: **`softmax`**, **`log_softmax`**,
#    **`cross_entropy`**, **`cross_entropy_smoothing`** and **`layer_norm`**; **`embedding`**
#    comes in week 5. Start each with `python -m scratchlm.exercises show NAME > my_NAME.py`.
# 3. Before writing `layer_norm`'s backward, predict which cases a backward that forgets the
#    mean's dependence on $x$ fails; then write that wrong version and read its report.
