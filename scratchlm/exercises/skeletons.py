"""Exercise skeletons: the library's own ops with their backward taken away.

A skeleton is the reference class of the op (``scratchlm.functional.softmax.Softmax`` for
``skeletons.Softmax``) whose ``backward`` raises :class:`NotImplementedError` with a hint
naming what forward saved; its forward is the library's, inherited unchanged. Subclass it,
write ``backward``, and grade it::

    from scratchlm.exercises import grade, skeletons

    class Softmax(skeletons.Softmax):
        def backward(self, g):
            ...                                  # your ∂L/∂x
    print(grade("softmax", Softmax))

``python -m scratchlm.exercises show NAME`` prints the forward's source and what it saves.
The answer key is the reference class itself (the grader does not let your backward call
it).

The rules of every backward:

* ``g`` is ∂L/∂y, shaped like forward's output; return one gradient per input of forward,
  in order, shaped like that input (or like the broadcast shape: the engine sums it back),
  and ``None`` for an input that gets no gradient (integer ids and targets, an absent mask);
* use what forward saved on ``self``: a backward that calls forward fails ("a numerical
  derivative is not a derivation");
* never modify ``g`` or the inputs in place (another op may hold the same array): write
  into new arrays.

The grader checks these three rules, forward's output, and each gradient against the
library's to float64 precision. (Advice it does not grade: work on whole arrays, with no
Python loop over rows, batch or time.)
"""

import inspect

from scratchlm.exercises.student_side import SAVED, backward_hint
from scratchlm.functional.activations import GELUTanh as _GELUTanh
from scratchlm.functional.activations import Sigmoid as _Sigmoid
from scratchlm.functional.attention import ScaledDotProductAttention as _Attention
from scratchlm.functional.cross_entropy import CrossEntropy as _CrossEntropy
from scratchlm.functional.embedding import Embedding as _Embedding
from scratchlm.functional.layer_norm import LayerNorm as _LayerNorm
from scratchlm.functional.linear import Linear as _Linear
from scratchlm.functional.softmax import LogSoftmax as _LogSoftmax
from scratchlm.functional.softmax import Softmax as _Softmax
from scratchlm.ops.arithmetic import Mul as _Mul
from scratchlm.ops.elementwise import Tanh as _Tanh
from scratchlm.ops.matmul import MatMul as _MatMul


def forward_inputs(reference):
    """The names of the inputs of ``reference.forward``, in order."""
    return tuple(inspect.signature(reference.forward).parameters)[1:]


def skeleton(reference):
    """``reference`` (a Function class of the library) with its backward taken away; what
    its forward saves, and the hint, come from :mod:`scratchlm.exercises.student_side`,
    which holds the same skeleton for a graded file."""
    name = reference.__name__
    hint = backward_hint(name, forward_inputs(reference))

    def backward(self, g):
        raise NotImplementedError(hint)

    backward.__qualname__ = f"{name}.backward"
    return type(name, (reference,), {
        "__doc__": f"{reference.__module__}.{reference.__qualname__} with its backward taken "
                   f"away: {hint}.",
        "__module__": __name__,
        "backward": backward,
        #: the library class this skeleton comes from (the answer key)
        "reference": reference,
        #: what forward saves for backward, in words
        "saved": SAVED[name],
        #: the hint backward raises
        "hint": hint,
    })


Mul = skeleton(_Mul)
Tanh = skeleton(_Tanh)
Sigmoid = skeleton(_Sigmoid)
GELUTanh = skeleton(_GELUTanh)
MatMul = skeleton(_MatMul)
Embedding = skeleton(_Embedding)
Softmax = skeleton(_Softmax)
LogSoftmax = skeleton(_LogSoftmax)
CrossEntropy = skeleton(_CrossEntropy)
LayerNorm = skeleton(_LayerNorm)
ScaledDotProductAttention = skeleton(_Attention)
Linear = skeleton(_Linear)
