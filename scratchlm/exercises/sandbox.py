"""Where a graded file runs: a child process that cannot reach the grader, the library, the
answer key, the network or the rest of the disk, and that leaves nothing behind.

Two sandboxes (``grade-all --sandbox bwrap|basic``; the default is ``bwrap`` where it works):

* **bwrap** — bubblewrap, the sandbox Flatpak uses (the distribution's ``bubblewrap``
  package). The child sees a file system made of read-only binds of the system's ``/usr``,
  the Python installation, NumPy, the few harness files of :mod:`scratchlm.exercises.child`
  and the graded file's folder, plus a private ``/tmp`` (its working folder); no network,
  no IPC, a new PID namespace (so every process it starts dies with it), a new session,
  and it dies with its parent. The library and the answer key are not in its world at all.
* **basic** — where bwrap is missing or cannot create namespaces: resource limits (address
  space, CPU time, file size, processes, no core files), a fresh temporary working folder,
  the audit hook of :mod:`scratchlm.exercises.child` (which refuses files outside the
  allowed folders, ``fork``, ``exec``, sockets and ``ctypes``), and a supervisor that
  finds and kills every descendant.

Both run the child under a **supervisor**: a small Python process (the standard library
only, started by the grader, not sandboxed) that makes itself a child subreaper
(``prctl(PR_SET_CHILD_SUBREAPER)``), so that every descendant of the child — double-forked,
``setsid`` or not — is re-parented to it when its parent dies. It enforces the wall-clock
limit (asking the child for a traceback with SIGUSR1 first), then kills every descendant
and reaps them all before it reports the child's exit status and exits itself. So when
:func:`run` returns, no process the graded file started is alive, and the pipes the
parent reads are closed: nothing can write a report, or a CSV, afterwards.
"""

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: the sandboxes, strongest first
SANDBOXES = ("bwrap", "basic")
#: at most this much of what the file prints is kept (the rest is counted, then dropped)
PRINTED_LIMIT = 32 * 1024
#: a larger report than this is refused (a real one is a few hundred kB at most)
REPORT_LIMIT = 16 * 1024 * 1024
#: the largest file the child may write in its temporary folder, in bytes
FILE_SIZE_LIMIT = 16 * 2**20
#: the supervisor gets this much longer than the child before the parent kills it
SUPERVISOR_GRACE = 20.0

#: the folder of the harness files the child loads
HERE = Path(__file__).resolve().parent
#: the files the child loads from HERE (the student-side package and the code running a case)
CHILD_FILES = ("child.py", "student_side.py", "errors.py", "runner.py", "tasks.py", "minigrad.py",
               "blocks.py", "track_engine.py", "track_layers.py", "track_modern.py",
               "track_optim.py", "track_data.py")

#: the child's first lines: limits first, then its import path, then child.main
BOOT = """\
import importlib.util, json, resource, sys
def limit(kind, soft, hard):  # never above a hard limit already set
    old_hard = resource.getrlimit(kind)[1]
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    resource.setrlimit(kind, (soft, hard))
limits = json.loads(sys.argv[1])
limit(resource.RLIMIT_AS, limits["memory"], limits["memory"])
limit(resource.RLIMIT_CPU, limits["cpu"], limits["cpu"] + 1)
limit(resource.RLIMIT_FSIZE, limits["file_size"], limits["file_size"])
limit(resource.RLIMIT_CORE, 0, 0)
limit(resource.RLIMIT_NPROC, 0, 0)  # no new process or thread (not enforced for root)
sys.path[:] = [p for p in sys.path if p] + [limits["numpy_parent"]]
spec = importlib.util.spec_from_file_location("grading_child", limits["child"])
child = importlib.util.module_from_spec(spec)
spec.loader.exec_module(child)
child.main()
"""

#: the supervisor: subreaper, wall-clock limit, then every descendant killed and reaped
SUPERVISOR = """\
import ctypes, json, os, signal, subprocess, sys, time
config = json.loads(sys.argv[1])
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("the supervisor could not become a child subreaper")

def descendants():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parents.setdefault(int(stat[stat.rindex(b")") + 2:].split()[1]), []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in parents.get(todo.pop(), []):
            found.append(pid)
            todo.append(pid)
    return found

def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""

child = subprocess.Popen(config["argv"], env=config["env"], cwd=config["cwd"],
                         pass_fds=config["fds"])
deadline, pause, timed_out, status = time.monotonic() + config["timeout"], 0.001, False, None
while status is None:
    pid, raw = os.waitpid(child.pid, os.WNOHANG)
    if pid:
        status = os.waitstatus_to_exitcode(raw)
    elif time.monotonic() >= deadline:
        timed_out = True
        for pid in descendants():  # faulthandler: where is it?
            if comm(pid).startswith("python"):
                try:
                    os.kill(pid, signal.SIGUSR1)
                except OSError:
                    pass
        time.sleep(0.5)
        os.kill(child.pid, signal.SIGKILL)
        status = os.waitstatus_to_exitcode(os.waitpid(child.pid, 0)[1])
    else:
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
while True:  # every descendant, re-parented here by the subreaper, killed and reaped
    alive = descendants()
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        if not alive and not descendants():
            break
    time.sleep(0.001)
os.write(config["status_fd"], json.dumps({"status": status, "timed_out": timed_out}).encode())
"""


@functools.cache
def bwrap_works():
    """Whether bubblewrap is installed and can make its namespaces here (a container may
    forbid them)."""
    if sys.platform != "linux" or shutil.which("bwrap") is None:
        return False
    try:
        done = subprocess.run(["bwrap", *_system_binds(), "--unshare-all", "--die-with-parent",
                               "--proc", "/proc", "--dev", "/dev", "--", "/usr/bin/true"],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def default_sandbox():
    """bwrap where it works, else basic."""
    return "bwrap" if bwrap_works() else "basic"


def check_sandbox(name):
    """``name`` if that sandbox can run here (None: the default); ValueError if not."""
    if name is None:
        return default_sandbox()
    if name not in SANDBOXES:
        raise ValueError(f"no sandbox named {name!r}; the sandboxes are {', '.join(SANDBOXES)}")
    if name == "bwrap" and not bwrap_works():
        raise ValueError("the bwrap sandbox cannot run here: bubblewrap is not installed "
                         "(apt-get install bubblewrap) or cannot create namespaces in this "
                         "container; use --sandbox basic")
    return name


def _system_binds():
    """Read-only binds of /usr and the top-level links into it (/lib, /bin, …)."""
    binds = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(top):
            binds += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds += ["--ro-bind", top, top]
    return binds


def _python():
    """The real Python executable (not a virtual environment's link) and its prefix."""
    executable = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return executable, os.path.realpath(sys.base_prefix)


def _numpy_folders():
    import numpy
    package = Path(numpy.__file__).resolve().parent
    return [str(p) for p in (package, package.parent / "numpy.libs") if p.is_dir()]


def _readable(prefix):
    """What the child may read besides its own folders: {"stdlib": the standard library's
    folder, "deny": its site-packages (other installed packages), "other": NumPy and the
    harness files}."""
    stdlib = os.path.join(prefix, "lib", f"python{sys.version_info.major}."
                                         f"{sys.version_info.minor}")
    return {"stdlib": [stdlib], "deny": [os.path.join(stdlib, "site-packages")],
            "other": _numpy_folders() + [str(HERE / name) for name in CHILD_FILES]}


def run(order, folder, *, timeout, memory_mb, sandbox):
    """Run the child on ``order`` (a dict: the file, the entry, the cases' inputs) in
    ``sandbox`` with the graded file's ``folder`` visible; returns what came back: the
    report's bytes and whether it was cut, the faulthandler trace, what the child printed,
    its exit status (negative: killed by that signal) and whether it timed out. Every
    process it started is gone when this returns."""
    executable, prefix = _python()
    numpy_folders = _numpy_folders()
    tmp = tempfile.mkdtemp(prefix="scratchlm-grading-")
    pipes = {name: os.pipe() for name in ("report", "trace", "status")}
    inner_tmp = "/tmp" if sandbox == "bwrap" else tmp
    order = dict(order, report_fd=pipes["report"][1], trace_fd=pipes["trace"][1],
                 tmp=inner_tmp, read=_readable(prefix))
    limits = {"memory": int(memory_mb * 2**20), "cpu": math.ceil(timeout) + 2,
              "file_size": FILE_SIZE_LIMIT, "child": str(HERE / "child.py"),
              "numpy_parent": str(Path(numpy_folders[0]).parent)}
    env = {"PATH": "/usr/bin:/bin", "HOME": inner_tmp, "TMPDIR": inner_tmp,
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [executable, "-I", "-S", "-c", BOOT, json.dumps(limits)]
    if sandbox == "bwrap":
        binds = _system_binds() + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in [prefix, *numpy_folders, *(str(HERE / name) for name in CHILD_FILES),
                     str(folder)]:  # after /tmp: any of them may live under it
            binds += ["--ro-bind", path, path]
        argv = ["bwrap", *binds, "--unshare-all", "--die-with-parent", "--new-session",
                "--chdir", "/tmp", "--", *argv]
    config = {"argv": argv, "env": env, "cwd": tmp, "timeout": timeout,
              "fds": [pipes["report"][1], pipes["trace"][1]],
              "status_fd": pipes["status"][1]}
    try:
        supervisor = subprocess.Popen(
            [executable, "-I", "-S", "-c", SUPERVISOR, json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=[end for _, end in pipes.values()], start_new_session=True)
    except BaseException:
        for read_end, write_end in pipes.values():
            os.close(read_end)
            os.close(write_end)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, write_end in pipes.values():
        os.close(write_end)
    readers = {"report": _Reader(pipes["report"][0], REPORT_LIMIT),
               "trace": _Reader(pipes["trace"][0], 64 * 1024),
               "status": _Reader(pipes["status"][0], 4096),
               "printed": _Reader(os.dup(supervisor.stdout.fileno()), PRINTED_LIMIT)}
    supervisor.stdout.close()
    try:
        try:
            supervisor.stdin.write(json.dumps(order).encode())
            supervisor.stdin.close()
        except OSError:  # the child is gone already: its status says how
            pass
        try:
            supervisor.wait(timeout + SUPERVISOR_GRACE)
        except subprocess.TimeoutExpired:  # never expected: the supervisor is ours
            os.killpg(supervisor.pid, 9)
            supervisor.wait()
    finally:
        for reader in readers.values():
            reader.join(5.0)
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        status = json.loads(bytes(readers["status"].data))
    except ValueError:
        status = {"status": None, "timed_out": False}
    returncode = status["status"]
    if sandbox == "bwrap" and isinstance(returncode, int) and returncode > 128:
        returncode = -(returncode - 128)  # bwrap reports a signal as 128 + its number
    printed = readers["printed"].data.decode("utf-8", "replace")
    if readers["printed"].dropped:
        printed += f"\n… ({readers['printed'].dropped} more bytes not kept)"
    return {"report": bytes(readers["report"].data),
            "report_truncated": readers["report"].dropped > 0,
            "trace": bytes(readers["trace"].data), "printed": printed,
            "returncode": None if status["timed_out"] else returncode,
            "timed_out": bool(status["timed_out"]), "sandbox": sandbox}


class _Reader(threading.Thread):
    """Drains a pipe to its end, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, fd, limit):
        super().__init__(daemon=True)
        self.fd, self.limit = fd, limit
        self.data, self.dropped = bytearray(), 0
        self.start()

    def run(self):
        try:
            while chunk := os.read(self.fd, 65536):
                room = max(self.limit - len(self.data), 0)
                self.data += chunk[:room]
                self.dropped += len(chunk) - len(chunk[:room])
        except OSError:
            pass
        finally:
            os.close(self.fd)

