"""The primitive ops of the engine, each a Function with a hand-written backward.

Tensor's operators call them (``a + b`` is ``ops.Add()(a, b)``); this package puts itself in
:data:`scratchlm.autograd.tensor.ops` when imported, since the ops, being Functions, load
after Tensor.
"""

import importlib
import sys

from scratchlm.checks import check_operand, check_type
from scratchlm.ops.arithmetic import Add, Div, Mul, Neg, Pow, Sub
from scratchlm.ops.elementwise import Cast, Exp, Log, Sqrt, Tanh
from scratchlm.ops.join import Concat, Stack
from scratchlm.ops.matmul import MatMul
from scratchlm.ops.reduction import Max, Mean, Sum
from scratchlm.ops.shape import GetItem, Reshape, Transpose
from scratchlm.ops.where import Where


def concat(tensors, axis=0):
    """Join tensors along an existing axis (``np.concatenate``)."""
    return Concat(axis)(*check_type("concat", "tensors", tensors, (list, tuple),
                                    "a list of tensors"))


def stack(tensors, axis=0):
    """Join same-shaped tensors along a new axis (``np.stack``)."""
    return Stack(axis)(*check_type("stack", "tensors", tensors, (list, tuple),
                                   "a list of tensors"))


def where(cond, a, b):
    """``a`` where ``cond`` is true, else ``b``, with broadcasting."""
    return Where()(cond, check_operand("where", "a", a), check_operand("where", "b", b))


# the module, not scratchlm.autograd's function of the same name
importlib.import_module("scratchlm.autograd.tensor").ops = sys.modules[__name__]

__all__ = ["Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "Exp", "Log", "Sqrt", "Tanh",
           "Cast", "Sum", "Mean", "Max", "Reshape", "Transpose", "GetItem", "Concat", "Stack",
           "Where", "concat", "stack", "where"]
