"""The assignment notebooks round-trip through nbgrader itself: ``generate_assignment``
makes the student version, ``autograde`` runs a correct and a wrong fake submission, and
the gradebook holds the right scores (hidden tests included). Our own ``release`` writes the
same student cells as nbgrader does.

nbgrader is installed in CI (``pip install .[course]``); without it these tests skip."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm.exercises.release import ASSIGNMENTS, student_notebook

nbgrader = pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402

ASSIGNMENT = "scratchlm"
MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)

#: notebook: [(cell grade_id, text in the solution, the wrong text)] for the wrong student
WRONG = {
    "assignment_01_backprop.ipynb": [  # delegates to the library: the hidden test catches it
        ("softmax_solution", "return self.y * (g - (g * self.y).sum(axis=self.axis, "
                             "keepdims=True))",
         "return super(skeletons.Softmax, self).backward(g)")],
    "assignment_02_modern_ops.ipynb": [  # r treated as a constant
        ("rmsnorm_solution", "dx = self.rstd * (dnorm - self.norm * (dnorm * self.norm).mean("
                             "axis=-1, keepdims=True))", "dx = self.rstd * dnorm")],
    "assignment_03_decoding_metrics.ipynb": [  # drops ties: only the hidden test sees it
        ("top_k_solution", "return np.where(logits < kth, -np.inf, logits)",
         "return np.where(np.argsort(np.argsort(-logits, axis=-1, kind='stable'), axis=-1) "
         "< k, logits, -np.inf)")],
}
#: grade_id: points lost by the wrong submission
LOST = {"softmax_tests": 3, "backward_tests": 3, "top_k_tests": 2}


def _cells(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _submission(source_path, release_path, wrong):
    """The released notebook with each solution region filled in (right, or made wrong)."""
    notebook = json.loads(Path(release_path).read_text(encoding="utf-8"))
    for mine, cell in zip(_cells(source_path), notebook["cells"]):
        source = _source(mine)
        if "### BEGIN SOLUTION" not in source:
            continue
        answer = MARKERS.sub("", source)
        for grade_id, right, bad in (WRONG.get(Path(source_path).name, []) if wrong else []):
            if mine["metadata"]["nbgrader"]["grade_id"] == grade_id:
                assert right in answer, (grade_id, right)
                answer = answer.replace(right, bad)
        cell["source"] = answer
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        shutil.copy(path, source / path.name)
    (root / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "scratchlm"\n'
        "c.ExecutePreprocessor.timeout = 120\n", encoding="utf-8")
    _nbgrader(root, "generate_assignment", ASSIGNMENT)
    for student, wrong in (("right", False), ("wrong", True)):
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for path in sorted(source.glob("*.ipynb")):
            notebook = _submission(path, root / "release" / ASSIGNMENT / path.name, wrong)
            (folder / path.name).write_text(json.dumps(notebook), encoding="utf-8")
    _nbgrader(root, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {}
        for student in ("right", "wrong"):
            submission = gradebook.find_submission(ASSIGNMENT, student)
            scores[student] = {grade.name: (grade.score, grade.max_score)
                               for notebook in submission.notebooks
                               for grade in notebook.grades}
    return root, scores


def test_the_notebooks_carry_nbgrader_markers_and_points():
    total = 0
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        cells = _cells(path)
        solutions = [c for c in cells if c["metadata"].get("nbgrader", {}).get("solution")]
        tests = [c for c in cells if c["metadata"].get("nbgrader", {}).get("grade")]
        assert solutions and tests, path.name
        assert all("### BEGIN SOLUTION" in _source(c) for c in solutions)
        assert all("### BEGIN HIDDEN TESTS" in _source(c) for c in tests)
        assert all(c["metadata"]["nbgrader"]["points"] > 0 for c in tests)
        total += sum(c["metadata"]["nbgrader"]["points"] for c in tests)
    assert total == 16


def test_autograde_gives_the_right_submission_full_marks(course):
    _, scores = course
    right = scores["right"]
    assert right and all(score == maximum for score, maximum in right.values()), right
    assert sum(maximum for _, maximum in right.values()) == 16


def test_autograde_takes_the_points_of_the_wrong_answers(course):
    _, scores = course
    wrong = scores["wrong"]
    for grade_id, (score, maximum) in wrong.items():
        assert score == maximum - LOST.get(grade_id, 0), (grade_id, score, maximum)
    assert sum(score for score, _ in wrong.values()) == 16 - sum(LOST.values())


def test_our_release_writes_what_nbgrader_releases(course):
    root, _ = course
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        ours = student_notebook(json.loads(path.read_text(encoding="utf-8")))["cells"]
        theirs = _cells(root / "release" / ASSIGNMENT / path.name)
        assert [_source(c).strip() for c in ours] == [_source(c).strip() for c in theirs]
