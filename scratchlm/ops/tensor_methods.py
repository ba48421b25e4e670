"""Tensor's operators and array methods, each a one-line call of the op it names.

``a + b`` is ``Add()(a, b)``, ``x.sum(axis)`` is ``Sum(axis)(x)``, ``x[i]`` is
``GetItem(i)(x)``: :class:`TensorOps` writes them out, and they are attached to
:class:`~scratchlm.autograd.tensor.Tensor` here, where the ops exist. (Tensor itself,
in ``scratchlm/autograd``, only records and replays; it needs nothing from the ops, so
the two import each other in no circle.)
"""

from scratchlm.autograd.tensor import Tensor
from scratchlm.ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub
from scratchlm.ops.elementwise import Cast, Exp, Log, Sqrt, Tanh
from scratchlm.ops.matmul import MatMul
from scratchlm.ops.reduction import Max, Mean, Sum
from scratchlm.ops.shape import GetItem, Reshape, Transpose


class TensorOps:
    """The methods of Tensor that run an op."""

    def astype(self, dtype):
        return Cast(dtype)(self)

    # ----------------------------------------------------------------------- arithmetic
    def __add__(self, other):
        return Add()(self, other)

    def __radd__(self, other):
        return Add()(other, self)

    def __sub__(self, other):
        return Sub()(self, other)

    def __rsub__(self, other):
        return Sub()(other, self)

    def __mul__(self, other):
        return Mul()(self, other)

    def __rmul__(self, other):
        return Mul()(other, self)

    def __truediv__(self, other):
        return Div()(self, other)

    def __rtruediv__(self, other):
        return Div()(other, self)

    def __pow__(self, other):
        return Pow()(self, other)

    def __rpow__(self, other):
        return Pow()(other, self)

    def __matmul__(self, other):
        return MatMul()(self, other)

    def __rmatmul__(self, other):
        return MatMul()(other, self)

    def __neg__(self):
        return Neg()(self)

    # ---------------------------------------------------------------------- elementwise
    def exp(self):
        return Exp()(self)

    def log(self):
        return Log()(self)

    def sqrt(self):
        return Sqrt()(self)

    def tanh(self):
        return Tanh()(self)

    # ----------------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims=False):
        return Sum(axis, keepdims)(self)

    def mean(self, axis=None, keepdims=False):
        return Mean(axis, keepdims)(self)

    def max(self, axis=None, keepdims=False):
        return Max(axis, keepdims)(self)

    # ---------------------------------------------------------------------------- shape
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Reshape(shape)(self)

    def transpose(self, *axes):
        """Permute axes as NumPy does: no argument reverses them all."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return Transpose(axes or None)(self)

    @property
    def T(self):
        return Transpose(None)(self)

    def __getitem__(self, index):
        return GetItem(index)(self)


for _name, _method in vars(TensorOps).items():
    if _name not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__"):
        setattr(Tensor, _name, _method)
