"""Gradient-check exercises: write the backward of an op, then grade it.

    from scratchlm.exercises import grade, skeletons
    class Softmax(skeletons.Softmax):
        def backward(self, g):
            ...                                  # your ∂L/∂x
    print(grade("softmax", Softmax))            # passed, or which case failed and by how much

``python -m scratchlm.exercises`` lists the exercises; ``… show NAME`` prints one with its
skeleton; ``… grade NAME FILE.py`` grades the class of that name in your file. The answer
key is :mod:`scratchlm.exercises.solutions` (not imported here).
"""

from scratchlm.exercises.catalog import EXERCISES, Case, Exercise
from scratchlm.exercises.grader import CaseResult, GradeReport, get_exercise, grade

__all__ = ["EXERCISES", "Exercise", "Case", "grade", "get_exercise", "GradeReport",
           "CaseResult"]
