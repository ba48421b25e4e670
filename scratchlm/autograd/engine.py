"""The backward pass: reverse-mode automatic differentiation over the recorded graph.

For a scalar loss L and every recorded op ``y = f(x₁, …, xₙ)`` the chain rule gives

    ∂L/∂xᵢ = Σ over uses of xᵢ of  (∂y/∂xᵢ)ᵀ · ∂L/∂y,

so we visit the ops from the loss back to the leaves in reverse topological order (every
consumer of a tensor before the op that produced it), hand each op the summed gradient of
its outputs and add what it returns into its inputs' gradients. The order is found with an
explicit stack, not recursion, so a chain of 100,000 ops does not hit Python's recursion limit.

Before an op's backward runs, the engine makes sure none of the inputs it kept was changed
in place since its forward (version counters, :class:`InPlaceChangeError`); inside
``sl.detect_anomaly()`` it checks every gradient an op returns for NaN and Inf.
"""

from scratchlm import backend
from scratchlm.autograd import anomaly

#: The in-place change clock: how many in-place changes (:meth:`Tensor.bump_version`) the
#: process has made. An op records it at forward (``Function.input_clock``); an op whose
#: record equals the clock at backward time saw no change since, and needs no version check.
_changes = [0]


class GraphReleasedError(RuntimeError):
    """Backward reached an op whose saved arrays were freed by an earlier backward."""


class InPlaceChangeError(RuntimeError):
    """Backward reached an op one of whose inputs was changed in place after its forward
    (an optimizer step, ``load_state_dict``, or :meth:`Tensor.bump_version`)."""


def _check_versions(fn):
    """Raise unless every input ``fn`` kept was left unchanged since its forward (its
    version counter did not move after ``fn.input_clock``)."""
    clock = fn.input_clock
    if clock is None:  # not recorded by Function.__call__: nothing to compare
        return
    for position, tensor in enumerate(fn.inputs):
        if tensor is None:
            continue
        changes, exact = tensor._changes_since(clock)
        if not changes:
            continue
        then = tensor._version - changes
        then = f"{then}" if exact else f"at most {then}"
        kind = "a leaf tensor (a parameter?)" if tensor._ctx is None else "an op's output"
        raise InPlaceChangeError(
            f"backward of {anomaly.op_name(fn)}: its input {position} (shape {tensor.shape}, "
            f"dtype {tensor.dtype}, {kind}) was changed in place after this op's forward: it "
            f"is at version {tensor._version}, but was at version {then} when the forward "
            "ran, so its gradient would come from values the forward never saw: an "
            "optimizer step or an in-place change happened between forward and backward; "
            "call backward first, or compute the forward again")


def _check_alive(fn):
    if fn._released:
        raise GraphReleasedError(
            f"backward went through {fn.name} a second time, but its saved arrays were "
            "freed after the first backward; call .backward(retain_graph=True) the first "
            "time if you need to differentiate the same graph twice")


def _parents(fn):
    return [t._ctx for t in fn.inputs if t is not None and t._ctx is not None]


def topological_order(root_fn):
    """Ops reachable from ``root_fn``, each after every op it consumes (inputs first)."""
    _check_alive(root_fn)
    order, visited = [], {root_fn}
    stack = [(root_fn, iter(_parents(root_fn)))]
    while stack:
        fn, parents = stack[-1]
        for parent in parents:
            if parent not in visited:
                _check_alive(parent)
                visited.add(parent)
                stack.append((parent, iter(_parents(parent))))
                break
        else:
            stack.pop()
            order.append(fn)
    return order


def sum_to_shape(grad, shape, op_name="backward"):
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(f"{op_name}: gradient of shape {grad.shape} cannot be summed to "
                         f"its input's shape {shape}")
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    if grad.shape != shape:
        raise ValueError(f"{op_name}: gradient of shape {grad.shape} does not match its "
                         f"input's shape {shape}")
    return grad


class _GradSlot:
    """A gradient being summed over a tensor's uses.

    ``owned`` says the array is the engine's to write into: one that an op declared new
    (:attr:`Function.new_gradient_arrays`) or that the engine made. A gradient some other op
    may still read (an op passed its incoming gradient on, as ``add`` does) is never written
    into: the first addition makes a new array, and later ones add into that in place.
    """

    __slots__ = ("value", "owned")

    def __init__(self, value, owned):
        self.value, self.owned = value, owned

    def add(self, grad, grad_owned):
        if self.owned:
            self.value += grad
        elif grad_owned:  # a + b = b + a: add into the new array instead
            grad += self.value
            self.value, self.owned = grad, True
        else:
            self.value, self.owned = self.value + grad, True


def _accumulate_leaf(tensor, grad, owned):
    """Leaf gradients add up across backward calls, as in PyTorch. The first one becomes
    ``.grad`` itself when the engine owns it, else a copy (``.grad`` may be changed in place
    later, by the next accumulation or an optimizer, and no op may see that)."""
    if tensor.grad is None:
        tensor.grad = grad if owned else grad.copy()
    else:
        tensor.grad += grad


def run_backward(root, grad, retain_graph=False):
    """Propagate ``grad`` (∂L/∂root) to every leaf that requires a gradient."""
    if root._ctx is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, grad, owned=False)
        return
    order = topological_order(root._ctx)
    slots = {root._ctx: {root._index: _GradSlot(grad, owned=False)}}
    check_anomaly = anomaly.enabled  # inside detect_anomaly(): check every gradient
    clock = _changes[0]  # ops recorded since the last in-place change need no version check
    for fn in reversed(order):
        output_slots = slots.pop(fn, None)
        if output_slots is None:  # nothing downstream of this op reached the loss
            continue
        if fn.input_clock != clock:  # something changed in place since this op's forward
            _check_versions(fn)
        # the saved arrays are freed after this backward unless the graph is retained, so
        # the op may reuse its own saved buffers (Function.may_overwrite_saved)
        fn.may_overwrite_saved = not retain_graph
        if fn.output_meta is None:
            grad_inputs = fn.backward(output_slots[0].value)
        else:  # several outputs: the unused ones get zeros
            xp = backend.get_array_module(next(iter(output_slots.values())).value)
            grad_inputs = fn.backward(*[
                output_slots[i].value if i in output_slots else xp.zeros(shape, dtype)
                for i, (shape, dtype) in enumerate(fn.output_meta)])
        if not isinstance(grad_inputs, (tuple, list)):
            grad_inputs = (grad_inputs,)
        if len(grad_inputs) != len(fn.inputs):
            raise RuntimeError(f"{fn.name}.backward returned {len(grad_inputs)} gradients "
                               f"for {len(fn.inputs)} inputs")
        if check_anomaly:
            anomaly.check_backward(fn, [s.value for s in output_slots.values()], grad_inputs)
        for tensor, g in zip(fn.inputs, grad_inputs):
            if tensor is None or g is None:
                continue
            owned = fn.new_gradient_arrays
            if g.shape != tensor.shape:
                g, owned = sum_to_shape(g, tensor.shape, fn.name), True
            if g.dtype != tensor.dtype:
                g, owned = g.astype(tensor.dtype), True
            if tensor._ctx is None:
                _accumulate_leaf(tensor, g, owned)
                continue
            producer_slots = slots.setdefault(tensor._ctx, {})
            slot = producer_slots.get(tensor._index)
            if slot is None:
                producer_slots[tensor._index] = _GradSlot(g, owned)
            else:
                slot.add(g, owned)
        if not retain_graph:
            fn.release()
