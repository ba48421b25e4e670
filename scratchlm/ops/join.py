"""Joining tensors: concatenate along an existing axis, stack along a new one."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_int, check_operand
from scratchlm.errors import ArgumentError


def _check_inputs(op_name, arrays, axis, new_axis=False):
    """Tensors (arrays by now) to join along ``axis``: an existing axis of theirs, or, with
    ``new_axis`` (stack), a place for a new one (0 … ndim)."""
    if not arrays:
        raise ArgumentError(f"{op_name}: needs at least one tensor")
    for position, array in enumerate(arrays):
        check_operand(op_name, f"tensors[{position}]", array, number=False)
    ndim = arrays[0].ndim
    if any(a.ndim != ndim for a in arrays):
        raise ArgumentError(f"{op_name}: tensors must have the same number of axes, got "
                            f"shapes {[a.shape for a in arrays]}")
    axes = ndim + new_axis
    check_int(op_name, "axis", axis, -axes, axes,
              hint=f"(for tensors of shape {arrays[0].shape}{' and a new axis' * new_axis})")


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
        _check_inputs("stack", arrays, self.axis, new_axis=True)
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ArgumentError(f"stack: tensors must all have one shape, got "
                                f"{[a.shape for a in arrays]}")
        xp = get_array_module(*arrays)
        y = xp.stack(arrays, axis=self.axis)
        self.axis_norm, self.count = self.axis % y.ndim, len(arrays)
        return y

    def backward(self, g):
        return tuple(g.take(i, axis=self.axis_norm) for i in range(self.count))
