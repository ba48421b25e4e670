"""Hints that unlock one at a time.

Every exercise has a few hints, from a nudge to nearly the answer. ``python -m
scratchlm.exercises grade NAME FILE`` shows one when the grade fails:

* the hint the exercise matches to the kind of failure, where it has one (``hint_for``:
  a shape mismatch → the hint about shapes, a RecursionError → the one about an explicit
  stack), else
* the next hint still locked: each failed attempt unlocks one more (1, then 2, …), and once
  all are unlocked the last one is shown again. A passing grade unlocks nothing.

The progress is kept beside the graded file, in ``.scratchlm_hints.json``: a JSON object
keyed by exercise name, ``{"rope": {"unlocked": [1, 2], "failed attempts": 2}}``. Only the
graded exercise's entry is rewritten (its other keys, and other exercises', are kept); a
file that is not a JSON object, or not a regular file at all (a FIFO, a folder), is left as
it is, and the report says the progress was not kept. ``grade-all`` (a teacher's batch)
and ``grade(…)`` in Python keep no progress: their reports show hint 1.
``show NAME --hint K`` prints hints 1 to K at any time.
"""

import json
import os
import stat
import tempfile
from dataclasses import replace
from pathlib import Path

from scratchlm.exercises.catalog import EXERCISES

#: the progress file, in the graded file's folder
PROGRESS_FILE = ".scratchlm_hints.json"
#: a progress file larger than this is not read (a real one is a few hundred bytes)
PROGRESS_LIMIT = 1024 * 1024
#: a count of failed attempts this large was not written by the grader: counted from 0
MAX_ATTEMPTS = 10**9

#: kind of failure: (words of the report that show it, what the report calls it)
FAILURE_KINDS = {
    "shape": (("has shape", "should be a sequence of"), "a shape mismatch"),
    "recursion": (("RecursionError",), "recursion too deep"),
}


def failure_kind(report):
    """The kind of the report's first failure (a key of FAILURE_KINDS), or None."""
    failed = [case.failure for case in report.cases if not case.passed]
    text = report.error or (failed[0] if failed else "")
    for kind, (words, _) in FAILURE_KINDS.items():
        if any(word in text for word in words):
            return kind
    return None


def choose(exercise, report, unlocked):
    """(the hint to show, why) for a failed ``report``, given the hints already unlocked."""
    count = len(exercise.hints)
    kind = failure_kind(report)
    matched = exercise.hint_for.get(kind) if kind else None
    if matched is not None and 1 <= matched <= count:
        return matched, f"for this kind of failure: {FAILURE_KINDS[kind][1]}"
    locked = [number for number in range(1, count + 1) if number not in unlocked]
    if locked:
        return locked[0], "unlocked by this failed attempt"
    return count, "the last one; every hint is unlocked"


def _read(path):
    """(the progress file's object, None) or ({}, why it cannot be used). Opened without
    blocking and read only if it is a regular file: a FIFO, a device or a folder of that
    name is ignored (reading a FIFO would wait for a writer forever)."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}, None
    except OSError as error:
        return {}, f"{path} cannot be read ({type(error).__name__})"
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return {}, f"{path} is not a regular file (ignored)"
        with os.fdopen(handle, "rb") as stream:
            handle = None
            data = stream.read(PROGRESS_LIMIT + 1)
    except OSError as error:
        return {}, f"{path} cannot be read ({type(error).__name__})"
    finally:
        if handle is not None:
            os.close(handle)
    if len(data) > PROGRESS_LIMIT:
        return {}, f"{path} is larger than {PROGRESS_LIMIT // 1024} kB (ignored)"
    try:
        progress = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        progress = None
    if not isinstance(progress, dict):
        return {}, f"{path} is not a JSON object"
    return progress, None


def _write(path, progress):
    """Replace the file at once (a crash leaves the old one, never half a file)."""
    handle, temporary = tempfile.mkstemp(prefix=PROGRESS_FILE, dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            # ASCII with escapes: a key the file held with a lone surrogate is written back
            json.dump(progress, out, indent=1, sort_keys=True)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def unlock(report, folder):
    """After a graded attempt: the report with the hint to show, the progress in
    ``folder/.scratchlm_hints.json`` updated (a failed attempt unlocks one hint)."""
    exercise = EXERCISES.get(report.exercise)
    if report.passed or exercise is None or not exercise.hints:
        return report
    path = Path(folder) / PROGRESS_FILE
    progress, problem = _read(path)
    entry = progress.get(exercise.name)
    entry = dict(entry) if isinstance(entry, dict) else {}
    count = len(exercise.hints)
    before = entry.get("unlocked")
    unlocked = sorted({n for n in before if type(n) is int and 1 <= n <= count}
                      if isinstance(before, list) else set())
    number, why = choose(exercise, report, unlocked)
    unlocked = sorted(set(unlocked) | {number})
    if problem is None:
        attempts = entry.get("failed attempts")
        entry.update({"unlocked": unlocked,
                      "failed attempts": (attempts if type(attempts) is int
                                          and 0 <= attempts < MAX_ATTEMPTS else 0) + 1})
        progress[exercise.name] = entry
        try:
            _write(path, progress)
        except OSError as error:
            problem = f"{path} cannot be written ({type(error).__name__})"
    note = (f"hint progress not kept: {problem} (left as it is)" if problem
            else f"hints unlocked: {', '.join(map(str, unlocked))} ({count} in all; kept in "
                 f"{path})")
    return replace(report, hint=number, hint_why=why, hint_note=note)
