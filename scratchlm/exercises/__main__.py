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
import importlib.util
import os
import sys
from pathlib import Path

from scratchlm import Function
from scratchlm.exercises.catalog import EXERCISES
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
from scratchlm.exercises.gradescope import VISIBILITIES
from scratchlm.exercises.gradescope import build as build_autograder
from scratchlm.exercises.harness import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT,
    PRACTICE_SEED,
    NotGradable,
    grade_file,
)
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
from scratchlm.exercises.sandbox import SANDBOXES, check_sandbox
from scratchlm.exercises.statements import hints, listing, statement
from scratchlm.exercises.tasks import ReferenceMissing


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
    every.add_argument("--seed", type=int, default=None, metavar="S",
                       help="the instructor's secret seed the cases are drawn from (default: "
                            "SCRATCHLM_GRADE_SEED, else the public practice seed 0)")
    every.add_argument("--sandbox", choices=SANDBOXES, default=None,
                       help="where each file runs (default: bwrap where it works, else basic)")
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


def say(text):
    """Print ``text`` on stdout, a character stdout cannot encode (a lone surrogate: a
    student folder named in bytes that are not UTF-8) as its backslash escape."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(str(text).encode(encoding, "backslashreplace").decode(encoding))


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
        say(report)
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
        seed = args.seed if args.seed is not None else environment_seed()
        check_answer_key(args.expected, PRACTICE_SEED if seed is None else seed)
        try:
            sandbox = check_sandbox(args.sandbox)
        except ValueError as error:
            raise NotGradable(f"grade-all: {error}") from None
        due, submitted = _deadline(args)
        table, exercises = grade_all(args.submissions, exercises, timeout=args.timeout,
                                     memory_mb=args.memory, jobs=args.jobs,
                                     expected=args.expected,
                                     seed=PRACTICE_SEED if seed is None else seed,
                                     sandbox=sandbox)
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
            say(f"{student}: {total:g} of {maximum}")
        flagged = [pair for pair in pairs if pair.flagged]
        say(f"wrote {', '.join(map(str, written))} ({len(flagged)} pair(s) flagged as "
            "similar)")
        print(f"graded in the {sandbox} sandbox, on the cases of "
              f"{'the public practice seed' if seed is None else 'the held-out seed'}")
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
