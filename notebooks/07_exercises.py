# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 7 · Gradient-check exercises
#
# Every op in scratchlm is a `Function` whose `backward` someone derived by hand. In these
# exercises you do the deriving: each one gives an op's forward formula and a skeleton — the
# library's own `Function` for that op with its `backward` taken away (`skeletons.Softmax` is
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

# %%
import numpy as np

from scratchlm.exercises import EXERCISES, grade, skeletons
from scratchlm.exercises.__main__ import listing, statement

print(listing())

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
# ## A first attempt
#
# For $y = \operatorname{softmax}(x)$ it is tempting to treat each output as depending on its own
# input only, $\partial y_i/\partial x_i = y_i(1 - y_i)$, as for the sigmoid. Subclassing the
# skeleton
# keeps its `forward` (the library's):

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return g * self.y * (1 - self.y)  # only the diagonal of the Jacobian


report = grade("softmax", Softmax)
print(report)
assert not report.passed


# %% [markdown]
# The report names the failing input shape, how many gradient entries are off, and the worst
# ones next to the numerical values. The missing piece is the off-diagonal of the Jacobian:
# every $y_j$ depends on every $x_i$ through the normalising sum,
#
# $$\frac{\partial y_j}{\partial x_i} = y_j(\delta_{ij} - y_i) \quad\Rightarrow\quad \frac{\partial
# L}{\partial x_i} = \sum_j g_j\, y_j (\delta_{ij} - y_i) = y_i\Big(g_i - \sum_j g_j y_j\Big).$$
#
# The sum runs along the softmax axis, and no $n \times n$ Jacobian is ever built:

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))


report = grade("softmax", Softmax)
print(report)
assert report.passed


# %% [markdown]
# ## A subtler mistake: repeated ids
#
# An embedding lookup $y = W[\text{ids}]$ copies rows. Writing the gradient rows back with
# `grad[ids] += g` looks right, and passes when every id is distinct — but NumPy's buffered
# fancy-index assignment keeps only one row per repeated id, while the true gradient is the
# **sum** over every position that used that row. The grader's second case repeats ids:

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g
        return None, grad


print(grade("embedding", Embedding))


# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape, dtype=g.dtype)
        np.add.at(grad, self.ids.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        return None, grad


report = grade("embedding", Embedding)
print(report)
assert report.passed

# %% [markdown]
# ## Grading from the command line
#
# Students can also work in files and grade them; the exit status is 0 only when every case
# passes, so a course can run it in its own checks:
#
# ```
# python -m scratchlm.exercises                        # the list above
# python -m scratchlm.exercises show layer_norm > my_layer_norm.py
# # ... write LayerNorm.backward in my_layer_norm.py ...
# python -m scratchlm.exercises grade layer_norm my_layer_norm.py
# ```
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
assert grade("softmax", LibrarySoftmax).passed  # the answer key passes

# %% [markdown]
# The remaining exercises:

# %%
for name, exercise in EXERCISES.items():
    if name not in ("softmax", "embedding"):
        print(f"{name:14s} {exercise.task}")
