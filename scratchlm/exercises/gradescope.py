"""A Gradescope autograder: ``python -m scratchlm.exercises gradescope OUT.zip``.

The zip follows Gradescope's documented autograder layout: ``setup.sh`` and
``run_autograder`` at its root. Gradescope unpacks it into ``/autograder/source``, runs
``setup.sh`` once while it builds the image, copies ``run_autograder`` to
``/autograder/run_autograder`` and runs it for every submission, with the student's files
in ``/autograder/submission``; it must write ``/autograder/results/results.json``. The zip
holds::

    setup.sh              installs Python 3 and NumPy (what the grader needs)
    run_autograder        runs ``python3 -m scratchlm.exercises.gradescope`` on the submission
    config.json           the exercises, the held-out seed, the limits, the visibility
    scratchlm/            the library with the hidden references: the zip is the
                          instructor's, never the students' (Gradescope keeps it private)

Each exercise becomes two tests in ``results.json``:

* ``NAME: practice cases`` — the public practice seed's cases (those of the release's
  ``expected/``), with the full teaching report as its output, ``visible``, worth 0 points:
  the student sees at once what they would have seen at home;
* ``NAME: held-out cases`` — the cases of the instructor's seed, worth the exercise's
  points, its output only a count ("3 of 4 held-out cases pass"), its visibility
  ``hidden`` by default (``--held-out-visibility after_published`` shows it once grades
  are published): the inputs of held-out cases are never shown.

Each test has ``name``, ``score``, ``max_score``, ``status``, ``output`` and
``visibility``. A file the student did not hand in scores 0 and says so; an autograder that
fails itself still writes a results.json that says why (score 0), never nothing.

``run_autograder`` reads the root of that layout from ``SCRATCHLM_AUTOGRADER_ROOT`` (default
``/autograder``), so the same script runs in a test on any folder laid out the same way.
"""

import argparse
import json
import os
import secrets
import stat
import sys
import time
import traceback
import zipfile
from pathlib import Path

from scratchlm.exercises.catalog import EXERCISES
from scratchlm.exercises.harness import PRACTICE_SEED
from scratchlm.exercises.options import check_memory, check_timeout

#: the root Gradescope lays out, unless SCRATCHLM_AUTOGRADER_ROOT names another
DEFAULT_ROOT = "/autograder"
#: the visibilities Gradescope accepts for a test
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
#: the package copied into the zip (this file's package's package)
PACKAGE = Path(__file__).resolve().parents[1]

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image.
set -euo pipefail
apt-get install -y python3 python3-pip
python3 -m pip install --break-system-packages numpy || python3 -m pip install numpy
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: the student's files are in ROOT/submission,
# the results go to ROOT/results/results.json. ROOT is /autograder on Gradescope.
set -euo pipefail
ROOT="${SCRATCHLM_AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT"
mkdir -p "$ROOT/results"
PYTHONPATH="$ROOT/source" exec python3 -m scratchlm.exercises.gradescope "$ROOT"
"""


def zip_files(exercises, seed, timeout, memory_mb, held_out_visibility):
    """{name in the zip: bytes} of the autograder."""
    config = {"exercises": list(exercises), "seed": seed, "practice_seed": PRACTICE_SEED,
              "timeout": timeout, "memory_mb": memory_mb,
              "held_out_visibility": held_out_visibility}
    files = {"setup.sh": SETUP_SH.encode(), "run_autograder": RUN_AUTOGRADER.encode(),
             "config.json": (json.dumps(config, indent=1) + "\n").encode()}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[str(path.relative_to(PACKAGE.parent))] = path.read_bytes()
    return files


def build(out, exercises=None, *, seed=None, timeout, memory_mb, held_out_visibility="hidden"):
    """Write the autograder zip to ``out``; returns the seed it grades with (drawn at
    random when ``seed`` is None). Needs the instructor's source checkout."""
    from scratchlm.exercises.release import REFERENCE_DIR, ReleaseError
    if not REFERENCE_DIR.is_dir():
        raise ReleaseError("gradescope: the autograder carries the hidden references, which "
                           "only the instructor's source checkout has (scratchlm/exercises/"
                           f"reference/; this installation lacks {REFERENCE_DIR}); build it "
                           "from a clone of the repository")
    timeout, memory_mb = check_timeout(timeout, "timeout"), check_memory(memory_mb, "memory_mb")
    if held_out_visibility not in VISIBILITIES:
        raise ValueError(f"gradescope: visibility {held_out_visibility!r} is none of "
                         f"{', '.join(VISIBILITIES)}")
    exercises = list(exercises or EXERCISES)
    unknown = [name for name in exercises if name not in EXERCISES]
    if unknown:
        raise ValueError(f"gradescope: no exercise named {', '.join(unknown)}; see python -m "
                         "scratchlm.exercises list")
    seed = secrets.randbelow(2 ** 31 - 1) + 1 if seed is None else seed
    files = zip_files(exercises, seed, timeout, memory_mb, held_out_visibility)
    out = Path(out)
    temporary = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            executable = name in ("setup.sh", "run_autograder")
            info.external_attr = (0o755 if executable else 0o644) << 16 | stat.S_IFREG << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    os.replace(temporary, out)
    return seed


# ----------------------------------------------------------------- inside the autograder
def find_file(submission, exercise):
    """The submitted file for ``exercise``: NAME.py (or engine.py for the engine track)
    anywhere under ``submission``, the shallowest first; None if there is none."""
    from scratchlm.exercises.gradebook import ENGINE_FILE
    names = [f"{exercise}.py"] + ([ENGINE_FILE] if EXERCISES[exercise].track == 1 else [])
    for name in names:
        found = sorted(Path(submission).rglob(name), key=lambda p: (len(p.parts), str(p)))
        found = [path for path in found if path.is_file()]
        if found:
            return found[0]
    return None


def exercise_tests(exercise, path, config):
    """The two tests of one exercise: the practice cases (visible, 0 points) and the
    held-out cases (the points, hidden)."""
    from scratchlm.exercises.harness import NotGradable, grade_file
    points = EXERCISES[exercise].points
    visibility = config["held_out_visibility"]
    if path is None:
        missing = (f"no file {exercise}.py in the submission (name the file after the "
                   "exercise)")
        return [_test(f"{exercise}: practice cases", 0, 0, missing, "visible"),
                _test(f"{exercise}: held-out cases", 0, points, missing, visibility)]
    limits = dict(timeout=config["timeout"], memory_mb=config["memory_mb"])
    tests = []
    for seed, held_out in ((config["practice_seed"], False), (config["seed"], True)):
        name = f"{exercise}: {'held-out' if held_out else 'practice'} cases"
        try:
            report = grade_file(exercise, path, seed=seed, **limits)
        except NotGradable as error:
            tests.append(_test(name, 0, points if held_out else 0, str(error),
                               visibility if held_out else "visible"))
            continue
        if held_out:
            passed = sum(case.passed for case in report.cases)
            output = (f"{passed} of {len(report.cases)} held-out cases pass "
                      "(their inputs are not shown)")
            if report.error is not None:
                output += f"; not graded: {report.error.splitlines()[0]}"
            tests.append(_test(name, report.points, points, output, visibility))
        else:
            tests.append(_test(name, 0, 0, str(report), "visible",
                               "passed" if report.passed else "failed"))
    return tests


def _test(name, score, max_score, output, visibility, status=None):
    status = status or ("passed" if max_score and score >= max_score else "failed")
    return {"name": name, "score": score, "max_score": max_score, "status": status,
            "output": output, "visibility": visibility}


def results(root):
    """The results.json object for the submission in ``root``/submission."""
    root = Path(root)
    config = json.loads((root / "source" / "config.json").read_text(encoding="utf-8"))
    started = time.monotonic()
    tests = []
    for exercise in config["exercises"]:
        tests += exercise_tests(exercise, find_file(root / "submission", exercise), config)
    earned = sum(test["score"] for test in tests)
    possible = sum(test["max_score"] for test in tests)
    return {"execution_time": round(time.monotonic() - started),
            "output": f"scratchlm exercises: {earned:g} of {possible:g} points (held-out "
                      "cases count; the practice cases are the release's)",
            "stdout_visibility": "hidden", "tests": tests}


def write_results(root, outcome):
    folder = Path(root) / "results"
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / ".results.json.partial"
    temporary.write_text(json.dumps(outcome, indent=1, ensure_ascii=False) + "\n",
                         encoding="utf-8")
    os.replace(temporary, folder / "results.json")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m scratchlm.exercises.gradescope",
                                     description="Grade ROOT/submission into "
                                                 "ROOT/results/results.json (Gradescope).")
    parser.add_argument("root", nargs="?", default=os.environ.get("SCRATCHLM_AUTOGRADER_ROOT",
                                                                  DEFAULT_ROOT))
    root = parser.parse_args(argv).root
    try:
        outcome = results(root)
    except Exception as error:  # the autograder itself failed: say so in results.json
        traceback.print_exc()
        outcome = {"score": 0, "output": f"the autograder failed ({type(error).__name__}: "
                                         f"{error}); ask your instructor", "tests": []}
    write_results(root, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
