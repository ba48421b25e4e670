"""A released student copy grades every exercise without the hidden reference: against the
results ``release`` stored in ``OUT_DIR/expected/``. With the reference made unavailable,
every exercise's answer key scores full marks against the stored results and its planted
wrong answer loses points; the grade follows what is stored (a re-checksummed edit makes a
right answer fail); an edited, damaged or foreign file is refused, naming it."""

import json
import shutil

import numpy as np
import pytest
from test_exercise_tracks import PLANTED, reference_of
from test_exercises import PLANTED_BUGS

import scratchlm.exercises.tasks as tasks
from scratchlm.exercises import EXERCISES, grade, grade_file
from scratchlm.exercises.__main__ import main
from scratchlm.exercises.expected import FOLDER, ExpectedError, _checksum, find, load
from scratchlm.exercises.release import leaks, release
from scratchlm.exercises.tasks import ReferenceMissing, Task, reference_available

TIMEOUT, MEMORY_MB = 4, 768
#: every exercise's answer key (the hidden reference, or the library's class), taken while
#: the reference is still importable
ANSWER = {name: reference_of(exercise) for name, exercise in EXERCISES.items()}

TOP_K_RIGHT = """\
import numpy as np


def top_k_filter(logits, k):
    kth = np.sort(logits, axis=-1)[..., -min(k, logits.shape[-1])][..., None]
    return np.where(logits < kth, -np.inf, logits)
"""
TOP_K_WRONG = TOP_K_RIGHT.replace("logits < kth", "logits <= kth")


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    out = tmp_path_factory.mktemp("copy") / "student"
    release(out)
    return out


@pytest.fixture
def no_reference(monkeypatch):
    """This process as a student's copy: the hidden reference cannot be imported."""
    monkeypatch.setattr(tasks, "REFERENCE_PACKAGE", "scratchlm.exercises.absent_reference")
    assert not reference_available()


def _wrong(name):
    return PLANTED[name][0] if name in PLANTED else PLANTED_BUGS[name][0]


def test_every_exercise_has_a_stored_file_and_a_planted_wrong_answer(released):
    assert sorted(p.stem for p in (released / FOLDER).glob("*.json")) == sorted(EXERCISES)
    assert set(PLANTED) | set(PLANTED_BUGS) == set(EXERCISES)


def test_without_stored_results_a_copy_cannot_grade_against_the_reference(no_reference):
    """The simulation bites: the reference is really out of reach."""
    with pytest.raises(ReferenceMissing, match="--expected"):
        grade("top_k", ANSWER["top_k"])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # a wrong engine overflows
@pytest.mark.parametrize("name", EXERCISES)
def test_every_exercise_grades_against_the_stored_results(name, released, no_reference):
    folder = released / FOLDER
    right = grade(name, ANSWER[name], expected=folder)
    assert right.passed, str(right)
    assert right.points == EXERCISES[name].points
    wrong = grade(name, _wrong(name), expected=folder)
    assert not wrong.passed and wrong.points < EXERCISES[name].points, str(wrong)
    if name in PLANTED:  # the same case fails, for the same reason, as against the reference
        _, label, message = PLANTED[name]
        failing = [case for case in wrong.cases if label in case.label]
        assert failing and message in failing[0].failure, str(wrong)


def test_each_file_holds_results_not_solutions(released):
    texts = {p: p.read_text(encoding="utf-8") for p in (released / FOLDER).glob("*.json")}
    assert leaks(texts) == []
    for path, text in texts.items():
        data = json.loads(text)
        assert set(data) == {"format", "exercise", "seed", "graded", "cases", "sha256"}
        assert data["exercise"] == path.stem and data["seed"] == 0
        assert len(load(path.parent, EXERCISES[path.stem]).cases) == len(
            EXERCISES[path.stem].cases)
        assert "def " not in text and "import " not in text and "return " not in text
    statistical = {"mlm_masking": "statistics", "nsp_pairs": "rules", "engine_topo":
                   "properties", "engine_no_grad": "probes"}
    for name, word in statistical.items():
        data = json.loads(texts[released / FOLDER / f"{name}.json"])
        assert word in data["graded"] and "no reference" in data["graded"], data["graded"]


def test_stored_values_equal_the_answer_key_to_the_last_bit(released):
    """float64 through JSON reads back exactly: the stored top-k result is the reference's
    own, -inf included, computed here independently of the release."""
    stored = load(released / FOLDER, EXERCISES["top_k"])
    prepared = tasks.prepare_task(EXERCISES["top_k"])
    for case, entry in zip(prepared, stored.cases):
        assert np.array_equal(np.asarray(case.expected), entry["expected"])
    assert any(np.isneginf(entry["expected"]).any() for entry in stored.cases)


def _rewrite(src, dst, change):
    data = json.loads(src.read_text(encoding="utf-8"))
    change(data)
    body = {key: value for key, value in data.items() if key != "sha256"}
    dst.write_text(json.dumps(dict(body, sha256=_checksum(body))), encoding="utf-8")


def test_the_grade_follows_the_stored_results(released, tmp_path, no_reference):
    """A right answer fails against results that say otherwise: grading uses the file."""
    folder = tmp_path / FOLDER
    shutil.copytree(released / FOLDER, folder)

    def nudge_softmax(data):
        data["cases"][0]["expected"]["dict"][0][1]["data"][2] += 1e-3

    _rewrite(released / FOLDER / "softmax.json", folder / "softmax.json", nudge_softmax)
    report = grade("softmax", ANSWER["softmax"], expected=folder)
    assert [case.passed for case in report.cases] == [False, True, True, True]
    assert "forward output differs" in report.cases[0].failure
    assert "index (2,)" in report.cases[0].failure

    def nudge_rmsnorm_gradient(data):
        grads = data["cases"][1]["expected"]["dict"][1][1]
        grads[0]["data"][0] += 1e-2

    _rewrite(released / FOLDER / "rmsnorm.json", folder / "rmsnorm.json",
             nudge_rmsnorm_gradient)
    report = grade("rmsnorm", ANSWER["rmsnorm"], expected=folder)
    assert [case.passed for case in report.cases] == [True, False, True, True]
    assert "the gradient of x differs from central differences" in report.cases[1].failure


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text(encoding="utf-8")[:-200], encoding="utf-8"),
     "cannot be read as JSON"),
    (lambda p: p.write_text(p.read_text(encoding="utf-8").replace("-Infinity", "0.0", 1),
                            encoding="utf-8"), "was changed after the release"),
    (lambda p: _rewrite(p, p, lambda d: d["cases"][0].update(inputs="0" * 64)),
     "was stored for other inputs"),
    (lambda p: _rewrite(p, p, lambda d: d["cases"].pop()), "holds 3 cases; top_k has 4"),
    (lambda p: p.write_text("[1, 2]", encoding="utf-8"), "is not a stored-results file"),
    (lambda p: p.unlink(), "does not exist"),
])
def test_a_damaged_file_is_refused_naming_it(released, tmp_path, no_reference, damage,
                                             message):
    folder = tmp_path / FOLDER
    shutil.copytree(released / FOLDER, folder)
    damage(folder / "top_k.json")
    with pytest.raises(ExpectedError, match=message) as caught:
        grade("top_k", ANSWER["top_k"], expected=folder)
    assert str(folder / "top_k.json") in str(caught.value)
    path = tmp_path / "top_k.py"
    path.write_text(TOP_K_RIGHT, encoding="utf-8")
    with pytest.raises(SystemExit, match=f"error: .*top_k.json.*{message}"):
        main(["grade", "top_k", str(path), "--expected", str(folder)])


def test_a_file_in_the_copy_finds_the_stored_results_above_it(released, tmp_path,
                                                             no_reference, capsys):
    """``grade NAME FILE`` in a copy: the file in exercises/TRACK/ finds OUT_DIR/expected;
    graded in its own process, right passes and wrong fails."""
    copy = tmp_path / "copy"
    shutil.copytree(released, copy)
    path = copy / "exercises" / "5_data" / "top_k.py"
    assert path.is_file()
    assert find(path.parent, "top_k") == copy / FOLDER
    path.write_text(TOP_K_RIGHT, encoding="utf-8")
    assert main(["grade", "top_k", str(path), "--timeout", str(TIMEOUT)]) == 0
    assert "top_k (top_k_filter): PASSED, 4 of 4 cases pass" in capsys.readouterr().out
    path.write_text(TOP_K_WRONG, encoding="utf-8")
    report = grade_file("top_k", path, timeout=TIMEOUT, memory_mb=MEMORY_MB)
    assert not report.passed and report.error is None and report.points < 2, str(report)
    elsewhere = tmp_path / "top_k.py"  # no expected/ above it: the copy says what to do
    elsewhere.write_text(TOP_K_RIGHT, encoding="utf-8")
    with pytest.raises(SystemExit, match="--expected RELEASE/expected"):
        main(["grade", "top_k", str(elsewhere)])


def test_an_op_file_grades_against_stored_gradients_in_its_own_process(released, tmp_path,
                                                                       no_reference):
    from test_grader_coursework import RMSNORM_RIGHT, RMSNORM_WRONG
    path = tmp_path / "rmsnorm.py"
    for source, passed in ((RMSNORM_RIGHT, True), (RMSNORM_WRONG, False)):
        path.write_text(source, encoding="utf-8")
        report = grade_file("rmsnorm", path, timeout=TIMEOUT, memory_mb=MEMORY_MB,
                            expected=released / FOLDER)
        assert report.passed is passed and report.error is None, str(report)
    assert "the gradient of x differs from central differences" in str(report)


def test_the_released_readme_explains_the_stored_results(released):
    text = (released / "README.md").read_text(encoding="utf-8")
    assert "`expected/`" in text and "--expected DIR" in text
    assert "grading runs where the course's source is" not in text


def test_tasks_without_a_reference_answer_are_marked(released):
    for name, exercise in EXERCISES.items():
        graded = json.loads((released / FOLDER / f"{name}.json").read_text(encoding="utf-8"))
        if isinstance(exercise, Task) and exercise.expect is not None:
            assert "no reference" in graded["graded"], name
        else:
            assert "stored here" in graded["graded"], name
