"""Hints unlock one at a time: each failed ``grade`` from the command line unlocks the next
hint (capped at the last), or shows the hint matched to the kind of failure; a pass unlocks
nothing; the progress is a JSON file beside the submission that keeps everything else in it;
batch and in-process grading keep no progress and show the first hint."""

import json
import os
import stat
import threading

import numpy as np
from test_exercise_tracks import PLANTED
from test_grader_coursework import RMSNORM_RIGHT, RMSNORM_WRONG

from scratchlm.exercises import EXERCISES, grade
from scratchlm.exercises.__main__ import main
from scratchlm.exercises.gradebook import grade_all
from scratchlm.exercises.hints import PROGRESS_FILE, failure_kind, unlock

TIMEOUT = 4
HINTS = EXERCISES["rmsnorm"].hints
UNRELATED = {"softmax": {"unlocked": [1], "my note": "ask on Friday"}, "theme": "dark"}


def _attempt(path, capsys):
    status = main(["grade", "rmsnorm", str(path), "--timeout", str(TIMEOUT)])
    return status, capsys.readouterr().out


def test_each_failed_attempt_unlocks_the_next_hint_up_to_the_last(tmp_path, capsys):
    assert len(HINTS) == 3
    progress = tmp_path / PROGRESS_FILE
    progress.write_text(json.dumps(UNRELATED), encoding="utf-8")
    path = tmp_path / "rmsnorm.py"
    path.write_text(RMSNORM_WRONG, encoding="utf-8")
    for attempt, shown in enumerate([1, 2, 3, 3], start=1):
        status, out = _attempt(path, capsys)
        assert status == 1
        assert f"hint {shown} of 3 (" in out and HINTS[shown - 1] in out, out
        others = [n for n in (1, 2, 3) if n != shown]
        assert not any(f"hint {n} of 3" in out for n in others)
        assert f"hints unlocked: {', '.join(map(str, range(1, shown + 1)))} (3 in all" in out
        assert "--hint 4" not in out
        assert (f"--hint {shown + 1}" in out) == (shown < 3)
        stored = json.loads(progress.read_text(encoding="utf-8"))
        assert stored["rmsnorm"] == {"unlocked": list(range(1, shown + 1)),
                                     "failed attempts": attempt}
        assert {key: stored[key] for key in UNRELATED} == UNRELATED
    assert "every hint is unlocked" in out


def test_a_pass_unlocks_nothing(tmp_path, capsys):
    path = tmp_path / "rmsnorm.py"
    path.write_text(RMSNORM_WRONG, encoding="utf-8")
    assert _attempt(path, capsys)[0] == 1
    before = (tmp_path / PROGRESS_FILE).read_bytes()
    path.write_text(RMSNORM_RIGHT, encoding="utf-8")
    status, out = _attempt(path, capsys)
    assert status == 0 and "PASSED" in out and "hint" not in out
    assert (tmp_path / PROGRESS_FILE).read_bytes() == before
    path.write_text(RMSNORM_WRONG, encoding="utf-8")  # the next failure goes on from there
    assert f"hint 2 of 3 (unlocked by this failed attempt): {HINTS[1]}" in _attempt(
        path, capsys)[1]


def test_a_failure_of_a_known_kind_shows_its_hint(tmp_path):
    """A shape error in unbroadcast shows the hint about shapes (the third) at once; a
    RecursionError in topological_order the one about an explicit stack."""
    for name, kind, number in (("engine_unbroadcast", "shape", 3),
                               ("engine_topo", "recursion", 3)):
        report = grade(name, PLANTED[name][0])
        assert failure_kind(report) == kind
        shown = unlock(report, tmp_path)
        text = str(shown)
        hint = EXERCISES[name].hints[number - 1]
        assert f"hint {number} of 3 (for this kind of failure: " in text and hint in text
        assert json.loads((tmp_path / PROGRESS_FILE).read_text(encoding="utf-8"))[name][
            "unlocked"] == [number]
    # then failures of no matched kind: the hints still locked, in order, then the last
    report = grade("engine_unbroadcast", lambda grad, shape: np.zeros(shape))
    assert not report.passed and failure_kind(report) is None
    assert [unlock(report, tmp_path).hint for _ in range(3)] == [1, 2, 3]
    assert json.loads((tmp_path / PROGRESS_FILE).read_text(encoding="utf-8"))[
        "engine_unbroadcast"] == {"unlocked": [1, 2, 3], "failed attempts": 4}


def test_a_gradient_failure_has_no_kind_and_takes_the_next_hint(tmp_path):
    report = grade("rmsnorm", PLANTED["rmsnorm"][0])
    assert failure_kind(report) is None
    first, second = unlock(report, tmp_path), unlock(report, tmp_path)
    assert (first.hint, second.hint) == (1, 2)
    assert "hint 2 of 3 (unlocked by this failed attempt)" in str(second)


def test_a_progress_file_that_is_not_an_object_is_left_alone(tmp_path):
    progress = tmp_path / PROGRESS_FILE
    for content in ("not json {", "[1, 2, 3]"):
        progress.write_text(content, encoding="utf-8")
        shown = unlock(grade("rmsnorm", PLANTED["rmsnorm"][0]), tmp_path)
        assert shown.hint == 1 and progress.read_text(encoding="utf-8") == content
        assert f"hint progress not kept: {progress} is not a JSON object" in str(shown)


def test_batch_and_in_process_grading_keep_no_progress(tmp_path):
    report = grade("rmsnorm", PLANTED["rmsnorm"][0])
    assert f"hint 1 of 3: {HINTS[0]}" in str(report) and "unlocked" not in str(report)
    folder = tmp_path / "submissions" / "bob"
    folder.mkdir(parents=True)
    (folder / "rmsnorm.py").write_text(RMSNORM_WRONG, encoding="utf-8")
    table, _ = grade_all(folder.parent, timeout=TIMEOUT, jobs=1)
    assert [(mark.exercise, mark.points) for mark in table["bob"]] == [("rmsnorm", 0.0)]
    assert not list(tmp_path.rglob(PROGRESS_FILE))


def test_a_progress_file_that_is_not_a_regular_file_is_ignored(tmp_path):
    """A FIFO (reading it would wait for a writer forever) or a folder named like the
    progress file: the grade goes on, hint 1 shows, a note says why, nothing is replaced."""
    report = grade("rmsnorm", PLANTED["rmsnorm"][0])
    for kind in ("fifo", "folder"):
        folder = tmp_path / kind
        folder.mkdir()
        progress = folder / PROGRESS_FILE
        os.mkfifo(progress) if kind == "fifo" else progress.mkdir()
        shown = []
        worker = threading.Thread(target=lambda out, where: out.append(unlock(report, where)),
                                  args=(shown, folder), daemon=True)
        worker.start()
        worker.join(20)
        assert not worker.is_alive(), f"unlock hangs on a {kind}"
        assert shown[0].hint == 1
        assert f"hint progress not kept: {progress} is not a regular file (ignored)" in str(
            shown[0])
        assert stat.S_ISFIFO(progress.lstat().st_mode) if kind == "fifo" else progress.is_dir()
