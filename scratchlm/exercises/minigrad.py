"""The scaffold of the engine track: array values that remember how they were made.

You build the rest of a reverse-mode autodiff engine on it, one exercise at a time
(``python -m scratchlm.exercises show engine_topo`` and on): the order to visit the graph
in, the backward pass, undoing broadcasting, ``no_grad``, and a training loop.

A :class:`Value` holds ``data`` (a float64 array), ``grad`` (None until backward reaches it),
``parents`` (the Values it was computed from) and, for each parent, ``local_grads[i]``: a
function that turns ∂L/∂self into that parent's share of ∂L/∂parent — **in the broadcast
shape**: for ``c = a + b`` with ``a`` (3, 4) and ``b`` (4,), ``b``'s share is (3, 4), and the
backward pass must sum it back to (4,). While ``Value.recording`` is False (what ``no_grad``
is for), a new Value records no parents.
"""

import numpy as np


class Value:
    #: whether new Values record their parents (``no_grad`` turns it off)
    recording = True

    def __init__(self, data, parents=(), local_grads=(), name=""):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = None
        self.name = name
        if Value.recording:
            self.parents, self.local_grads = tuple(parents), tuple(local_grads)
        else:
            self.parents, self.local_grads = (), ()

    def __repr__(self):
        return f"Value({self.name or 'unnamed'}, shape={self.data.shape})"

    @property
    def shape(self):
        return self.data.shape

    # ------------------------------------------------------------------ the ops
    def __add__(self, other):
        other = as_value(other)
        return Value(self.data + other.data, (self, other), (lambda g: g, lambda g: g))

    __radd__ = __add__

    def __sub__(self, other):
        other = as_value(other)
        return Value(self.data - other.data, (self, other), (lambda g: g, lambda g: -g))

    def __rsub__(self, other):
        return as_value(other) - self

    def __neg__(self):
        return Value(-self.data, (self,), (lambda g: -g,))

    def __mul__(self, other):
        other = as_value(other)
        a, b = self.data, other.data
        return Value(a * b, (self, other), (lambda g: g * b, lambda g: g * a))

    __rmul__ = __mul__

    def __matmul__(self, other):
        """2-D matrix product only."""
        a, b = self.data, other.data
        return Value(a @ b, (self, other), (lambda g: g @ b.T, lambda g: a.T @ g))

    def tanh(self):
        y = np.tanh(self.data)
        return Value(y, (self,), (lambda g: g * (1 - y * y),))

    def relu(self):
        positive = self.data > 0
        return Value(self.data * positive, (self,), (lambda g: g * positive,))

    def exp(self):
        y = np.exp(self.data)
        return Value(y, (self,), (lambda g: g * y,))

    def log(self):
        x = self.data
        return Value(np.log(x), (self,), (lambda g: g / x,))

    def sum(self):
        """The sum of every entry (a 0-d Value)."""
        shape = self.data.shape
        return Value(self.data.sum(), (self,), (lambda g: np.broadcast_to(g, shape),))

    def mean(self):
        return self.sum() * (1.0 / self.data.size)


def as_value(x):
    return x if isinstance(x, Value) else Value(x)


def init_mlp(n_in, n_hidden, n_out, seed=0):
    """A two-layer perceptron's parameters [W1 (n_in, n_hidden), b1 (n_hidden,),
    W2 (n_hidden, n_out), b2 (n_out,)], drawn the same way every time for ``seed``."""
    rng = np.random.default_rng(seed)
    return [Value(rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in), name="W1"),
            Value(np.zeros(n_hidden), name="b1"),
            Value(rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden), name="W2"),
            Value(np.zeros(n_out), name="b2")]


def mlp(params, x):
    """tanh(x W1 + b1) W2 + b2 for x (N, n_in), a Value or an array."""
    W1, b1, W2, b2 = params
    return (as_value(x) @ W1 + b1).tanh() @ W2 + b2
