"""Running a student's code on one case: what the grading child does, and nothing more.

The child gets a case's inputs (never an expected value, a tolerance or a prepared answer),
calls the student's function or op on copies of them and hands back plain data: arrays,
numbers, strings, lists, tuples and dicts (:func:`encode`). Judging that data is the
parent's job (:mod:`scratchlm.exercises.tasks`, :mod:`scratchlm.exercises.grader`).

This module imports only NumPy and the standard library, so the sandboxed child can load it
without the library (:mod:`scratchlm.exercises.child`).

While an op's ``backward`` runs, every ``forward`` of its class and of the classes it
inherits from raises :class:`NumericalDerivative`: a backward that evaluates the forward
again to take differences of it (central differences, Richardson extrapolation) computes a
number, not a derivative, and fails with "a numerical derivative is not a derivation".
"""

import copy

import numpy as np

from scratchlm.exercises.errors import CaseFailure, DelegatesToLibrary

#: the message of a backward that calls its op's forward
NOT_A_DERIVATION = ("a numerical derivative is not a derivation: backward called its op's "
                    "forward; derive the gradient and compute it from what forward saved")


class NumericalDerivative(BaseException):
    """Raised by an op's forward while its backward runs. A BaseException, so that a
    backward's ``except Exception`` does not swallow it."""


def attempt(what, function, *args, **kwargs):
    """``function(*args, **kwargs)``, an exception in it turned into a CaseFailure."""
    try:
        return function(*args, **kwargs)
    except NotImplementedError as error:
        raise CaseFailure(f"{what} is not written yet: {error}") from None
    except DelegatesToLibrary as error:
        raise CaseFailure(f"{what} does not count: {error}") from None
    except NumericalDerivative as error:
        raise CaseFailure(f"{what} does not count: {error}") from None
    except RecursionError:
        raise CaseFailure(f"{what} raised RecursionError: recursion deeper than Python allows "
                          "(a deep graph needs an explicit stack, not recursion)") from None
    except SystemExit as error:
        raise CaseFailure(f"{what} raised SystemExit: {error} (sys.exit ends the program; "
                          "return the result instead)") from None
    except Exception as error:
        raise CaseFailure(f"{what} raised {type(error).__name__}: {error}") from None


def call(student, inputs, config):
    """A function task's default run: the student's function on the inputs."""
    return attempt(getattr(student, "__name__", "it"), student, *inputs, **config)


def float_inputs(inputs):
    """Per input, whether it is a float array (one that gets a gradient)."""
    return [isinstance(x, np.ndarray) and x.dtype.kind == "f" for x in inputs]


def run_op(student_class, inputs, config, cotangent, names=()):
    """Forward, then backward for ``cotangent``: {"y": output, "grads": one per input, None
    for the inputs that get none}. Raises CaseFailure for what the student's op did wrong
    that only this process can see (it raised, changed its inputs or g, or its backward
    called forward)."""
    is_float = float_inputs(inputs)
    names = names or tuple(f"input {i}" for i in range(len(inputs)))
    op = attempt(f"{getattr(student_class, '__name__', 'it')}(…)", student_class, **config)
    op.needs_input_grad = tuple(is_float)
    originals = copy.deepcopy(inputs)
    y = np.asarray(attempt("forward", op.forward, *inputs))
    unchanged(originals, inputs, names, "forward")
    g = cotangent.copy()
    if y.shape != g.shape:
        raise CaseFailure(f"forward's output has shape {y.shape}; expected {g.shape}")
    with forward_forbidden(type(op)):
        grads = attempt("backward", op.backward, g)
    if not np.array_equal(g, cotangent):
        raise CaseFailure("backward modified its incoming gradient g in place; the engine may "
                          "share g with other ops, so write into new arrays")
    out = [None if grad is None else np.asarray(grad, dtype=np.float64)
           for grad in gradients_per_input(grads, inputs, is_float, names)]
    return {"y": y, "grads": out}


class forward_forbidden:
    """While in the block, every ``forward`` defined by ``cls`` or a class it inherits from
    raises :class:`NumericalDerivative`, however it is reached (by name, or a reference kept
    earlier: its code is swapped, where it has no closure; otherwise the attribute)."""

    def __init__(self, cls):
        self.classes = [c for c in cls.__mro__ if isinstance(vars(c).get("forward"),
                                                             type(_forbidden))]

    def __enter__(self):
        self.swapped, self.replaced = [], []
        for cls in self.classes:
            function = vars(cls)["forward"]
            if not function.__code__.co_freevars:
                self.swapped.append((function, function.__code__))
                function.__code__ = _forbidden.__code__
            else:
                self.replaced.append((cls, function))
                cls.forward = _forbidden
        return self

    def __exit__(self, *exc):
        for function, code in self.swapped:
            function.__code__ = code
        for cls, function in self.replaced:
            cls.forward = function
        return False


def _forbidden(*args, **kwargs):
    # runs with the globals of the forward whose code it replaced: only builtins here
    raise __import__("scratchlm.exercises.runner", fromlist=["NumericalDerivative"]) \
        .NumericalDerivative(__import__("scratchlm.exercises.runner", fromlist=["x"])
                             .NOT_A_DERIVATION)


def sum_to_shape(grad, shape):
    """``grad`` summed over the axes broadcasting added or stretched to reach ``shape``;
    ValueError when it cannot be."""
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ValueError(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape)
                                       if n == 1 and grad.shape[extra + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    grad = grad.reshape(grad.shape[extra:]) if extra else grad
    if grad.shape != tuple(shape):
        raise ValueError(shape)
    return grad


def gradients_per_input(grads, inputs, is_float, names):
    """Gradients as a list, one per input, each summed to its input's shape (None for the
    inputs that get none); CaseFailure when backward's result does not have that form."""
    if not isinstance(grads, (tuple, list)):
        grads = [grads]
    if len(grads) != len(inputs):
        raise CaseFailure(f"backward returned {len(grads)} gradient(s) for {len(inputs)} "
                          f"input(s) ({', '.join(names)}); return one per input, in order, "
                          "None for integer ids or targets")
    checked = []
    for name, grad, x, differentiable in zip(names, grads, inputs, is_float):
        if not differentiable:
            checked.append(None)
            continue
        if grad is None:
            raise CaseFailure(f"backward returned None for {name}, which needs a gradient")
        try:
            grad = np.asarray(grad, dtype=np.float64)
            checked.append(sum_to_shape(grad, x.shape))
        except (TypeError, ValueError):
            raise CaseFailure(f"the gradient of {name} has shape {np.shape(grad)}, but {name} "
                              f"has shape {x.shape}; expected that shape (or one that "
                              "broadcasts to it)") from None
    return checked


def unchanged(originals, inputs, names, who):
    """CaseFailure if ``who`` changed an input array in place."""
    for i, (before, after) in enumerate(zip(originals, inputs)):
        name = names[i] if i < len(names) else f"input {i}"
        if isinstance(before, np.ndarray):
            same = (isinstance(after, np.ndarray) and before.shape == after.shape
                    and np.array_equal(before, after, equal_nan=before.dtype.kind == "f"))
            if not same:
                raise CaseFailure(f"{who} modified its input {name} in place; compute into new "
                                  "arrays")


# ---------------------------------------------------------- plain data across a process
#: at most this many numbers in one array sent across (a real answer has a few thousand)
ARRAY_LIMIT = 1_000_000


def encode(value, depth=0):
    """``value`` (arrays, numbers, strings, None, lists, tuples, dicts) as JSON data."""
    if depth > 20:
        raise ValueError("nested too deep")
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        kind = "f" if array.dtype.kind in "fc" else array.dtype.kind
        if kind not in "fiub":
            raise ValueError(f"an array of dtype {array.dtype}")
        if array.size > ARRAY_LIMIT:
            raise ValueError(f"an array of {array.size} numbers")
        data = array.astype(np.float64 if kind == "f" else np.int64).ravel().tolist()
        return {"array": list(array.shape), "kind": kind, "data": data}
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, tuple):
        return {"tuple": [encode(v, depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {"dict": [[str(k), encode(v, depth + 1)] for k, v in value.items()]}
    raise ValueError(f"a {type(value).__name__} cannot be sent back")


def decode(value, depth=0):
    """What :func:`encode` wrote, read back as plain data: float64, int64 or bool arrays of
    at most ARRAY_LIMIT numbers, numbers, strings, None, lists, tuples and dicts; ValueError
    for anything else."""
    if depth > 22:
        raise ValueError("nested too deep")
    if isinstance(value, list):
        return [decode(v, depth + 1) for v in value]
    if not isinstance(value, dict):
        if isinstance(value, (bool, int, float, str)) or value is None:
            return value
        raise ValueError("not plain data")
    if "array" in value:
        shape, data, kind = value["array"], value.get("data"), value.get("kind")
        if (not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)
                or len(shape) > 32 or not isinstance(data, list)
                or len(data) != int(np.prod(shape, dtype=np.int64)) or len(data) > ARRAY_LIMIT
                or kind not in ("f", "i", "u", "b")
                or not all(type(v) in (int, float, bool) for v in data)):
            raise ValueError("an array is not {shape, kind, data} of plain numbers")
        dtype = {"f": np.float64, "i": np.int64, "u": np.int64, "b": bool}[kind]
        try:
            return np.array(data, dtype=dtype).reshape(shape)
        except OverflowError:
            raise ValueError("an array is not {shape, kind, data} of plain numbers") from None
    if "tuple" in value and isinstance(value["tuple"], list):
        return tuple(decode(v, depth + 1) for v in value["tuple"])
    if "dict" in value and isinstance(value["dict"], list):
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in value["dict"]):
            raise ValueError("a dict is not a list of [key, value]")
        return {str(k): decode(v, depth + 1) for k, v in value["dict"]}
    raise ValueError("not plain data")
