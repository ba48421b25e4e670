"""``python -m scratchlm.exercises``: list, show and grade the gradient-check exercises.

    python -m scratchlm.exercises                            # the list
    python -m scratchlm.exercises show softmax > my_softmax.py
    python -m scratchlm.exercises grade softmax my_softmax.py   # exit status 1 if it fails

``show`` prints a file to complete: the task in comments, the imports, and a class deriving
from the skeleton whose docstring holds the source of the library's forward (and of the
helper methods it calls), taken from the reference class, and what forward saves. The
reference class's docstring is not printed: it holds the derivation.

``grade`` runs the file in a separate process under a time and a memory limit
(:func:`scratchlm.exercises.harness.grade_file`): a file that loops, exits, crashes or
patches NumPy or the library fails with the reason, and never makes the exit status 0.
Without the hidden reference (a student's copy) it grades against the results the release
stored (``--expected DIR``, or found above the file: :mod:`scratchlm.exercises.expected`).
A failed grade shows a hint, one more unlocked with each failed attempt (the progress is
kept in ``.scratchlm_hints.json`` beside the file: :mod:`scratchlm.exercises.hints`).

For the instructor: ``grade-all SUBMISSIONS --csv FILE`` grades a class
(:mod:`~scratchlm.exercises.gradebook`), flags similar files
(:mod:`~scratchlm.exercises.similarity`), and on request writes one report per student
(``--feedback DIR``: :mod:`~scratchlm.exercises.feedback`), applies a late penalty
(``--due``: :mod:`~scratchlm.exercises.deadline`) and a CSV for Canvas or Moodle (``--lms``:
:mod:`~scratchlm.exercises.lms`); ``gradescope OUT.zip`` writes a Gradescope autograder
(:mod:`~scratchlm.exercises.gradescope`); ``release OUT_DIR`` the student version. Every
number and output path is checked before anything is graded
(:mod:`~scratchlm.exercises.options`).
"""

import argparse
import ast
import importlib.util
import inspect
import os
import sys
import textwrap
from pathlib import Path

from scratchlm import Function
from scratchlm.exercises.catalog import EXERCISES, TRACKS
from scratchlm.exercises.deadline import (
    DEFAULT_CAP,
    DEFAULT_PENALTY,
    check_rule,
    lateness,
    modified,
    parse_time,
    read_submitted,
)
from scratchlm.exercises.expected import ExpectedError
from scratchlm.exercises.feedback import write_feedback
from scratchlm.exercises.gradebook import (
    check_answer_key,
    grade_all,
    graded_files,
    similarity,
    similarity_rows,
    totals,
    write_csv,
    write_rows,
)
from scratchlm.exercises.grader import get_exercise
from scratchlm.exercises.gradescope import VISIBILITIES
from scratchlm.exercises.gradescope import build as build_autograder
from scratchlm.exercises.harness import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, NotGradable, grade_file
from scratchlm.exercises.hints import unlock
from scratchlm.exercises.lms import DEFAULT_TITLE, lms_rows
from scratchlm.exercises.options import (
    check_jobs,
    check_memory,
    check_output_file,
    check_output_folder,
    check_timeout,
)
from scratchlm.exercises.release import ReleaseError, release
from scratchlm.exercises.tasks import ReferenceMissing, Task

#: the width of the comment lines and docstrings ``show`` writes
WIDTH = 92

#: the imports of a file to complete: what a backward may need
IMPORTS = """\
import math

import numpy as np

import scratchlm as sl
from scratchlm import backend                    # backend.scatter_add(target, rows, values)
from scratchlm.backend import get_array_module  # xp = get_array_module(g): NumPy or CuPy
from scratchlm.exercises import skeletons
"""


def _limits(command):
    command.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                         help="wall-clock limit of one file's grading (default "
                              f"{DEFAULT_TIMEOUT:g})")
    command.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MIB",
                         help="address-space limit of the grading process, in MiB (default "
                              f"{DEFAULT_MEMORY_MB})")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m scratchlm.exercises",
        description="Coursework: exercises in five tracks, graded in a separate process.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("list", help="the exercises by track, with points")
    show = commands.add_parser("show", help="print an exercise and the file to complete")
    show.add_argument("name", choices=sorted(EXERCISES))
    show.add_argument("--hint", type=int, metavar="N",
                      help="print hints 1 to N instead (one more each time you are stuck)")
    check = commands.add_parser("grade", help="grade your file against the exercise")
    check.add_argument("name", choices=sorted(EXERCISES))
    check.add_argument("file", help="a Python file that defines your class or function")
    check.add_argument("--class", dest="class_name",
                       help="the class or function to grade (default: the exercise's name "
                            "for it)")
    check.add_argument("--expected", metavar="DIR",
                       help="grade against the results a release stored in DIR (default: "
                            "the hidden reference where it is, else the nearest expected/ "
                            "folder above FILE)")
    _limits(check)
    every = commands.add_parser(
        "grade-all", help="grade a class: SUBMISSIONS_DIR/STUDENT/EXERCISE.py, one CSV row "
                          "per student")
    every.add_argument("submissions", metavar="SUBMISSIONS_DIR")
    every.add_argument("--csv", required=True, metavar="FILE", help="where to write the scores")
    every.add_argument("--exercises", metavar="A,B,…",
                       help="the exercises to grade (default: those any student handed in)")
    every.add_argument("--jobs", type=int, default=None,
                       help="files graded at once (default: up to 4)")
    every.add_argument("--expected", metavar="DIR",
                       help="grade against the results a release stored in DIR (needed "
                            "where the hidden reference is absent, as in an installed wheel)")
    every.add_argument("--similarity", metavar="FILE",
                       help="where to write every pair of students' files per exercise with "
                            "its similarity score (default: similarity.csv beside --csv)")
    every.add_argument("--feedback", metavar="DIR",
                       help="also write one Markdown report per student into DIR: every "
                            "case, every failure in full, the hint matched to it")
    every.add_argument("--lms", metavar="FILE",
                       help="also write the totals as a CSV that Canvas's and Moodle's "
                            "gradebook import (see scratchlm.exercises.lms)")
    every.add_argument("--lms-title", default=DEFAULT_TITLE, metavar="TITLE",
                       help=f"the grade column of --lms (default {DEFAULT_TITLE!r})")
    every.add_argument("--due", metavar="TIME",
                       help="the due time, ISO 8601 (2026-12-01T23:59+08:00; UTC without an "
                            "offset): later submissions lose --late-penalty percent per day")
    every.add_argument("--late-penalty", type=float, default=DEFAULT_PENALTY, metavar="PCT",
                       help="percent of the earned points lost per day or part of a day late "
                            f"(default {DEFAULT_PENALTY:g})")
    every.add_argument("--late-cap", type=float, default=DEFAULT_CAP, metavar="PCT",
                       help=f"at most this percent is lost (default {DEFAULT_CAP:g})")
    every.add_argument("--submitted", metavar="FILE",
                       help="a CSV student,submitted of submission times (default: the "
                            "latest modification time of each student's graded files)")
    every.add_argument("--overwrite", action="store_true",
                       help="replace existing output files")
    _limits(every)
    scope = commands.add_parser("gradescope", help="write a Gradescope autograder zip "
                                                   "(practice cases visible, held-out hidden)")
    scope.add_argument("zip", metavar="OUT.zip")
    scope.add_argument("--exercises", metavar="A,B,…",
                       help="the exercises of the assignment (default: all)")
    scope.add_argument("--seed", type=int, default=None, metavar="S",
                       help="the held-out seed (default: SCRATCHLM_GRADE_SEED, else drawn at "
                            "random and printed)")
    scope.add_argument("--held-out-visibility", choices=VISIBILITIES, default="hidden",
                       help="when students see the held-out tests' scores (default hidden)")
    scope.add_argument("--overwrite", action="store_true", help="replace an existing zip")
    _limits(scope)
    out = commands.add_parser("release", help="write the student version of every exercise "
                                              "and assignment notebook")
    out.add_argument("out_dir", metavar="OUT_DIR")
    out.add_argument("--overwrite", action="store_true",
                     help="write into a folder that is not empty (only the release's files "
                          "are replaced)")
    return parser


def listing():
    width = max(map(len, EXERCISES))
    lines = []
    for track, title in TRACKS.items():
        names = [e for e in EXERCISES.values() if e.track == track]
        lines += [f"Track {track}: {title} ({sum(e.points for e in names)} points)"]
        lines += [f"  {e.name:<{width}} {e.points:>2} pt  {e.title}: {e.formula}"
                  for e in names]
        lines.append("")
    return "\n".join(lines + ["python -m scratchlm.exercises show NAME   prints one with "
                              "its file to complete"])


def hints(name, count):
    exercise = get_exercise(name)
    if not exercise.hints:
        return f"{name} has no hints"
    count = max(1, min(count, len(exercise.hints)))
    lines = [f"hint {i} of {len(exercise.hints)}: {hint}"
             for i, hint in enumerate(exercise.hints[:count], start=1)]
    if count < len(exercise.hints):
        lines.append(f"(the next: python -m scratchlm.exercises show {name} --hint {count + 1})")
    return "\n".join(lines)


def task_statement(task):
    """A task's file to complete: its statement in comments, then the stub."""
    header = [f"# Exercise {task.name} (track {task.track}, {task.points} points): {task.title}",
              *textwrap.wrap(task.formula, WIDTH, initial_indent="#   formula:  ",
                             subsequent_indent="#" + " " * 13),
              *textwrap.wrap(task.task, WIDTH, initial_indent="#   your job: ",
                             subsequent_indent="#" + " " * 13)]
    if task.needs:
        header.append(f"#   this file must also define: {', '.join(task.needs)}")
    header += [f"# Hints, one at a time: python -m scratchlm.exercises show {task.name} --hint 1",
               f"# Grade it:   python -m scratchlm.exercises grade {task.name} THIS_FILE.py", ""]
    return "\n".join(header) + "\n" + task.stub


def forward_methods(reference):
    """The methods that make ``reference``'s forward: ``__init__`` (where the op defines one),
    ``forward``, then the helper methods forward calls on ``self`` (and those they call), in
    the order first called."""
    def defined(name):
        for cls in reference.__mro__:
            if cls is Function:
                return None
            if name in vars(cls) and inspect.isfunction(vars(cls)[name]):
                return vars(cls)[name]
        return None

    found = {"__init__": defined("__init__")} if defined("__init__") else {}
    pending = ["forward"]
    while pending:
        name = pending.pop(0)
        if name in found or defined(name) is None:
            continue
        found[name] = defined(name)
        tree = ast.parse(textwrap.dedent(inspect.getsource(found[name])))
        pending += [node.func.attr for node in ast.walk(tree)
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"]
    return list(found.values())


def statement(name):
    """The exercise as a Python file to complete: the task in comments, the imports, then a
    class deriving from the skeleton, its docstring holding the library's forward (or, for
    the other exercises, their stub)."""
    exercise = get_exercise(name)
    if isinstance(exercise, Task):
        return task_statement(exercise)
    skeleton = exercise.skeleton
    reference = exercise.reference_class
    header = [f"# Exercise {name}: {exercise.title}",
              f"#   forward:  {exercise.formula}",
              *textwrap.wrap(exercise.task, WIDTH, initial_indent="#   your job: ",
                             subsequent_indent="#" + " " * 13),
              f"# Hints, one at a time: python -m scratchlm.exercises show {name} --hint 1",
              f"# Grade it:   python -m scratchlm.exercises grade {name} THIS_FILE.py", ""]
    sources = "\n".join(textwrap.dedent(inspect.getsource(method))
                        for method in forward_methods(reference))
    docstring = (f"Your backward for {reference.__module__}.{reference.__qualname__}.\n\n"
                 "Its forward, inherited from the skeleton (the library's own; leave it as "
                 "it is):\n\n" + textwrap.indent(sources.rstrip(), "    ") + "\n\n"
                 + textwrap.fill("(The other names it uses are defined in "
                                 f"{reference.__module__}.)", WIDTH - 4) + "\n\n"
                 + textwrap.fill(f"Saved for backward: {skeleton.saved}.", WIDTH - 4) + "\n")
    if "'''" in docstring:
        raise ValueError(f"{reference.__name__}: its forward's source holds '''; it cannot be "
                         "shown in a docstring")
    body = [f"class {skeleton.__name__}(skeletons.{skeleton.__name__}):",
            textwrap.indent(f"r'''{docstring}'''", "    "),
            "",
            "    def backward(self, g):",
            f"        raise NotImplementedError({_string_literal(skeleton.hint, 34)})",
            ""]
    return "\n".join(header) + "\n" + IMPORTS + "\n\n" + "\n".join(body)


def _string_literal(text, indent):
    """``text`` as a double-quoted literal, split over lines indented by ``indent`` spaces
    (adjacent literals concatenate) to keep the lines under 100 characters."""
    if '"' in text or "\\" in text:
        return repr(text)
    pieces = textwrap.wrap(text, 95 - indent) or [""]
    pieces = [piece + " " for piece in pieces[:-1]] + pieces[-1:]
    return ("\n" + " " * indent).join(f'"{piece}"' for piece in pieces)


def load_class(path, class_name):
    """The class ``class_name`` defined by the Python file at ``path``, run in this process
    (for a file you trust: ``grade`` runs the file it grades in a separate process)."""
    spec = importlib.util.spec_from_file_location("student_exercise", path)
    if spec is None:
        raise SystemExit(f"error: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except FileNotFoundError:
        raise SystemExit(f"error: no file {path}") from None
    found = getattr(module, class_name, None)
    if not (isinstance(found, type) and issubclass(found, Function)):
        defined = sorted(name for name, value in vars(module).items()
                         if isinstance(value, type) and issubclass(value, Function)
                         and value.__module__ == module.__name__)
        raise SystemExit(f"error: {path} defines no sl.Function subclass named {class_name}; "
                         f"it defines {defined or 'none'} (pick one with --class)")
    return found


def _deadline(args):
    """(the due time or None, {student: submission time} from --submitted), checked."""
    if args.due is None:
        if args.submitted:
            raise NotGradable("--submitted gives submission times for --due; name the due "
                              "time too")
        return None, {}
    check_rule(args.late_penalty, args.late_cap)
    due = parse_time(args.due, "--due")
    return due, read_submitted(args.submitted) if args.submitted else {}


def environment_seed():
    """The held-out seed in SCRATCHLM_GRADE_SEED, or None when it is not set."""
    text = os.environ.get("SCRATCHLM_GRADE_SEED", "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise NotGradable(f"SCRATCHLM_GRADE_SEED={text!r} is not a whole number") from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return _command(args)
    except (NotGradable, ReleaseError, ReferenceMissing, ExpectedError) as error:
        raise SystemExit(f"error: {error}") from None


def _command(args):
    if args.command in (None, "list"):
        print(listing())
    elif args.command == "show":
        print(statement(args.name) if args.hint is None else hints(args.name, args.hint))
    elif args.command == "grade":
        check_timeout(args.timeout)
        check_memory(args.memory)
        report = grade_file(args.name, args.file, args.class_name, timeout=args.timeout,
                            memory_mb=args.memory, expected=args.expected)
        report = unlock(report, Path(args.file).resolve().parent)
        print(report)
        return 0 if report.passed else 1
    elif args.command == "grade-all":
        exercises = args.exercises.split(",") if args.exercises else None
        check_timeout(args.timeout)
        check_memory(args.memory)
        check_jobs(args.jobs)
        similar_csv = args.similarity or Path(args.csv).parent / "similarity.csv"
        check_output_file(args.csv, "--csv", args.overwrite)
        check_output_file(similar_csv, "--similarity", args.overwrite)
        if args.lms:
            check_output_file(args.lms, "--lms", args.overwrite)
        if args.feedback:
            check_output_folder(args.feedback, "--feedback", args.overwrite)
        check_answer_key(args.expected)
        due, submitted = _deadline(args)
        table, exercises = grade_all(args.submissions, exercises, timeout=args.timeout,
                                     memory_mb=args.memory, jobs=args.jobs,
                                     expected=args.expected)
        pairs = similarity(args.submissions, list(table), exercises)
        late = None
        if due is not None:
            late = {}
            for student in table:
                when = submitted.get(student) or modified(
                    graded_files(args.submissions, student, exercises))
                late[student] = lateness(when, due, args.late_penalty, args.late_cap)
        write_csv(table, exercises, args.csv, overwrite=True, pairs=pairs, late=late)
        write_rows(similarity_rows(pairs), similar_csv)
        written = [args.csv, similar_csv]
        if args.lms:
            write_rows(lms_rows(totals(table, late), args.lms_title), args.lms)
            written.append(args.lms)
        if args.feedback:
            write_feedback(args.feedback, table, totals(table, late), late)
            written.append(f"{args.feedback}/STUDENT.md")
        maximum = sum(EXERCISES[name].points for name in exercises)
        for student, total in totals(table, late).items():
            print(f"{student}: {total:g} of {maximum}")
        flagged = [pair for pair in pairs if pair.flagged]
        print(f"wrote {', '.join(map(str, written))} ({len(flagged)} pair(s) flagged as "
              "similar)")
    elif args.command == "gradescope":
        check_timeout(args.timeout)
        check_memory(args.memory)
        check_output_file(args.zip, "OUT.zip", args.overwrite)
        seed = args.seed if args.seed is not None else environment_seed()
        exercises = args.exercises.split(",") if args.exercises else None
        try:
            seed = build_autograder(args.zip, exercises, seed=seed, timeout=args.timeout,
                                    memory_mb=args.memory,
                                    held_out_visibility=args.held_out_visibility)
        except ValueError as error:
            raise NotGradable(str(error)) from None
        print(f"wrote {args.zip}: upload it as the assignment's autograder (held-out seed "
              f"{seed}; keep the zip private: it holds the hidden references)")
    else:
        written = release(args.out_dir, overwrite=args.overwrite)
        print(f"wrote {len(written)} files to {args.out_dir} (no reference solution among them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
