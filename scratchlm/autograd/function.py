"""``Function``: one differentiable op, its forward and its hand-derived backward.

A subclass writes two methods on raw backend arrays (NumPy or CuPy), nothing else::

    class Square(Function):
        '''y = x²,  ∂L/∂x = 2x · ∂L/∂y'''
        def forward(self, x):
            self.x = x                     # save what backward needs on self
            return x * x
        def backward(self, grad_y):
            return 2 * self.x * grad_y     # one gradient per input

and is used as ``Square()(tensor)``. Calling it runs ``forward`` on the inputs' arrays and,
when any input requires a gradient (and recording is on), links the output to this
Function so that :mod:`scratchlm.autograd.engine` can call ``backward`` later.

Configuration that is not a tensor (an axis, a shape) goes to ``__init__``.
Inputs may be Tensors, backend arrays or Python numbers; only Tensors get gradients.
``backward`` returns one array per input (``None`` where no gradient is needed; a
one-input op may return the bare array) shaped like its output's broadcast shape or the
input's own: the engine sums a broadcast gradient back to each input's shape.
"""

from scratchlm import backend
from scratchlm.autograd import grad_mode
from scratchlm.autograd.tensor import Tensor


class Function:
    #: set after backward has run and the saved arrays were released
    _released = False

    #: A subclass sets this True when its backward returns only arrays it allocated itself,
    #: each returned once (never its incoming gradient, a saved array, or a view of either):
    #: the engine then keeps them as gradient buffers and adds into them in place, where it
    #: would otherwise have to copy them first.
    new_gradient_arrays = False

    #: The engine sets this True while it runs the last backward through this op (the graph
    #: is not retained, so everything saved is freed right after): backward may then write
    #: into arrays that its own forward allocated and saved for it, instead of allocating
    #: new ones. Never into inputs, outputs or incoming gradients: other ops share those.
    may_overwrite_saved = False

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    @property
    def name(self):
        return type(self).__name__

    def __call__(self, *inputs):
        if not grad_mode.is_grad_enabled():  # under no_grad nothing is recorded
            arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
            backend.check_same_device(self, arrays)
            return _unrecorded(self.forward(*arrays))
        arrays, needs = [], []
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                needs.append(x.requires_grad)
            else:
                arrays.append(x)
                needs.append(False)
        backend.check_same_device(self, arrays)
        needs_grad = True in needs
        if needs_grad:
            self.needs_input_grad = tuple(needs)  # backward may skip the other inputs
        outputs = self.forward(*arrays)
        if not needs_grad:
            return _unrecorded(outputs)
        self.inputs = tuple([x if n else None for x, n in zip(inputs, needs)])
        if isinstance(outputs, tuple):
            self.output_meta = [(y.shape, y.dtype) for y in outputs]
            return tuple(Tensor._wrap(y, self, i) for i, y in enumerate(outputs))
        self.output_meta = None  # one output: it always receives a gradient
        return Tensor._wrap(outputs, self, 0)

    def release(self):
        """Drop everything saved for backward (the graph's intermediate buffers)."""
        self.__dict__.clear()
        self._released = True

    def __repr__(self):
        return f"<{self.name}>"


def _unrecorded(outputs):
    """Tensors, outside any graph, around the array (or tuple of arrays) a forward made."""
    if isinstance(outputs, tuple):
        return tuple(Tensor._wrap(y) for y in outputs)
    return Tensor._wrap(outputs)
