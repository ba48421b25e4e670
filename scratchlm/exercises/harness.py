"""Grading a file in a separate process: the grader is a harness, not a guest.

``python -m scratchlm.exercises grade NAME FILE`` calls :func:`grade_file`, which never runs
the file in its own process. It starts a child Python process that

* runs under limits it cannot lift: ``RLIMIT_AS`` (address space, ``memory_mb``) and
  ``RLIMIT_CPU`` (a little over ``timeout`` seconds of CPU), no core files, one BLAS thread;
  the parent adds a wall-clock limit of ``timeout`` seconds and then kills the child's whole
  process group (asking it first, with SIGUSR1, for a traceback: it says where the file was);
* prepares every case (inputs, the library's output and gradients) and replaces the
  library's backward of the op by a trap *before* the file runs, so a backward that saved
  the library's function at import time (``ORIGINAL = Softmax.backward``) still cannot
  delegate to it;
* snapshots what the grader relies on (every function, class and module bound in NumPy's
  and scratchlm's modules, the methods of scratchlm's classes, ``builtins``, ``math``,
  ``json``, ``re``: each object, its code and defaults), imports the file, grades its class
  with :func:`scratchlm.exercises.grader.grade_prepared`, and lists whatever the file
  replaced (``numpy.allclose = …``, ``sl.gradcheck_op = …``, ``Softmax.backward = …``);
* writes one JSON report to a pipe the parent opened for it (not stdout), carrying a random
  token the parent passed on stdin, then ends with ``os._exit(0)``.

The parent trusts none of it beyond what a failure says. It requires exit status 0 and one
well-formed report with its token; anything else (a time-out, a crash, a signal, an early
``sys.exit``/``os._exit``, a file killing itself, a malformed or forged report) is a failed
grade that says why. A case the child reports as passed counts only if the forward output
and gradients the child sent back equal the library's, computed and compared here, in the
parent, with NumPy the file never touched: a patched ``numpy.allclose`` or ``gradcheck`` in
the child cannot pass a wrong gradient. A file that replaced anything the grader relies on
fails as a whole. What the file printed is shown after the report, each line marked ``|``, so
a printed "PASSED" is never the grader's.

Limits of the protection, honestly: the child shares its memory with the file, so a file
set on it can find the token; but a forged report must still carry the right outputs and
gradients, which the parent checks. The delegation traps catch calls into the library's
backward; they cannot stop a file that pastes the library's source (the grader checks
gradients, not authorship). Only POSIX systems (``resource``, process groups) are supported.
"""

import contextlib
import faulthandler
import importlib
import importlib.abc
import importlib.util
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import traceback
import types
from pathlib import Path

import numpy as np

import scratchlm
from scratchlm import Function
from scratchlm.exercises.expected import resolve
from scratchlm.exercises.grader import (
    CaseFailure,
    CaseResult,
    GradeReport,
    check_outputs,
    get_exercise,
    grade_prepared,
    library_backward_disabled,
    library_functions_disabled,
    library_implementations,
    prepare_cases,
)
from scratchlm.exercises.tasks import (
    REFERENCE_PACKAGE,
    PreparedTask,
    Task,
    check_case,
    decode,
    encode,
    prepare_task,
    run_case,
)

#: the wall-clock limit of one grading, in seconds (the CPU limit is a little more)
DEFAULT_TIMEOUT = 60.0
#: the address-space limit of the grading process, in MiB (NumPy and scratchlm take ~150)
DEFAULT_MEMORY_MB = 2048
#: at most this much of what the file prints is kept (the rest is counted, then dropped)
PRINTED_LIMIT = 32 * 1024
#: a larger report than this is refused (a real one is a few hundred kB at most)
REPORT_LIMIT = 16 * 1024 * 1024
#: at most this many characters of any message the child sends are kept
MESSAGE_LIMIT = 4000
#: the name the file is imported under in the child
MODULE_NAME = "student_exercise"

#: what the child snapshots: the modules (and their submodules) the grader relies on
WATCHED_PACKAGES = ("numpy", "scratchlm", "builtins", "math", "json", "re")
#: imported in the child before the snapshot, so that a file patching them is seen
PRELOADED = ("numpy.testing", "numpy.linalg", "numpy.random")

#: the child's first lines: limits first, then the parent's import path, then the harness
BOOT = """\
import json, resource, sys
def limit(kind, soft, hard):  # never above a hard limit the parent already has
    old_hard = resource.getrlimit(kind)[1]
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(kind, (soft, hard))
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
limit(resource.RLIMIT_AS, memory, memory)
limit(resource.RLIMIT_CPU, cpu, cpu + 1)
limit(resource.RLIMIT_CORE, 0, 0)
sys.path[:] = json.loads(sys.argv[3])
from scratchlm.exercises.harness import _child_main
_child_main()
"""


class NotGradable(Exception):
    """The command was wrong, not the file's backward: no such file, not a Python file, or
    no class of that name in it."""


# --------------------------------------------------------------------------- the parent
def grade_file(exercise_name, path, class_name=None, *, timeout=DEFAULT_TIMEOUT,
               memory_mb=DEFAULT_MEMORY_MB, seed=0, expected=None):
    """Grade the class ``class_name`` (default: the skeleton's name) of the Python file at
    ``path`` in a separate, limited process; returns a :class:`GradeReport` whose
    ``.passed`` is True only for a well-formed report of passing cases whose outputs and
    gradients this process checked against the library. The answers come from the hidden
    reference or the library, or from stored results (:mod:`scratchlm.exercises.expected`):
    those in the folder ``expected``, else, where the reference is absent, the nearest
    ``expected/`` folder above ``path``. Raises :class:`NotGradable` for a missing file or
    class, :class:`KeyError` for an unknown exercise, :class:`ExpectedError` for a stored
    file that is missing, damaged or edited."""
    exercise = get_exercise(exercise_name)
    class_name = class_name or exercise.entry
    if os.name != "posix":
        raise NotGradable("grading a file in a separate process needs a POSIX system (Linux, "
                          "macOS); in a notebook, grade(name, YourClass) grades a class")
    path = Path(path)
    if not path.is_file():
        raise NotGradable(f"no file {path}")
    if importlib.util.spec_from_file_location(MODULE_NAME, path) is None:
        raise NotGradable(f"{path} is not a Python file")
    order = {"exercise": exercise.name, "path": str(path.resolve()), "class_name": class_name,
             "seed": seed}
    stored = resolve(exercise, expected, near=path.parent, seed=seed)
    if isinstance(exercise, Task):  # the child gets the inputs, never the reference
        prepared = prepare_task(exercise, seed, stored)
        order["cases"] = encode([(case.label, case.inputs, case.config, case.cotangent)
                                 for case in prepared])
    else:
        prepared = prepare_cases(exercise, seed, stored)  # here, before the file runs
    token = secrets.token_hex(16)
    run = _run_child({"token": token, **order}, timeout, memory_mb)
    printed = run["printed"]
    result, problem = _parse_report(run["report"], token, run["report_truncated"])
    if run["timed_out"]:
        return _not_graded(exercise, class_name, printed,
                           f"the grader stopped it after {timeout:g} s (wall clock)"
                           f"{_where_from_trace(run['trace'], path)} without a result: an "
                           "endless loop, or a very slow backward?")
    if result is None or run["returncode"] != 0:
        return _not_graded(exercise, class_name, printed,
                           _died(run["returncode"], result, problem, run["trace"], path))
    if result.get("usage") is not None:
        raise NotGradable(_text(result["usage"]))
    try:
        return _graded(exercise, prepared, result, class_name, printed)
    except Exception as error:  # a report shaped to trip this code up: still a failure
        return _not_graded(exercise, class_name, printed,
                           f"its report was malformed: {type(error).__name__}")


def _graded(exercise, prepared, result, class_name, printed):
    """The report of a child that ran to its end: its cases, the passed ones checked again
    here, and the grade failed as a whole if the file replaced what the grader relies on."""
    student = _text(result.get("student") or class_name, 200)
    if result.get("error") is not None:
        return _not_graded(exercise, student, printed, _text(result["error"]))
    checker = _checked_task_cases if isinstance(exercise, Task) else _checked_cases
    cases, problem = checker(exercise, prepared, result)
    if problem is not None:
        return _not_graded(exercise, student, printed, f"its report was malformed: {problem}")
    replaced = result.get("replaced") or []
    if not isinstance(replaced, list):
        replaced = [replaced]
    error = None
    if replaced:
        names = ", ".join(_text(name, 200) for name in replaced[:12])
        more = f" and {len(replaced) - 12} more" if len(replaced) > 12 else ""
        error = (f"the file replaced what the grader relies on ({names}{more}): a "
                 "submission may not patch NumPy, scratchlm or the grader, so the grade "
                 "fails whatever its cases say")
    return GradeReport(exercise.name, student, tuple(cases), error, printed)


def _not_graded(exercise, student, printed, reason):
    return GradeReport(exercise.name, student, (), reason, printed)


def _text(value, limit=MESSAGE_LIMIT):
    """A message from the child, as a bounded string."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + " …(cut)"


def _checked_cases(exercise, prepared, result):
    """The cases of a well-formed report, each passed case checked again here against the
    library; or (None, what is wrong with the report)."""
    reported = result.get("cases")
    if not isinstance(reported, list) or len(reported) != len(prepared):
        return None, f"expected {len(prepared)} cases"
    cases = []
    for case, entry in zip(prepared, reported):
        if not isinstance(entry, dict) or entry.get("label") != case.label:
            return None, f"expected the case {case.label!r}"
        failure = entry.get("failure")
        if failure is not None:
            cases.append(CaseResult(case.label, _text(failure)))
            continue
        try:
            y = _decode(entry.get("y"))
            grads = entry.get("grads")
            if not isinstance(grads, list):
                raise ValueError("no gradients")
            grads = [None if grad is None else _decode(grad) for grad in grads]
        except (TypeError, ValueError, OverflowError) as error:
            return None, f"case {case.label!r}: {error}"
        try:
            check_outputs(exercise, case, y, grads)
        except CaseFailure as failure:
            cases.append(CaseResult(case.label, "the grading process reported this case as "
                                    "passed, but the grader's own check outside it finds: "
                                    f"{failure}"))
            continue
        cases.append(CaseResult(case.label))
    return cases, None


def _checked_task_cases(task, prepared, result):
    """A task's cases: the student's outputs the child sent, checked here against the
    hidden reference; or (None, what is wrong with the report)."""
    reported = result.get("cases")
    if not isinstance(reported, list) or len(reported) != len(prepared):
        return None, f"expected {len(prepared)} cases"
    cases = []
    for case, entry in zip(prepared, reported):
        if not isinstance(entry, dict) or entry.get("label") != case.label:
            return None, f"expected the case {case.label!r}"
        if entry.get("failure") is not None:
            cases.append(CaseResult(case.label, _text(entry["failure"])))
            continue
        try:
            output = decode(entry.get("output"))
        except (TypeError, ValueError, OverflowError) as error:
            return None, f"case {case.label!r}: {error}"
        try:
            check_case(task, case, output)
            cases.append(CaseResult(case.label))
        except CaseFailure as failure:
            cases.append(CaseResult(case.label, str(failure)))
        except Exception as error:  # an output shaped to trip the check: a failed case
            cases.append(CaseResult(case.label, f"its result is malformed "
                                                f"({type(error).__name__}: {error})"))
    return cases, None


def _decode(encoded):
    if not (isinstance(encoded, dict) and isinstance(encoded.get("shape"), list)
            and isinstance(encoded.get("data"), list)):
        raise ValueError("an array is not {shape, data}")
    shape = encoded["shape"]
    if not all(isinstance(n, int) and n >= 0 for n in shape) or len(shape) > 32:
        raise ValueError(f"bad shape {shape!r}"[:200])
    data = encoded["data"]
    if len(data) != math.prod(shape) or not all(isinstance(v, (int, float)) for v in data):
        raise ValueError("an array's data does not match its shape")
    return np.array(data, dtype=np.float64).reshape(shape)


def _parse_report(raw, token, truncated):
    """(the report as a dict, None) or (None, why it is not one)."""
    if truncated:
        return None, f"it is larger than {REPORT_LIMIT} bytes"
    if not raw:
        return None, "there is none"
    try:
        report = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "it is not JSON"
    if not isinstance(report, dict) or not isinstance(report.get("token"), str):
        return None, "it carries no token"
    if not secrets.compare_digest(report["token"].encode(), token.encode()):
        return None, "its token is not this run's (a forged report?)"
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


def _run_child(config, timeout, memory_mb):
    """Run the grading process; returns what came back: the report's bytes, what it
    printed, the faulthandler trace, its exit status and whether it was stopped."""
    report_read, report_write = os.pipe()
    trace_read, trace_write = os.pipe()
    config = dict(config, report_fd=report_write, trace_fd=trace_write)
    root = str(Path(scratchlm.__file__).resolve().parents[1])
    path = [root] + [entry for entry in sys.path if entry and entry != root]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", SCRATCHLM_FAST="0")
    cpu = math.ceil(timeout) + 2
    try:
        child = subprocess.Popen(
            [sys.executable, "-I", "-u", "-c", BOOT, str(int(memory_mb * 2**20)), str(cpu),
             json.dumps(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(report_write, trace_write), env=env, start_new_session=True)
    finally:
        os.close(report_write)
        os.close(trace_write)
    readers = {name: _Reader(fd, limit) for name, fd, limit in (
        ("report", report_read, REPORT_LIMIT), ("trace", trace_read, 64 * 1024),
        ("printed", os.dup(child.stdout.fileno()), PRINTED_LIMIT))}
    child.stdout.close()
    timed_out = False
    try:
        try:
            child.stdin.write(json.dumps(config).encode())
            child.stdin.close()
        except OSError:  # it is gone already: its exit status says how
            pass
        deadline = time.monotonic() + timeout
        while not _has_exited(child):
            if time.monotonic() >= deadline:
                timed_out = True
                _signal(child.pid, signal.SIGUSR1)  # faulthandler: where is it?
                readers["trace"].wait_for_data(0.5)
                break
            time.sleep(0.01)
    finally:
        _kill_group(child.pid)  # the leader is not reaped yet: its group id is still its own
        child.wait()
        for reader in readers.values():
            reader.join(2.0)
    printed = readers["printed"].data.decode("utf-8", "replace")
    if readers["printed"].dropped:
        printed += f"\n… ({readers['printed'].dropped} more bytes not kept)"
    return {"report": bytes(readers["report"].data),
            "report_truncated": readers["report"].dropped > 0,
            "trace": bytes(readers["trace"].data), "printed": printed,
            "returncode": None if timed_out else child.returncode, "timed_out": timed_out}


def _has_exited(child):
    """Whether the child has exited, without reaping it where the system can (its process
    group stays ours to kill until it is reaped)."""
    if not hasattr(os, "waitid"):  # macOS: reaped; the group is killed by its id still
        return child.poll() is not None
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal(pid, number):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, number)


def _kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class _Reader(threading.Thread):
    """Drains a pipe to its end, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, fd, limit):
        super().__init__(daemon=True)
        self.fd, self.limit = fd, limit
        self.data, self.dropped = bytearray(), 0
        self.got_data = threading.Event()
        self.start()

    def run(self):
        try:
            while chunk := os.read(self.fd, 65536):
                room = self.limit - len(self.data)
                self.data += chunk[:max(room, 0)]
                self.dropped += max(len(chunk) - max(room, 0), 0)
                self.got_data.set()
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.got_data.set()

    def wait_for_data(self, seconds):
        self.got_data.wait(seconds)
        time.sleep(0.05)  # let the rest of the dump arrive


# ---------------------------------------------------------------------------- the child
def _child_main():
    """The grading process: read the order on stdin, grade, write the report, exit 0."""
    config = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    token, report_fd = config["token"], config["report_fd"]
    write, dumps, exit_now = os.write, json.dumps, os._exit  # bound before the file runs
    trace = os.fdopen(config["trace_fd"], "w")
    faulthandler.enable(trace, all_threads=True)
    faulthandler.register(signal.SIGUSR1, trace, all_threads=True)
    try:
        result = _grade_in_child(config)
        payload = dumps({"token": token, **result}, allow_nan=True)
    except BaseException as error:  # the harness itself failed (MemoryError, a patched json)
        name = re.sub(r"\W", "", type(error).__name__)
        payload = f'{{"token": "{token}", "error": "the grader could not report: {name}"}}'
    data = payload.encode("utf-8")
    while data:
        data = data[write(report_fd, data):]
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(BaseException):  # a stream the file replaced
            stream.flush()
    exit_now(0)


def _grade_in_child(config):
    exercise = get_exercise(config["exercise"])
    if isinstance(exercise, Task):
        return _grade_task_in_child(exercise, config)
    prepared = prepare_cases(exercise, config["seed"])  # before the file runs
    path, class_name = config["path"], config["class_name"]
    for name in PRELOADED:
        importlib.import_module(name)
    with library_backward_disabled(exercise.reference_class, None):
        snapshot = _snapshot()
        try:
            module = _import(path)
        except BaseException as error:
            return {"error": f"importing {Path(path).name} raised {_describe(error, path)}"}
        student = getattr(module, class_name, None)
        if not (isinstance(student, type) and issubclass(student, Function)):
            defined = sorted(name for name, value in vars(module).items()
                             if isinstance(value, type) and issubclass(value, Function)
                             and value.__module__ == module.__name__)
            return {"usage": f"{Path(path).name} defines no sl.Function subclass named "
                             f"{class_name}; it defines {defined or 'none'} (pick one with "
                             "--class)"}
        library = library_implementations(exercise.reference_class)
        if any(student is cls for cls in library):
            where = f"{student.__module__}.{student.__qualname__}"
            return {"student": class_name,
                    "error": f"{class_name} in {Path(path).name} is the library's own class "
                             f"({where}), imported, not written: subclass "
                             f"skeletons.{exercise.skeleton.__name__} and write its backward"}
        try:
            report, outputs = grade_prepared(exercise, student, prepared)
        except BaseException as error:
            return {"student": class_name,
                    "error": f"the grading stopped: {_describe(error, path)}"}
        replaced = _changed(snapshot)
    return {"student": class_name, "replaced": replaced,
            "cases": [_case(case, output) for case, output in zip(report.cases, outputs)]}


class _ReferenceBlocked(importlib.abc.MetaPathFinder):
    """Refuses to import the hidden reference in the grading process."""

    def find_spec(self, name, path=None, target=None):
        if name == REFERENCE_PACKAGE or name.startswith(REFERENCE_PACKAGE + "."):
            raise ImportError(f"a submission may not import the hidden reference ({name}): "
                              "write the exercise yourself")
        return None


def _grade_task_in_child(task, config):
    """Run the file's entry on the cases the parent sent; the parent checks the results."""
    cases = decode(config["cases"])
    path, name = config["path"], config["class_name"]
    sys.meta_path.insert(0, _ReferenceBlocked())
    for module in [m for m in sys.modules if m.startswith(REFERENCE_PACKAGE)]:
        del sys.modules[module]
    for module in PRELOADED:
        importlib.import_module(module)
    with library_functions_disabled(task.library):
        snapshot = _snapshot()
        try:
            module = _import(path)
        except BaseException as error:
            return {"error": f"importing {Path(path).name} raised {_describe(error, path)}"}
        student = getattr(module, name, None)
        wanted = "sl.Function subclass" if task.kind == "op" else "function"
        fits = (isinstance(student, type) and issubclass(student, Function)
                if task.kind == "op" else callable(student) and not isinstance(student, type))
        if not fits:
            defined = sorted(key for key, value in vars(module).items()
                             if callable(value) and getattr(value, "__module__", None)
                             == module.__name__)
            return {"usage": f"{Path(path).name} defines no {wanted} named {name}; it "
                             f"defines {defined or 'none'} (pick one with --class)"}
        missing = [need for need in task.needs if not callable(getattr(module, need, None))]
        if missing:
            return {"student": name,
                    "error": f"{Path(path).name} must also define {', '.join(missing)} "
                             f"(exercise {task.name} builds on them)"}
        results = []
        try:
            for label, inputs, case_config, cotangent in cases:
                case = PreparedTask(label, inputs, case_config, None, cotangent)
                try:
                    output = encode(run_case(task, student, case))
                    results.append({"label": label, "output": output})
                except CaseFailure as failure:
                    results.append({"label": label, "failure": str(failure)})
                except ValueError as error:
                    results.append({"label": label, "failure": f"its result cannot be sent "
                                                               f"to the grader: {error}"})
        except BaseException as error:
            return {"student": name, "error": f"the grading stopped: {_describe(error, path)}"}
        replaced = _changed(snapshot)
    if any(m.startswith(REFERENCE_PACKAGE) for m in sys.modules):
        replaced.append(f"{REFERENCE_PACKAGE} (the hidden reference was imported)")
    return {"student": name, "replaced": replaced, "cases": results}


def _import(path):
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    sys.dont_write_bytecode = True
    spec.loader.exec_module(module)
    return module


def _describe(error, path):
    """'SystemExit: 0 at FILE, line N, in F' for an exception out of the graded file."""
    where = ""
    for frame, line in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == path:
            where = f" at {Path(path).name}, line {line}, in {frame.f_code.co_name}"
    hint = {SystemExit: " (sys.exit ends the program: a file to grade only defines its "
                        "class)",
            KeyboardInterrupt: " (the file raised it: nobody pressed Ctrl-C)"}
    try:
        message = str(error)[:MESSAGE_LIMIT]
    except BaseException:
        message = "?"
    return f"{type(error).__name__}{': ' if message else ''}{message}{where}" + next(
        (text for kind, text in hint.items() if isinstance(error, kind)), "")


def _case(result, output):
    entry = {"label": result.label, "failure": result.failure}
    if result.failure is None:
        y, grads = output
        try:
            entry["y"] = _encode(y)
            entry["grads"] = [None if grad is None else _encode(grad) for grad in grads]
        except (TypeError, ValueError) as error:
            entry = {"label": result.label,
                     "failure": f"its results cannot be sent to the grader: {error}"}
    return entry


def _encode(array):
    array = np.asarray(array, dtype=np.float64)
    return {"shape": list(array.shape), "data": array.ravel().tolist()}


# -------------------------------------------------------- what the grader relies on, kept
def _watched(value):
    return callable(value) or isinstance(value, (types.ModuleType, staticmethod,
                                                 classmethod, property))


def _fingerprint(value):
    """What a patch could change under an object that stays the same: its code, defaults
    and wrapped functions."""
    parts = []
    for inner in (value, getattr(value, "_implementation", None),
                  getattr(value, "__func__", None), getattr(value, "fget", None)):
        if inner is None:
            continue
        try:
            parts += [inner, getattr(inner, "__code__", None),
                      getattr(inner, "__defaults__", None),
                      getattr(inner, "__kwdefaults__", None)]
        except Exception:  # an object whose attributes raise: its identity alone
            parts.append(inner)
    return tuple(parts)


def _owners():
    """The namespaces watched: the watched packages' modules and scratchlm's classes (each
    class once, named where it is defined)."""
    classes = {}
    for name, module in list(sys.modules.items()):
        if isinstance(module, types.ModuleType) and name.split(".")[0] in WATCHED_PACKAGES:
            yield name, module
            for value in list(vars(module).values()):
                if (isinstance(value, type)
                        and str(getattr(value, "__module__", "")).startswith("scratchlm")):
                    classes[id(value)] = value
    for cls in classes.values():
        yield f"{cls.__module__}.{cls.__qualname__}", cls


def _snapshot():
    return [(f"{where}.{attr}", owner, attr, value, _fingerprint(value))
            for where, owner in _owners() for attr, value in list(vars(owner).items())
            if _watched(value)]


def _changed(snapshot):
    """The names in ``snapshot`` whose object (or its code or defaults) was replaced: of the
    names one object had, the shortest."""
    missing = object()
    changed = {}
    for where, owner, attr, value, fingerprint in snapshot:
        now = vars(owner).get(attr, missing)
        if now is not value or any(a is not b for a, b in zip(_fingerprint(now), fingerprint)):
            known = changed.get(id(value), where)
            changed[id(value)] = min(known, where, key=lambda name: (len(name), name))
    return sorted(changed.values())
