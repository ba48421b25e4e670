"""``Tensor``: an array that remembers which op made it, so gradients can flow back.

A Tensor wraps one backend array (``.data``: NumPy on the CPU, CuPy on the GPU). When it
is the output of a recorded op, ``_ctx`` points to that op (a :class:`Function`) and
``_index`` says which of the op's outputs it is; leaves (data and parameters) have none.
Tensor's operators and array methods (``+``, ``@``, ``.sum()``, ``x[i]``, …) are one-line
calls of the primitive ops, ``a + b`` being ``ops.Add()(a, b)``.

The ops are :class:`~scratchlm.autograd.function.Function` subclasses, and Function wraps
its outputs in Tensor, so the ops load after this module. They are looked up when an
operator runs, through the module attribute :data:`ops`, which :mod:`scratchlm.ops` fills
in when it is imported: no import runs back from here to the ops.

``.data`` is a plain array, as in PyTorch: writing into it is not tracked (only
:meth:`Tensor.bump_version` is). Inside ``sl.detect_anomaly()`` a write into an array some
op saved for backward is caught at that op's backward.
"""

import numpy as np

from scratchlm import backend
from scratchlm.autograd import dispatch, engine
from scratchlm.checks import check_bool, check_dtype, check_numbers, check_requires_grad
from scratchlm.errors import ArgumentError

DEFAULT_FLOAT = np.float32

#: The primitive ops package (:mod:`scratchlm.ops`), set by it when it is imported.
ops = None


def _as_array(data, dtype, device):
    """A fresh backend array from user data.

    Python numbers and lists become float32 (or int64/bool); NumPy and CuPy arrays keep
    their dtype, so float64 stays float64 end to end. The data is copied, as
    ``torch.tensor`` does, so later in-place updates never reach the caller's array.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if backend.is_gpu_array(data) or isinstance(data, np.ndarray):
        array = check_numbers("tensor", "data", data).astype(dtype or data.dtype, copy=True)
    else:
        array = check_numbers("tensor", "data", data, dtype)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(DEFAULT_FLOAT)
    return backend.to_device(array, device)



class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_index", "_version",
                 "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if device is None:
            device = backend.device_of(data.data if isinstance(data, Tensor) else data)
        self.data = _as_array(data, check_dtype("tensor", dtype), device)
        self._version = 0
        self.grad = None
        self._ctx = None
        self._index = 0
        self.requires_grad = check_requires_grad("tensor", requires_grad, self.data.dtype)

    @classmethod
    def _wrap(cls, array, ctx=None, index=0):
        """Wrap an op's output array without copying or converting it."""
        t = cls.__new__(cls)
        t.data, t.grad, t._ctx, t._index, t._version = array, None, ctx, index, 0
        t.requires_grad = ctx is not None
        return t

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = check_requires_grad("requires_grad_", requires_grad,
                                                 self.data.dtype)
        return self

    # ----------------------------------------------------------------- in-place changes
    def bump_version(self):
        """Record that ``.data`` was changed in place (or replaced); returns self.

        Each tensor counts its in-place changes in ``_version``, as PyTorch's version
        counter does. A recorded op notes its inputs' versions at forward; if one of them
        moves before the op's backward, the backward raises instead of computing a gradient
        from changed values. The library calls this wherever it changes a tensor in place:
        an optimizer's ``step`` for each parameter it updates, ``Module.load_state_dict``.
        Code that writes into ``tensor.data`` by hand should call it too; writing ``.data``
        does not count by itself (``.data`` is a plain attribute, so reading it costs
        nothing on the hot path), though ``sl.detect_anomaly()`` catches such a write into
        an array an op saved.
        """
        self._version += 1
        return self

    # ------------------------------------------------------------------ array attributes
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        device = ", device='cuda'" if self.device == "cuda" else ""
        return f"tensor({backend.to_numpy(self.data)!r}{grad}{device})"

    # ---------------------------------------------------------------- conversion and moves
    def numpy(self):
        """A host NumPy copy of the data (never a view the caller could change us through)."""
        return np.array(backend.to_numpy(self.data), copy=True)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only a one-element tensor converts to a Python "
                             f"number, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return backend.to_numpy(self.data).tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._wrap(self.data)

    def to(self, device):
        """This tensor on ``device`` (``"cpu"`` or ``"cuda"``); a leaf stays a leaf."""
        backend.check_device(device, "Tensor.to")
        if device == self.device:
            return self
        moved = Tensor._wrap(backend.to_device(self.data, device))
        moved.requires_grad = self.requires_grad
        return moved


    # -------------------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph=False):
        """Compute ∂self/∂leaf for every leaf that requires a gradient, into ``leaf.grad``.

        ``grad`` is ∂L/∂self (array or Tensor); a scalar (one element) may omit it (1).
        """
        check_bool("backward", "retain_graph", retain_graph)
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require a gradient; "
                               "it was not computed from any tensor with requires_grad=True")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward(): grad can be omitted only for a scalar, but "
                                   f"this tensor has shape {self.shape}; pass grad=∂L/∂self")
            grad = xp.ones(self.shape, dtype=self.dtype)
        else:
            grad = grad.data if isinstance(grad, Tensor) else grad
            grad = xp.asarray(check_numbers("backward", "grad", grad), dtype=self.dtype)
            if grad.shape != self.shape:
                raise ArgumentError(f"backward(): grad has shape {grad.shape} but the tensor "
                                    f"has shape {self.shape}", where="backward", name="grad",
                                    value=grad)
        run_backward = dispatch.faster(engine.run_backward, self.device) or engine.run_backward
        run_backward(self, grad, retain_graph=retain_graph)

    # ----------------------------------------------------- operators: the primitive ops
    def __add__(self, other):
        return ops.Add()(self, other)

    def __radd__(self, other):
        return ops.Add()(other, self)

    def __sub__(self, other):
        return ops.Sub()(self, other)

    def __rsub__(self, other):
        return ops.Sub()(other, self)

    def __mul__(self, other):
        return ops.Mul()(self, other)

    def __rmul__(self, other):
        return ops.Mul()(other, self)

    def __truediv__(self, other):
        return ops.Div()(self, other)

    def __rtruediv__(self, other):
        return ops.Div()(other, self)

    def __pow__(self, other):
        return ops.Pow()(self, other)

    def __rpow__(self, other):
        return ops.Pow()(other, self)

    def __matmul__(self, other):
        return ops.MatMul()(self, other)

    def __rmatmul__(self, other):
        return ops.MatMul()(other, self)

    def __neg__(self):
        return ops.Neg()(self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return ops.GetItem(index)(self)

    def astype(self, dtype):
        return ops.Cast(dtype)(self)

    def exp(self):
        return ops.Exp()(self)

    def log(self):
        return ops.Log()(self)

    def sqrt(self):
        return ops.Sqrt()(self)

    def tanh(self):
        return ops.Tanh()(self)

    def sum(self, axis=None, keepdims=False):
        return ops.Sum(axis, keepdims)(self)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean(axis, keepdims)(self)

    def max(self, axis=None, keepdims=False):
        return ops.Max(axis, keepdims)(self)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape(shape)(self)

    def transpose(self, *axes):
        """Permute axes as NumPy does: no argument reverses them all."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose(axes or None)(self)

    @property
    def T(self):
        return ops.Transpose(None)(self)

    # ------------------------------------------------- comparisons (never differentiable)
    def __lt__(self, other):
        return Tensor._wrap(self.data < _array(other))

    def __le__(self, other):
        return Tensor._wrap(self.data <= _array(other))

    def __gt__(self, other):
        return Tensor._wrap(self.data > _array(other))

    def __ge__(self, other):
        return Tensor._wrap(self.data >= _array(other))

    __hash__ = object.__hash__  # tensors are graph nodes: identity, not value, equality


def _array(value):
    return value.data if isinstance(value, Tensor) else value


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """Make a leaf tensor. Python floats become float32; NumPy arrays keep their dtype."""
    backend.check_device(device, "tensor")
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
