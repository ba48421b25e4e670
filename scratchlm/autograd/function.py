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
Function so that :mod:`scratchlm.autograd.engine` can call ``backward`` later. Where a
faster version of the op is registered for the inputs' device (:mod:`scratchlm.fast`,
through :mod:`scratchlm.autograd.dispatch`), an instance of it with this op's configuration
runs in its place.

Configuration that is not a tensor (an axis, a shape) goes to ``__init__``.
Inputs may be Tensors, backend arrays or Python numbers; only Tensors get gradients.
``backward`` returns one array per input (``None`` where no gradient is needed; a
one-input op may return the bare array) shaped like its output's broadcast shape or the
input's own: the engine sums a broadcast gradient back to each input's shape.

A recorded op notes its inputs' versions (``input_versions``): every in-place change of a
tensor (an optimizer step, ``load_state_dict``, :meth:`Tensor.bump_version`) bumps its
``_version``, and if an input the op kept changed before its backward, the backward raises
:class:`~scratchlm.autograd.engine.InPlaceChangeError`. Inside ``sl.detect_anomaly()`` the
outputs are checked for NaN and Inf and the creating line of user code is kept
(:mod:`scratchlm.autograd.anomaly`); outside it that costs one boolean test.
"""

from scratchlm import backend
from scratchlm.autograd import anomaly, dispatch, grad_mode
from scratchlm.autograd.tensor import Tensor


class Function:
    #: set after backward has run and the saved arrays were released
    _released = False

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    @property
    def name(self):
        return type(self).__name__

    def __call__(self, *inputs):
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        op = _implementation(self, arrays)  # this op, or the fast layer's version of it
        needs = None  # recorded for backward only if grad mode is on and an input needs one
        if grad_mode._enabled:
            needs = tuple([isinstance(x, Tensor) and x.requires_grad for x in inputs])
            if True in needs:
                op.needs_input_grad = needs  # backward may skip the other inputs
            else:
                needs = None
        outputs = op.forward(*arrays)
        if anomaly.enabled:  # inside detect_anomaly(): check the outputs, note the caller
            anomaly.check_forward(op, arrays, outputs, recorded=needs is not None)
        if needs is None:
            return _unrecorded(outputs)
        op.inputs = tuple([x if n else None for x, n in zip(inputs, needs)])
        op.input_versions = [None if x is None else x._version for x in op.inputs]
        if isinstance(outputs, tuple):
            op.output_meta = [(y.shape, y.dtype) for y in outputs]
            return tuple([Tensor._wrap(y, op, i) for i, y in enumerate(outputs)])
        op.output_meta = [(outputs.shape, outputs.dtype)]
        return Tensor._wrap(outputs, op, 0)

    def release(self):
        """Drop everything saved for backward (the graph's intermediate buffers)."""
        self.__dict__.clear()
        self._released = True

    def __repr__(self):
        return f"<{self.name}>"


def _implementation(op, arrays):
    """``op`` itself, or, where a faster version of its class is registered for the
    arrays' device, a new instance of that class with ``op``'s configuration."""
    faster = dispatch.faster(type(op), backend.device_of_inputs(op, arrays))
    if faster is None:
        return op
    fast_op = faster.__new__(faster)
    fast_op.__dict__.update(vars(op))  # what __init__ stored: the op's configuration
    return fast_op


def _unrecorded(outputs):
    """Tensors, outside any graph, around the array (or tuple of arrays) a forward made."""
    if isinstance(outputs, tuple):
        return tuple(Tensor._wrap(y) for y in outputs)
    return Tensor._wrap(outputs)
