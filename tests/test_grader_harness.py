"""The grader is a harness, not a guest: ``grade_file`` (and ``python -m scratchlm.exercises
grade``) runs a file in a separate, limited process, and a file that loops, exits, crashes,
hogs memory, patches NumPy or the library, delegates to the library, prints a fake report or
forges the grader's report fails with the reason, never passes."""

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from scratchlm.exercises import EXERCISES, GradeReport, NotGradable, grade_file
from scratchlm.exercises.__main__ import main
from scratchlm.exercises.grader import CaseResult, get_exercise, prepare_cases
from scratchlm.exercises.harness import _graded, _parse_report

#: short limits keep the suite quick: a file that loops costs this many seconds
TIMEOUT = 5
MEMORY_MB = 512

HEADER = """\
import numpy as np
import scratchlm as sl
from scratchlm import backend
from scratchlm.exercises import skeletons
"""
RIGHT = "return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))"
WRONG = "return self.y * g"  # forgot the row sum
FAKE_REPORT = "softmax (Softmax): PASSED, 4 of 4 cases pass"


def softmax_file(tmp_path, backward=RIGHT, before="", name="submission.py"):
    """A file defining class Softmax(skeletons.Softmax) whose backward is ``backward``,
    with ``before`` (module-level code) ahead of the class."""
    path = tmp_path / name
    path.write_text(HEADER + textwrap.dedent(before) + "\n\n"
                    "class Softmax(skeletons.Softmax):\n"
                    "    def backward(self, g):\n"
                    + textwrap.indent(textwrap.dedent(backward).strip(), " " * 8) + "\n",
                    encoding="utf-8")
    return path


def graded(path, name="softmax", **limits):
    limits = {"timeout": TIMEOUT, "memory_mb": MEMORY_MB, **limits}
    report = grade_file(name, path, **limits)
    assert isinstance(report, GradeReport)
    return report


def assert_failed(report, reason):
    """A failed grade, saying ``reason`` (as a whole or in every case)."""
    assert not report.passed, str(report)
    text = str(report)
    assert text.splitlines()[0].startswith(f"{report.exercise} ({report.student}): FAILED")
    assert reason in text, text


# ----------------------------------------------------------------------- what still passes
def test_a_right_answer_passes_in_the_harness(tmp_path):
    report = graded(softmax_file(tmp_path, 'print("working on it")\n' + RIGHT))
    assert report.passed, str(report)
    assert report.error is None and len(report.cases) == 4
    assert str(report).startswith("softmax (Softmax): PASSED, 4 of 4 cases pass\n  ok   x (5,)")
    assert "  | working on it" in str(report)  # what it printed, marked


def test_an_answer_with_integer_inputs_passes(tmp_path):
    path = tmp_path / "my_embedding.py"
    path.write_text(HEADER + textwrap.dedent("""
        class Embedding(skeletons.Embedding):
            def backward(self, g):
                grad = np.zeros(self.weight_shape)
                backend.scatter_add(grad, self.ids.reshape(-1),
                                    g.reshape(-1, self.weight_shape[1]))
                return None, grad
        """), encoding="utf-8")
    report = graded(path, "embedding")
    assert report.passed, str(report)


@pytest.mark.parametrize("name", [name for name, exercise in EXERCISES.items()
                                  if exercise.kind == "backward"])
def test_every_exercise_passes_with_the_library_backward_pasted_in(tmp_path, name):
    """No false alarm from the snapshot on any exercise. (Pasting the library's source
    passes: the grader checks gradients, not authorship.)"""
    reference = EXERCISES[name].reference_class
    module = inspect.getmodule(reference)
    skeleton = EXERCISES[name].skeleton.__name__
    path = tmp_path / f"{name}.py"
    path.write_text(f"from {module.__name__} import "
                    + ", ".join(n for n in vars(module) if not n.startswith("__")) + "\n"
                    "from scratchlm.exercises import skeletons\n\n\n"
                    f"class {skeleton}(skeletons.{skeleton}):\n"
                    + textwrap.indent(textwrap.dedent(inspect.getsource(reference.backward)),
                                      "    "), encoding="utf-8")
    report = graded(path, name)
    assert report.passed, str(report)


def test_a_wrong_answer_gets_the_teaching_report(tmp_path):
    report = graded(softmax_file(tmp_path, WRONG))
    assert_failed(report, "the gradient of x (gradcheck's input 0) differs from central")
    assert report.error is None and not any(case.passed for case in report.cases)


def test_the_skeleton_is_not_written_yet(tmp_path):
    report = graded(softmax_file(tmp_path, 'raise NotImplementedError("todo")'))
    assert all("backward is not written yet: todo" in case.failure for case in report.cases)


# ---------------------------------------------------------------------------- time-outs
@pytest.mark.parametrize("where, before, backward, at", [
    ("import", "while True:\n    pass\n", RIGHT, "in <module>"),
    ("backward", "", "while True:\n    pass", "in backward"),
])
def test_an_endless_loop_times_out(tmp_path, where, before, backward, at):
    report = graded(softmax_file(tmp_path, backward, before))
    assert_failed(report, f"the grader stopped it after {TIMEOUT} s (wall clock) (at "
                          "submission.py, line")
    assert at in report.error and "endless loop" in report.error
    assert report.cases == ()


# ------------------------------------------------------------------------ early exits
@pytest.mark.parametrize("before, backward, reason", [
    ("import sys\nsys.exit(0)\n", RIGHT,
     "importing submission.py raised SystemExit: 0 at submission.py, line 6, in <module>"),
    ("raise SystemExit(0)\n", RIGHT, "importing submission.py raised SystemExit: 0"),
    ("", "import sys\nsys.exit(0)",
     "Softmax.backward raised SystemExit: 0 (sys.exit ends the program"),
    ("import os\n", "os._exit(0)", "the grading process ended early, with exit status 0"),
    ("import os\nos._exit(0)\n", RIGHT, "the grading process ended early, with exit status 0"),
    ("import os\n", "os._exit(3)", "the grading process ended with exit status 3"),
    ("", "raise KeyboardInterrupt",
     "the grading stopped: KeyboardInterrupt at submission.py, line 9, in backward"),
    ("import os, signal\n", "os.kill(os.getpid(), signal.SIGKILL)",
     "the grading process was killed (SIGKILL)"),
    ("import os, signal\n", "os.kill(os.getpid(), signal.SIGTERM)",
     "the grading process was killed by signal SIGTERM"),
    ("import faulthandler\n", "faulthandler._sigsegv()",
     "the grading process was killed by signal SIGSEGV (at submission.py, line 10, in "
     "backward) (a crash?)"),
])
def test_an_early_exit_or_a_crash_fails(tmp_path, before, backward, reason):
    assert_failed(graded(softmax_file(tmp_path, backward, before)), reason)


# ------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("before, backward, reason", [
    ("hog = [np.ones(2**24) for _ in range(32)]\n", RIGHT,  # 4 GiB, 128 MiB at a time
     "importing submission.py raised MemoryError"),
    ("hog = bytearray(8 * 2**30)\n", RIGHT, "importing submission.py raised MemoryError"),
    ("", "hog = [np.ones(2**24) for _ in range(32)]\n" + RIGHT,
     "Softmax.backward raised MemoryError"),
])
def test_a_memory_hog_fails(tmp_path, before, backward, reason):
    assert_failed(graded(softmax_file(tmp_path, backward, before)), reason)


# ------------------------------------------------------------------- patching the grader
PATCHES = {
    "numpy.isclose (its code)": (
        "np.isclose._implementation.__code__ = (\n"
        "    lambda a, b, rtol=0, atol=0, equal_nan=False: a == a).__code__\n"),
    "numpy.allclose": "np.allclose = lambda *args, **kwargs: True\n",
    "numpy.isclose": "np.isclose = lambda a, b, *args, **kwargs: np.ones(np.shape(a), bool)\n",
    "numpy.testing.assert_allclose":
        "np.testing.assert_allclose = lambda *args, **kwargs: None\n",
    "scratchlm.autograd.gradcheck.gradcheck_op": (
        "import sys\n"
        "sys.modules['scratchlm.autograd.gradcheck'].gradcheck_op = lambda *a, **k: True\n"),
    "scratchlm.gradcheck_op": "sl.gradcheck_op = lambda *args, **kwargs: True\n",
    "scratchlm.exercises.grader._compare": (
        "import sys\n"
        "sys.modules['scratchlm.exercises.grader']._compare = lambda *args: None\n"),
    "scratchlm.functional.softmax.Softmax.backward": (
        "import sys\n"
        "sys.modules['scratchlm.functional.softmax'].Softmax.backward = (\n"
        "    lambda self, g: self.y * g)\n"),
    "numpy.abs": "np.abs = lambda x: np.zeros_like(x)\n",
}


@pytest.mark.parametrize("patched", PATCHES)
@pytest.mark.parametrize("backward", [WRONG, RIGHT], ids=["wrong", "right"])
def test_a_file_that_patches_numpy_or_the_library_fails(tmp_path, patched, backward):
    """Caught in the child (the patch is named) and, for a wrong gradient, in the parent too:
    a patched comparison cannot pass a wrong gradient."""
    report = graded(softmax_file(tmp_path, backward, PATCHES[patched]))
    name = patched.split(" ")[0]
    assert_failed(report, "the file replaced what the grader relies on (")
    assert name in report.error
    if backward == WRONG:
        assert not any(case.passed for case in report.cases), str(report)


def test_every_patch_together_cannot_pass_a_wrong_gradient(tmp_path):
    report = graded(softmax_file(tmp_path, WRONG, "".join(PATCHES.values())))
    assert not report.passed
    assert not any(case.passed for case in report.cases)
    assert "the grader's own check outside it finds: gradient of x differs" in str(report)


# -------------------------------------------------------------- delegating to the library
DELEGATES = "does not count: it delegates to the library's implementation"


def test_a_subclass_of_the_library_op_that_delegates_fails(tmp_path):
    path = tmp_path / "delegates.py"
    path.write_text(textwrap.dedent("""
        from scratchlm.functional.softmax import Softmax as LibrarySoftmax

        class Softmax(LibrarySoftmax):
            def backward(self, g):
                return super().backward(g)
        """), encoding="utf-8")
    report = graded(path)
    assert_failed(report, DELEGATES)
    assert not any(case.passed for case in report.cases)


def test_a_subclass_that_inherits_the_library_backward_fails(tmp_path):
    path = tmp_path / "inherits.py"
    path.write_text("from scratchlm.functional.softmax import Softmax as S\n\n\n"
                    "class Softmax(S):\n    pass\n", encoding="utf-8")
    assert_failed(graded(path), DELEGATES)


def test_the_library_backward_saved_at_import_is_trapped_too(tmp_path):
    before = ("from scratchlm.functional.softmax import Softmax as LibrarySoftmax\n"
              "ORIGINAL = LibrarySoftmax.backward\n")
    report = graded(softmax_file(tmp_path, "return ORIGINAL(self, g)", before))
    assert_failed(report, f"Softmax.backward {DELEGATES}")


def test_the_library_class_imported_is_not_an_answer(tmp_path):
    path = tmp_path / "imported.py"
    path.write_text("from scratchlm.functional.softmax import Softmax  # noqa\n",
                    encoding="utf-8")
    report = graded(path)
    assert_failed(report, "Softmax in imported.py is the library's own class "
                          "(scratchlm.functional.softmax.Softmax), imported, not written")


# ---------------------------------------------------------------- fake and forged reports
def test_a_printed_fake_report_is_not_the_grade(tmp_path):
    report = graded(softmax_file(tmp_path, WRONG, f"print({FAKE_REPORT!r})\n"))
    assert_failed(report, "differs from central differences")
    lines = str(report).splitlines()
    assert lines[0] == "softmax (Softmax): FAILED, 0 of 4 cases pass"
    assert f"  | {FAKE_REPORT}" in lines and FAKE_REPORT not in lines


FORGE = """
import json, os, sys
frame, config = sys._getframe(), None
while frame is not None:  # the grader's own frames hold its order: token and pipe
    config = frame.f_locals.get("config", config) if "token" in frame.f_locals else config
    token = frame.f_locals.get("token") if "token" in frame.f_locals else None
    if token is not None:
        break
    frame = frame.f_back
from math import prod
from scratchlm.exercises.grader import _label, get_exercise
exercise = get_exercise("softmax")
zeros = [{"shape": list(case.inputs[0]), "data": [0.0] * prod(case.inputs[0])}
         for case in exercise.cases]  # y and the gradient of x are shaped like x
report = {"token": TOKEN, "student": "Softmax", "replaced": [], "cases": [
    {"label": _label(exercise, case), "failure": None, "y": array, "grads": [array]}
    for case, array in zip(exercise.cases, zeros)]}
os.write(config["report_fd"], json.dumps(report).encode())
os._exit(0)
"""


def test_a_forged_report_with_the_token_still_needs_the_right_gradients(tmp_path):
    """The file finds the token and the pipe in the grader's memory and writes a report
    of passing cases: the parent checks the outputs it carries against the library."""
    report = graded(softmax_file(tmp_path, RIGHT, FORGE.replace("TOKEN", "token")))
    assert_failed(report, "the grading process reported this case as passed, but the "
                          "grader's own check outside it finds: forward output differs")
    assert not any(case.passed for case in report.cases)


def test_a_forged_report_without_the_token_is_refused(tmp_path):
    report = graded(softmax_file(tmp_path, RIGHT, FORGE.replace("TOKEN", "'0' * 32")))
    assert_failed(report, "no report: its token is not this run's (a forged report?)")
    assert report.cases == ()


def test_a_report_on_stdout_is_not_read(tmp_path):
    before = ("import json\nprint(json.dumps({'token': 'x', 'student': 'Softmax', "
              "'cases': []}))\n")
    report = graded(softmax_file(tmp_path, WRONG, before))
    assert not report.passed and report.error is None


@pytest.mark.parametrize("raw, reason", [
    (b"", "there is none"),
    (b"not json", "it is not JSON"),
    (b"[1, 2]", "it carries no token"),
    (json.dumps({"token": "b" * 32}).encode(), "its token is not this run's"),
])
def test_only_a_well_formed_report_with_the_token_counts(raw, reason):
    report, problem = _parse_report(raw, "a" * 32, False)
    assert report is None and problem.startswith(reason)
    report, problem = _parse_report(json.dumps({"token": "a" * 32}).encode(), "a" * 32, False)
    assert problem is None and report == {"token": "a" * 32}
    assert _parse_report(raw, "a" * 32, True)[0] is None  # larger than the limit


def good_report(exercise, prepared):
    def encode(array):
        return {"shape": list(array.shape), "data": array.ravel().tolist()}

    return {"student": "Softmax", "replaced": [], "cases": [
        {"label": case.label, "failure": None, "y": encode(case.expected_y),
         "grads": [encode(case.expected_grads[0])]} for case in prepared]}


@pytest.mark.parametrize("spoil, reason", [
    (lambda r: r.update(replaced={"numpy": 1}), "the file replaced what the grader relies"),
    (lambda r: r.update(replaced="numpy.allclose"), "(numpy.allclose)"),
    (lambda r: r["cases"].pop(), "its report was malformed: expected 4 cases"),
    (lambda r: r["cases"][1].update(label="x (9,)"), "malformed: expected the case 'x (3, 4)'"),
    (lambda r: r["cases"][0].update(grads=None), "malformed: case 'x (5,)': no gradients"),
    (lambda r: r["cases"][0].update(grads=[None]), "no gradient of x came back"),
    (lambda r: r["cases"][0].update(grads=[]), "0 gradient(s) came back for 1 input(s)"),
    (lambda r: r["cases"][0]["y"].update(data=[10**400] * 5), "malformed: case 'x (5,)'"),
    (lambda r: r["cases"][0]["y"].update(data=["1"] * 5), "data does not match its shape"),
    (lambda r: r["cases"][0]["y"].update(shape=[-5]), "malformed: case 'x (5,)': bad shape"),
    (lambda r: r["cases"][0]["y"].update(shape=[4]), "data does not match its shape"),
    (lambda r: r["cases"][0].update(y=[1.0] * 5), "an array is not {shape, data}"),
    (lambda r: r.update(cases=None), "its report was malformed"),
    (lambda r: r["cases"].__setitem__(0, None), "its report was malformed"),
    (lambda r: r.update(error=["nested", {"error": 1}]), "['nested', {'error': 1}]"),
])
def test_the_parent_trusts_no_part_of_the_report(spoil, reason):
    exercise = get_exercise("softmax")
    prepared = prepare_cases(exercise)
    report = _graded(exercise, prepared, good_report(exercise, prepared), "Softmax", "")
    assert report.passed, str(report)
    result = good_report(exercise, prepared)
    spoil(result)
    report = _graded(exercise, prepared, result, "Softmax", "")
    assert not report.passed and reason in str(report), str(report)


def test_a_report_that_could_not_grade_never_passes():
    assert not GradeReport("softmax", "Softmax", (), None).passed  # no case ran
    assert not GradeReport("softmax", "Softmax", (CaseResult("x (5,)"),), "patched").passed
    assert GradeReport("softmax", "Softmax", (CaseResult("x (5,)"),)).passed


# ------------------------------------------------------------------------- command line
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scratchlm.exercises", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_passes_a_right_answer(tmp_path):
    path = softmax_file(tmp_path, RIGHT, name="my_softmax.py")
    result = run_cli("grade", "softmax", str(path), "--timeout", str(TIMEOUT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("softmax (Softmax): PASSED, 4 of 4 cases pass")


@pytest.mark.parametrize("before, backward, reason", [
    (f"print({FAKE_REPORT!r})\n", WRONG, "differs from central differences"),
    (f"import os\nprint({FAKE_REPORT!r})\nos._exit(0)\n", RIGHT, "ended early"),
    (f"import sys\nprint({FAKE_REPORT!r})\nsys.exit(0)\n", RIGHT, "raised SystemExit: 0"),
    ("while True:\n    pass\n", RIGHT, "the grader stopped it after 5 s"),
])
def test_cli_exit_status_is_nonzero_for_a_failed_grade(tmp_path, before, backward, reason):
    path = softmax_file(tmp_path, backward, before, name="my_softmax.py")
    result = run_cli("grade", "softmax", str(path), "--timeout", str(TIMEOUT),
                     "--memory", str(MEMORY_MB))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("softmax (Softmax): FAILED"), result.stdout
    assert reason in result.stdout
    assert not any(line.startswith(FAKE_REPORT) for line in result.stdout.splitlines())


def test_main_reports_a_failed_grade_with_status_1(tmp_path, capsys):
    path = softmax_file(tmp_path, "import os\nos._exit(0)")
    assert main(["grade", "softmax", str(path), "--timeout", str(TIMEOUT)]) == 1
    assert "ended early, with exit status 0" in capsys.readouterr().out


def test_usage_errors_are_not_grades(tmp_path):
    with pytest.raises(NotGradable, match="no file"):
        grade_file("softmax", tmp_path / "missing.py")
    (tmp_path / "notes.txt").write_text("class Softmax: pass\n", encoding="utf-8")
    with pytest.raises(NotGradable, match="is not a Python file"):
        grade_file("softmax", tmp_path / "notes.txt")
    with pytest.raises(NotGradable, match=r"defines no sl.Function subclass named Nope; it "
                                          r"defines \['Softmax'\]"):
        grade_file("softmax", softmax_file(tmp_path), "Nope", timeout=TIMEOUT)
    with pytest.raises(KeyError, match="no exercise named 'softmx'"):
        grade_file("softmx", softmax_file(tmp_path))


def test_the_harness_leaves_this_process_alone(tmp_path):
    """The parent's NumPy and library are untouched by a file that patches them."""
    allclose = np.allclose
    report = graded(softmax_file(tmp_path, WRONG, PATCHES["numpy.allclose"]))
    assert not report.passed
    assert np.allclose is allclose and not np.allclose([0.0], [1.0])
