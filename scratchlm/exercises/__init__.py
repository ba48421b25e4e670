"""Gradient-check exercises: write the backward of an op, then grade it.

    from scratchlm.exercises import grade, skeletons
    class Softmax(skeletons.Softmax):
        def backward(self, g):
            ...                                  # your ∂L/∂x
    print(grade("softmax", Softmax))            # passed, or which case failed and by how much

A skeleton is the library's own class of the op (``skeletons.Softmax`` subclasses
``scratchlm.functional.softmax.Softmax``) with its backward taken away, so its forward is the
library's and the answer key is that reference class; the grader fails a backward that calls
it. ``python -m scratchlm.exercises`` lists the exercises; ``… show NAME`` prints one to
complete (the forward's source and what it saves); ``… grade NAME FILE.py`` grades the class
of that name in your file, in a separate process with a time and memory limit
(:func:`grade_file`): a file that loops, exits or patches NumPy fails, with the reason.
"""

from scratchlm.exercises.catalog import EXERCISES, Case, Exercise
from scratchlm.exercises.grader import CaseResult, GradeReport, get_exercise, grade
from scratchlm.exercises.harness import NotGradable, grade_file

__all__ = ["EXERCISES", "Exercise", "Case", "grade", "get_exercise", "GradeReport",
           "CaseResult", "grade_file", "NotGradable"]
