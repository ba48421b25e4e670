"""``python -m scratchlm.exercises``: list, show and grade the gradient-check exercises.

    python -m scratchlm.exercises                            # the list
    python -m scratchlm.exercises show softmax > my_softmax.py
    python -m scratchlm.exercises grade softmax my_softmax.py   # exit status 1 if it fails
"""

import argparse
import ast
import importlib.util
import inspect
import sys

from scratchlm import Function
from scratchlm.exercises import skeletons
from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.grader import get_exercise, grade


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m scratchlm.exercises",
        description="Gradient-check exercises: write the backward of an op, then grade it.")
    commands = parser.add_subparsers(dest="command")
    show = commands.add_parser("show", help="print an exercise and the skeleton to complete")
    show.add_argument("name", choices=sorted(EXERCISES))
    check = commands.add_parser("grade", help="grade your class against the exercise")
    check.add_argument("name", choices=sorted(EXERCISES))
    check.add_argument("file", help="a Python file that defines your class")
    check.add_argument("--class", dest="class_name",
                       help="the class to grade (default: the skeleton's name)")
    return parser


def listing():
    width = max(map(len, EXERCISES))
    lines = [f"{name:<{width}}  {exercise.title}: {exercise.formula}"
             for name, exercise in EXERCISES.items()]
    return "\n".join(lines + ["", "python -m scratchlm.exercises show NAME   prints one with "
                                  "its skeleton"])


def statement(name):
    """The exercise as a Python file to complete: the task in comments, then the skeleton."""
    exercise = get_exercise(name)
    module_lines = inspect.getsource(skeletons).splitlines()
    imports = [node for node in ast.parse("\n".join(module_lines)).body
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    header = [f"# Exercise {name}: {exercise.title}",
              f"#   forward:  {exercise.formula}",
              f"#   your job: {exercise.task}",
              f"# Grade it:   python -m scratchlm.exercises grade {name} THIS_FILE.py", ""]
    import_block = module_lines[imports[0].lineno - 1:imports[-1].end_lineno]
    return "\n".join(header + import_block + ["", "", ""]) + inspect.getsource(exercise.skeleton)


def load_class(path, class_name):
    """The class ``class_name`` defined by the Python file at ``path`` (which is run)."""
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command is None:
        print(listing())
    elif args.command == "show":
        print(statement(args.name))
    else:
        class_name = args.class_name or get_exercise(args.name).skeleton.__name__
        report = grade(args.name, load_class(args.file, class_name))
        print(report)
        return 0 if report.passed else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
