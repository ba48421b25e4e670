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
# # 1 · Automatic differentiation, from arrays up
#
# Training a language model means following the slope of a loss $L$ downhill: every parameter
# $\theta$ moves by $\theta \leftarrow \theta - \eta\, \partial L/\partial\theta$. scratchlm
# computes those
# slopes with **reverse-mode automatic differentiation**: every operation remembers its inputs,
# and `backward()` walks the recorded graph from the loss back to the parameters applying the
# chain rule once per operation.
#
# This notebook builds that picture step by step: tensors, the graph, `backward`, what
# broadcasting does to gradients, writing your own operation, and checking it numerically.

# %%
import numpy as np

import scratchlm as sl

rng = np.random.default_rng(0)

# %% [markdown]
# ## Tensors and `backward`
#
# A `Tensor` wraps a NumPy array (`.data`). With `requires_grad=True` it is a *leaf* whose
# gradient we want. For $y = \sum_i x_i^2$ the gradient is $\partial y/\partial x_i = 2x_i$:

# %%
x = sl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
y = (x * x).sum()
y.backward()
print("y =", y.item())
print("x.grad =\n", x.grad)
assert np.allclose(x.grad, 2 * x.data)

# %% [markdown]
# ## The chain rule through a graph
#
# $z = \tanh(w x + b)$ is three recorded operations: a product, a sum and a tanh. Going
# backward, each one multiplies the incoming gradient by its own local derivative:
#
# $$\frac{\partial z}{\partial w} = (1 - z^2)\,x, \qquad \frac{\partial z}{\partial x} = (1 -
# z^2)\,w, \qquad \frac{\partial z}{\partial b} = 1 - z^2.$$
#
# Let us compare the engine with those formulas, evaluated by hand on plain floats.

# %%
w = sl.tensor(0.7, requires_grad=True)
x = sl.tensor(-1.3, requires_grad=True)
b = sl.tensor(0.2, requires_grad=True)
z = (w * x + b).tanh()
z.backward()

local = 1 - z.item() ** 2  # d tanh(u)/du at u = w x + b
by_hand = {"w": local * x.item(), "x": local * w.item(), "b": local}
for name, leaf in [("w", w), ("x", x), ("b", b)]:
    print(f"∂z/∂{name}: engine {leaf.grad.item(): .6f}   by hand {by_hand[name]: .6f}")
    assert np.isclose(leaf.grad.item(), by_hand[name], rtol=1e-5)

# %% [markdown]
# ### The graph, drawn
#
# `scratchlm.viz.draw_graph` walks the same record the engine walks: boxes are tensors (the
# shaded ones are leaves, the parameters), ellipses are the ops that made them. Draw a graph
# before calling `backward()`: the backward pass frees the arrays each op kept, and with
# them the record.

# %%
from scratchlm import viz

w, x, b = (sl.tensor(value, requires_grad=True) for value in (0.7, -1.3, 0.2))
z = (w * x + b).tanh()
nodes, edges = viz.graph_nodes(z)
ops = sorted(node.label for node in nodes if node.kind == "op")
print("ops:", ops, "|", len(nodes), "nodes,", len(edges), "edges")
assert ops == ["Add", "Mul", "Tanh"]  # w·x, then + b, then tanh
viz.draw_graph(z, names={"w": w, "x": x, "b": b}, engine="matplotlib")

# %% [markdown]
# Each intermediate tensor remembers the operation that made it; the engine orders those
# operations so that every one runs after all the operations that consumed its output.
# A tensor used twice receives the **sum** of the gradients of both uses: for
# $q = x \cdot x + x$, $\partial q/\partial x = 2x + 1$.

# %%
x = sl.tensor(3.0, requires_grad=True)
q = x * x + x
q.backward()
print("∂q/∂x =", x.grad, "(2x + 1 =", 2 * 3.0 + 1, ")")
assert x.grad == 7.0

# %% [markdown]
# Gradients of leaves **accumulate** across `backward()` calls, as in PyTorch, so a training
# loop clears them between steps (`optimizer.zero_grad()` does that).

# %%
q = x * x + x
q.backward()
print("after a second backward:", x.grad, "= 7 + 7")
assert x.grad == 14.0
x.grad = None  # clear it

# %% [markdown]
# ## Broadcasting sums gradients
#
# Adding a bias $b \in \mathbb{R}^{C}$ to every row of $X \in \mathbb{R}^{N \times C}$ uses
# each $b_c$ once per row, so its gradient is the sum over the rows:
# $\partial L/\partial b_c = \sum_n \partial L/\partial Y_{nc}$. The engine does this sum
# for every broadcast input. Here we feed a random upstream gradient $G = \partial L/\partial Y$
# to `backward` directly.

# %%
X = sl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
bias = sl.tensor(rng.standard_normal(3), requires_grad=True)
Y = X + bias
G = rng.standard_normal(Y.shape)
Y.backward(G)
print("bias.grad       =", bias.grad)
print("G summed over n =", G.sum(axis=0))
assert np.allclose(bias.grad, G.sum(axis=0))
assert np.allclose(X.grad, G)


# %% [markdown]
# ## Writing an operation: a `Function`
#
# Every operation in scratchlm is a `Function` with two methods on raw arrays:
# `forward(self, *arrays)` computes the output and saves on `self` what the gradient needs;
# `backward(self, g)` receives $g = \partial L/\partial y$ and returns
# $\partial L/\partial x$ for each input. For $y = x^3$: $\partial L/\partial x = 3x^2 \cdot g$.

# %%
class Cube(sl.Function):
    """y = x³;  ∂L/∂x = 3x² · g."""

    def forward(self, x):
        self.x = x
        return x**3

    def backward(self, g):
        return 3 * self.x**2 * g


x = sl.tensor([1.0, -2.0, 0.5], requires_grad=True)
Cube()(x).sum().backward()
print("x.grad =", x.grad, " 3x² =", 3 * x.data**2)
assert np.allclose(x.grad, 3 * x.data**2)

# %% [markdown]
# ## Checking a gradient numerically
#
# How do we know a hand-written `backward` is right? Compare it with **central differences**:
#
# $$\frac{\partial \varphi}{\partial x_j} \approx \frac{\varphi(x + \varepsilon e_j) - \varphi(x -
# \varepsilon e_j)}{2\varepsilon}, \qquad \text{error } O(\varepsilon^2).$$
#
# For an op with many outputs we check the scalar $\varphi(x) = \langle f(x), c\rangle$ for a
# *random* cotangent $c$: its gradient is exactly what `backward` returns when handed $g = c$.
# (Summing the outputs instead, $c = 1$, can let two wrong entries cancel.) In float64, with
# $\varepsilon = 10^{-6}$, the two agree to about $10^{-9}$. Here is the check written out on
# arrays:

# %%
x0 = rng.standard_normal(5)
c = rng.standard_normal(5)
eps = 1e-6


def phi(values):
    return float((values**3 * c).sum())


numerical = np.array([(phi(x0 + eps * e) - phi(x0 - eps * e)) / (2 * eps) for e in np.eye(5)])
op = Cube()
op.forward(x0)
analytic = op.backward(c)
print("analytic ", analytic)
print("numerical", numerical)
print("worst difference", np.abs(analytic - numerical).max())
assert np.allclose(analytic, numerical, atol=1e-8)

# %% [markdown]
# The library does exactly this for every input entry. `sl.gradcheck_op` checks one
# Function's `backward` on its own; `sl.gradcheck` checks a whole computation through the
# engine. Both need float64 inputs (float32 rounding would swamp the difference) and return
# `True` or raise `sl.GradcheckError`.

# %%
print(sl.gradcheck_op(Cube, [rng.standard_normal((3, 4))]))
print(sl.gradcheck(lambda a, b: (Cube()(a) * b).tanh(),
                   [sl.tensor(rng.standard_normal((3, 4)), requires_grad=True),
                    sl.tensor(rng.standard_normal(4), requires_grad=True)]))


# %% [markdown]
# ## A planted bug, caught
#
# A classic slip: forgetting part of the derivative. This `backward` returns $3x \cdot g$
# instead of $3x^2 \cdot g$. The check names the input, its shape, how many entries are
# wrong and the worst ones side by side.

# %%
class BuggyCube(Cube):
    def backward(self, g):
        return 3 * self.x * g  # should be 3 * x**2 * g


try:
    sl.gradcheck_op(BuggyCube, [rng.standard_normal((2, 3))])
except sl.GradcheckError as error:
    print(error)
else:
    raise AssertionError("the bug was not caught")

# %% [markdown]
# Every op in `scratchlm.functional` (softmax, layer norm, cross-entropy, attention, …) is a
# `Function` like `Cube`, with its derivation in its docstring and a float64 gradient check in
# the test suite. Notebook 3 turns that into exercises: you write the `backward`, the grader
# checks it.
