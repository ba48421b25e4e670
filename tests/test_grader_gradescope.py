"""The Gradescope autograder zip: Gradescope's documented layout (setup.sh and
run_autograder at the root), and its run_autograder, run here on a folder laid out as
/autograder is (source/, submission/, results/), grades a right and a wrong submission into
the documented results.json: each test's score, max_score, output and visibility, the
held-out cases hidden and their inputs never shown."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
from test_grader_coursework import SOFTMAX_RIGHT, SOFTMAX_WRONG, TOP_K_RIGHT, TOP_K_WRONG

from scratchlm.exercises import EXERCISES
from scratchlm.exercises.__main__ import main

SEED = 7


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    out = tmp_path_factory.mktemp("gradescope") / "autograder.zip"
    assert main(["gradescope", str(out), "--exercises", "softmax,top_k", "--seed", str(SEED),
                 "--timeout", "20", "--memory", "1024"]) == 0
    return out


def _run(autograder, tmp_path, files):
    """Lay out ROOT as Gradescope does and run ROOT/run_autograder on ``files``."""
    root = tmp_path / "autograder"
    with zipfile.ZipFile(autograder) as archive:
        archive.extractall(root / "source")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "run_autograder").chmod(0o755)
    (root / "submission" / "my work").mkdir(parents=True)
    for name, source in files.items():
        (root / "submission" / "my work" / name).write_text(source, encoding="utf-8")
    environment = {**os.environ, "SCRATCHLM_AUTOGRADER_ROOT": str(root),
                   "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    done = subprocess.run([str(root / "run_autograder")], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def test_the_zip_has_gradescopes_layout(autograder):
    with zipfile.ZipFile(autograder) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        config = json.loads(archive.read("config.json"))
        run = archive.read("run_autograder").decode()
    assert {"setup.sh", "run_autograder", "config.json"} <= names  # at the root
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert run.startswith("#!/usr/bin/env bash") and "results/results.json" in run
    assert "scratchlm/exercises/reference/modern.py" in names  # the instructor's zip
    assert not any("__pycache__" in name for name in names)
    assert config["seed"] == SEED and config["exercises"] == ["softmax", "top_k"]


def test_run_autograder_grades_a_right_and_a_wrong_submission(autograder, tmp_path):
    right = _run(autograder, tmp_path / "right", {"softmax.py": SOFTMAX_RIGHT,
                                                  "top_k.py": TOP_K_RIGHT})
    wrong = _run(autograder, tmp_path / "wrong", {"softmax.py": SOFTMAX_WRONG,
                                                  "top_k.py": TOP_K_WRONG})
    names = ["softmax: practice cases", "softmax: held-out cases", "top_k: practice cases",
             "top_k: held-out cases"]
    for outcome in (right, wrong):
        assert [test["name"] for test in outcome["tests"]] == names
        for test in outcome["tests"]:
            assert set(test) >= {"score", "max_score", "output", "visibility"}
            held_out = "held-out" in test["name"]
            assert test["visibility"] == ("hidden" if held_out else "visible")
            exercise = test["name"].split(":")[0]
            assert test["max_score"] == (EXERCISES[exercise].points if held_out else 0)
    score = {test["name"]: test["score"] for test in right["tests"]}
    assert score == {"softmax: practice cases": 0, "softmax: held-out cases": 3,
                     "top_k: practice cases": 0, "top_k: held-out cases": 2}
    assert "PASSED" in right["tests"][0]["output"]
    wrong_score = {test["name"]: test["score"] for test in wrong["tests"]}
    assert wrong_score["softmax: held-out cases"] == 0
    assert 0 < wrong_score["top_k: held-out cases"] < 2  # only the tie case fails
    practice = wrong["tests"][0]["output"]
    assert "FAILED" in practice and "gradient of x differs" in practice  # every case, shown
    held_out = wrong["tests"][1]["output"]
    assert held_out.startswith("0 of ") and "held-out cases pass" in held_out
    assert "(" not in held_out.split("pass")[0]  # no case label, no input, is shown


def test_a_missing_file_scores_zero_and_says_so(autograder, tmp_path):
    outcome = _run(autograder, tmp_path, {"notes.txt": "hi"})
    assert all(test["score"] == 0 for test in outcome["tests"])
    assert "no file softmax.py in the submission" in outcome["tests"][0]["output"]


def test_gradescope_checks_its_output_first(tmp_path):
    with pytest.raises(SystemExit, match="the folder .*missing does not exist"):
        main(["gradescope", str(tmp_path / "missing" / "a.zip")])
    (tmp_path / "a.zip").write_text("mine", encoding="utf-8")
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        main(["gradescope", str(tmp_path / "a.zip")])
    assert (tmp_path / "a.zip").read_text(encoding="utf-8") == "mine"
    with pytest.raises(SystemExit, match="no exercise named nope"):
        main(["gradescope", str(tmp_path / "b.zip"), "--exercises", "nope"])
