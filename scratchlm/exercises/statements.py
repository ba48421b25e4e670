"""What a student reads of an exercise: the list of exercises, one exercise's file to
complete (``python -m scratchlm.exercises show NAME``), and its hints.

A backward exercise's file holds the task in comments, the imports, and a class deriving
from the skeleton whose docstring holds the source of the library's forward (and of the
helper methods it calls) and what forward saves; the reference class's docstring is not
printed: it holds the derivation. A task's file holds its statement in comments, then its
stub. Every statement says what is graded and how (:mod:`scratchlm.exercises.catalog`, the
track modules); the rules it states are the ones the grader enforces.
"""

import ast
import inspect
import textwrap

from scratchlm import Function
from scratchlm.exercises.catalog import EXERCISES, TRACKS
from scratchlm.exercises.expected import how_graded
from scratchlm.exercises.grader import get_exercise
from scratchlm.exercises.tasks import Task

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
    header += _graded(task)
    header += [f"# Hints, one at a time: python -m scratchlm.exercises show {task.name} --hint 1",
               f"# Grade it:   python -m scratchlm.exercises grade {task.name} THIS_FILE.py", ""]
    return "\n".join(header) + "\n" + task.stub


def _graded(exercise):
    """The statement's lines saying what the grader checks, on cases drawn from a seed."""
    checked = how_graded(exercise).replace(" (stored here)", "")
    return textwrap.wrap(f"{checked}; the cases are drawn from a seed (practice: the "
                         "release's; the grade: the teacher's own)", WIDTH,
                         initial_indent="#   graded:   ", subsequent_indent="#" + " " * 13)


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
              *_graded(exercise),
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
