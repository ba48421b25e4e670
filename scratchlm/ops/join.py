"""Joining tensors: concatenate along an existing axis, stack along a new one."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module


def _check_inputs(op_name, arrays, axis):
    if not arrays:
        raise ValueError(f"{op_name}: needs at least one tensor")
    ndim = arrays[0].ndim
    if any(a.ndim != ndim for a in arrays):
        raise ValueError(f"{op_name}: tensors must have the same number of axes, got shapes "
                         f"{[a.shape for a in arrays]}")


class Concat(Function):
    """y = [x₁ x₂ …] along ``axis``;  ∂L/∂xᵢ = the slice of g that xᵢ filled."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *arrays):
        _check_inputs("concat", arrays, self.axis)
        xp = get_array_module(*arrays)
        try:
            y = xp.concatenate(arrays, axis=self.axis)
        except (ValueError, IndexError) as error:
            raise ValueError(f"concat: cannot join shapes {[a.shape for a in arrays]} along "
                             f"axis {self.axis} (all other axes must match): {error}") from None
        self.axis_norm = self.axis % y.ndim
        self.sizes = [a.shape[self.axis_norm] for a in arrays]
        return y

    def backward(self, g):
        grads, start = [], 0
        for size in self.sizes:
            index = [slice(None)] * g.ndim
            index[self.axis_norm] = slice(start, start + size)
            grads.append(g[tuple(index)])
            start += size
        return tuple(grads)


class Stack(Function):
    """y[…, i, …] = xᵢ along a new ``axis``;  ∂L/∂xᵢ = g[…, i, …]."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *arrays):
        _check_inputs("stack", arrays, self.axis)
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"stack: tensors must all have one shape, got "
                             f"{[a.shape for a in arrays]}")
        xp = get_array_module(*arrays)
        y = xp.stack(arrays, axis=self.axis)
        self.axis_norm, self.count = self.axis % y.ndim, len(arrays)
        return y

    def backward(self, g):
        return tuple(g.take(i, axis=self.axis_norm) for i in range(self.count))
