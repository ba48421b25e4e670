"""One Markdown report per student: ``grade-all ... --feedback DIR`` writes ``DIR/STUDENT.md``.

The CSV says how many points were lost and the first reason; a student needs more to fix
the work in one attempt. Each report has, per exercise:

* the points, and why the grade failed as a whole where it did (a time-out, a crash, a
  file that patched the grader);
* a table of every case — passed or failed, with its reason in a line;
* for every failed case, the grader's whole message: every input whose gradient or output
  is wrong that the grader names, and the worst entries side by side (index, yours, the
  expected or numerical value, the error), as the grader prints them;
* the hint matched to the failure (the hint for a shape mismatch or a recursion error
  where the exercise has one, else its first hint), and what the file printed.

Nothing in it comes from the student's file but what the file printed; the late penalty is
stated where ``--due`` was given. The reports say nothing of similarity, which is for the
instructor to look into.
"""

import os
import re
import tempfile
from pathlib import Path

from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.hints import choose, failure_kind


def _fence(text):
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _block(text):
    fence = _fence(text)
    return f"{fence}\n{text.rstrip()}\n{fence}"


def _cell(text):
    """``text`` as one Markdown table cell: one line, pipes escaped."""
    line = " ".join(str(text).split())
    line = line if len(line) <= 160 else line[:157] + "…"
    return line.replace("\\", "\\\\").replace("|", "\\|")


def matched_hint(exercise, report):
    """(the hint for the report's kind of failure, why) where the exercise has one, else
    (1, where the next hints are)."""
    number, why = choose(exercise, report, [])
    if failure_kind(report) is not None and why.startswith("for this kind"):
        return number, why
    more = (f"; the next: python -m scratchlm.exercises show {exercise.name} --hint 2"
            if len(exercise.hints) > 1 else "")
    return 1, "the first hint" + more


def exercise_section(mark):
    """The report's part for one exercise (a :class:`~scratchlm.exercises.gradebook.Mark`)."""
    exercise = EXERCISES[mark.exercise]
    report = mark.report
    verdict = "passed" if not mark.lost else "points lost"
    lines = [f"## {mark.exercise}: {mark.points:g} of {mark.max_points} points ({verdict})",
             "", f"*{exercise.title}*", ""]
    if report is None:
        lines += [f"Not graded: {mark.lost}", ""]
        return lines
    if report.error is not None:
        lines += ["The grade failed as a whole:", "", _block(report.error), ""]
    if report.cases:
        passed = sum(case.passed for case in report.cases)
        lines += [f"{passed} of {len(report.cases)} cases pass.", "",
                  "| # | case | result |", "|---|---|---|"]
        for number, case in enumerate(report.cases, start=1):
            result = "ok" if case.passed else "**fails**: " + case.failure.splitlines()[0]
            lines.append(f"| {number} | {_cell(case.label)} | {_cell(result)} |")
        lines.append("")
        for number, case in enumerate(report.cases, start=1):
            if not case.passed:
                lines += [f"### Case {number} fails: {case.label}", "", _block(case.failure),
                          ""]
    if not report.passed and exercise.hints:
        number, why = matched_hint(exercise, report)
        lines += [f"**Hint {number} of {len(exercise.hints)}** ({why}): "
                  f"{exercise.hints[number - 1]}", ""]
    if report.printed:
        lines += ["What your file printed:", "", _block(report.printed), ""]
    return lines


def student_report(student, marks, total, lateness=None):
    """The Markdown report of one student: ``marks`` (one Mark per exercise) and the
    ``total`` after any late penalty (``lateness``: a
    :class:`~scratchlm.exercises.deadline.Lateness`)."""
    maximum = sum(mark.max_points for mark in marks)
    lines = [f"# Feedback for {student}", "",
             f"**Total: {total:g} of {maximum} points.**", ""]
    if lateness is not None and lateness.days_late:
        lines += [f"Handed in {lateness.days_late} day(s) late "
                  f"({lateness.submitted.isoformat(timespec='minutes')}): "
                  f"{lateness.penalty:g} % of the points earned "
                  f"({sum(mark.points for mark in marks):g}) deducted.", ""]
    lines += ["| exercise | points | why points were lost |", "|---|---|---|"]
    lines += [f"| {mark.exercise} | {mark.points:g} of {mark.max_points} | "
              f"{_cell(mark.lost) or '—'} |" for mark in marks]
    lines.append("")
    for mark in marks:
        lines += exercise_section(mark)
    return "\n".join(lines).rstrip() + "\n"


def write_feedback(folder, table, totals, late=None):
    """Write ``folder/STUDENT.md`` for every student of ``table`` ({student: [Mark]});
    each file is written at once (a temporary file renamed over it). Returns the paths."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    written = []
    for student, marks in table.items():
        path = folder / f"{student}.md"
        text = student_report(student, marks, totals[student], late[student] if late else None)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        try:
            # a student folder named in bytes that are not UTF-8: its escapes
            with os.fdopen(handle, "w", encoding="utf-8", errors="backslashreplace") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(path)
    return written
