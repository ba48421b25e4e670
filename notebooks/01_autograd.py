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
# # 1 · Automatic differentiation, from arrays up
#
# Training a language model means following the slope of a loss $L$ downhill: every parameter
# $\theta$ moves by $\theta \leftarrow \theta - \eta\, \partial L/\partial\theta$. scratchlm
# computes those slopes with **reverse-mode automatic differentiation**: every operation
# remembers its inputs, and `backward()` walks the recorded graph from the loss back to the
# parameters applying the chain rule once per operation.
#
# We first write such an engine here, on single numbers, in about forty lines (after
# micrograd): a `Value`, addition, multiplication, tanh, a topological sort and `backward`.
# Then we check it against scratchlm's `Tensor` on the same expression, and take the step to
# arrays: broadcasting, writing an operation, checking it numerically.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)

# %% [markdown]
# ## A scalar engine in forty lines
#
# A `Value` holds a number (`data`), its gradient (`grad` $= \partial L/\partial$ this value,
# 0 until backward), the values it was computed from (`parents`) and a function
# `_backward` that pushes its own gradient into its parents' by the chain rule. For
# $c = a + b$ both local derivatives are 1; for $c = a\,b$ they are $b$ and $a$; for
# $c = \tanh a$ it is $1 - c^2$. Each rule **adds** (`+=`) into a parent's gradient: a value
# used twice receives both contributions.

# %%
class Value:
    def __init__(self, data, parents=(), op=""):
        self.data, self.grad = float(data), 0.0
        self.parents, self.op = parents, op
        self._backward = lambda: None  # a leaf passes nothing on

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # ∂out/∂self = ∂out/∂other = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other), "×")

        def _backward():  # ∂out/∂self = other, ∂out/∂other = self
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # ∂tanh(a)/∂a = 1 − tanh(a)²
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def backward(self):
        self.grad = 1.0  # ∂L/∂L
        for node in reversed(topological_order(self)):
            node._backward()

    def __repr__(self):
        return f"Value({self.data:.4f}, grad={self.grad:.4f})"


def topological_order(root):
    """Every value behind root, each after all the values it was computed from."""
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)

    visit(root)
    return order

# %% [markdown]
# `backward` must call a node's `_backward` only once its gradient is complete, that is after
# every node that used it. A **topological order** lists each value after its parents; its
# reverse lists each value after everything computed from it. On $z = \tanh(wx + b)$:

# %%
w, x, b = Value(0.7), Value(-1.3), Value(0.2)
wx = w * x
u = wx + b
z = u.tanh()
names = {id(w): "w", id(x): "x", id(b): "b", id(wx): "wx", id(u): "u", id(z): "z"}
print("topological order:", [names[id(node)] for node in topological_order(z)])
z.backward()
for name, node in [("w", w), ("x", x), ("b", b), ("wx", wx), ("u", u), ("z", z)]:
    print(f"{name:>2}: {node}")

# %% [markdown]
# Going backward, each operation multiplies the incoming gradient by its own local derivative:
#
# $$\frac{\partial z}{\partial u} = 1 - z^2,\qquad \frac{\partial z}{\partial w} = (1 - z^2)\,x,
# \qquad \frac{\partial z}{\partial x} = (1 - z^2)\,w, \qquad \frac{\partial z}{\partial b} =
# 1 - z^2.$$
#
# The engine's gradients equal those formulas evaluated on plain floats:

# %%
local = 1 - z.data**2  # ∂tanh(u)/∂u at u = w x + b
by_hand = {"w": local * x.data, "x": local * w.data, "b": local, "u": local}
for name, node in [("w", w), ("x", x), ("b", b), ("u", u)]:
    print(f"∂z/∂{name}: Value {node.grad: .6f}   by hand {by_hand[name]: .6f}")
    assert math.isclose(node.grad, by_hand[name], rel_tol=1e-12)

# %% [markdown]
# A value used twice receives the **sum** of the gradients of both uses: for
# $q = a \cdot a + a$, $\partial q/\partial a = 2a + 1$. That is why every `_backward` adds
# with `+=` instead of assigning.

# %%
a = Value(3.0)
q = a * a + a
q.backward()
print("∂q/∂a =", a.grad, "(2a + 1 =", 2 * 3.0 + 1, ")")
assert a.grad == 7.0

# %% [markdown]
# ## The same expression in scratchlm
#
# scratchlm's `Tensor` records the same graph: each result remembers the operation (a
# `Function`) that made it, and `backward()` visits those operations in reverse topological
# order. A tensor created with `requires_grad=True` is a **leaf** (it was not computed from
# anything): the engine keeps its gradient in `.grad`, and only the leaves'.
# `viz.graph_gradients` runs the chain rule over the recorded graph once more and returns
# $\partial z/\partial(\text{node})$ for every node, intermediate ones included. We build
# $\tanh(wx + b)$ from the same numbers and compare every node with our `Value`s.
# (`retain_graph=True` keeps the graph after backward, so that we can draw it; a plain
# `backward()` frees it.)

# %%
ours = {"w": w, "x": x, "b": b, "wx": wx, "u": u, "z": z}  # the Values of the cell above

w, x, b = (sl.tensor(value, requires_grad=True) for value in (0.7, -1.3, 0.2))
wx = w * x
u = wx + b
z = u.tanh()
z.backward(retain_graph=True)
drawn = viz.graph_gradients(z)  # id(tensor) -> ∂z/∂tensor
print("node     value: Value  scratchlm     gradient: Value  scratchlm")
for name, tensor in [("w", w), ("x", x), ("b", b), ("wx", wx), ("u", u), ("z", z)]:
    grad = tensor.grad if tensor.is_leaf else drawn[id(tensor)]  # .grad: leaves only
    print(f"{name:>4}  {ours[name].data: 14.6f} {tensor.item(): 10.6f}"
          f"  {ours[name].grad: 16.6f} {float(grad): 10.6f}")
    assert math.isclose(ours[name].data, tensor.item(), rel_tol=1e-6)  # float32 tensors
    assert math.isclose(ours[name].grad, float(grad), rel_tol=1e-5)

# %% [markdown]
# ### The graph, drawn
#
# `scratchlm.viz.draw_graph` walks the same record the engine walks: boxes are tensors (the
# shaded ones are leaves), ellipses are the operations that made them, and each arrow runs
# from an input into the operation that used it. Each box shows the tensor's value and its
# gradient $\partial z/\partial(\text{node})$, the numbers of the table above.

# %%
nodes, edges = viz.graph_nodes(z)
ops = sorted(node.label for node in nodes if node.kind == "op")
print("ops:", ops, "|", len(nodes), "nodes,", len(edges), "edges")
assert ops == ["Add", "Mul", "Tanh"]  # w·x, then + b, then tanh
viz.draw_graph(z, names={"w": w, "x": x, "b": b, "wx": wx, "u": u, "z": z}, lang=LANG)

# %% [markdown]
# ## The step to arrays
#
# Our `Value` holds one number, so a model with a million parameters would be a million Python
# objects. scratchlm's `Tensor` wraps a whole NumPy array (`.data`), and each operation's
# backward works on whole arrays at once: for $y = \sum_i x_i^2$ one backward gives every
# $\partial y/\partial x_i = 2x_i$.

# %%
x = sl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
y = (x * x).sum()
y.backward()
print("y =", y.item())
print("x.grad =\n", x.grad)
assert np.allclose(x.grad, 2 * x.data)

# %% [markdown]
# As in our `Value`, gradients of leaves **accumulate**, here across `backward()` calls too
# (as in PyTorch), so a training loop clears them between steps (`optimizer.zero_grad()` does
# that).

# %%
y = (x * x).sum()
y.backward()
print("after a second backward:\n", x.grad, "\n= 2 · 2x")
assert np.allclose(x.grad, 4 * x.data)
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
#
# ## Summary
#
# - Reverse-mode differentiation records each operation and its inputs while computing, then
#   visits the operations in reverse topological order, each multiplying the gradient that
#   reaches its output by its local derivative and adding the result into its inputs.
# - Forty lines make a working scalar engine (`Value`); on $	anh(wx + b)$ its gradients equal
#   the hand formulas and scratchlm's to float32 precision.
# - A value used twice, or broadcast over rows, receives the **sum** of its gradients; leaves
#   accumulate across `backward()` calls until cleared.
# - scratchlm does the same on arrays: every op is a `Function` whose `backward` is its derived
#   formula, checked against central differences (`sl.gradcheck_op`, `sl.gradcheck`).
#
# ## Exercises
#
# 1. Extend `Value` with `__pow__` (a number exponent) and `exp`, and check
#    $\partial/\partial x\,(x^3 e^{x})$ against central differences.
# 2. The `topological_order` above is recursive: a chain of 10,000 additions exceeds Python's
#    recursion limit. The graded exercise **`engine_topo`** asks for the order without
#    recursion; **`engine_unbroadcast`** for the sum over broadcast axes shown above
#    (`python -m scratchlm.exercises show engine_topo`). Both are week 1 of
#    [COURSE.md](COURSE.md).
# 3. Draw the graph of $q = a \cdot a + a$ with `viz.draw_graph` after
#    `q.backward(retain_graph=True)`: which node receives two arrows, and what gradient does it
#    show?
