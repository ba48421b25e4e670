"""Grading an exercise: the student's Function against central differences and the library.

For every case of the exercise (float64 inputs, a random cotangent g) the grader checks, in
this order, stopping a case at its first failure:

1. forward runs, leaves its inputs unchanged and agrees with the library's op (the forward
   inherited from the skeleton, the library's own, does; this catches an edited one);
2. backward runs, returns one gradient per input shaped like it (or like the broadcast
   shape), ``None`` for integer inputs, and leaves g unchanged;
3. the gradients pass :func:`scratchlm.gradcheck_op` — the op's backward alone against
   central differences of ⟨f(x), c⟩ for a random c (:func:`scratchlm.gradcheck` through the
   engine when integer ids or targets, or an absent optional input, are among the inputs,
   since those cannot be perturbed);
4. the gradients equal the library op's own backward to float64 precision.

The answer key is the library's reference class of the op (the skeleton's parent). So that
a backward cannot pass by calling it (``super(skeletons.Softmax, self).backward(g)``,
``Softmax.backward(self, g)``, or the op again through the engine), the grader runs with the
fast layer off (``sl.use_fast(False)``) and, while the student's class runs, replaces the
reference's ``backward`` and that of any fast subclass registered for it by one that raises
:class:`DelegatesToLibrary`; a case whose backward ends up there (or is one of those
functions, ``backward = Softmax.backward``) fails and says so. Grading the reference class
itself (or a registered fast version) grades the library.

That is :func:`grade`, in this process, for a class you trust (a notebook). A file graded
with :func:`scratchlm.exercises.harness.grade_file` (``grade``, ``grade-all``) runs in a
sandboxed child that never sees the library: there the child only runs forward and backward
(and fails a backward that calls forward), and this process judges the raw results it sent
back with :func:`check_outputs` — checks 1, 2 and 4 — and no gradcheck of the student's op.

A student's copy grades against the results ``release`` stored instead (``expected=``, or
found near the graded file: :mod:`scratchlm.exercises.expected`); the checks are the same.
"""

import re
import types
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import scratchlm as sl
from scratchlm.exercises.answers import prepare_cases
from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.errors import CaseFailure, DelegatesToLibrary
from scratchlm.exercises.expected import resolve
from scratchlm.exercises.runner import gradients_per_input
from scratchlm.exercises.tasks import Task, check_case, prepare_task, run_case
from scratchlm.fast.registry import fast_version

#: float64 agreement with the library: different but correct formulas differ by ~1e-15
LIBRARY_TOLERANCE = dict(rtol=1e-7, atol=1e-9)
#: a failure shows this many of the worst entries, side by side with the library's
WORST_SHOWN = 4


#: the devices the fast layer registers implementations for
FAST_DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class CaseResult:
    label: str
    #: None when the case passed, else what went wrong
    failure: str | None = None

    @property
    def passed(self):
        return self.failure is None


@dataclass(frozen=True)
class GradeReport:
    exercise: str
    student: str
    cases: tuple
    #: None when every case ran and the result can be trusted; else why the grade failed as a
    #: whole (a time-out, a crash, an early exit, a file that patched what the grader uses)
    error: str | None = None
    #: what the graded file printed (files graded in a separate process only)
    printed: str = ""
    #: the hint shown when it failed (1-based), why that one, and the progress in a line:
    #: set by :func:`scratchlm.exercises.hints.unlock` (``grade`` on the command line);
    #: otherwise the first hint, with no progress kept
    hint: int = 1
    hint_why: str = ""
    hint_note: str = ""
    #: the sandbox the file ran in ("bwrap", "basic"; "" when graded in this process)
    sandbox: str = ""

    @property
    def passed(self):
        return self.error is None and bool(self.cases) and all(case.passed
                                                               for case in self.cases)

    @property
    def max_points(self):
        return EXERCISES[self.exercise].points if self.exercise in EXERCISES else 0

    @property
    def points(self):
        """The points earned: the exercise's points shared equally by its cases, none when
        the grade failed as a whole."""
        if self.error is not None or not self.cases:
            return 0.0
        passed = sum(case.passed for case in self.cases)
        return round(self.max_points * passed / len(self.cases), 2)

    @property
    def lost(self):
        """Why points were lost, in one line ('' when none were)."""
        if self.passed:
            return ""
        if self.error is not None:
            return _one_line(self.error)
        failed = [case for case in self.cases if not case.passed]
        return (f"{len(failed)} of {len(self.cases)} cases fail; first: {failed[0].label}: "
                + _one_line(failed[0].failure))

    def __str__(self):
        passed = sum(case.passed for case in self.cases)
        verdict = "PASSED" if self.passed else "FAILED"
        if self.error is not None and not self.cases:
            lines = [f"{self.exercise} ({self.student}): {verdict}, not graded"]
        else:
            lines = [f"{self.exercise} ({self.student}): {verdict}, {passed} of "
                     f"{len(self.cases)} cases pass"]
        if self.error is not None:
            lines.extend("  " + line for line in self.error.splitlines())
        for case in self.cases:
            lines.append(f"  {'ok  ' if case.passed else 'FAIL'} {case.label}")
            if not case.passed:
                lines.extend("         " + line for line in case.failure.splitlines())
        lines.append(f"  points: {self.points:g} of {self.max_points}")
        exercise = EXERCISES.get(self.exercise)
        if not self.passed and exercise is not None and exercise.hints:
            count = len(exercise.hints)
            number = min(max(self.hint, 1), count)
            why = f" ({self.hint_why})" if self.hint_why else ""
            lines.append(f"  hint {number} of {count}{why}: {exercise.hints[number - 1]}")
            if self.hint_note:
                lines.append(f"  {self.hint_note}")
            if number < count:
                lines.append(f"  next: python -m scratchlm.exercises show {self.exercise} "
                             f"--hint {number + 1}")
        if self.sandbox:
            lines.append(f"  graded in the {self.sandbox} sandbox")
        if self.printed:
            lines.append("what the file printed (each line marked |):")
            lines.extend("  | " + line for line in self.printed.rstrip("\n").splitlines())
        return "\n".join(lines)


def _one_line(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def get_exercise(name):
    """The exercise called ``name``, or a KeyError listing them all."""
    if name not in EXERCISES:
        raise KeyError(f"no exercise named {name!r}; the exercises are {sorted(EXERCISES)}")
    return EXERCISES[name]


def grade(exercise_name, student_function_class, seed=0, expected=None):
    """Grade ``student_function_class`` (a subclass of ``sl.Function``) on every case of the
    exercise; returns a :class:`GradeReport` (``.passed``, and ``print`` it to read it).
    ``expected``: a folder of stored results to grade against instead of the answer key
    (:mod:`scratchlm.exercises.expected`; a student's copy has ``RELEASE/expected``).

    This runs the class in this process: for a file you do not trust (it could loop, exit or
    patch NumPy), grade it with :func:`scratchlm.exercises.harness.grade_file`, as
    ``python -m scratchlm.exercises grade`` does."""
    exercise = get_exercise(exercise_name)
    stored = resolve(exercise, expected, seed=seed)
    if isinstance(exercise, Task):
        return grade_task(exercise, student_function_class, seed, stored)
    if not (isinstance(student_function_class, type)
            and issubclass(student_function_class, sl.Function)):
        raise TypeError(f"grade({exercise_name!r}, …): expected a subclass of sl.Function "
                        f"(the class itself, not an instance), got {student_function_class!r}")
    report, _ = grade_prepared(exercise, student_function_class,
                               prepare_cases(exercise, seed, stored))
    return report


def grade_task(task, student, seed=0, stored=None):
    """Grade ``student`` (the function or class the task's file defines) in this process,
    against the hidden reference or the ``stored`` results."""
    if task.kind == "op" and not (isinstance(student, type) and issubclass(student, sl.Function)):
        raise TypeError(f"grade({task.name!r}, …): expected a subclass of sl.Function (the "
                        f"class itself), got {student!r}")
    if task.kind != "op" and not callable(student):
        raise TypeError(f"grade({task.name!r}, …): expected your function {task.entry}, got "
                        f"{student!r}")
    prepared = prepare_task(task, seed, stored)
    results = []
    with sl.use_fast(False), library_functions_disabled(task.library, student):
        for case in prepared:
            try:
                check_case(task, case, run_case(task, student, case))
                results.append(CaseResult(case.label))
            except CaseFailure as failure:
                results.append(CaseResult(case.label, str(failure)))
    name = getattr(student, "__name__", task.entry)
    return GradeReport(task.name, name, tuple(results))


def _resolve(dotted):
    """(owner, attribute name, object) for 'package.module.function' or '….Class.method'."""
    import importlib
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:-1]:
            owner = getattr(owner, attribute)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ImportError(dotted)


def _code_trap(*args, **kwargs):
    # runs with the globals of the function whose code it replaced: only builtins here
    raise __import__("scratchlm.exercises.errors", fromlist=["DelegatesToLibrary"]) \
        .DelegatesToLibrary("it delegates to the library's implementation "
                            f"({__import__('sys')._getframe().f_code.co_name}); write it "
                            "yourself")


@contextmanager
def library_functions_disabled(names, student=None):
    """While in the block, the library's functions and methods named (dotted) raise
    :class:`DelegatesToLibrary`, however they are reached (by name, or a reference kept
    before the block: their code is swapped), unless ``student`` is one of them (grading
    the library itself)."""
    swapped, replaced = [], []
    try:
        for dotted in names:
            owner, attribute, original = _resolve(dotted)
            if original is student:
                continue
            if isinstance(original, types.FunctionType) and not original.__code__.co_freevars:
                swapped.append((original, original.__code__))
                original.__code__ = _code_trap.__code__.replace(co_name=dotted)
                continue

            def trap(*args, _where=dotted, **kwargs):
                raise DelegatesToLibrary(f"it delegates to the library's implementation "
                                         f"({_where}); write it yourself")
            trap.__name__ = getattr(original, "__name__", attribute)
            replaced.append((owner, attribute, original))
            setattr(owner, attribute, trap)
        yield
    finally:
        for function, code in reversed(swapped):
            function.__code__ = code
        for holder, key, value in reversed(replaced):
            setattr(holder, key, value)


def grade_prepared(exercise, student_class, prepared):
    """Grade ``student_class`` on the prepared cases. Returns the report and, per case, the
    student's forward output and gradients (one per input, None for integer inputs) when
    the case passed, else None: what a grader outside the process checks again."""
    results, outputs = [], []
    with sl.use_fast(False):
        for case in prepared:
            try:
                outputs.append(_grade_case(exercise, student_class, case))
                results.append(CaseResult(case.label))
            except CaseFailure as failure:
                outputs.append(None)
                results.append(CaseResult(case.label, str(failure)))
    return GradeReport(exercise.name, student_class.__name__, tuple(results)), outputs


def check_outputs(exercise, case, y, grads):
    """Raise :class:`CaseFailure` unless ``y`` and ``grads`` (one per input, None for the
    integer ones) are the library's output and gradients for the prepared ``case``. Every
    wrong gradient is named, one line each (not only the first: a student who fixes ∂q
    should learn at once that ∂k is wrong too)."""
    _compare("forward output", y, case.expected_y, exercise.name)
    if len(grads) != len(case.expected_grads):
        raise CaseFailure(f"{len(grads)} gradient(s) came back for "
                          f"{len(case.expected_grads)} input(s)")
    wrong = []
    for name, grad, expected in zip(exercise.input_names, grads, case.expected_grads):
        if expected is None:
            continue
        if grad is None:
            wrong.append(f"no gradient of {name} came back")
            continue
        try:
            _compare(f"gradient of {name}", grad, expected, exercise.name)
        except CaseFailure as failure:
            wrong.append(str(failure))
    if wrong:
        raise CaseFailure("\n".join(wrong))


def library_implementations(reference):
    """The reference class and the fast subclasses registered for it, on every device."""
    with sl.use_fast(True):  # fast_version finds nothing while the fast layer is off
        fast = [fast_version(reference, device) for device in FAST_DEVICES]
    return [reference] + [cls for cls in fast if cls is not None]


@contextmanager
def library_backward_disabled(reference, student_class):
    """While in the block, the library's backward of the op raises
    :class:`DelegatesToLibrary` (the reference's and its registered fast versions'), unless
    ``student_class`` is one of those classes (grading the library itself). Yields the
    library's backward functions that were replaced, as {function: where it is defined}."""
    classes = library_implementations(reference)
    if student_class in classes:
        yield {}
        return
    originals = [(cls, cls.__dict__["backward"]) for cls in classes if "backward" in vars(cls)]
    for cls, _ in originals:
        cls.backward = _delegation_trap(cls)
    try:
        yield {original: _where(cls) for cls, original in originals}
    finally:
        for cls, original in originals:
            cls.backward = original


def _where(cls):
    return f"{cls.__module__}.{cls.__qualname__}.backward"


def _delegation_trap(cls):
    where = _where(cls)

    def backward(self, *grads):
        raise DelegatesToLibrary(f"it delegates to the library's implementation ({where}); "
                                 "derive the gradient and compute it yourself from what "
                                 "forward saved")
    return backward


def _grade_case(exercise, student_class, prepared):
    with library_backward_disabled(exercise.reference_class, student_class) as library:
        return _grade_student(exercise, student_class, prepared.case, prepared.inputs,
                              prepared.is_float, prepared.expected_y, prepared.expected_grads,
                              prepared.cotangent, library)


def _grade_student(exercise, student_class, case, inputs, is_float, expected_y,
                   expected_grads, cotangent, library):
    names = exercise.input_names
    student = _construct(student_class, case.config)
    student.needs_input_grad = tuple(is_float)
    copies = [None if x is None else x.copy() for x in inputs]
    y = _run(f"{student_class.__name__}.forward", student.forward, *copies)
    for name, x, copy in zip(names, inputs, copies):
        if x is not None and not np.array_equal(x, copy):
            raise CaseFailure(f"forward modified its input {name} in place; compute into new "
                              "arrays")
    _compare("forward output", y, expected_y, exercise.name)

    if student_class.backward in library:  # ``backward = Softmax.backward`` in the class
        raise CaseFailure(f"{student_class.__name__}.backward does not count: it is the "
                          f"library's implementation ({library[student_class.backward]}); "
                          "derive the gradient and compute it yourself from what forward saved")
    g = cotangent.copy()
    grads = _run(f"{student_class.__name__}.backward", student.backward, g)
    if not np.array_equal(g, cotangent):
        raise CaseFailure("backward modified its incoming gradient g in place; the engine may "
                          "share g with other ops, so write into new arrays")
    grads = gradients_per_input(grads, inputs, is_float, names)

    try:
        _gradcheck(student_class, case.config, inputs, is_float)
    except sl.GradcheckError as error:
        checked = [name for name, differentiable in zip(names, is_float) if differentiable]
        index = re.match(r"gradcheck failed for input (\d+)", str(error))
        which = f"{checked[int(index[1])]} (gradcheck's input {index[1]})" if index else "an input"
        raise CaseFailure(f"the gradient of {which} differs from central differences:\n"
                          f"{error}") from None
    except DelegatesToLibrary as error:
        raise CaseFailure(f"{student_class.__name__}.backward does not count: {error}") from None
    except (Exception, SystemExit) as error:
        raise CaseFailure(f"gradcheck could not run: {type(error).__name__}: {error}") from None

    for name, grad, expected in zip(names, grads, expected_grads):
        if expected is not None:
            _compare(f"gradient of {name}", grad, expected, exercise.name)
    return y, grads


def _construct(student_class, config):
    try:
        return student_class(**config)
    except Exception as error:
        raise CaseFailure(f"{student_class.__name__}({_arguments(config)}) failed: "
                          f"{type(error).__name__}: {error}") from None


def _arguments(config):
    return ", ".join(f"{key}={value!r}" for key, value in config.items())


def _run(what, method, *arrays):
    try:
        return method(*arrays)
    except NotImplementedError as error:
        raise CaseFailure(f"{what} is not written yet: {error}") from None
    except DelegatesToLibrary as error:
        raise CaseFailure(f"{what} does not count: {error}") from None
    except SystemExit as error:
        raise CaseFailure(f"{what} raised SystemExit: {error} (sys.exit ends the program; "
                          "return the result instead)") from None
    except Exception as error:
        raise CaseFailure(f"{what} raised {type(error).__name__}: {error}") from None


def _gradcheck(student_class, config, inputs, is_float):
    """Central differences of the student's op: its backward alone when every input is a
    float, else through the engine with the other inputs (integers, None) as constants."""
    if all(is_float):
        return sl.gradcheck_op(lambda: student_class(**config), inputs)
    floats = [sl.tensor(x, requires_grad=True) for x, f in zip(inputs, is_float) if f]

    def with_constants(*leaves):
        leaves = iter(leaves)
        return student_class(**config)(*[next(leaves) if f else x
                                         for x, f in zip(inputs, is_float)])

    return sl.gradcheck(with_constants, floats)


def _compare(what, actual, expected, op_name):
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        raise CaseFailure(f"{what} has shape {actual.shape}; scratchlm's {op_name} gives "
                          f"{expected.shape}")
    if np.allclose(actual, expected, **LIBRARY_TOLERANCE):
        return
    error = np.abs(actual - expected)
    error = np.where(np.isnan(error), np.inf, error)
    bad = ~np.isclose(actual, expected, **LIBRARY_TOLERANCE)
    order = np.argsort(error, axis=None, kind="stable")[::-1][:WORST_SHOWN]
    where = [tuple(int(i) for i in np.unravel_index(k, error.shape)) for k in order]
    first = where[0]
    rows = "\n".join(f"    {str(index):>14}  {actual[index]:>14.8g}  {expected[index]:>14.8g}  "
                     f"{error[index]:.2e}" for index in where)
    raise CaseFailure(f"{what} differs from scratchlm's own {op_name}: worst absolute error "
                      f"{error[first]:.3e} at index {first} (yours {actual[first]:.8g}, "
                      f"library {expected[first]:.8g}); {int(bad.sum())} of {bad.size} "
                      f"entries off\n    {'index':>14}  {'yours':>14}  {'library':>14}  "
                      f"abs error\n{rows}")
