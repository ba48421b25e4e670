"""The command line's numbers and output paths, checked before any grading starts.

Grading a class takes minutes; a limit that makes no sense or an output that cannot be
written must stop the command at once, in one line that names the option, the value and
what to give instead — not after every file was graded, and never by quietly lifting a
limit (a negative ``--memory`` once meant "no limit at all" to ``setrlimit``).
"""

import math
import os
from pathlib import Path

from scratchlm.exercises.harness import NotGradable

#: below this address space, NumPy cannot even be imported: every grade would fail
MIN_MEMORY_MB = 64


def check_timeout(seconds, option="--timeout"):
    """A wall-clock limit: a finite number of seconds above 0."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise NotGradable(f"{option} must be a number of seconds, not {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise NotGradable(f"{option} {seconds:g} is not a time limit: give a finite number "
                          "of seconds above 0 (default 60)")
    return float(seconds)


def check_memory(mib, option="--memory"):
    """An address-space limit in MiB: a whole number of at least MIN_MEMORY_MB."""
    if isinstance(mib, bool) or not isinstance(mib, int):
        raise NotGradable(f"{option} must be a whole number of MiB, not {mib!r}")
    if mib < MIN_MEMORY_MB:
        raise NotGradable(f"{option} {mib} is not a memory limit: give at least "
                          f"{MIN_MEMORY_MB} MiB (default 2048); there is no way to lift it")
    return mib


def check_jobs(jobs, option="--jobs"):
    """How many files are graded at once: None (the default) or a whole number ≥ 1."""
    if jobs is None:
        return None
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise NotGradable(f"{option} {jobs!r} is not a number of processes: give 1 or more "
                          "(or leave it out for up to 4)")
    return jobs


def check_output_file(path, option, overwrite=False):
    """A file the command will write: its folder exists and is writable, and the file is
    not there yet unless ``overwrite``."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise NotGradable(f"{option} {path} is a folder; name a file")
    if not folder.is_dir():
        raise NotGradable(f"{option} {path}: the folder {folder} does not exist; create it "
                          "first or name another file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise NotGradable(f"{option} {path}: the folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise NotGradable(f"{option} {path} exists; pass --overwrite to replace it, or name "
                          "another file")
    return path


def check_output_folder(path, option, overwrite=False):
    """A folder the command will fill: its parent exists; it is absent (it is created),
    empty, or ``overwrite`` is given."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotGradable(f"{option} {path} is a file; name a folder")
    if not path.parent.is_dir():
        raise NotGradable(f"{option} {path}: the folder {path.parent} does not exist; create "
                          "it first or name another folder")
    target = path if path.is_dir() else path.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise NotGradable(f"{option} {path}: {target} is not writable")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise NotGradable(f"{option} {path} is not empty; pass --overwrite to replace the "
                          "files written there, or name a new folder")
    return path
