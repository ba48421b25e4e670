"""The grader is a harness, not a guest: ``grade_file`` (and ``python -m scratchlm.exercises
grade``) runs a file in a sandboxed child that gets inputs only and hands back raw results,
which the parent judges. A file that loops, exits, crashes or hogs memory fails with the
reason; a report is only data, validated before anything is compared. (The attacks on the
trust model are in test_grader_attacks.py.)"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from grading_answers import backward_file

from scratchlm.exercises import EXERCISES, GradeReport, NotGradable, grade_file, student_side
from scratchlm.exercises.__main__ import main
from scratchlm.exercises.answers import prepare_cases
from scratchlm.exercises.grader import CaseResult, get_exercise
from scratchlm.exercises.harness import _judged, _parse_report
from scratchlm.exercises.runner import decode, encode
from scratchlm.exercises.sandbox import SUPERVISOR, bwrap_works

#: short limits keep the suite quick: a file that loops costs this many seconds
TIMEOUT = 4
MEMORY_MB = 512

RIGHT = None  # backward_file's default: the right backward
WRONG = "return self.y * g"  # forgot the row sum
FAKE_REPORT = "softmax (Softmax): PASSED, 4 of 4 cases pass"
SANDBOXES = ["basic", pytest.param("bwrap", marks=pytest.mark.skipif(
    not bwrap_works(), reason="bubblewrap is missing or cannot create namespaces here"))]


def softmax_file(tmp_path, backward=RIGHT, before="", name="submission.py"):
    path = tmp_path / name
    path.write_text(backward_file("Softmax", backward, before), encoding="utf-8")
    return path


def graded(path, name="softmax", **limits):
    limits = {"timeout": TIMEOUT, "memory_mb": MEMORY_MB, "sandbox": "basic", **limits}
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
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_right_answer_passes_in_either_sandbox(tmp_path, sandbox):
    report = graded(softmax_file(tmp_path, before='print("working on it")\n'), sandbox=sandbox)
    assert report.passed, str(report)
    assert report.error is None and len(report.cases) == 4 and report.points == 3
    assert str(report).startswith("softmax (Softmax): PASSED, 4 of 4 cases pass\n  ok   x (5,)")
    assert "  | working on it" in str(report)  # what it printed, marked
    assert f"graded in the {sandbox} sandbox" in str(report)


def test_a_wrong_answer_gets_the_teaching_report(tmp_path):
    report = graded(softmax_file(tmp_path, WRONG))
    assert_failed(report, "gradient of x differs from scratchlm's own softmax: worst absolute")
    assert report.error is None and not any(case.passed for case in report.cases)


def test_the_skeleton_is_not_written_yet(tmp_path):
    report = graded(softmax_file(tmp_path, 'raise NotImplementedError("todo")'))
    assert all("backward is not written yet: todo" in case.failure for case in report.cases)


# ---------------------------------------------------------------------------- time-outs
@pytest.mark.parametrize("before, backward, at", [
    ("while True:\n    pass\n", RIGHT, "in <module>"),
    ("", "while True:\n    pass", "in backward"),
])
def test_an_endless_loop_times_out(tmp_path, before, backward, at):
    report = graded(softmax_file(tmp_path, backward, before))
    assert_failed(report, f"the grader stopped it after {TIMEOUT} s (wall clock) (at "
                          "submission.py, line")
    assert at in report.error and "endless loop" in report.error
    assert report.cases == ()


# ------------------------------------------------------------------------ early exits
@pytest.mark.parametrize("before, backward, reason", [
    ("import sys\nsys.exit(0)\n", RIGHT,
     "importing submission.py raised SystemExit: 0 at submission.py, line 6, in <module>"),
    ("", "import sys\nsys.exit(0)", "backward raised SystemExit: 0 (sys.exit ends the program"),
    ("import os\n", "os._exit(0)", "the grading process ended early, with exit status 0"),
    ("import os\nos._exit(0)\n", RIGHT, "the grading process ended early, with exit status 0"),
    ("import os\n", "os._exit(3)", "the grading process ended with exit status 3"),
    ("", "raise KeyboardInterrupt",
     "the grading stopped: KeyboardInterrupt at submission.py, line 9, in backward"),
    ("import faulthandler\n", "faulthandler._sigsegv()",
     "the grading process was killed by signal SIGSEGV (at submission.py, line 10, in "
     "backward) (a crash?)"),
])
def test_an_early_exit_or_a_crash_fails(tmp_path, before, backward, reason):
    assert_failed(graded(softmax_file(tmp_path, backward, before)), reason)


@pytest.mark.parametrize("before, backward, reason", [
    ("hog = bytearray(8 * 2**30)\n", RIGHT, "importing submission.py raised MemoryError"),
    ("", "hog = np.ones(2**30)\n" + WRONG, "backward raised MemoryError"),
])
def test_a_memory_hog_fails(tmp_path, before, backward, reason):
    assert_failed(graded(softmax_file(tmp_path, backward, before)), reason)


# ------------------------------------------------------------------ the report is data
def test_a_printed_fake_report_is_not_the_grade(tmp_path):
    report = graded(softmax_file(tmp_path, WRONG, f"print({FAKE_REPORT!r})\n"))
    lines = str(report).splitlines()
    assert lines[0] == "softmax (Softmax): FAILED, 0 of 4 cases pass"
    assert f"  | {FAKE_REPORT}" in lines and FAKE_REPORT not in lines


@pytest.mark.parametrize("raw, reason", [
    (b"", "there is none"),
    (b"not json", "it is not JSON"),
    (b"[1, 2]", "it is not a JSON object"),
])
def test_only_a_json_object_is_a_report(raw, reason):
    assert _parse_report(raw, False) == (None, reason)
    assert _parse_report(b'{"cases": []}', False) == ({"cases": []}, None)
    assert _parse_report(b'{"cases": []}', True)[0] is None  # larger than the limit


def right_report(prepared):
    return [{"label": case.label, "output": encode({"y": case.expected_y,
                                                    "grads": case.expected_grads})}
            for case in prepared]


def spoil_array(entry, **changes):
    entry["output"]["dict"][0][1].update(changes)


@pytest.mark.parametrize("spoil, reason", [
    (lambda r: r.pop(), "expected 4 cases"),
    (lambda r: r[1].update(label="x (9,)"), "expected the case 'x (3, 4)'"),
    (lambda r: r.__setitem__(0, None), "expected the case 'x (5,)'"),
    (lambda r: spoil_array(r[0], data=[10**400] * 5), "not {shape, kind, data}"),
    (lambda r: spoil_array(r[0], data=["1"] * 5), "not {shape, kind, data}"),
    (lambda r: spoil_array(r[0], array=[-5]), "not {shape, kind, data}"),
    (lambda r: spoil_array(r[0], kind="O"), "not {shape, kind, data}"),
    (lambda r: spoil_array(r[0], array=[10**7], data=[0.0] * 10**7), "not {shape, kind, data}"),
    (lambda r: r[0].update(output={"pickle": "gASVAAAAAAAAAAB9lC4="}), "not plain data"),
])
def test_a_report_that_is_not_plain_data_is_refused(spoil, reason):
    prepared = prepare_cases(get_exercise("softmax"))
    assert all(case.passed for case in _judged(get_exercise("softmax"), prepared,
                                               right_report(prepared)))
    reported = right_report(prepared)
    spoil(reported)
    with pytest.raises(ValueError, match=re.escape(reason)):
        _judged(get_exercise("softmax"), prepared, reported)


@pytest.mark.parametrize("spoil, reason", [
    (lambda o: o.update(grads=[None]), "no gradient of x came back"),
    (lambda o: o.update(grads=[]), "0 gradient(s) came back for 1 input(s)"),
    (lambda o: o.update(y=o["y"][:2]), "forward output has shape (2,)"),
    (lambda o: o.update(grads=None), "its result is not {forward output, gradients}"),
    (lambda o: o.update(y="a string"), "forward output has shape ()"),
])
def test_each_case_is_judged_here(spoil, reason):
    prepared = prepare_cases(get_exercise("softmax"))
    reported = right_report(prepared)
    output = decode(reported[0]["output"])
    spoil(output)
    reported[0]["output"] = encode(output)
    cases = _judged(get_exercise("softmax"), prepared, reported)
    assert [case.passed for case in cases] == [False, True, True, True]
    assert reason in cases[0].failure, cases[0].failure


def test_a_report_that_could_not_grade_never_passes():
    assert not GradeReport("softmax", "Softmax", (), None).passed  # no case ran
    assert not GradeReport("softmax", "Softmax", (CaseResult("x (5,)"),), "patched").passed
    assert GradeReport("softmax", "Softmax", (CaseResult("x (5,)"),)).passed


def test_decode_keeps_only_plain_numbers():
    value = {"a": np.arange(3), "b": (1.5, "s", None), "c": [np.eye(2) > 0]}
    back = decode(json.loads(json.dumps(encode(value))))
    assert back["a"].dtype == np.int64 and back["c"][0].dtype == bool
    assert back["b"] == (1.5, "s", None)
    with pytest.raises(ValueError, match="cannot be sent back"):
        encode(object())
    with pytest.raises(ValueError, match="dtype object"):
        encode(np.array([object()]))


# ------------------------------------------------------------------------- command line
def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "scratchlm.exercises", *args],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])


def test_cli_passes_a_right_answer(tmp_path):
    path = softmax_file(tmp_path, name="my_softmax.py")
    result = run_cli("grade", "softmax", str(path), "--timeout", str(TIMEOUT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("softmax (Softmax): PASSED, 4 of 4 cases pass")


@pytest.mark.parametrize("before, backward, reason", [
    (f"print({FAKE_REPORT!r})\n", WRONG, "differs from scratchlm's own softmax"),
    (f"import os\nprint({FAKE_REPORT!r})\nos._exit(0)\n", RIGHT, "ended early"),
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
    with pytest.raises(NotGradable, match=r"no Python file at .*missing\.py"):
        grade_file("softmax", tmp_path / "missing.py")
    (tmp_path / "notes.txt").write_text("class Softmax: pass\n", encoding="utf-8")
    with pytest.raises(NotGradable, match="is not a Python file"):
        grade_file("softmax", tmp_path / "notes.txt")
    with pytest.raises(NotGradable, match=r"defines no Function subclass \(of sl.Function or a "
                                          r"skeleton\) named Nope; it defines \['Softmax'\]"):
        grade_file("softmax", softmax_file(tmp_path), "Nope", timeout=TIMEOUT)
    with pytest.raises(KeyError, match="no exercise named 'softmx'"):
        grade_file("softmx", softmax_file(tmp_path))
    with pytest.raises(ValueError, match="no sandbox named 'docker'"):
        grade_file("softmax", softmax_file(tmp_path), sandbox="docker")


def test_the_harness_leaves_this_process_alone(tmp_path):
    """The parent's NumPy is untouched by a file that patches the child's."""
    allclose = np.allclose
    report = graded(softmax_file(tmp_path, WRONG, "np.allclose = lambda *a, **k: True\n"))
    assert not report.passed
    assert np.allclose is allclose and not np.allclose([0.0], [1.0])


# ---------------------------------------------------------- the student-side skeletons
@pytest.mark.parametrize("name", [name for name, exercise in EXERCISES.items()
                                  if exercise.kind == "backward"])
def test_the_student_side_forward_is_the_librarys(name):
    """What the graded file inherits in the child (student_side, NumPy only) computes the
    library's forward and saves what the library's saves, under the same names, so a
    backward written against ``show``'s listing runs unchanged."""
    exercise = EXERCISES[name]
    child_class = getattr(student_side, exercise.skeleton.__name__)
    for case in prepare_cases(exercise):
        library, child = exercise.reference_class(**case.case.config), child_class(
            **case.case.config)
        for op in (library, child):
            op.needs_input_grad = tuple(case.is_float)
        y_library = library.forward(*[None if x is None else x.copy() for x in case.inputs])
        y_child = child.forward(*[None if x is None else x.copy() for x in case.inputs])
        np.testing.assert_allclose(y_child, y_library, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y_child, case.expected_y, rtol=1e-12, atol=1e-12)
        saved = re.findall(r"self\.(\w+)", exercise.skeleton.saved)
        for attribute in saved:
            if attribute == "keep":  # with dropout only; no graded case has dropout
                continue
            mine, theirs = getattr(child, attribute), getattr(library, attribute)
            if callable(theirs):  # a method (attention's dropped): both have it
                assert callable(mine), (name, attribute)
            elif isinstance(theirs, np.ndarray):
                np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)
            else:
                assert mine == theirs, (name, attribute)


def test_the_supervisor_kills_a_double_forked_setsid_daemon(tmp_path):
    """Below the audit hook (which refuses fork): the supervisor, a subreaper, finds a
    daemon that double-forked and left the session, and kills it before it returns."""
    marker = tmp_path / "daemon_was_here"
    daemon = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              f"        time.sleep(1.5)\n        open({str(marker)!r}, 'w').write('alive')\n"
              "        os._exit(0)\n    os._exit(0)\n")
    status_read, status_write = os.pipe()
    config = {"argv": [sys.executable, "-c", daemon], "env": {}, "cwd": str(tmp_path),
              "timeout": 10, "fds": [], "status_fd": status_write}
    supervisor = subprocess.run([sys.executable, "-I", "-S", "-c", SUPERVISOR,
                                 json.dumps(config)], pass_fds=[status_write], timeout=60)
    os.close(status_write)
    with os.fdopen(status_read) as status:
        assert json.loads(status.read()) == {"status": 0, "timed_out": False}
    assert supervisor.returncode == 0
    time.sleep(2.5)
    assert not marker.exists()
