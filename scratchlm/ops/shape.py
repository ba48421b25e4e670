"""Ops that only move elements around: reshape, transpose and indexing."""

import numpy as np

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module, scatter_add
from scratchlm.checks import bad_argument
from scratchlm.errors import ArgumentError, ArgumentTypeError


class Reshape(Function):
    """y = x with a new shape (same elements, same order);  ∂L/∂x = g reshaped back."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.input_shape = x.shape
        try:
            return x.reshape(self.shape)
        except TypeError:  # an entry that is not an integer: 2.5, None, "4"
            raise bad_argument("reshape", "shape", self.shape, "integers (one of them may be "
                               "-1: the size that fits)", error=ArgumentTypeError) from None
        except ValueError:
            raise ArgumentError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                                f"({x.size} elements) into shape {self.shape}") from None

    def backward(self, g):
        return g.reshape(self.input_shape)


class Transpose(Function):
    """y = x with axes permuted by p (reversed when p is None);  ∂L/∂x = g permuted by p⁻¹."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        axes = tuple(reversed(range(x.ndim))) if self.axes is None else self.axes
        try:  # NumPy and CuPy refuse a wrong count, a repeat, 5 for 2 axes, 1.0
            y = x.transpose(axes)
        except (TypeError, ValueError, IndexError):
            raise ArgumentError(f"transpose: axes {self.axes} are not a permutation of the "
                                f"{x.ndim} axes of a tensor of shape {x.shape}") from None
        self.axes_used = axes
        return y

    def backward(self, g):
        return g.transpose(np.argsort([a % g.ndim for a in self.axes_used]))  # p⁻¹


def _unwrap_index(index):
    """Tensors inside an index become their arrays; lists become arrays."""
    items = index if isinstance(index, tuple) else (index,)
    unwrapped = []
    for item in items:
        item = getattr(item, "data", item) if type(item).__name__ == "Tensor" else item
        if isinstance(item, list):
            item = np.asarray(item)
        unwrapped.append(item)
    return tuple(unwrapped) if isinstance(index, tuple) else unwrapped[0]


def _has_integer_array(index):
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "dtype") and i.dtype.kind in "iu" and i.ndim > 0 for i in items)


class GetItem(Function):
    """y = x[index] (slices, integers, integer arrays, boolean masks).

    ∂L/∂x = zeros with g added at the indexed places. An integer array may pick one element
    several times: those gradients add up (a scatter-add, not an assignment).
    """

    def __init__(self, index):
        self.index = _unwrap_index(index)

    def forward(self, x):
        self.input_shape, self.dtype = x.shape, x.dtype
        try:
            return x[self.index]
        except IndexError as error:
            raise IndexError(f"getitem: index {self.index!r} does not fit a tensor of shape "
                             f"{x.shape}: {error}") from None

    def backward(self, g):
        xp = get_array_module(g)
        grad = xp.zeros(self.input_shape, dtype=g.dtype)
        if _has_integer_array(self.index):
            scatter_add(grad, self.index, g)
        else:  # slices and masks never repeat an element
            grad[self.index] = g
        return grad
