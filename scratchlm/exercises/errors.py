"""The exceptions of grading, in one place (the grader, the tasks and the harness share them)."""


class CaseFailure(Exception):
    """One case went wrong; the message says what, for the student to read."""


class DelegatesToLibrary(Exception):
    """Raised, while a student's code is graded, by the library's own implementation of what
    is being graded."""
