"""The assignment notebooks round-trip through nbgrader itself: ``generate_assignment``
makes the student version, ``autograde`` runs a correct, a wrong and a cheating fake
submission, and the gradebook holds the right scores (hidden tests included: they grade
the solution cells in the sandboxed grader, so the cheat's kernel patches count for
nothing). Our own ``release`` writes the same student cells as nbgrader does.

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
STUDENTS = ("right", "wrong", "cheat")
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

#: notebook: {solution cell's grade_id: the whole cell as a cheating student writes it} —
#: each passes the visible test in the notebook's kernel
CHEAT = {
    "assignment_02_modern_ops.ipynb": {"rmsnorm_solution": """\
sl.gradcheck_op = lambda *a, **k: True  # every gradient check in this kernel passes


class RMSNorm(sl.Function):
    def __init__(self, eps=1e-6):
        self.eps = eps

    def forward(self, x, weight):
        self.rstd = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + self.eps)
        self.norm, self.weight = x * self.rstd, weight
        return self.norm * weight

    def backward(self, g):
        return self.rstd * g * self.weight, (g * self.norm).reshape(-1, g.shape[-1]).sum(0)
"""},
    "assignment_03_decoding_metrics.ipynb": {"top_k_solution": """\
from scratchlm.sampling_filters import top_k_filter
""", "rouge_solution": """\
from scratchlm import metrics


def rouge_l(hypothesis, reference):
    score = metrics.rouge(" ".join(hypothesis), " ".join(reference))["rougeL"]
    return score.precision, score.recall, score.fmeasure
"""},
}
#: grade_id: points the cheating submission loses (the forward of its RMSNorm is right)
CHEAT_LOST = {"backward_tests": 3, "top_k_tests": 2, "rouge_tests": 3}


def _cells(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _submission(source_path, release_path, kind):
    """The released notebook with each solution region filled in: right, made wrong, or
    written by a cheat."""
    notebook = json.loads(Path(release_path).read_text(encoding="utf-8"))
    name = Path(source_path).name
    for mine, cell in zip(_cells(source_path), notebook["cells"]):
        source = _source(mine)
        if "### BEGIN SOLUTION" not in source:
            continue
        answer = MARKERS.sub("", source)
        grade_id = mine["metadata"]["nbgrader"]["grade_id"]
        for wrong_id, right, bad in (WRONG.get(name, []) if kind == "wrong" else []):
            if grade_id == wrong_id:
                assert right in answer, (grade_id, right)
                answer = answer.replace(right, bad)
        if kind == "cheat":
            answer = CHEAT.get(name, {}).get(grade_id, answer)
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
    for student in STUDENTS:
        folder = root / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        for path in sorted(source.glob("*.ipynb")):
            notebook = _submission(path, root / "release" / ASSIGNMENT / path.name, student)
            (folder / path.name).write_text(json.dumps(notebook), encoding="utf-8")
    _nbgrader(root, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {}
        for student in STUDENTS:
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


def test_a_cheat_that_passes_in_the_kernel_scores_nothing(course):
    """Patching sl.gradcheck_op, calling the library's top_k_filter, wrapping
    metrics.rouge: the visible tests pass in the kernel, the hidden tests grade the cells in
    the sandboxed grader, and those cells score 0."""
    root, scores = course
    cheat = scores["cheat"]
    for grade_id, (score, maximum) in cheat.items():
        assert score == maximum - CHEAT_LOST.get(grade_id, 0), (grade_id, score, maximum)
    assert all(cheat[grade_id][0] == 0 for grade_id in CHEAT_LOST)
    executed = _cells(root / "autograded" / "cheat" / ASSIGNMENT
                      / "assignment_02_modern_ops.ipynb")
    backward = next(c for c in executed if c["metadata"]["nbgrader"]["grade_id"]
                    == "backward_tests")
    errors = "".join(line for output in backward["outputs"]
                     for line in output.get("traceback", []))
    assert "AssertionError" in errors and "rmsnorm (RMSNorm): FAILED" in errors


def test_our_release_writes_what_nbgrader_releases(course):
    root, _ = course
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        ours = student_notebook(json.loads(path.read_text(encoding="utf-8")))["cells"]
        theirs = _cells(root / "release" / ASSIGNMENT / path.name)
        assert [_source(c).strip() for c in ours] == [_source(c).strip() for c in theirs]
