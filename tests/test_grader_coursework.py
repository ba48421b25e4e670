"""Grading a class and releasing the student version: ``grade-all`` over a folder with
correct, wrong, crashing, hanging and cheating submissions writes the right CSV; files of
every kind of exercise are graded in their own process; ``release`` writes no solution."""

import ast
import csv
import json
import os
import re
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from scratchlm.exercises import EXERCISES, grade_file, tasks
from scratchlm.exercises import release as release_module
from scratchlm.exercises.__main__ import main, statement
from scratchlm.exercises.deadline import lateness, parse_time
from scratchlm.exercises.errors import CaseFailure
from scratchlm.exercises.expected import files as expected_files
from scratchlm.exercises.gradebook import grade_all, rows
from scratchlm.exercises.grader import check_outputs, prepare_cases
from scratchlm.exercises.harness import NotGradable
from scratchlm.exercises.release import ASSIGNMENTS, ReleaseError, release

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "scratchlm" / "exercises" / "reference"
TIMEOUT, MEMORY_MB = 4, 768

SOFTMAX_RIGHT = """\
from scratchlm.exercises import skeletons


class Softmax(skeletons.Softmax):
    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))
"""
SOFTMAX_WRONG = SOFTMAX_RIGHT.replace("(g - (g * self.y).sum(axis=self.axis, keepdims=True))",
                                      "g")
SOFTMAX_DELEGATES = """\
from scratchlm.exercises import skeletons
from scratchlm.functional.softmax import Softmax as Library


class Softmax(skeletons.Softmax):
    def backward(self, g):
        return Library.backward(self, g)
"""
TOP_K_RIGHT = """\
import numpy as np


def top_k_filter(logits, k):
    kth = np.sort(logits, axis=-1)[..., -min(k, logits.shape[-1])][..., None]
    return np.where(logits < kth, -np.inf, logits)
"""
TOP_K_WRONG = """\
import numpy as np


def top_k_filter(logits, k):  # ties at the k-th are dropped
    out = np.full_like(logits, -np.inf)
    keep = np.argsort(logits, axis=-1)[..., ::-1][..., :k]
    np.put_along_axis(out, keep, np.take_along_axis(logits, keep, -1), -1)
    return out
"""
TOP_K_CHEATS = "from scratchlm.exercises.reference.data import top_k_filter\n"
TOP_K_LIBRARY = "from scratchlm.sampling_filters import top_k_filter\n"
RMSNORM_RIGHT = """\
import numpy as np
import scratchlm as sl


class RMSNorm(sl.Function):
    def __init__(self, eps=1e-6):
        self.eps = eps

    def forward(self, x, weight):
        self.r = 1 / np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + self.eps)
        self.n, self.w = x * self.r, weight
        return self.n * weight

    def backward(self, g):
        dn = g * self.w
        dx = self.r * dn - self.n * self.r * np.mean(dn * self.n, axis=-1, keepdims=True)
        return dx, np.sum((g * self.n).reshape(-1, g.shape[-1]), axis=0)
"""
RMSNORM_WRONG = RMSNORM_RIGHT.replace(
    "dx = self.r * dn - self.n * self.r * np.mean(dn * self.n, axis=-1, keepdims=True)",
    "dx = self.r * dn  # r treated as a constant")

#: student: {file: source}
CLASS = {
    "alice": {"softmax.py": SOFTMAX_RIGHT, "top_k.py": TOP_K_RIGHT, "rmsnorm.py": RMSNORM_RIGHT},
    "bob": {"softmax.py": SOFTMAX_WRONG, "top_k.py": TOP_K_WRONG, "rmsnorm.py": RMSNORM_WRONG},
    "carol": {"softmax.py": "1 / 0\n" + SOFTMAX_RIGHT, "top_k.py": TOP_K_RIGHT.replace(
        "kth = ", "raise RuntimeError('unfinished')\n    kth = ")},
    "dave": {"softmax.py": "while True:\n    pass\n", "top_k.py": TOP_K_RIGHT.replace(
        "    kth =", "    while True:\n        pass\n    kth ="), "rmsnorm.py": RMSNORM_RIGHT},
    "erin": {"softmax.py": SOFTMAX_DELEGATES, "top_k.py": TOP_K_CHEATS,
             "rmsnorm.py": "import numpy\nnumpy.allclose = lambda *a, **k: True\n"
                           + RMSNORM_WRONG},
    "frank": {"top_k.py": TOP_K_LIBRARY},
    # alice's RMSNorm with every name changed and comments added: similar, not wrong
    "gina": {"rmsnorm.py": "# my own work\n" + RMSNORM_RIGHT.replace("self.r", "self.inv_rms")
             .replace("dn", "d_normed").replace("self.n", "self.x_hat")},
}


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for student, files in CLASS.items():
        (folder / student).mkdir()
        for name, source in files.items():
            (folder / student / name).write_text(source, encoding="utf-8")
    out = folder.parent / "scores.csv"
    assert main(["grade-all", str(folder), "--csv", str(out), "--timeout", str(TIMEOUT),
                 "--memory", str(MEMORY_MB), "--jobs", "3",
                 "--feedback", str(folder.parent / "feedback")]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    return folder, out, table


def test_grade_all_writes_one_row_per_student_one_column_per_exercise(gradebook):
    _, _, table = gradebook
    header, *students = table
    assert header == ["student", "softmax", "rmsnorm", "top_k", "total", "max", "lost",
                      "similar"]
    assert [row[0] for row in students] == sorted(CLASS)
    score = {row[0]: dict(zip(header, row)) for row in students}
    maximum = str(sum(EXERCISES[n].points for n in ("softmax", "top_k", "rmsnorm")))
    assert score["alice"]["total"] == maximum and score["alice"]["lost"] == ""
    assert all(row["max"] == maximum for row in score.values())
    for student in ("carol", "dave", "erin", "frank"):
        assert float(score[student]["total"]) < float(maximum)


def _score(gradebook):
    _, _, table = gradebook
    header, *students = table
    return {row[0]: dict(zip(header, row)) for row in students}


def test_grade_all_scores_and_reasons(gradebook):
    score = _score(gradebook)
    points = {name: EXERCISES[name].points for name in ("softmax", "top_k", "rmsnorm")}
    alice = score["alice"]
    assert {n: float(alice[n]) for n in points} == {n: float(p) for n, p in points.items()}
    # wrong: softmax fails every case; top_k fails only the tie case; rmsnorm every case
    bob = score["bob"]
    assert float(bob["softmax"]) == 0 and float(bob["rmsnorm"]) == 0
    cases = len(EXERCISES["top_k"].cases)
    assert float(bob["top_k"]) == pytest.approx(round(points["top_k"] * (cases - 1) / cases, 2))
    assert "softmax -3: 4 of 4 cases fail; first: x (5,): gradient of x differs" in bob["lost"]
    assert "top_k -" in bob["lost"] and "ties at the k-th" in bob["lost"]
    assert "rmsnorm -4:" in bob["lost"] and "the gradient of x differs" in bob["lost"]
    # crashing: an error at import loses all; an error in the function loses each case
    carol = score["carol"]
    assert float(carol["softmax"]) == 0 and "ZeroDivisionError" in carol["lost"]
    assert float(carol["top_k"]) == 0 and "RuntimeError: unfinished" in carol["lost"]
    assert float(carol["rmsnorm"]) == 0 and "rmsnorm -4: no file rmsnorm.py" in carol["lost"]
    # hanging: stopped at the time limit, the other file still graded
    dave = score["dave"]
    assert float(dave["softmax"]) == 0 and float(dave["top_k"]) == 0
    assert f"the grader stopped it after {TIMEOUT} s" in dave["lost"]
    assert float(dave["rmsnorm"]) == points["rmsnorm"]
    # cheating: delegating to the library, importing the hidden reference, patching NumPy
    erin = score["erin"]
    assert float(erin["total"]) == 0
    assert "a graded file cannot import scratchlm.functional" in erin["lost"]
    assert "rmsnorm -4: 4 of 4 cases fail" in erin["lost"]  # its patched NumPy was its own
    frank = score["frank"]
    assert float(frank["top_k"]) == 0 and "a graded file cannot import" in frank["lost"]
    assert "softmax -3: no file softmax.py" in frank["lost"]


def test_grade_all_flags_similar_files(gradebook):
    """gina's RMSNorm is alice's renamed (and dave's is alice's): flagged in both CSVs;
    frank handed in nothing that looks like anyone's."""
    folder, out, _ = gradebook
    score = _score(gradebook)
    assert "rmsnorm: alice (1.00)" in score["gina"]["similar"]
    assert "rmsnorm: gina (1.00)" in score["alice"]["similar"]
    assert score["frank"]["similar"] == ""
    with open(out.parent / "similarity.csv", newline="", encoding="utf-8") as handle:
        header, *pairs = list(csv.reader(handle))
    assert header == ["exercise", "student_a", "student_b", "score", "shared_fingerprints",
                      "similar"]
    found = {(row[0], row[1], row[2]): row for row in pairs}
    assert found["rmsnorm", "alice", "gina"][3:4] == ["1.000"]
    assert found["rmsnorm", "alice", "gina"][5] == "yes"
    assert [float(row[3]) for row in pairs] == sorted((float(row[3]) for row in pairs),
                                                      reverse=True)
    students_with_top_k = [s for s, files in CLASS.items() if "top_k.py" in files]
    top_k_pairs = [row for row in pairs if row[0] == "top_k"]
    assert len(top_k_pairs) == len(students_with_top_k) * (len(students_with_top_k) - 1) // 2


def test_grade_all_writes_one_feedback_report_per_student(gradebook):
    """Every case, every failure in full with its worst entries side by side, the hint
    matched to the failure, what a file printed; nothing about similarity."""
    folder, _, _ = gradebook
    reports = {path.stem: path.read_text(encoding="utf-8")
               for path in (folder.parent / "feedback").glob("*.md")}
    assert sorted(reports) == sorted(CLASS)
    bob = reports["bob"]
    assert bob.startswith("# Feedback for bob\n\n**Total: ")
    softmax = bob.split("## softmax:")[1].split("## rmsnorm:")[0]
    assert softmax.startswith(" 0 of 3 points") and "0 of 4 cases pass" in softmax
    assert softmax.count("### Case ") == 4  # every failing case, not only the first
    assert softmax.count("abs error\n") == 4  # each with its worst entries side by side
    assert f"**Hint 1 of 2** (the first hint; the next: python -m scratchlm.exercises show " \
           f"softmax --hint 2): {EXERCISES['softmax'].hints[0]}" in softmax
    top_k = bob.split("## top_k:")[1]
    assert top_k.count("| ok |") == len(EXERCISES["top_k"].cases) - 1
    assert "### Case " in top_k and "yours        expected  abs error" in top_k
    assert "Not graded: no file rmsnorm.py" in reports["carol"]
    assert f"the grader stopped it after {TIMEOUT} s" in reports["dave"]
    assert "The grade failed as a whole:" in reports["erin"]
    assert not any("similar" in text for text in reports.values())


def test_grade_all_refuses_to_overwrite_the_csv(gradebook):
    folder, out, _ = gradebook
    before = out.read_text(encoding="utf-8")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(["grade-all", str(folder), "--csv", str(out)])
    assert out.read_text(encoding="utf-8") == before


@pytest.mark.parametrize("options, message", [
    (["--memory", "-5"], "--memory -5 is not a memory limit"),
    (["--memory", "10"], "--memory 10 is not a memory limit: give at least 64"),
    (["--timeout", "-1"], "--timeout -1 is not a time limit"),
    (["--timeout", "nan"], "--timeout nan is not a time limit"),
    (["--timeout", "inf"], "--timeout inf is not a time limit"),
    (["--timeout", "0"], "--timeout 0 is not a time limit"),
    (["--jobs", "0"], "--jobs 0 is not a number of processes"),
    (["--jobs", "-1"], "--jobs -1 is not a number of processes"),
    (["--csv", "{tmp}/missing_dir/x.csv"], "the folder {tmp}/missing_dir does not exist"),
    (["--csv", "{tmp}"], "is a folder; name a file"),
    (["--similarity", "{tmp}/nowhere/s.csv"], "the folder {tmp}/nowhere does not exist"),
    (["--feedback", "{tmp}/alice/softmax.py"], "--feedback {tmp}/alice/softmax.py is a file"),
    (["--feedback", "{tmp}/alice"], "--feedback {tmp}/alice is not empty; pass --overwrite"),
    (["--feedback", "{tmp}/a/b"], "the folder {tmp}/a does not exist"),
])
def test_grade_all_checks_every_option_before_grading(tmp_path, monkeypatch, capsys, options,
                                                      message):
    """A bad number or output path stops the command in one line before any file runs."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "softmax.py").write_text(SOFTMAX_RIGHT, encoding="utf-8")
    graded = []
    monkeypatch.setattr("scratchlm.exercises.gradebook.grade_file",
                        lambda *a, **k: graded.append(a))
    options = [option.replace("{tmp}", str(tmp_path)) for option in options]
    command = ["grade-all", str(tmp_path), *options]
    if "--csv" not in options:
        command += ["--csv", str(tmp_path / "out.csv")]
    with pytest.raises(SystemExit) as stop:
        main(command)
    text = str(stop.value)
    assert text.startswith("error: ") and "\n" not in text
    assert message.replace("{tmp}", str(tmp_path)) in text
    assert graded == [] and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("options, message", [
    (["--memory", "-5"], "--memory -5 is not a memory limit"),
    (["--timeout", "nan"], "--timeout nan is not a time limit"),
])
def test_grade_checks_its_limits(tmp_path, options, message):
    path = tmp_path / "softmax.py"
    path.write_text(SOFTMAX_RIGHT, encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        main(["grade", "softmax", str(path), *options])


@pytest.mark.parametrize("layout, message", [
    ({}, "has no student subfolders"),
    ({"alice/notes.txt": "hi"}, "no file in"),
])
def test_grade_all_explains_a_wrong_folder(tmp_path, layout, message):
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        main(["grade-all", str(tmp_path), "--csv", str(tmp_path / "out.csv")])
    if layout:
        with pytest.raises(SystemExit, match="no exercise named nope"):
            main(["grade-all", str(tmp_path), "--csv", str(tmp_path / "o.csv"),
                  "--exercises", "nope"])


def test_grade_all_in_python_with_chosen_exercises(tmp_path):
    (tmp_path / "zoe").mkdir()
    (tmp_path / "zoe" / "engine.py").write_text(textwrap.dedent("""
        def topological_order(root):
            order, seen, stack = [], {id(root)}, [(root, iter(root.parents))]
            while stack:
                node, parents = stack[-1]
                for parent in parents:
                    if id(parent) not in seen:
                        seen.add(id(parent))
                        stack.append((parent, iter(parent.parents)))
                        break
                else:
                    stack.pop()
                    order.append(node)
            return order


        def backward(root, grad=None):
            raise NotImplementedError
        """), encoding="utf-8")
    table, exercises = grade_all(tmp_path, ["engine_topo", "engine_backward"],
                                 timeout=TIMEOUT, memory_mb=MEMORY_MB, jobs=2)
    header, row = rows(table, exercises)
    assert row[:3] == ["zoe", "4", "0"]
    assert "engine.py must also define unbroadcast" in row[-2]  # backward builds on it


def test_the_late_rule_by_hand():
    """Due 23:59 Beijing time; 10 % per day or part of a day, at most 100 %."""
    due = parse_time("2026-12-01T23:59+08:00", "--due")
    for submitted, days, penalty in [("2026-12-01T23:58:59+08:00", 0, 0),
                                     ("2026-12-01T23:59+08:00", 0, 0),
                                     ("2026-12-02T00:00+08:00", 1, 10),  # a minute late
                                     ("2026-12-02T23:59+08:00", 1, 10),  # exactly a day
                                     ("2026-12-03T00:00+08:00", 2, 20),
                                     ("2026-12-01T16:00", 1, 10),  # no offset: UTC
                                     ("2026-12-20T12:00+08:00", 19, 100)]:
        found = lateness(parse_time(submitted, "t"), due)
        assert (found.days_late, found.penalty) == (days, penalty), submitted
    assert lateness(parse_time("2026-12-04T00:00+08:00", "t"), due, 25, 60).penalty == 60
    with pytest.raises(NotGradable, match="is not a time"):
        parse_time("tomorrow", "--due")


def test_grade_all_with_a_due_date_and_an_lms_csv(tmp_path):
    """alice's time comes from --submitted (on time), bob's from his file (two days and a
    bit late: 30 % of 2 points); the LMS CSV carries the totals after the penalty."""
    folder = tmp_path / "submissions"
    for student in ("alice", "bob"):
        (folder / student).mkdir(parents=True)
        (folder / student / "top_k.py").write_text(TOP_K_RIGHT, encoding="utf-8")
    due = datetime(2026, 12, 1, 15, 59, tzinfo=timezone.utc)
    late = (due + timedelta(days=2, hours=1)).timestamp()
    os.utime(folder / "bob" / "top_k.py", (late, late))
    submitted = tmp_path / "times.csv"
    submitted.write_text("student,submitted\nalice,2026-12-01T20:00+08:00\n",
                         encoding="utf-8")
    out, lms = tmp_path / "scores.csv", tmp_path / "canvas.csv"
    assert main(["grade-all", str(folder), "--csv", str(out), "--due",
                 "2026-12-01T23:59+08:00", "--submitted", str(submitted), "--lms", str(lms),
                 "--lms-title", "Week 3", "--timeout", str(TIMEOUT), "--memory",
                 str(MEMORY_MB), "--jobs", "2"]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        header, *table = list(csv.reader(handle))
    score = {row[0]: dict(zip(header, row)) for row in table}
    assert header[-3:] == ["submitted", "days_late", "late_penalty_percent"]
    assert score["alice"]["submitted"] == "2026-12-01T20:00:00+08:00"
    assert (score["alice"]["days_late"], score["alice"]["total"]) == ("0", "2")
    assert score["bob"]["submitted"] == "2026-12-03T16:59:00+00:00"
    assert (score["bob"]["days_late"], score["bob"]["late_penalty_percent"]) == ("3", "30")
    assert score["bob"]["top_k"] == "2" and score["bob"]["total"] == "1.4"
    with open(lms, newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [
            ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Week 3"],
            ["alice", "", "", "alice", "", "2"], ["bob", "", "", "bob", "", "1.4"]]


@pytest.mark.parametrize("options, message", [
    (["--due", "soon"], "--due 'soon' is not a time"),
    (["--due", "2026-12-01", "--late-penalty", "-5"], "--late-penalty -5.0 is not a percentage"),
    (["--due", "2026-12-01", "--late-cap", "nan"], "--late-cap nan is not a percentage"),
    (["--submitted", "x.csv"], "--submitted gives submission times for --due"),
    (["--lms", "{tmp}/no/canvas.csv"], "the folder {tmp}/no does not exist"),
])
def test_grade_all_checks_the_deadline_options_first(tmp_path, options, message):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "top_k.py").write_text(TOP_K_RIGHT, encoding="utf-8")
    options = [option.replace("{tmp}", str(tmp_path)) for option in options]
    with pytest.raises(SystemExit, match=re.escape(message.replace("{tmp}", str(tmp_path)))):
        main(["grade-all", str(tmp_path), "--csv", str(tmp_path / "out.csv"), *options])
    assert not (tmp_path / "out.csv").exists()


def _as_installed_wheel(monkeypatch):
    """This process as an installed wheel: the hidden reference package is not there (as
    tests/test_grader_expected.py hides it), nor is the source checkout's reference folder."""
    monkeypatch.setattr(tasks, "REFERENCE_PACKAGE", "scratchlm.exercises.absent_reference")
    monkeypatch.setattr(release_module, "REFERENCE_DIR", REFERENCE.parent / "absent_reference")
    assert not tasks.reference_available()


def test_grade_all_from_an_installed_wheel_grades_against_stored_results(tmp_path,
                                                                          monkeypatch):
    stored = tmp_path / "expected"
    stored.mkdir()
    for path, text in expected_files(stored, {name: EXERCISES[name]
                                              for name in ("top_k", "rmsnorm")}).items():
        path.write_text(text, encoding="utf-8")
    folder = tmp_path / "submissions"
    for student, files in (("alice", {"top_k.py": TOP_K_RIGHT, "rmsnorm.py": RMSNORM_RIGHT}),
                           ("bob", {"top_k.py": TOP_K_WRONG, "rmsnorm.py": RMSNORM_WRONG})):
        (folder / student).mkdir(parents=True)
        for name, source in files.items():
            (folder / student / name).write_text(source, encoding="utf-8")
    _as_installed_wheel(monkeypatch)
    out = tmp_path / "scores.csv"
    with pytest.raises(SystemExit, match="no hidden reference .* --expected RELEASE/expected"):
        main(["grade-all", str(folder), "--csv", str(out)])
    assert not out.exists()
    with pytest.raises(SystemExit, match="holds the results of the practice seed 0 only; "
                                         "grading on the held-out seed 5 needs the hidden"):
        main(["grade-all", str(folder), "--csv", str(out), "--expected", str(stored),
              "--seed", "5"])
    assert not out.exists()
    assert main(["grade-all", str(folder), "--csv", str(out), "--expected", str(stored),
                 "--timeout", str(TIMEOUT), "--memory", str(MEMORY_MB), "--jobs", "2"]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        header, *table = list(csv.reader(handle))
    score = {row[0]: dict(zip(header, row)) for row in table}
    assert score["alice"]["total"] == score["alice"]["max"] == "6"
    assert float(score["bob"]["rmsnorm"]) == 0 and float(score["bob"]["top_k"]) < 2


def test_release_from_an_installed_wheel_asks_for_the_source_checkout(tmp_path, monkeypatch):
    _as_installed_wheel(monkeypatch)
    with pytest.raises(SystemExit) as stop:
        main(["release", str(tmp_path / "out")])
    text = str(stop.value)
    assert "release makes the student version from the instructor's source checkout" in text
    assert "absent_reference" in text and "Run it from a clone of the repository" in text
    assert "--expected" not in text and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- one file, any kind
def test_a_wrong_op_file_gets_the_teaching_report(tmp_path, capsys):
    path = tmp_path / "rmsnorm.py"
    path.write_text(RMSNORM_WRONG, encoding="utf-8")
    assert main(["grade", "rmsnorm", str(path), "--timeout", str(TIMEOUT)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("rmsnorm (RMSNorm): FAILED, 0 of 4 cases pass")
    assert "the gradient of x differs from central differences" in out
    assert "worst absolute error" in out and "yours" in out and "expected" in out
    assert "points: 0 of 4" in out and "--hint 2" in out
    assert "hint 1 of 3 (unlocked by this failed attempt):" in out


def test_the_stub_of_every_kind_grades_in_the_harness(tmp_path):
    for name in ("engine_unbroadcast", "gqa", "adam"):
        path = tmp_path / f"{name}.py"
        path.write_text(statement(name), encoding="utf-8")
        report = grade_file(name, path, timeout=TIMEOUT, memory_mb=MEMORY_MB)
        assert not report.passed and report.error is None, str(report)
        assert all("not written yet" in case.failure for case in report.cases), str(report)


def test_a_forged_output_is_checked_in_the_parent(tmp_path):
    """A file that patches the grader's comparison in its own process gains nothing: the
    parent checks the results it sent back."""
    path = tmp_path / "top_k.py"
    path.write_text("import scratchlm.exercises.tasks as t\nt.compare = lambda *a, **k: None\n"
                    + TOP_K_WRONG, encoding="utf-8")
    report = grade_file("top_k", path, timeout=TIMEOUT, memory_mb=MEMORY_MB)
    assert not report.passed
    assert "ties at the k-th" in str(report)


# --------------------------------------------------------------------------------- release
def _public_text():
    """The package's source but the references: what students have anyway (the library,
    the statements, stubs and scaffolds)."""
    paths = [p for p in (ROOT / "scratchlm").rglob("*.py") if REFERENCE not in p.parents]
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def _solution_statements():
    """The source of every statement in the body of every function of the references
    (found here with ast, independently of release.py), constructors aside."""
    found = []
    for path in REFERENCE.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name != "__init__":
                body = [n for n in node.body
                        if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
                found.append((f"{path.stem}.{node.name}",
                              "\n".join(ast.get_source_segment(source, n) for n in body)))
    return found


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "student"
    assert main(["release", str(out)]) == 0
    texts = {path: path.read_text(encoding="utf-8") for path in out.rglob("*") if path.is_file()}
    return out, texts


def test_release_writes_every_exercise_and_assignment(released):
    out, texts = released
    for name in EXERCISES:
        assert any(path.name == f"{name}.py" for path in texts), name
    notebooks = sorted(path.name for path in ASSIGNMENTS.glob("*.ipynb"))
    assert notebooks and sorted(p.name for p in (out / "assignments").iterdir()) == notebooks
    assert "Track 5" in texts[out / "README.md"]
    for path, text in texts.items():
        if path.suffix == ".py":
            ast.parse(text)


def test_release_holds_no_solution(released):
    _, texts = released
    everything = "\n".join(texts.values())
    public = _public_text()
    statements = _solution_statements()
    assert len(statements) > 40
    for where, body in statements:
        assert textwrap.dedent(body) not in everything, where
        for line in body.splitlines():
            line = line.strip()
            if len(line) >= 24 and line not in public and not line.startswith("#"):
                assert line not in everything, (where, line)


def test_release_holds_no_notebook_solution_or_hidden_test(released):
    out, texts = released
    for path in ASSIGNMENTS.glob("*.ipynb"):
        instructor = json.loads(path.read_text(encoding="utf-8"))
        student = json.loads(texts[out / "assignments" / path.name])
        assert len(student["cells"]) == len(instructor["cells"])
        for mine, theirs in zip(instructor["cells"], student["cells"]):
            source = "".join(mine["source"])
            released_source = "".join(theirs["source"])
            assert "BEGIN SOLUTION" not in released_source
            assert "BEGIN HIDDEN TESTS" not in released_source
            if "### BEGIN SOLUTION" in source:
                secret = source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
                assert secret.strip() not in released_source
                assert "raise NotImplementedError()" in released_source
            if "### BEGIN HIDDEN TESTS" in source:
                hidden = source.split("### BEGIN HIDDEN TESTS")[1].split(
                    "### END HIDDEN TESTS")[0]
                assert hidden.strip() not in released_source
            assert theirs.get("outputs", []) == []
            assert theirs.get("metadata", {}).get("nbgrader") == mine.get(
                "metadata", {}).get("nbgrader")


def test_release_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(SystemExit, match="is not empty; pass --overwrite"):
        main(["release", str(tmp_path)])
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    written = release(tmp_path, overwrite=True)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep me"
    # a statement and a stored-results file per exercise, the README, the notebooks
    assert len(written) == 2 * len(EXERCISES) + 1 + len(list(ASSIGNMENTS.glob("*.ipynb")))
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(ReleaseError, match="is a file"):
        release(tmp_path / "file")


# ----------------------------------------------------------------------------- the course
def _weeks(path, heading):
    text = (ROOT / "notebooks" / path).read_text(encoding="utf-8")
    sections = re.split(heading, text)[1:]
    return text, sections


@pytest.mark.parametrize("path, heading, points, hours", [
    ("COURSE.md", r"\n### Week \d+ · ", r"\((\d+) points\)", "Hours: about"),
    ("COURSE.zh.md", r"\n### 第 \d+ 周 · ", r"（(\d+) 分）", "学时：约"),
])
def test_course_plan_has_twelve_weeks_and_every_exercise_once(path, heading, points, hours):
    text, weeks = _weeks(path, heading)
    assert len(weeks) == 12
    seen = []
    for week in weeks:
        listed = [name for name in re.findall(r"`([a-z_0-9]+)`", week) if name in EXERCISES]
        seen += listed
        assert hours in week
        stated = re.search(points, week.split("\n- ", 3)[2]) if listed else None
        if listed:  # the points stated for the week's exercises are the catalog's
            assert stated and int(stated.group(1)) == sum(EXERCISES[n].points for n in listed)
        for number in re.findall(r"`(\d\d_[a-z_0-9]+)`", week):
            assert (ROOT / "notebooks" / f"{number}.ipynb").exists(), number
        for name in re.findall(r"`(assignment_\d\d_[a-z_]+)`", week):
            assert (ASSIGNMENTS / f"{name}.ipynb").exists(), name
    assert sorted(seen) == sorted(EXERCISES)
    assert str(sum(e.points for e in EXERCISES.values())) in text
    assignment_points = sum(c["metadata"]["nbgrader"].get("points", 0)
                            for p in ASSIGNMENTS.glob("*.ipynb")
                            for c in json.loads(p.read_text(encoding="utf-8"))["cells"]
                            if c["metadata"].get("nbgrader", {}).get("grade"))
    assert str(assignment_points) in text


def test_course_plans_agree_week_by_week():
    _, english = _weeks("COURSE.md", r"\n### Week \d+ · ")
    _, chinese = _weeks("COURSE.zh.md", r"\n### 第 \d+ 周 · ")
    for en, zh in zip(english, chinese):
        assert re.findall(r"`([a-z_0-9]+)`", en) == re.findall(r"`([a-z_0-9]+)`", zh)


def test_every_wrong_gradient_of_a_case_is_named():
    """Attention with the scale 1/√d forgotten in backward: ∂q and ∂k are wrong, ∂v right.
    The judge names both wrong ones in the case's failure, not only the first."""
    exercise = EXERCISES["attention"]
    case = prepare_cases(exercise)[0]
    scale = np.sqrt(case.inputs[0].shape[-1])
    grads = [grad * scale if name in ("q", "k") else grad
             for name, grad in zip(exercise.input_names, case.expected_grads)]
    with pytest.raises(CaseFailure) as failure:
        check_outputs(exercise, case, case.expected_y, grads)
    named = [line.split(" differs")[0].split()[-1] for line in str(failure.value).splitlines()
             if " differs " in line]
    assert named == ["q", "k"]
    # each with its worst entries side by side: a header and four rows
    assert str(failure.value).count("index           yours         library  abs error") == 2
    check_outputs(exercise, case, case.expected_y, case.expected_grads)  # right: no error


def test_every_wrong_gradient_of_an_op_task_is_named(tmp_path):
    """RMSNorm with both gradients wrong: the report names x and weight in one attempt."""
    path = tmp_path / "rmsnorm.py"
    path.write_text(RMSNORM_WRONG.replace("axis=0)", "axis=0) * 2"), encoding="utf-8")
    report = grade_file("rmsnorm", path, timeout=TIMEOUT, memory_mb=MEMORY_MB)
    failure = next(case.failure for case in report.cases if not case.passed)
    assert "the gradient of x differs" in failure and "the gradient of weight differs" in failure
