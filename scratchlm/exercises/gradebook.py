"""Grading a class: ``python -m scratchlm.exercises grade-all SUBMISSIONS_DIR --csv scores.csv``.

The folder holds one subfolder per student, each with one file per exercise named after it
(``softmax.py``, ``adam.py``; the engine exercises may share one ``engine.py``)::

    submissions/
        alice/  softmax.py  adam.py  engine.py
        bob/    softmax.py

Every file is graded in its own process with the time and memory limits of
:func:`scratchlm.exercises.harness.grade_file` (several at once with ``jobs``). The CSV has
one row per student and one column per exercise (the points earned), then the total, the
maximum, ``lost`` (for each exercise that lost points, how many and why) and ``similar``
(for each exercise, the students whose file shares most of this one's fingerprints:
:mod:`scratchlm.exercises.similarity`). ``similarity.csv`` lists every pair of files of
each exercise with its score, most similar first. Every CSV is written at once (a
temporary file renamed over it), after all grading is over.
"""

import csv
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scratchlm.errors import FileFormatError
from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.grader import GradeReport
from scratchlm.exercises.harness import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    PRACTICE_SEED,
    NotGradable,
    grade_file,
)
from scratchlm.exercises.options import check_jobs, check_memory, check_timeout
from scratchlm.exercises.similarity import similar_pairs
from scratchlm.exercises.statements import statement
from scratchlm.exercises.tasks import reference_available
from scratchlm.file_reading import open_regular_file

#: a file named this may hold every engine exercise (they build one engine)
ENGINE_FILE = "engine.py"
#: at most this many bytes of a file are read to compare it with the others
SIMILARITY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Mark:
    exercise: str
    points: float
    max_points: int
    #: why points were lost ('' when none were)
    lost: str
    #: the full report (None when there was no file to grade or it could not be graded)
    report: GradeReport | None = field(default=None, compare=False, repr=False)


def submission_file(folder, exercise):
    """The student's file for ``exercise`` in ``folder``, or None. Whatever has the name
    counts (a folder, a FIFO, a broken link...): grading it says what it is instead of a
    program."""
    own = folder / f"{exercise}.py"
    if os.path.lexists(own):
        return own
    if EXERCISES[exercise].track == 1 and os.path.lexists(folder / ENGINE_FILE):
        return folder / ENGINE_FILE
    return None


def students_and_exercises(submissions, exercises=None):
    """The student folders (sorted) and the exercises to grade: ``exercises`` if given, else
    every exercise some student handed a file in for, in the catalog's order."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise NotGradable(f"grade-all: {submissions} is not a folder (expected one subfolder "
                          "per student, each holding NAME.py files)")
    students = sorted(p for p in submissions.iterdir() if p.is_dir()
                      and not p.name.startswith("."))
    if not students:
        raise NotGradable(f"grade-all: {submissions} has no student subfolders (expected "
                          "SUBMISSIONS_DIR/STUDENT/EXERCISE.py)")
    if exercises:
        unknown = [name for name in exercises if name not in EXERCISES]
        if unknown:
            raise NotGradable(f"grade-all: no exercise named {', '.join(unknown)}; see "
                              "python -m scratchlm.exercises list")
        return students, list(exercises)
    found = [name for name in EXERCISES
             if any(submission_file(student, name) for student in students)]
    if not found:
        raise NotGradable(f"grade-all: no file in {submissions} is named after an exercise "
                          "(expected STUDENT/EXERCISE.py, e.g. alice/softmax.py)")
    return students, found


def grade_one(folder, exercise, timeout, memory_mb, expected=None, seed=PRACTICE_SEED,
              sandbox=None):
    path = submission_file(folder, exercise)
    points = EXERCISES[exercise].points
    if path is None:
        return Mark(exercise, 0.0, points, f"no file {exercise}.py")
    try:
        report = grade_file(exercise, path, timeout=timeout, memory_mb=memory_mb,
                            expected=expected, seed=seed, sandbox=sandbox, within=folder)
    except NotGradable as error:
        return Mark(exercise, 0.0, points, str(error))
    return Mark(exercise, report.points, points, report.lost, report)


def check_answer_key(expected, seed=PRACTICE_SEED):
    """The answers grade-all compares with: the hidden reference (the instructor's source
    checkout) or the folder of stored results ``expected``, which hold the practice seed's
    cases only; refused at once when neither is there (an installed wheel has no
    reference) or when stored results are asked for a held-out seed."""
    if expected is not None:
        folder = Path(expected)
        if not folder.is_dir():
            raise NotGradable(f"grade-all: --expected {folder} is not a folder (name a "
                              "release's expected/ folder)")
        if seed != PRACTICE_SEED:
            raise NotGradable(f"grade-all: --expected {folder} holds the results of the "
                              f"practice seed {PRACTICE_SEED} only; grading on the held-out "
                              f"seed {seed} needs the hidden reference (run it from the "
                              "source checkout, without --expected)")
        return folder
    if not reference_available():
        raise NotGradable("grade-all: this installation has no hidden reference (only the "
                          "instructor's source checkout has scratchlm/exercises/reference/); "
                          "grade against a release's stored results with --expected "
                          "RELEASE/expected, or run it from the source checkout")
    return None


def grade_all(submissions, exercises=None, *, timeout=DEFAULT_TIMEOUT,
              memory_mb=DEFAULT_MEMORY_MB, jobs=None, expected=None, seed=PRACTICE_SEED,
              sandbox=None):
    """{student: [Mark per exercise]} and the exercises, every file in its own sandboxed
    process (``sandbox``: "bwrap", "basic", None for the best available), on the cases of
    ``seed`` (the instructor's secret one, for the grade that counts), graded against the
    hidden reference or the stored results in the folder ``expected``."""
    timeout, memory_mb, jobs = check_timeout(timeout), check_memory(memory_mb), check_jobs(jobs)
    expected = check_answer_key(expected, seed)
    students, exercises = students_and_exercises(submissions, exercises)
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    work = [(student, exercise) for student in students for exercise in exercises]
    with ThreadPoolExecutor(jobs) as pool:
        marks = list(pool.map(lambda item: grade_one(*item, timeout, memory_mb, expected,
                                                     seed, sandbox), work))
    table = {student.name: [] for student in students}
    for (student, _), mark in zip(work, marks):
        table[student.name].append(mark)
    return table, exercises


def totals(table, late=None):
    """{student: total points}, less the late penalty where ``late`` ({student:
    :class:`~scratchlm.exercises.deadline.Lateness`}) gives one."""
    out = {}
    for student, marks in table.items():
        earned = sum(m.points for m in marks)
        penalty = late[student].penalty if late else 0.0
        out[student] = round(earned * (1 - penalty / 100), 2)
    return out


def rows(table, exercises, pairs=(), late=None):
    """The gradebook as rows: a header, then one row per student. ``similar`` names, per
    exercise, the students whose file is flagged as similar (``pairs``: see
    :func:`similarity`). With ``late`` ({student: Lateness}) the total is after the late
    penalty, and three columns say when each handed in, how many days late and the
    percent lost."""
    header = ["student", *exercises, "total", "max", "lost", "similar"]
    if late:
        header += ["submitted", "days_late", "late_penalty_percent"]
    out = [header]
    final = totals(table, late)
    for student, marks in table.items():
        lost = " | ".join(f"{m.exercise} -{m.max_points - m.points:g}: {m.lost}"
                          for m in marks if m.lost)
        row = [student, *[f"{m.points:g}" for m in marks], f"{final[student]:g}",
               str(sum(m.max_points for m in marks)), lost, similar_to(student, pairs)]
        if late:
            when = late[student].submitted
            row += [when.isoformat(timespec="seconds") if when else "",
                    str(late[student].days_late), f"{late[student].penalty:g}"]
        out.append(row)
    return out


def similar_to(student, pairs):
    """'exercise: other (score); …' for the flagged pairs ``student`` is in."""
    return "; ".join(f"{pair.exercise}: {pair.second if pair.first == student else pair.first}"
                     f" ({pair.score:.2f})" for pair in pairs
                     if pair.flagged and student in (pair.first, pair.second))


def similarity(submissions, students, exercises):
    """Every pair of students' files of each exercise, scored (most similar first) by
    :mod:`scratchlm.exercises.similarity`, the exercise's statement as the starter code."""
    pairs = []
    for exercise in exercises:
        sources = {}
        for student in students:
            path = submission_file(Path(submissions) / student, exercise)
            if path is not None:
                try:  # a huge file is compared on its start
                    with open_regular_file(path, "grade-all", "submission") as handle:
                        sources[student] = handle.read(SIMILARITY_LIMIT).decode("utf-8",
                                                                                "replace")
                except (OSError, FileFormatError):  # replaced or unreadable since it was
                    pass                              # graded: nothing to compare
        try:
            base = statement(exercise)
        except (OSError, ValueError):  # a source inspect cannot read: no starter to remove
            base = ""
        pairs += similar_pairs(sources, exercise, base)
    return pairs


def similarity_rows(pairs):
    """similarity.csv: one row per pair of students per exercise, most similar first."""
    return [["exercise", "student_a", "student_b", "score", "shared_fingerprints",
             "similar"]] + [[p.exercise, p.first, p.second, f"{p.score:.3f}", str(p.shared),
                             "yes" if p.flagged else ""]
                            for p in sorted(pairs, key=lambda p: -p.score)]


def write_rows(rows_, path):
    """Write a CSV at once: a crash or a full disk leaves the old file (or none), never
    half of one."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # a student folder named in bytes that are not UTF-8 is written with its escapes
        with os.fdopen(handle, "w", newline="", encoding="utf-8",
                       errors="backslashreplace") as out:
            csv.writer(out).writerows(rows_)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_csv(table, exercises, path, overwrite=False, pairs=(), late=None):
    path = Path(path)
    if path.exists() and not overwrite:
        raise NotGradable(f"grade-all: {path} exists; pass --overwrite to replace it, or "
                          "name another file")
    write_rows(rows(table, exercises, pairs, late), path)


def graded_files(submissions, student, exercises):
    """The files of ``student`` that grade-all graded."""
    folder = Path(submissions) / student
    return sorted({path for exercise in exercises
                   if (path := submission_file(folder, exercise)) is not None})
