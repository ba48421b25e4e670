"""The engine and the ops stay short enough to read beside their formulas.

Code lines are the lines of a function that are neither blank, nor a comment, nor its
docstring, its ``def`` line included. An op's size is the code lines of its ``forward`` and
``backward`` and of every method of the op that they call, and that those call in turn
(``self.check_and_save_targets(...)`` counts as much as the lines written in ``forward``).
A method other than ``__init__``, ``forward`` and ``backward`` that stores something on the
op says so in its name (``save``).
"""

import ast
import importlib
import inspect
import pkgutil
import textwrap

import pytest

import scratchlm
from scratchlm.autograd import engine
from scratchlm.autograd.function import Function

#: The longest an op may be (forward + backward + what they call), in code lines.
MAX_OP_LINES = 45
#: Hand-counted: Sum is forward 3 + backward 3 + the two helpers it calls, 3 and 2.
SUM_LINES = 11


def code_lines(function):
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    first = definition.body[0]
    docstring = set()
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        docstring = set(range(first.lineno, first.end_lineno + 1))
    start = definition.lineno  # after any decorator
    return sum(1 for number, line in enumerate(source.splitlines(), 1)
               if number >= start and number not in docstring and line.strip()
               and not line.strip().startswith("#"))


def methods_called(function):
    """The names ``n`` of every ``self.n(...)`` call in ``function``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {node.func.attr for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"}


def op_size(op_class):
    """(code lines, the methods counted) of forward, backward and what they call."""
    todo, counted, total = ["forward", "backward"], set(), 0
    while todo:
        name = todo.pop()
        method = getattr(op_class, name, None)
        if name in counted or not inspect.isfunction(method) or \
                method.__qualname__.startswith("Function."):
            continue
        counted.add(name)
        total += code_lines(method)
        todo += sorted(methods_called(method))
    return total, counted


def library_ops():
    """Every Function subclass defined in scratchlm (reference ops and fast ones)."""
    for package in ("scratchlm.functional", "scratchlm.ops", "scratchlm.nn", "scratchlm.fast"):
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
    found, todo = set(), [Function]
    while todo:
        for subclass in todo.pop().__subclasses__():
            if subclass.__module__.startswith("scratchlm.") and subclass not in found:
                found.add(subclass)
                todo.append(subclass)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


OPS = [op for op in library_ops() if "forward" in vars(op) or "backward" in vars(op)]


def test_the_count_is_what_a_hand_count_gives():
    from scratchlm.ops.reduction import Sum

    assert op_size(Sum) == (SUM_LINES, {"forward", "backward", "_save_axes_and_shape",
                                        "_grad_kept"})
    assert code_lines(code_lines) == 12


def test_the_reference_engine_and_a_call_stay_short():
    assert code_lines(engine.run_backward) <= 25
    assert code_lines(Function.__call__) <= 25


@pytest.mark.parametrize("op", [op for op in OPS if not op.__module__.startswith(
    "scratchlm.fast")], ids=lambda op: op.__name__)
def test_a_reference_op_is_its_formula(op):
    size, counted = op_size(op)
    assert size <= MAX_OP_LINES, (f"{op.__name__}: {size} code lines in "
                                  f"{sorted(counted)}")


@pytest.mark.parametrize("op", OPS, ids=lambda op: f"{op.__module__}.{op.__name__}")
def test_a_method_that_stores_on_the_op_says_so(op):
    for name, method in vars(op).items():
        if name in ("__init__", "forward", "backward") or not inspect.isfunction(method):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
        stores = [node for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id == "self"]
        assert not stores or "save" in name, (
            f"{op.__name__}.{name} sets self.{stores[0].attr}: call it *save*, or do it in "
            "forward")


def test_every_library_op_is_counted():
    names = {op.__name__ for op in OPS}
    assert {"LayerNorm", "CrossEntropy", "ScaledDotProductAttention", "MatMul",
            "LayerNormRowBlocks"} <= names
    assert scratchlm.autograd.function.Function not in OPS
