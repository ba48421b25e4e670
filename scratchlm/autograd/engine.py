"""The backward pass: reverse-mode automatic differentiation over the recorded graph.

For a scalar loss L and every recorded op ``y = f(x₁, …, xₙ)`` the chain rule gives

    ∂L/∂xᵢ = Σ over uses of xᵢ of  (∂y/∂xᵢ)ᵀ · ∂L/∂y,

so :func:`run_backward` visits the ops from the loss back to the leaves in reverse
topological order (every consumer of a tensor before the op that produced it), hands each op
the gradient of its outputs, sums what it returns to each input's shape (undoing
broadcasting) and adds it into a dictionary of gradients. What reaches a leaf is added into
``leaf.grad``. The order is found with an explicit stack, not recursion, so a chain of
100,000 ops does not hit Python's recursion limit.

This is the reference engine: every gradient is a new array. The fast layer registers a
version that reuses gradient buffers and adds into them in place (``scratchlm/fast/engine.py``,
through :mod:`scratchlm.autograd.dispatch`); both give the same numbers to the bit.

Before an op's backward runs, :func:`check_inputs_unchanged` makes sure the inputs it kept
were not changed in place since its forward (their ``_version``); inside
``sl.detect_anomaly()`` every gradient is checked for NaN and Inf, and every array an op
saved for backward is checked for writes made behind the engine's back (``x.data[...] = ``).
"""

from scratchlm import backend
from scratchlm.autograd import anomaly


class GraphReleasedError(RuntimeError):
    """Backward reached an op whose saved arrays were freed by an earlier backward."""


class InPlaceChangeError(RuntimeError):
    """Backward reached an op one of whose inputs was changed in place after its forward
    (an optimizer step, ``load_state_dict``, :meth:`Tensor.bump_version`, or, caught inside
    ``sl.detect_anomaly()``, a write into an array the op saved)."""


def run_backward(root, grad, retain_graph=False):
    """Add ∂L/∂leaf into ``leaf.grad`` for every leaf ``root`` depends on, given ``grad`` =
    ∂L/∂root (the op graph is freed as it goes unless ``retain_graph``)."""
    grads = {key(root): grad}  # ∂L/∂t of every tensor t reached so far
    for fn in reversed(topological_order(root)):
        grad_outputs = [grads.pop((fn, i), None) for i in range(len(fn.output_meta))]
        if all(g is None for g in grad_outputs):  # nothing after this op reached the loss
            continue
        check_inputs_unchanged(fn)
        grad_inputs = call_backward(fn, grad_outputs)
        for x, g in zip(fn.inputs, grad_inputs):
            if x is not None and g is not None:
                g = sum_to_shape(g, x.shape, fn.name).astype(x.dtype, copy=False)
                grads[key(x)] = grads[key(x)] + g if key(x) in grads else g
        if not retain_graph:
            fn.release()
    for leaf, g in grads.items():  # only leaves are left: each op popped its outputs
        leaf.grad = g.copy() if leaf.grad is None else leaf.grad + g


def key(tensor):
    """A tensor's place in the dictionary of gradients: a leaf is itself; an op's output is
    (the op, which output), since an op keeps its inputs but not its outputs."""
    return tensor if tensor._ctx is None else (tensor._ctx, tensor._index)


def topological_order(root):
    """The ops ``root`` depends on, each after every op it consumes (inputs first)."""
    if root._ctx is None:
        return []
    order, visited = [], {root._ctx}
    stack = [(_alive(root._ctx), iter(_parents(root._ctx)))]
    while stack:
        fn, parents = stack[-1]
        for parent in parents:
            if parent not in visited:
                visited.add(parent)
                stack.append((_alive(parent), iter(_parents(parent))))
                break
        else:
            stack.pop()
            order.append(fn)
    return order


def _parents(fn):
    return [t._ctx for t in fn.inputs if t is not None and t._ctx is not None]


def _alive(fn):
    if fn._released:
        raise GraphReleasedError(
            f"backward went through {fn.name} a second time, but its saved arrays were "
            "freed after the first backward; call .backward(retain_graph=True) the first "
            "time if you need to differentiate the same graph twice")
    return fn


def call_backward(fn, grad_outputs):
    """``fn.backward`` on its outputs' gradients (zeros for an output that received none),
    as a tuple with one gradient (or None) per input; NaN and Inf raise inside
    ``detect_anomaly()``."""
    if len(grad_outputs) > 1 and any(g is None for g in grad_outputs):
        xp = backend.get_array_module(*[g for g in grad_outputs if g is not None])
        grad_outputs = [xp.zeros(shape, dtype) if g is None else g
                        for g, (shape, dtype) in zip(grad_outputs, fn.output_meta)]
    grad_inputs = fn.backward(*grad_outputs)
    if not isinstance(grad_inputs, (tuple, list)):
        grad_inputs = (grad_inputs,)
    if len(grad_inputs) != len(fn.inputs):
        raise RuntimeError(f"{fn.name}.backward returned {len(grad_inputs)} gradients for "
                           f"{len(fn.inputs)} inputs")
    if anomaly.enabled:
        anomaly.check_backward(fn, grad_outputs, grad_inputs)
    return grad_inputs


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


# ------------------------------------------------------------------------ in-place changes
def check_inputs_unchanged(fn):
    """Raise :class:`InPlaceChangeError` if an input ``fn`` kept for backward was changed in
    place after its forward: its ``_version`` (bumped by every in-place change) differs from
    the one ``fn`` recorded then, as PyTorch checks. Inside ``detect_anomaly()`` also if an
    array the op saved was written into behind the engine's back (``x.data[...] = …``)."""
    if [None if x is None else x._version for x in fn.inputs] != fn.input_versions:
        position, x = next((i, x) for i, x in enumerate(fn.inputs)
                           if x is not None and x._version != fn.input_versions[i])
        kind = "a leaf tensor (a parameter?)" if x._ctx is None else "an op's output"
        raise InPlaceChangeError(
            f"backward of {anomaly.op_name(fn)}: its input {position} (shape {x.shape}, "
            f"dtype {x.dtype}, {kind}) was changed in place after this op's forward: it is "
            f"at version {x._version}, but was at version {fn.input_versions[position]} "
            "when the forward ran, so its gradient would come from values the forward never "
            "saw: an optimizer step or an in-place change happened between forward and "
            "backward; call backward first, or compute the forward again")
    written = anomaly.saved_arrays_written(fn) if anomaly.enabled else []
    if written:
        raise InPlaceChangeError(
            f"backward of {anomaly.op_name(fn)}: the array{'s' if len(written) > 1 else ''} "
            f"it saved at forward as {', '.join(written)} changed before its backward "
            "(detect_anomaly keeps a checksum of what each op saves): something wrote into "
            "a tensor's .data, or into an op's output array, in place; writes into .data "
            "are not tracked, so write into a copy, or call .bump_version() after writing "
            "and compute the forward again")
