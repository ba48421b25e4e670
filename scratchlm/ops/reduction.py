"""Reductions: sum, mean and max over some axes (all of them by default).

Backward spreads the gradient back over the reduced axes: g is reshaped to the kept-dims
shape (size 1 on every reduced axis) and broadcast to the input's shape.
"""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_bool, normalize_axis
from scratchlm.errors import ArgumentError


def normalize_axes(op_name, axis, shape):
    """``axis`` (None, an integer or a tuple of them) as a sorted tuple of non-negative
    axes of an array of ``shape`` (at least one axis)."""
    if axis is None:
        return tuple(range(len(shape)))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    normalized = sorted(normalize_axis(op_name, a, shape) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ArgumentError(f"{op_name}: axis {axis} repeats an axis")
    return tuple(normalized)


def kept_shape(shape, axes):
    """``shape`` with every reduced axis set to 1 (what keepdims=True gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class _Reduction(Function):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, check_bool(self.name.lower(), "keepdims", keepdims)

    def _save_axes_and_shape(self, x):
        self.axes = normalize_axes(self.name.lower(), self.axis, x.shape) if x.ndim else ()
        self.input_shape = x.shape

    def _grad_kept(self, g):
        """g reshaped so it broadcasts against the input."""
        return g.reshape(kept_shape(self.input_shape, self.axes))


class Sum(_Reduction):
    """y = Σ_axes x;  ∂L/∂x = g broadcast over the summed axes."""

    def forward(self, x):
        self._save_axes_and_shape(x)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        return xp.broadcast_to(self._grad_kept(g), self.input_shape)


class Mean(_Reduction):
    """y = (1/n) Σ_axes x over n reduced elements;  ∂L/∂x = g / n broadcast."""

    def forward(self, x):
        self._save_axes_and_shape(x)
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        xp = get_array_module(g)
        count = 1
        for a in self.axes:
            count *= self.input_shape[a]
        return xp.broadcast_to(self._grad_kept(g) / count, self.input_shape)


class Max(_Reduction):
    """y = max_axes x;  ∂L/∂x = g · 1[x = y] / (number of ties).

    Tied maxima share the gradient equally, as ``torch.amax`` does.
    """

    def forward(self, x):
        self._save_axes_and_shape(x)
        if x.size == 0:
            raise ArgumentError(f"max: cannot take the maximum of an empty tensor of shape "
                                f"{x.shape}")
        self.x = x
        self.y_kept = x.max(axis=self.axes, keepdims=True)
        return self.y_kept if self.keepdims else self.y_kept.reshape(
            [n for i, n in enumerate(self.y_kept.shape) if i not in self.axes])

    def backward(self, g):
        is_max = self.x == self.y_kept
        ties = is_max.sum(axis=self.axes, keepdims=True)
        return is_max * (self._grad_kept(g) / ties)
