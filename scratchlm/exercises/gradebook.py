"""Grading a class: ``python -m scratchlm.exercises grade-all SUBMISSIONS_DIR --csv scores.csv``.

The folder holds one subfolder per student, each with one file per exercise named after it
(``softmax.py``, ``adam.py``; the engine exercises may share one ``engine.py``)::

    submissions/
        alice/  softmax.py  adam.py  engine.py
        bob/    softmax.py

Every file is graded in its own process with the time and memory limits of
:func:`scratchlm.exercises.harness.grade_file` (several at once with ``jobs``). The CSV has
one row per student and one column per exercise (the points earned), then the total, the
maximum and ``lost``: for each exercise that lost points, how many and why.
"""

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.harness import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, NotGradable, grade_file

#: a file named this may hold every engine exercise (they build one engine)
ENGINE_FILE = "engine.py"


@dataclass(frozen=True)
class Mark:
    exercise: str
    points: float
    max_points: int
    #: why points were lost ('' when none were)
    lost: str


def submission_file(folder, exercise):
    """The student's file for ``exercise`` in ``folder``, or None."""
    own = folder / f"{exercise}.py"
    if own.is_file():
        return own
    if EXERCISES[exercise].track == 1 and (folder / ENGINE_FILE).is_file():
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


def grade_one(folder, exercise, timeout, memory_mb):
    path = submission_file(folder, exercise)
    points = EXERCISES[exercise].points
    if path is None:
        return Mark(exercise, 0.0, points, f"no file {exercise}.py")
    try:
        report = grade_file(exercise, path, timeout=timeout, memory_mb=memory_mb)
    except NotGradable as error:
        return Mark(exercise, 0.0, points, str(error))
    return Mark(exercise, report.points, points, report.lost)


def grade_all(submissions, exercises=None, *, timeout=DEFAULT_TIMEOUT,
              memory_mb=DEFAULT_MEMORY_MB, jobs=None):
    """{student: [Mark per exercise]} and the exercises, every file in its own process."""
    students, exercises = students_and_exercises(submissions, exercises)
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    work = [(student, exercise) for student in students for exercise in exercises]
    with ThreadPoolExecutor(jobs) as pool:
        marks = list(pool.map(lambda item: grade_one(*item, timeout, memory_mb), work))
    table = {student.name: [] for student in students}
    for (student, _), mark in zip(work, marks):
        table[student.name].append(mark)
    return table, exercises


def rows(table, exercises):
    """The gradebook as rows: a header, then one row per student."""
    header = ["student", *exercises, "total", "max", "lost"]
    out = [header]
    for student, marks in table.items():
        lost = " | ".join(f"{m.exercise} -{m.max_points - m.points:g}: {m.lost}"
                          for m in marks if m.lost)
        total = round(sum(m.points for m in marks), 2)
        out.append([student, *[f"{m.points:g}" for m in marks], f"{total:g}",
                    str(sum(m.max_points for m in marks)), lost])
    return out


def write_csv(table, exercises, path, overwrite=False):
    path = Path(path)
    if path.exists() and not overwrite:
        raise NotGradable(f"grade-all: {path} exists; pass --overwrite to replace it, or "
                          "name another file")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows(table, exercises))
