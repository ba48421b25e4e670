"""Exercises beyond "write one op's backward": a function, a whole op, a piece of an engine.

A :class:`Task` names what the student's file defines (``entry``: a function, or a
``sl.Function`` subclass for ``kind="op"``), the cases it is graded on and how:

* ``kind="function"``: the file's function is called on each case's inputs (copies) and its
  result compared with the hidden reference's (or checked by the task's own ``check``: a
  valid topological order, MLM masking's 80/10/10 by statistics);
* ``kind="op"``: the file's Function class runs ``forward`` then ``backward`` for a random
  cotangent c; the output is compared with the hidden reference's forward, and each gradient
  with central differences of ⟨reference(x), c⟩ in float64 — so the gradients are graded by
  a numerical gradient check, never by the reference's backward.

Grading is split in two so that a grader outside the student's process can trust it:
:func:`run_case` runs the student's code and returns plain data (arrays, numbers, lists);
:func:`check_case` compares that data with what :func:`prepare_task` computed from the hidden
reference, and raises :class:`~scratchlm.exercises.grader.CaseFailure` with a message meant
to teach: which input's gradient is wrong, the worst absolute and relative error and a few
entries side by side. The harness runs ``run_case`` in the child and ``check_case`` in the
parent.

The references live in ``scratchlm/exercises/reference/``, a folder with no ``__init__.py``:
the package's ``find:`` leaves it out of a built package, and ``release`` never copies it.
"""

import copy
import importlib
import importlib.util
from dataclasses import dataclass, field

import numpy as np

from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.runner import call, float_inputs, run_op, unchanged

#: what the hidden reference's modules are called (under it, one module per track)
REFERENCE_PACKAGE = "scratchlm.exercises.reference"

#: float64 agreement of an output with the hidden reference
OUTPUT_TOLERANCE = dict(rtol=1e-7, atol=1e-9)
#: a gradient against central differences (ε = 1e-6: error ~1e-9 on values of order 1)
GRADIENT_TOLERANCE = dict(rtol=1e-4, atol=1e-6)
#: the step of the central differences
EPS = 1e-6


class ReferenceMissing(Exception):
    """The hidden reference is not in this installation (a student's copy), and no stored
    results (:mod:`scratchlm.exercises.expected`) were found to grade against instead."""


def reference_available():
    """Whether the hidden reference is here (the instructor's source tree)."""
    try:
        return importlib.util.find_spec(REFERENCE_PACKAGE) is not None
    except ModuleNotFoundError:
        return False


@dataclass(frozen=True)
class TaskCase:
    label: str
    #: make(rng) -> the positional inputs (arrays, numbers, lists)
    make: object
    #: keyword arguments (of the function, or of an op's constructor)
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    track: int
    points: int
    formula: str
    task: str
    hints: tuple
    #: the name the student's file defines
    entry: str
    #: the Python source of the file to complete (imports and the stub)
    stub: str
    #: "module:attribute" of the hidden reference, the module under REFERENCE_PACKAGE
    solution: str
    cases: tuple
    kind: str = "function"
    #: names of the inputs (for the messages)
    input_names: tuple = ()
    #: names of the parts of the result, when it is a tuple
    output_names: tuple = ()
    #: run(student, inputs, config) -> plain data; default: call it (function) or
    #: forward + backward (op)
    run: object = None
    #: check(prepared, output) raises CaseFailure; default: compare with the expected
    check: object = None
    #: expect(prepared inputs, config, rng) -> expected; default: run the reference
    expect: object = None
    #: dotted names of the library's implementations of what is graded: a submission that
    #: calls one of them fails
    library: tuple = ()
    #: other names the file must define (an engine built over several exercises)
    needs: tuple = ()
    tolerance: dict = field(default_factory=lambda: dict(OUTPUT_TOLERANCE))
    #: how it is graded when not against the reference's result (statistics, properties)
    graded: str = ""
    #: kind of failure -> the number of the hint for it (:mod:`scratchlm.exercises.hints`)
    hint_for: dict = field(default_factory=dict)

    def reference(self):
        """The hidden reference (function or class), or :class:`ReferenceMissing`."""
        module_name, attribute = self.solution.split(":")
        try:
            module = importlib.import_module(f"{REFERENCE_PACKAGE}.{module_name}")
        except ModuleNotFoundError as error:
            if error.name and error.name.startswith(REFERENCE_PACKAGE):
                raise ReferenceMissing(
                    f"exercise {self.name} is graded against its hidden reference "
                    f"({REFERENCE_PACKAGE}.{module_name}), which only the instructor's "
                    "source tree has, or against the results stored by the release: name "
                    f"them with --expected RELEASE/expected (expected= in Python), or keep "
                    f"your file under the release's folder, where {self.name}.json is found "
                    "in RELEASE/expected") from None
            raise
        return getattr(module, attribute)


@dataclass(frozen=True)
class PreparedTask:
    label: str
    inputs: tuple
    config: dict
    expected: object
    #: the random cotangent of an op's output (None for a function)
    cotangent: object = None


def prepare_task(task, seed=0, stored=None):
    """Every case of ``task``: its inputs and what the hidden reference makes of them (or,
    given ``stored``, a :class:`~scratchlm.exercises.expected.Stored`, what it stored)."""
    rng = np.random.default_rng(seed)
    prepared = []
    for index, case in enumerate(task.cases):
        inputs = tuple(case.make(rng))
        cotangent = None
        if stored is not None:
            expected = stored.expected(index, case.label, inputs)
            if task.kind == "op" and task.expect is None:  # drawn as _op_expected draws it
                cotangent = rng.standard_normal(np.shape(expected["y"]))
        elif task.expect is not None:
            expected = task.expect(inputs, case.config, rng)
        elif task.kind == "op":
            expected, cotangent = _op_expected(task.reference(), inputs, case.config, rng)
        else:
            expected = (task.run or call)(task.reference(), copy.deepcopy(inputs), case.config)
        prepared.append(PreparedTask(case.label, inputs, case.config, expected, cotangent))
    return prepared


def run_case(task, student, prepared):
    """Run the student's ``entry`` on one prepared case; its result as plain data. Raises
    CaseFailure (the student's code raised, or changed its inputs)."""
    inputs = copy.deepcopy(prepared.inputs)
    if task.kind == "op":
        return run_op(student, inputs, prepared.config, prepared.cotangent, task.input_names)
    output = (task.run or call)(student, inputs, prepared.config)
    unchanged(prepared.inputs, inputs, task.input_names, "it")
    return output


def check_case(task, prepared, output):
    """Raise CaseFailure unless ``output`` (from :func:`run_case`) is right."""
    if task.check is not None:
        return task.check(prepared, output)
    if task.kind == "op":
        return check_op(task, prepared, output)
    return compare(output, prepared.expected, task.output_names or ("result",), task.tolerance)


# ------------------------------------------------------------------------------ op kind
def _op_expected(reference, inputs, config, rng):
    """The reference's output and the central differences of ⟨reference(x), c⟩ for a
    random cotangent c."""
    def forward(arrays):
        op = reference(**config)
        op.needs_input_grad = tuple(float_inputs(arrays))
        return np.asarray(op.forward(*arrays), dtype=np.float64)

    y = forward(copy.deepcopy(inputs))
    cotangent = rng.standard_normal(y.shape)
    grads = []
    for i, x in enumerate(inputs):
        if not (isinstance(x, np.ndarray) and x.dtype.kind == "f"):
            grads.append(None)
            continue
        arrays = list(copy.deepcopy(inputs))
        flat = arrays[i].reshape(-1)
        grad = np.empty(flat.size)
        for j in range(flat.size):
            original = flat[j]
            flat[j] = original + EPS
            plus = float((forward(arrays) * cotangent).sum())
            flat[j] = original - EPS
            minus = float((forward(arrays) * cotangent).sum())
            flat[j] = original
            grad[j] = (plus - minus) / (2 * EPS)
        grads.append(grad.reshape(x.shape))
    return {"y": y, "grads": grads}, cotangent


def check_op(task, prepared, output):
    expected = prepared.expected
    compare(output["y"], expected["y"], ("forward output",), task.tolerance,
            against="the hidden reference")
    names = task.input_names or tuple(f"input {i}" for i in range(len(expected["grads"])))
    wrong = []  # every wrong gradient, not only the first
    for name, grad, want in zip(names, output["grads"], expected["grads"]):
        if want is None:
            continue
        if grad is None:
            wrong.append(f"no gradient of {name} came back")
            continue
        try:
            compare(grad, want, (f"the gradient of {name}",), GRADIENT_TOLERANCE,
                    against="central differences of ⟨f(x), c⟩ for a random cotangent c")
        except CaseFailure as failure:
            wrong.append(str(failure))
    if wrong:
        raise CaseFailure("\n".join(wrong))


# ------------------------------------------------------------------- comparing results
def compare(actual, expected, names, tolerance, against="the hidden reference", path=None):
    """Raise CaseFailure at the first part of ``actual`` that differs from ``expected``
    (nested tuples, lists and dicts of arrays and numbers)."""
    path = path or names[0]
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(actual) != set(expected):
            raise CaseFailure(f"{path} should be a dict with keys {sorted(expected)}")
        for key in expected:
            compare(actual[key], expected[key], names, tolerance, against, f"{path}[{key!r}]")
        return
    if isinstance(expected, (tuple, list)) and not _numeric_list(expected):
        if not isinstance(actual, (tuple, list)) or len(actual) != len(expected):
            raise CaseFailure(f"{path} should be a sequence of {len(expected)} items, got "
                              f"{_short(actual)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            part = names[i] if len(names) == len(expected) and path == names[0] else f"{path}[{i}]"
            compare(a, e, names, tolerance, against, part)
        return
    if expected is None or isinstance(expected, str):
        if actual != expected:
            raise CaseFailure(f"{path} is {_short(actual)}; expected {_short(expected)}")
        return
    try:
        a = np.asarray(actual, dtype=np.float64)
    except (TypeError, ValueError):
        raise CaseFailure(f"{path} is {_short(actual)}, not numbers") from None
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape and isinstance(expected, list) and len(expected) <= 20:
        raise CaseFailure(f"{path} is {_short(actual)}; {against} gives {_short(expected)}")
    if a.shape != e.shape:
        raise CaseFailure(f"{path} has shape {a.shape}; {against} gives {e.shape}")
    with np.errstate(all="ignore"):
        if np.allclose(a, e, equal_nan=True, **tolerance):
            return
        raise CaseFailure(side_by_side(path, a, e, tolerance, against))


def side_by_side(what, actual, expected, tolerance, against):
    """'{what} differs from {against}: …', the worst errors and up to four entries."""
    both_inf = np.isinf(actual) & np.isinf(expected) & (np.sign(actual) == np.sign(expected))
    error = np.where(both_inf, 0.0, np.abs(actual - expected))
    error = np.where(np.isnan(error), np.inf, error)
    bad = ~(error <= tolerance["atol"] + tolerance["rtol"] * np.abs(expected))
    relative = error / np.maximum(np.abs(expected), 1e-12)
    order = np.argsort(error, axis=None)[::-1][:4]
    rows = []
    for k in order:
        index = tuple(int(i) for i in np.unravel_index(k, actual.shape)) if actual.ndim else ()
        rows.append(f"    {str(index):>14}  {actual.flat[k]: .8g}  {expected.flat[k]: .8g}  "
                    f"{error.flat[k]:.2e}")
    return (f"{what} differs from {against}: {int(bad.sum())} of {bad.size} entries off; "
            f"worst absolute error {error.max():.3e}, worst relative error "
            f"{relative.max():.3e}\n    {'index':>14}  {'yours':>14}  {'expected':>14}  "
            "abs error\n" + "\n".join(rows))


def _numeric_list(value):
    return all(isinstance(v, (int, float, np.number, bool)) for v in value) and len(value) > 0


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"



# ------------------------------------------------------------------------------- stubs
OP_IMPORTS = """\
import math

import numpy as np

import scratchlm as sl
"""


def op_stub(class_name, init, inputs, doc):
    """The file to complete for an op: a ``sl.Function`` subclass with ``__init__`` taking
    ``init`` (e.g. "eps=1e-6"; "" for none) and forward(*inputs) and backward to write."""
    names = [part.split("=")[0].strip() for part in init.split(",") if part.strip()]
    constructor = ""
    if names:
        constructor = (f"    def __init__(self, {init}):\n"
                       + "".join(f"        self.{n} = {n}\n" for n in names) + "\n")
    returns = ", ".join(f"∂L/∂{name}" for name in inputs)
    return (f"{OP_IMPORTS}\n\nclass {class_name}(sl.Function):\n    \"\"\"{doc}\"\"\"\n\n"
            f"{constructor}"
            f"    def forward(self, {', '.join(inputs)}):\n"
            "        raise NotImplementedError(\"compute the output; save on self what "
            "backward needs\")\n\n"
            "    def backward(self, g):\n"
            f"        raise NotImplementedError(\"return {returns} from g and what forward "
            "saved\")\n")


def function_stub(signature, doc, imports="import numpy as np\n"):
    """The file to complete for a function."""
    return (f"{imports}\n\ndef {signature}:\n    \"\"\"{doc}\"\"\"\n"
            "    raise NotImplementedError(\"write it\")\n")
