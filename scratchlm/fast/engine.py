"""The backward pass with gradient buffers reused: the fast layer's ``run_backward``.

The reference engine (:func:`scratchlm.autograd.engine.run_backward`) makes a new array for
every sum of gradients. A tensor used k times gets k gradients, and adding them as
``a + b`` allocates and writes a new array each time. This engine adds into an array
instead, when it may: when the engine made the array itself (a sum, a gradient summed to
an input's shape or cast to its dtype), or an op's backward returned it as a new array that
nothing else reads (the ops marked by :func:`returns_new_gradients`). A gradient that an op
passed on unchanged (``add`` returns its incoming gradient to both inputs) is never written
into: the first sum with it makes a new array, and later ones add into that.

It also tells the ops whose graph is not retained that their saved arrays are freed right
after their backward (``fn.may_overwrite_saved``), so a fast op may write its gradient into
them (``scratchlm/fast/cpu.py``). Every value is the reference engine's to the bit: the
same additions in the same order (a + b and b + a are the same IEEE sum).
"""

from scratchlm.autograd import engine
from scratchlm.autograd.engine import (
    call_backward,
    check_inputs_unchanged,
    sum_to_shape,
    topological_order,
)
from scratchlm.fast.registry import implements

#: Op classes whose backward returns only arrays it allocated itself, each once (never its
#: incoming gradient or a view of it, never an array it keeps): exact classes, so a user's
#: subclass that may return its incoming gradient is not counted.
NEW_GRADIENTS = set()


def returns_new_gradients(op_class):
    """Class decorator: mark ``op_class``'s backward as returning new arrays only."""
    NEW_GRADIENTS.add(op_class)
    return op_class


class _Sum:
    """A gradient being summed over a tensor's uses; ``owned``: this engine may write into
    the array (it made it, or an op marked by :func:`returns_new_gradients` returned it)."""

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


@implements(engine.run_backward, "cpu")
@implements(engine.run_backward, "cuda")
def run_backward_in_place(root, grad, retain_graph=False):
    """:func:`scratchlm.autograd.engine.run_backward`, adding into gradient buffers. The
    sums are kept per op ({op: {output index: sum}}) and per leaf, which is quicker to look
    up than the reference's one dictionary."""
    op_sums, leaf_sums = {}, {}
    _sum_into(root, grad, False, op_sums, leaf_sums)
    for fn in reversed(topological_order(root)):
        sums = op_sums.pop(fn, None)
        if sums is None:  # nothing after this op reached the loss
            continue
        check_inputs_unchanged(fn)
        fn.may_overwrite_saved = not retain_graph  # freed right after, unless retained
        count = len(fn.output_meta)
        grad_outputs = [sums[0].value] if count == 1 else [
            sums[i].value if i in sums else None for i in range(count)]
        new = type(fn) in NEW_GRADIENTS
        for x, g in zip(fn.inputs, call_backward(fn, grad_outputs)):
            if x is not None and g is not None:
                _sum_into(x, g, new, op_sums, leaf_sums, fn)
        if not retain_graph:
            fn.release()
    for leaf, total in leaf_sums.items():
        if leaf.grad is None:
            leaf.grad = total.value if total.owned else total.value.copy()
        else:
            leaf.grad += total.value


def _sum_into(x, g, owned, op_sums, leaf_sums, fn=None):
    """Add the gradient ``g`` of ``x`` (summed to its shape and cast to its dtype first) into
    its running sum; ``owned``: this engine may write into ``g``; ``fn``: the op whose
    backward made ``g`` (None for the seed), named in a shape error."""
    if g.shape != x.shape:
        g, owned = sum_to_shape(g, x.shape, "backward" if fn is None else fn.name), True
    if g.dtype != x.dtype:
        g, owned = g.astype(x.dtype), True
    sums, k = (leaf_sums, x) if x._ctx is None else (op_sums.setdefault(x._ctx, {}), x._index)
    total = sums.get(k)
    if total is None:
        sums[k] = _Sum(g, owned)
    else:
        total.add(g, owned)
