"""Grading a file in a separate process: the parent judges, the child only computes.

``python -m scratchlm.exercises grade NAME FILE`` and ``grade-all`` call :func:`grade_file`,
which never runs the file in its own process. The trust model, in four parts:

1. **The parent judges; the child only computes.** The parent draws every case from the
   seed, and holds every expected value (the library's output and gradients, the hidden
   reference's results, central differences of the reference). The child
   (:mod:`scratchlm.exercises.child`) receives the inputs only — never an expected value, a
   tolerance, a token or a prepared case — runs the file's function or op on them and hands
   back raw data. The parent validates it (float64, int64 or bool arrays of bounded size,
   numbers, strings, lists: no objects, no pickles; :func:`~scratchlm.exercises.runner.decode`)
   and runs every comparison here. A forged report is just wrong answers.
2. **The child cannot reach the library or the answer key.** It imports NumPy, the
   standard library, a student-side package (:mod:`scratchlm.exercises.student_side`: the
   skeletons' base classes, no implementation of the library) and the file's folder; an
   audit hook installed before the file is imported refuses everything else (see
   :mod:`scratchlm.exercises.child` for the list and why).
3. **A real sandbox** (:mod:`scratchlm.exercises.sandbox`): bubblewrap where it works,
   else rlimits, a fresh working folder and the audit hook; a subreaper supervisor kills
   every descendant before the result is read.
4. **Held-out grading.** The cases come from ``seed``: the release's ``expected/`` uses the
   public practice seed 0, the instructor grades with a secret one (``grade-all --seed``).

The parent requires a well-formed report; anything else (a time-out, a crash, a signal,
an early ``sys.exit``/``os._exit``, a malformed report) is a failed grade that says why.
What the file printed is shown after the report, each line marked ``|``, so a printed
"PASSED" is never the grader's. Only Linux and other POSIX systems with ``/proc`` are
supported.
"""

import json
import os
import re
import signal
from pathlib import Path

from scratchlm.errors import FileFormatError
from scratchlm.exercises import sandbox as sandboxes
from scratchlm.exercises.answers import prepare_cases
from scratchlm.exercises.catalog import TRACK_MODULES, Exercise
from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.expected import resolve
from scratchlm.exercises.grader import CaseResult, GradeReport, check_outputs, get_exercise
from scratchlm.exercises.runner import decode, encode
from scratchlm.exercises.tasks import check_case, prepare_task
from scratchlm.file_reading import open_regular_file

#: the wall-clock limit of one grading, in seconds (the CPU limit is a little more)
DEFAULT_TIMEOUT = 60.0
#: the address-space limit of the grading process, in MiB (NumPy takes ~100)
DEFAULT_MEMORY_MB = 2048
#: at most this many characters of any message the child sends are kept
MESSAGE_LIMIT = 4000
#: the public practice seed: the release's expected/ and a student's grade use it
PRACTICE_SEED = 0


class NotGradable(Exception):
    """The command was wrong, not the file's backward: no such file, not a Python file, or
    no class of that name in it."""


# --------------------------------------------------------------------------- the parent
def grade_file(exercise_name, path, class_name=None, *, timeout=DEFAULT_TIMEOUT,
               memory_mb=DEFAULT_MEMORY_MB, seed=PRACTICE_SEED, expected=None, sandbox=None,
               within=None):
    """Grade the class or function ``class_name`` (default: the exercise's name for it) of
    the Python file at ``path`` in a sandboxed child process (``sandbox``: "bwrap",
    "basic", or None for the best available); returns a :class:`GradeReport` whose
    ``.passed`` is True only when every case's raw results, judged here, are right. The
    answers come from the hidden reference or the library, or from stored results
    (:mod:`scratchlm.exercises.expected`): those in the folder ``expected``, else, where
    the reference is absent, the nearest ``expected/`` folder above ``path``. ``within``:
    a folder the file must really be in (``grade-all`` passes the student's: a link out of
    it is refused). Raises :class:`NotGradable` for a missing file or class,
    :class:`KeyError` for an unknown exercise, :class:`ExpectedError` for a stored file
    that is missing, damaged or edited, ValueError for a sandbox that cannot run here."""
    exercise = get_exercise(exercise_name)
    class_name = class_name or exercise.entry
    if os.name != "posix" or not Path("/proc/self").is_dir():
        raise NotGradable("grading a file in a sandboxed process needs Linux (its /proc finds "
                          "every process the file starts); in a notebook, grade(name, "
                          "YourClass) grades a class in this process")
    sandbox = sandboxes.check_sandbox(sandbox)
    path = Path(path)
    _check_regular_file(path)
    if path.suffix != ".py":
        raise NotGradable(f"{path} is not a Python file")
    real = path.resolve()
    if within is not None and Path(within).is_symlink():
        return _not_graded(exercise, class_name, "", f"{Path(within).name} is a link to "
                           f"{Path(within).resolve()}: a submission is a folder of its own")
    folder = Path(within).resolve() if within is not None else path.absolute().parent
    if real.parent != folder and folder not in real.parents:
        return _not_graded(exercise, class_name, "", f"{path.name} is a link to {real}, "
                           f"outside {folder}: a submission is a file in its own folder")
    stored = resolve(exercise, expected, near=path.parent, seed=seed)
    if isinstance(exercise, Exercise):
        prepared = prepare_cases(exercise, seed, stored)
        cases = [(case.label, case.inputs, case.case.config, case.cotangent) for case in prepared]
        module, needs = None, ()
    else:
        prepared = prepare_task(exercise, seed, stored)
        cases = [(case.label, case.inputs, case.config, case.cotangent) for case in prepared]
        module, needs = TRACK_MODULES[exercise.name], exercise.needs
    order = {"exercise": exercise.name, "module": module, "path": str(real),
             "entry": class_name, "needs": list(needs),
             "input_names": list(exercise.input_names), "cases": encode(cases)}
    run = sandboxes.run(order, real.parent, timeout=timeout, memory_mb=memory_mb,
                        sandbox=sandbox)
    printed, result, problem = run["printed"], *_parse_report(run["report"],
                                                               run["report_truncated"])
    if run["timed_out"]:
        return _not_graded(exercise, class_name, printed,
                           f"the grader stopped it after {timeout:g} s (wall clock)"
                           f"{_where_from_trace(run['trace'], real)} without a result: an "
                           "endless loop, or a very slow backward?", sandbox)
    if result is None or run["returncode"] != 0:
        return _not_graded(exercise, class_name, printed,
                           _died(run["returncode"], result, problem, run["trace"], real),
                           sandbox)
    if result.get("usage") is not None:
        raise NotGradable(_text(result["usage"]))
    if result.get("error") is not None:
        return _not_graded(exercise, class_name, printed, _text(result["error"]), sandbox)
    try:
        cases = _judged(exercise, prepared, result.get("cases"))
    except ValueError as error:
        return _not_graded(exercise, class_name, printed,
                           f"its report was malformed: {_text(str(error), 300)}", sandbox)
    return GradeReport(exercise.name, class_name, tuple(cases), None, printed, sandbox=sandbox)


def _check_regular_file(path):
    """NotGradable, saying what ``path`` is instead, unless it is a regular file that can
    be opened (a link to one included): a FIFO would keep the child waiting, a folder or a
    device is no program (:func:`scratchlm.file_reading.open_regular_file` says which)."""
    try:
        open_regular_file(path, "grade", "Python file").close()
    except FileFormatError as error:
        raise NotGradable(str(error)) from None


def _judged(exercise, prepared, reported):
    """Each case judged here, from the raw results the child sent; ValueError for a report
    that does not have the shape of one."""
    if not isinstance(reported, list) or len(reported) != len(prepared):
        raise ValueError(f"expected {len(prepared)} cases")
    cases = []
    for case, entry in zip(prepared, reported):
        if not isinstance(entry, dict) or entry.get("label") != case.label:
            raise ValueError(f"expected the case {case.label!r}")
        if entry.get("failure") is not None:
            cases.append(CaseResult(case.label, _text(entry["failure"])))
            continue
        output = decode(entry.get("output"))
        try:
            if isinstance(exercise, Exercise):
                if not (isinstance(output, dict) and isinstance(output.get("grads"), list)):
                    raise CaseFailure("its result is not {forward output, gradients}")
                check_outputs(exercise, case, output["y"], output["grads"])
            else:
                check_case(exercise, case, output)
            cases.append(CaseResult(case.label))
        except CaseFailure as failure:
            cases.append(CaseResult(case.label, str(failure)))
        except Exception as error:  # an output shaped to trip the check: a failed case
            cases.append(CaseResult(case.label, f"its result is malformed "
                                                f"({type(error).__name__}: {error})"))
    return cases


def _not_graded(exercise, student, printed, reason, sandbox=""):
    return GradeReport(exercise.name, student, (), reason, printed, sandbox=sandbox)


def _text(value, limit=MESSAGE_LIMIT):
    """A message from the child, as a bounded string that can be printed and written: a
    lone surrogate (``raise ValueError("\\ud800")`` in the file) becomes its escape."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + " …(cut)"


def _parse_report(raw, truncated):
    """(the report as a dict, None) or (None, why it is not one)."""
    if truncated:
        return None, f"it is larger than {sandboxes.REPORT_LIMIT} bytes"
    if not raw:
        return None, "there is none"
    try:
        report = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "it is not JSON"
    if not isinstance(report, dict):
        return None, "it is not a JSON object"
    return report, None


def _died(returncode, result, problem, trace, path):
    """Why a child that gave no usable report failed, in words."""
    where = _where_from_trace(trace, path)
    if returncode is not None and returncode < 0:
        number = -returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        if number == signal.SIGXCPU:
            return f"the grading process used up its CPU time and was stopped ({name}){where}"
        if number == signal.SIGKILL:
            return (f"the grading process was killed ({name}){where}: out of memory, or the "
                    "file killed it")
        return f"the grading process was killed by signal {name}{where} (a crash?)"
    if result is None:
        if returncode == 0:
            return (f"the grading process ended early, with exit status 0{where}, before the "
                    "grader reported (sys.exit, os._exit or the like in the file?); no "
                    f"report: {problem}")
        return (f"the grading process ended with exit status {returncode}{where} before the "
                f"grader reported; no report: {problem}")
    return (f"the grading process ended with exit status {returncode} after its report "
            "(exit status 0 expected): the file interfered with the grader's exit")


_TRACE_LINE = re.compile(r'File "(?P<file>.*)", line (?P<line>\d+) in (?P<function>\S+)')


def _where_from_trace(trace, path):
    """' (at FILE, line N, in F)' from a faulthandler dump, for the innermost frame in the
    graded file (the current thread's, when it is named), else ''."""
    text = trace.decode("utf-8", "replace")
    current = text.find("Current thread")
    for block in ([text[current:]] if current >= 0 else []) + [text]:
        for match in _TRACE_LINE.finditer(block):
            if match["file"] == str(Path(path).resolve()):
                return (f" (at {Path(path).name}, line {match['line']}, in "
                        f"{match['function']})")
    return ""
