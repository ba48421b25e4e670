"""Grading an nbgrader notebook's answer in the sandboxed grader, not in the notebook's kernel.

A hidden test cell that checks the student's class where the student's code ran (``assert
sl.gradcheck_op(RMSNorm, …)``, ``grade("softmax", Softmax)``) trusts that kernel: a
solution cell that sets ``sl.gradcheck_op = lambda *a, **k: True``, or defines
``top_k_filter`` by calling the library's, passes it. The assignment notebooks' hidden tests
call :func:`grade_cells` instead::

    ### BEGIN HIDDEN TESTS
    from scratchlm.exercises.notebook_grading import grade_cells
    report = grade_cells("rmsnorm", "assignment_02_modern_ops.ipynb",
                         ["imports", "rmsnorm_solution"])
    assert report.passed, str(report)
    ### END HIDDEN TESTS

It reads the notebook file from disk (nbgrader's ``autograde`` runs every notebook in its
own folder, so the name alone finds it), joins the sources of the cells with those nbgrader
``grade_id``s into one Python file, exactly as the student wrote them, and grades that file
with :func:`scratchlm.exercises.harness.grade_file`: in a separate, limited process that
the kernel's patches never reach, against the exercise's hidden reference, with the same
checks as ``grade-all`` (a patched grader, a call into the library, a forward used as a
derivative all fail there).
"""

import json
import tempfile
from pathlib import Path

from scratchlm.exercises.harness import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, NotGradable, grade_file
from scratchlm.exercises.options import check_memory, check_timeout


def cell_sources(notebook, grade_ids):
    """The sources of the cells whose nbgrader ``grade_id`` is in ``grade_ids``, in the
    order given, joined into one file's text."""
    path = Path(notebook)
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except FileNotFoundError:
        raise NotGradable(f"grade_cells: no notebook {path} in {Path.cwd()} (give its path)"
                          ) from None
    except (ValueError, KeyError, TypeError):
        raise NotGradable(f"grade_cells: {path} is not a notebook") from None
    wanted, found = set(grade_ids), {}
    for cell in cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in wanted and cell.get("cell_type") == "code":
            source = cell["source"]
            found[grade_id] = "".join(source) if isinstance(source, list) else source
    missing = [grade_id for grade_id in grade_ids if grade_id not in found]
    if missing:
        raise NotGradable(f"grade_cells: {path} has no code cell with grade_id "
                          f"{', '.join(missing)}")
    return "\n\n".join(found[grade_id] for grade_id in grade_ids) + "\n"


def grade_cells(exercise, notebook, grade_ids, class_name=None, *, timeout=DEFAULT_TIMEOUT,
                memory_mb=DEFAULT_MEMORY_MB):
    """The :class:`~scratchlm.exercises.grader.GradeReport` of the cells ``grade_ids`` of
    ``notebook`` (a path) graded as the file of ``exercise``, in a separate process."""
    timeout, memory_mb = check_timeout(timeout, "timeout"), check_memory(memory_mb, "memory_mb")
    source = cell_sources(notebook, grade_ids)
    with tempfile.TemporaryDirectory(prefix="scratchlm-notebook-") as folder:
        path = Path(folder) / f"{exercise}.py"
        path.write_text(source, encoding="utf-8")
        return grade_file(exercise, path, class_name, timeout=timeout, memory_mb=memory_mb)
