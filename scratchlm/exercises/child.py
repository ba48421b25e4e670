"""The grading child: runs a graded file on inputs and hands back raw results, nothing more.

:mod:`scratchlm.exercises.sandbox` starts it (in bubblewrap, or under rlimits) as
``python -I -S`` with this file loaded by its path: the library is never imported here. It
reads its order on stdin — the file, the name to grade and each case's inputs (never an
expected value, a tolerance, a token or a prepared answer) — and loads only what running a
case needs: NumPy, the standard library, :mod:`scratchlm.exercises.student_side` (what the
graded file gets when it imports ``scratchlm``, ``scratchlm.backend`` or
``scratchlm.exercises.skeletons``), the engine track's scaffold (``minigrad``, ``blocks``),
and the code that runs a case (``errors``, ``runner``, ``tasks`` and the exercise's track
module, none of which imports the library). Any other ``scratchlm`` module cannot be
imported. It writes the results, as plain data, to a pipe the parent opened, then ends
with ``os._exit(0)``; the parent validates and judges them.

Before the graded file is imported, an audit hook (:func:`sys.addaudithook`, which cannot
be removed) refuses, whatever calls it:

* opening, listing or importing any file outside the Python installation's standard
  library, NumPy, the graded file's folder and this run's private temporary folder (the
  library, its answer key in ``exercises/reference``, other students' folders, ``/proc``
  and the parent's memory among them), and writing anywhere but that temporary folder;
  compiling source said to come from any other file;
* ``ctypes`` (it could rewrite memory and call C: it is unloaded, and every reference to
  it cleared, before the file runs), ``mmap`` and ``pickle`` (nothing loads pickles);
* ``gc.get_objects`` / ``get_referrers`` / ``get_referents``, ``sys._current_frames``,
  tracing and profiling hooks, a generator's or coroutine's frame, ``sys._getframe``
  reaching a frame of this harness, and reading or replacing the code of a function that
  is not the graded file's (so no one recovers a forward's code to evade the trap of
  :func:`scratchlm.exercises.runner.forward_forbidden`);
* ``fork``, ``exec``, ``subprocess``, ``os.system``, ``posix_spawn``, sending signals, and
  sockets: nothing outlives the grading, and nothing talks to the network;
* raising its own resource limits.

What it cannot refuse: a frame's ``f_back`` raises no audit event, so from its own frame a
file can walk up into the harness's frames. They hold the cases' inputs and the number of
the report pipe, nothing the parent trusts: a report the file writes itself is judged like
any answer, and forging one only replaces the file's answers with others.

Why, when the parent already judges every result: the child holds nothing worth stealing
(no answers), but the machine does — the answer key on disk, the library to delegate to,
the grader's process to patch, other files to overwrite. The hook keeps the graded file
inside its folder; bubblewrap, where available, makes that a wall rather than a rule.
"""

import contextlib
import faulthandler
import importlib.util
import json
import os
import signal
import sys

#: the folder of this file: scratchlm/exercises
HERE = os.path.dirname(os.path.abspath(__file__))
#: what the graded file is imported as
MODULE_NAME = "student_exercise"
#: the modules that run a case, loaded from HERE before the graded file (name → file)
HARNESS = {"scratchlm.exercises.errors": "errors.py", "scratchlm.exercises.runner": "runner.py",
           "scratchlm.exercises.tasks": "tasks.py"}
#: the modules a graded file may import from scratchlm (name → file in HERE)
STUDENT = {"scratchlm.exercises.minigrad": "minigrad.py",
           "scratchlm.exercises.blocks": "blocks.py"}
#: the track modules (the one of the graded exercise is loaded)
TRACKS = ("track_engine", "track_layers", "track_modern", "track_optim", "track_data")
#: module names the graded file may not import, whatever their files
REFUSED_MODULES = ("ctypes", "_ctypes", "socket", "_socket", "ssl", "_ssl", "subprocess",
                   "_posixsubprocess", "multiprocessing", "_multiprocessing", "pty", "mmap",
                   "pickle", "_pickle", "select", "selectors", "asyncio")
#: audit events refused outright (an event equal to one, or starting with one ending in .)
REFUSED_EVENTS = ("ctypes.", "socket.", "subprocess.", "os.fork", "os.forkpty", "os.system",
                  "os.exec", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
                  "signal.pthread_kill", "pty.", "gc.get_objects", "gc.get_referrers",
                  "gc.get_referents", "sys._current_frames", "sys.settrace",
                  "sys.setprofile", "resource.setrlimit", "resource.prlimit", "mmap.",
                  "pickle.find_class", "code.__new__",
                  "os.setuid", "os.setgid", "sys.remote_exec", "cpython.remote_debugger_script")
#: audit events that change the file system: allowed inside the temporary folder only
WRITING_EVENTS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link",
                  "os.chmod", "os.chown", "os.truncate", "os.utime", "os.chflags",
                  "os.lchflags", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
                  "shutil.rmtree", "shutil.copyfile", "shutil.move")
#: attributes that hand out frames another function is running in
FRAME_ATTRIBUTES = ("gi_frame", "cr_frame", "ag_frame", "gi_code", "cr_code", "ag_code")
#: write flags of os.open
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Refused(PermissionError):
    """What the audit hook raises: the graded file tried something grading does not allow."""


def main():
    """Read the order, grade, write the results to the report pipe, exit 0."""
    order = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    write, dumps, exit_now, report_fd = os.write, json.dumps, os._exit, order["report_fd"]
    trace = os.fdopen(order["trace_fd"], "w")
    faulthandler.enable(trace, all_threads=True)
    faulthandler.register(signal.SIGUSR1, trace, all_threads=True)
    try:
        payload = dumps(_grade(order), allow_nan=True)
    except BaseException as error:  # the harness itself failed (MemoryError, a patched json)
        name = "".join(c for c in type(error).__name__ if c.isalnum())
        payload = f'{{"error": "the grading process could not report: {name}"}}'
    data = payload.encode("utf-8")
    while data:
        data = data[write(report_fd, data):]
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(BaseException):  # a stream the file replaced
            stream.flush()
    exit_now(0)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _student_package():
    """``scratchlm``, ``scratchlm.backend``, ``scratchlm.exercises`` and its skeletons as
    the graded file sees them: :mod:`student_side`, and an empty ``exercises`` package."""
    side = _load("scratchlm", os.path.join(HERE, "student_side.py"))
    side.__path__ = []
    exercises = type(sys)("scratchlm.exercises")
    exercises.__path__ = []
    sys.modules["scratchlm.exercises"] = exercises
    side.exercises, side.backend, exercises.skeletons = exercises, side, side
    sys.modules["scratchlm.backend"] = side
    sys.modules["scratchlm.exercises.skeletons"] = side
    for name, file in {**HARNESS, **STUDENT}.items():
        setattr(exercises, name.rsplit(".", 1)[1], _load(name, os.path.join(HERE, file)))
    return side


class _NoLibrary:
    """A meta-path finder refusing every scratchlm module the child did not load."""

    def find_spec(self, name, path=None, target=None):
        if name == "scratchlm" or name.startswith("scratchlm."):
            raise ImportError(
                f"a graded file cannot import {name}: it runs without the library, and may "
                "import numpy, the standard library, its own folder and, from scratchlm, "
                "only Function (import scratchlm as sl), backend.scatter_add, "
                "backend.get_array_module, exercises.skeletons, exercises.minigrad and "
                "exercises.blocks")
        return None

    def invalidate_caches(self):
        pass


def _grade(order):
    side = _student_package()
    track = None
    if order["module"] is not None:
        module = order["module"]
        if module not in TRACKS:
            raise ValueError(f"no track {module}")
        track = _load(f"scratchlm.exercises.{module}", os.path.join(HERE, module + ".py"))
    runner = sys.modules["scratchlm.exercises.runner"]
    tasks = sys.modules["scratchlm.exercises.tasks"]
    CaseFailure = sys.modules["scratchlm.exercises.errors"].CaseFailure
    sys.meta_path.insert(0, _NoLibrary())
    for name in ("numpy.linalg", "numpy.random", "numpy.fft", "numpy.testing"):
        importlib.import_module(name)  # what NumPy loads late, loaded before the hook
    cases = runner.decode(order["cases"])
    path, entry = order["path"], order["entry"]
    folder = os.path.dirname(path)
    sys.path.insert(0, folder)
    _forget(("ctypes", "_ctypes"))
    _install_hook(folder, order["tmp"], order["read"])

    task = next((t for t in track.TASKS if t.name == order["exercise"]), None) if track else None
    try:
        spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE_NAME] = module
        sys.dont_write_bytecode = True
        spec.loader.exec_module(module)
    except BaseException as error:
        return {"error": f"importing {os.path.basename(path)} raised {_describe(error, path)}"}
    student = getattr(module, entry, None)
    is_op = task is None or task.kind == "op"
    fits = (isinstance(student, type) and issubclass(student, side.Function) if is_op
            else callable(student) and not isinstance(student, type))
    if not fits:
        wanted = "Function subclass (of sl.Function or a skeleton)" if is_op else "function"
        defined = sorted(key for key, value in vars(module).items()
                         if callable(value) and getattr(value, "__module__", None) == MODULE_NAME)
        return {"usage": f"{os.path.basename(path)} defines no {wanted} named {entry}; it "
                         f"defines {defined or 'none'} (pick one with --class)"}
    missing = [need for need in order["needs"] if not callable(getattr(module, need, None))]
    if missing:
        return {"error": f"{os.path.basename(path)} must also define {', '.join(missing)} "
                         f"(exercise {order['exercise']} builds on them)"}
    names = tuple(order["input_names"])
    results = []
    try:
        for label, inputs, config, cotangent in cases:
            try:
                if task is None:
                    output = runner.run_op(student, list(inputs), config, cotangent, names)
                else:
                    case = tasks.PreparedTask(label, tuple(inputs), config, None, cotangent)
                    output = tasks.run_case(task, student, case)
                results.append({"label": label, "output": runner.encode(output)})
            except CaseFailure as failure:
                results.append({"label": label, "failure": str(failure)})
            except ValueError as error:
                results.append({"label": label, "failure": f"its result cannot be sent to the "
                                                           f"grader: {error}"})
    except BaseException as error:
        return {"error": f"the grading stopped: {_describe(error, path)}"}
    return {"cases": results}


def _describe(error, path):
    """'SystemExit: 0 at FILE, line N, in F' for an exception out of the graded file."""
    where = ""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            where = (f" at {os.path.basename(path)}, line {tb.tb_lineno}, in "
                     f"{tb.tb_frame.f_code.co_name}")
        tb = tb.tb_next
    hint = {SystemExit: " (sys.exit ends the program: a file to grade only defines its "
                        "class)",
            KeyboardInterrupt: " (the file raised it: nobody pressed Ctrl-C)"}
    try:
        message = str(error)[:4000]
    except BaseException:
        message = "?"
    return f"{type(error).__name__}{': ' if message else ''}{message}{where}" + next(
        (text for kind, text in hint.items() if isinstance(error, kind)), "")


def _forget(packages):
    """Unload ``packages`` (NumPy imports ctypes, whose ``memmove`` no audit event covers)
    and clear every module-level reference to them, so that the graded file can reach
    them only by importing them again, which the hook refuses."""
    gone = {id(module) for name, module in list(sys.modules.items())
            if name.split(".")[0] in packages}
    for name in [name for name in sys.modules if name.split(".")[0] in packages]:
        del sys.modules[name]
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", {})
        for key, value in list(namespace.items()):
            if id(value) in gone or getattr(value, "__module__", None) in packages or (
                    str(getattr(value, "__module__", "")).startswith("ctypes.")):
                namespace[key] = None


# ------------------------------------------------------------------------ the audit hook
def _install_hook(folder, tmp, read):
    """Refuse what the module docstring lists. ``read``: {"stdlib": the standard library's
    folder, "deny": the folders in it that may not be read, "other": NumPy's folders and
    the harness files}, readable besides ``folder`` and ``tmp``."""
    real = os.path.realpath
    folder, tmp = real(folder), real(tmp)
    stdlib, deny = tuple(map(real, read["stdlib"])), tuple(map(real, read["deny"]))
    other = tuple(real(p) for p in read["other"]) + (folder, tmp)
    harness = frozenset(real(os.path.join(HERE, f)) for f in
                        [*HARNESS.values(), "child.py", *(t + ".py" for t in TRACKS)])
    getframe, state = sys._getframe, {"inside": False}

    def within(path, roots):
        if isinstance(path, int):
            return True  # an open descriptor: it was checked when it was opened
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return False
        path = real(path)
        return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)

    def readable(path):
        return within(path, other) or (within(path, stdlib) and not within(path, deny))

    def submitted(code):
        return within(code.co_filename, (folder,))

    def from_harness():
        # the frame that raised the event called hook, which called check, which called this
        return real(getframe(3).f_code.co_filename) in harness

    def refuse(what):
        raise Refused(f"a graded file may not {what}")

    def hook(event, args):
        if state["inside"]:
            return
        state["inside"] = True
        try:
            check(event, args)
        finally:
            state["inside"] = False

    def check(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writing and not within(path, (tmp,)):
                refuse(f"write {path!r} (only its temporary folder, the working directory)")
            if not readable(path):
                refuse(f"open {path!r}: only its own folder, NumPy and the standard library")
        elif event in ("os.listdir", "os.scandir", "os.chdir", "glob.glob"):
            if args and args[0] is not None and not readable(args[0]):
                refuse(f"look into {args[0]!r}")
        elif event == "import":
            module, filename = args[0], args[1]
            if module.split(".")[0] in REFUSED_MODULES:
                refuse(f"import {module}")
            if filename is not None and not readable(filename):
                refuse(f"import {module} from {filename}")
        elif event == "compile":
            filename = args[1]
            if isinstance(filename, bytes):
                filename = os.fsdecode(filename)
            if (isinstance(filename, str) and not filename.startswith("<")
                    and not readable(filename)):
                refuse(f"compile source said to come from {filename}")
        elif event in WRITING_EVENTS:
            paths = [a for a in args if isinstance(a, (str, bytes))]
            if not all(within(p, (tmp,)) for p in paths):
                refuse(f"{event} outside its temporary folder")
        elif event == "sys._getframe":
            frame = args[0] if args else None
            if frame is not None and real(frame.f_code.co_filename) in harness:
                refuse("walk the frames of the grader")
        elif event == "object.__getattr__":
            obj, name = args
            if name in FRAME_ATTRIBUTES:
                refuse(f"read {name}")
            if name == "__code__" and not submitted(obj.__code__) and not from_harness():
                refuse(f"read the code of {getattr(obj, '__qualname__', '?')}")
        elif event == "object.__setattr__":
            obj, name = args[0], args[1]
            if name == "__code__" and not from_harness():
                refuse("replace the code of a function")
        elif event == "function.__new__":
            if not submitted(args[0]) and not from_harness():
                refuse("make a function from code that is not its own")
        elif any(event == refused or (refused.endswith(".") and event.startswith(refused))
                 for refused in REFUSED_EVENTS):
            refuse(f"use {event}")

    sys.addaudithook(hook)
