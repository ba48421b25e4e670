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
Function so that :mod:`scratchlm.autograd.engine` can call ``backward`` later. Where the
fast layer registered a faster subclass of the op for the inputs' device
(:mod:`scratchlm.fast`), the call runs that subclass's ``forward`` and ``backward`` instead.

Configuration that is not a tensor (an axis, a shape) goes to ``__init__``.
Inputs may be Tensors, backend arrays or Python numbers; only Tensors get gradients.
``backward`` returns one array per input (``None`` where no gradient is needed; a
one-input op may return the bare array) shaped like its output's broadcast shape or the
input's own: the engine sums a broadcast gradient back to each input's shape.

Two safety checks ride on the call. A recorded op notes the in-place change clock
(``input_clock``); if an input it kept is changed in place before its backward (an
optimizer step, ``load_state_dict``, :meth:`Tensor.bump_version`), the backward raises
:class:`~scratchlm.autograd.engine.InPlaceChangeError`. Inside ``sl.detect_anomaly()`` the
outputs are checked for NaN and Inf and the creating line of user code is kept
(:mod:`scratchlm.autograd.anomaly`); outside it that costs one boolean test.
"""

from scratchlm import backend
from scratchlm.autograd import anomaly, grad_mode
from scratchlm.autograd.engine import _changes
from scratchlm.autograd.tensor import Tensor
from scratchlm.fast.registry import fast_version


class Function:
    #: set after backward has run and the saved arrays were released
    _released = False

    #: Engine hints that only the fast layer's ops set (:mod:`scratchlm.fast`): True when
    #: backward returns only arrays it allocated itself, each once, so the engine may keep
    #: them as gradient buffers and add into them instead of copying them first.
    new_gradient_arrays = False
    #: Set by the engine to True while it runs the last backward through this op (the graph
    #: is not retained): a fast op may then write into arrays its own forward saved.
    may_overwrite_saved = False
    #: The in-place change clock (:meth:`Tensor.bump_version`) when the op ran forward; the
    #: backward pass checks that no input changed after it. None: not recorded by __call__.
    input_clock = None

    def forward(self, *arrays):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} must implement backward")

    @property
    def name(self):
        return type(self).__name__

    def __call__(self, *inputs):
        arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
        fast = fast_version(type(self), backend.device_of_inputs(self, arrays))
        if fast is not None:  # a fast implementation of this op is registered: it runs instead
            self.__class__ = fast
        needs = None  # recorded for backward only if grad mode is on and an input needs one
        if grad_mode._enabled:
            needs = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
            if True in needs:
                self.needs_input_grad = needs  # backward may skip the other inputs
            else:
                needs = None
        outputs = self.forward(*arrays)
        if anomaly.enabled:  # inside detect_anomaly(): check the outputs, note the caller
            anomaly.check_forward(self, inputs, outputs, recorded=needs is not None)
        if needs is None:
            return _unrecorded(outputs)
        self.inputs = tuple([x if n else None for x, n in zip(inputs, needs)])
        self.input_clock = _changes[0]
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
