"""A gradebook CSV that Canvas and Moodle import: ``grade-all ... --lms FILE``.

One row per student, the columns those of a gradebook Canvas exports (so Canvas's "Import"
in its Gradebook reads it back):

==================  ==========================================================
``Student``         the student's folder name
``ID``              empty (Canvas's own user number, which the folder does not carry)
``SIS User ID``     empty
``SIS Login ID``    the student's folder name: Canvas matches the row by it, so name
                    each folder after the student's login
``Section``         empty
TITLE               the total points (after any late penalty), ``--lms-title``
                    (default "scratchlm exercises"): Canvas makes it an assignment
==================  ==========================================================

Moodle (Grades → Import → CSV file) takes the same file: map ``SIS Login ID`` to the
users' "username" (or to "ID number" / "email address", whichever the folders are named
after) and TITLE to the grade item.
"""

#: the columns before the grade, as in a gradebook Canvas exports
IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
DEFAULT_TITLE = "scratchlm exercises"


def lms_rows(totals, title=DEFAULT_TITLE):
    """The import CSV's rows for ``totals`` ({student: points})."""
    return [IDENTITY + [title]] + [[student, "", "", student, "", f"{points:g}"]
                                   for student, points in totals.items()]
