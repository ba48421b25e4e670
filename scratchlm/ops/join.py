"""Joining tensors: concatenate along an existing axis, stack along a new one."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_operand
from scratchlm.errors import ArgumentError


def _check_inputs(op_name, arrays):
    """At least one tensor (an array by now) of numbers, all with one number of axes. The
    axis is NumPy's to check: the ops turn its refusal into their own error."""
    if not arrays:
        raise ArgumentError(f"{op_name}: needs at least one tensor")
    for position, array in enumerate(arrays):
        check_operand(op_name, f"tensors[{position}]", array, number=False)
    ndim = arrays[0].ndim
    if any(a.ndim != ndim for a in arrays):
        raise ArgumentError(f"{op_name}: tensors must have the same number of axes, got "
                            f"shapes {[a.shape for a in arrays]}")


class Concat(Function):
    """y = [x₁ x₂ …] along ``axis``;  ∂L/∂xᵢ = the slice of g that xᵢ filled."""

    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *arrays):
        _check_inputs("concat", arrays)
        xp = get_array_module(*arrays)
        try:
            y = xp.concatenate(arrays, axis=self.axis)
        except (TypeError, ValueError, IndexError) as error:  # shapes, or an axis out of range
            raise ArgumentError(f"concat: cannot join shapes {[a.shape for a in arrays]} along "
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
        _check_inputs("stack", arrays)
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ArgumentError(f"stack: tensors must all have one shape, got "
                                f"{[a.shape for a in arrays]}")
        xp = get_array_module(*arrays)
        try:
            y = xp.stack(arrays, axis=self.axis)
        except (TypeError, ValueError, IndexError):  # an axis out of range, or not an integer
            axes = arrays[0].ndim + 1
            raise ArgumentError(f"stack: axis={self.axis!r} does not fit tensors of shape "
                                f"{arrays[0].shape}; expected an integer in [{-axes}, {axes}) "
                                "(where the new axis goes)") from None
        self.axis_norm, self.count = self.axis % y.ndim, len(arrays)
        return y

    def backward(self, g):
        return tuple(g.take(i, axis=self.axis_norm) for i in range(self.count))
