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
"""

import argparse
import ast
import importlib.util
import inspect
import sys
import textwrap

from scratchlm import Function
from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.grader import get_exercise
from scratchlm.exercises.harness import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, NotGradable, grade_file

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
    check.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help=f"wall-clock limit of the grading (default {DEFAULT_TIMEOUT:g})")
    check.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MIB",
                       help="address-space limit of the grading process, in MiB (default "
                            f"{DEFAULT_MEMORY_MB})")
    return parser


def listing():
    width = max(map(len, EXERCISES))
    lines = [f"{name:<{width}}  {exercise.title}: {exercise.formula}"
             for name, exercise in EXERCISES.items()]
    return "\n".join(lines + ["", "python -m scratchlm.exercises show NAME   prints one with "
                                  "its skeleton"])


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
    class deriving from the skeleton, its docstring holding the library's forward."""
    exercise = get_exercise(name)
    skeleton = exercise.skeleton
    reference = exercise.reference_class
    header = [f"# Exercise {name}: {exercise.title}",
              f"#   forward:  {exercise.formula}",
              *textwrap.wrap(exercise.task, WIDTH, initial_indent="#   your job: ",
                             subsequent_indent="#" + " " * 13),
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command is None:
        print(listing())
    elif args.command == "show":
        print(statement(args.name))
    else:
        try:
            report = grade_file(args.name, args.file, args.class_name, timeout=args.timeout,
                                memory_mb=args.memory)
        except NotGradable as error:
            raise SystemExit(f"error: {error}") from None
        print(report)
        return 0 if report.passed else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
