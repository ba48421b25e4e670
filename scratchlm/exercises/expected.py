"""Stored expected results: how a student's copy grades every exercise without the hidden
reference.

``release OUT_DIR`` writes ``OUT_DIR/expected/NAME.json`` for every exercise: for each case
the grader draws (the same seeded inputs, ``seed=0``), what the answer key makes of them —
the hidden reference's output (and, for an op, the central differences of ⟨reference(x), c⟩
for the grader's random cotangent c), or the library op's output and gradients for the
backward exercises of track 2. Nothing else: no source, no pickles; arrays are written as
JSON lists of float64 numbers (``repr`` of a float reads back to the same float), with
``Infinity``/``NaN`` where the answer holds them.

Each file holds::

    {"format": 1, "exercise": NAME, "seed": 0, "graded": how the exercise is graded,
     "cases": [{"label": …, "inputs": SHA-256 of the case's inputs,
                "expected": the answer, as tasks.encode writes it}, …],
     "sha256": SHA-256 of everything above}

Grading uses the stored results instead of the reference (:func:`resolve`):

* when they are named: ``grade NAME FILE --expected DIR`` (``grade(…, expected=DIR)``);
* else, only when the hidden reference is absent (a built package, a student's copy), the
  nearest ``expected/`` folder holding ``NAME.json`` in the graded file's folder or a folder
  above it — ``OUT_DIR/expected`` for ``OUT_DIR/exercises/TRACK/NAME.py``.

Some exercises are not graded against an answer at all, and their file says so in
``graded``: a topological order by its properties, ``no_grad`` by probes, MLM masking and NSP
pairs by statistics and rules, the engine's backward against central differences of the
graph's forward. Their file stores what the grader needs (nothing, or the probes and the
central differences), so every exercise grades the same way in a copy. The gradients of a
track-2 backward are still checked against central differences of your op, as always.

Loading checks each file against what the grader draws: its checksum (a file edited by hand,
or cut short, is refused), its exercise, seed and case labels, and each case's inputs (a
file from another version of the course is refused). Each refusal is an
:class:`ExpectedError` naming the file. The checksum catches accidents, not a determined
student: the grade that counts is the teacher's ``grade-all``, against the reference.
"""

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from scratchlm.errors import FileFormatError, MissingFileError
from scratchlm.exercises.answers import prepare_cases
from scratchlm.exercises.runner import decode, encode
from scratchlm.exercises.tasks import Task, prepare_task, reference_available
from scratchlm.file_reading import JSONProblem, parse_json, read_file_bytes

#: the version of the file layout
FORMAT = 1
#: the folder ``release`` writes the files into, and the one looked for near a graded file
FOLDER = "expected"
#: a stored-results file larger than this is refused unread (the largest is about 1 MB)
FILE_LIMIT = 64 * 2**20
#: the nesting a stored-results file may have (arrays of a few dimensions inside cases)
MAX_DEPTH = 64


class ExpectedError(Exception):
    """A stored-results file is missing, corrupt, edited, or from another version."""


def how_graded(exercise):
    """How ``exercise`` is graded, in one sentence (what its stored file stands for)."""
    if isinstance(exercise, Task) and exercise.graded:
        return exercise.graded
    if not isinstance(exercise, Task):
        return ("forward output and gradients against scratchlm's own op to float64 "
                "precision (stored here), for a random cotangent; a backward that calls "
                "forward, or changes g or an input in place, fails")
    if exercise.kind == "op":
        return ("output against the hidden reference's (stored here); gradients against "
                "central differences of ⟨reference(x), c⟩ for the grader's cotangent c "
                "(stored here); a backward that calls forward fails")
    if exercise.check is not None:
        return "its result against the hidden reference's (stored here), and by rules"
    return "result against the hidden reference's (stored here)"


def _checksum(plain):
    """SHA-256 of JSON-ready data, written as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(plain, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def digest(value):
    """SHA-256 of a case's inputs (arrays and all, as :func:`tasks.encode` writes them)."""
    return _checksum(encode(value))


def record(exercise, seed=0):
    """The stored results of ``exercise`` (a dict, ready for JSON), from the answer key."""
    if isinstance(exercise, Task):
        cases = [(case.label, case.inputs, case.expected) for case in prepare_task(exercise, seed)]
    else:
        cases = [(case.label, case.inputs, {"y": case.expected_y, "grads": case.expected_grads})
                 for case in prepare_cases(exercise, seed)]
    body = {"format": FORMAT, "exercise": exercise.name, "seed": seed,
            "graded": how_graded(exercise),
            "cases": [{"label": label, "inputs": digest(inputs), "expected": encode(expected)}
                      for label, inputs, expected in cases]}
    return dict(body, sha256=_checksum(body))


def files(folder, exercises, seed=0):
    """{path: text} of the stored results of every exercise in ``exercises`` ({name: …})."""
    return {Path(folder) / f"{name}.json": json.dumps(record(exercise, seed), allow_nan=True,
                                                      ensure_ascii=False) + "\n"
            for name, exercise in exercises.items()}


@dataclass(frozen=True)
class Stored:
    """One exercise's stored results, checked as a whole; :meth:`expected` checks a case."""
    path: Path
    cases: tuple

    def expected(self, index, label, inputs):
        """The stored answer of case ``index``, once its label and inputs are the grader's."""
        entry = self.cases[index]
        if entry["label"] != label or entry["inputs"] != digest(inputs):
            raise ExpectedError(f"{self.path}: case {index + 1} ({label!r}) was stored for "
                                "other inputs; the file comes from another version of the "
                                "exercises (release them again)")
        return copy.deepcopy(entry["expected"])


def load(folder, exercise, seed=0):
    """The stored results of ``exercise`` in ``folder``, checked; or :class:`ExpectedError`
    naming the file."""
    path = Path(folder) / f"{exercise.name}.json"
    try:  # a FIFO, a device or a folder is refused before anything is read
        raw = read_file_bytes(path, "grade", "stored-results file", limit=FILE_LIMIT)
    except MissingFileError:
        raise ExpectedError(f"no stored results for {exercise.name}: {path} does not exist"
                            ) from None
    except FileFormatError as error:
        raise ExpectedError(f"{error}; copy it again from the release") from None
    try:
        data = parse_json(raw, MAX_DEPTH, finite=False)
    except JSONProblem as problem:
        raise ExpectedError(f"{path} cannot be read as JSON ({problem}); it is damaged: "
                            "copy it again from the release") from None
    if not isinstance(data, dict) or not isinstance(data.get("sha256"), str):
        raise ExpectedError(f"{path} is not a stored-results file (no checksum)")
    body = {key: value for key, value in data.items() if key != "sha256"}
    if _checksum(body) != data["sha256"]:
        raise ExpectedError(f"{path} was changed after the release: its checksum does not "
                            "match its content; copy it again from the release")
    if (body.get("format"), body.get("exercise"), body.get("seed")) != (FORMAT, exercise.name,
                                                                        seed):
        raise ExpectedError(f"{path} holds the results of {body.get('exercise')!r} for seed "
                            f"{body.get('seed')!r} (format {body.get('format')!r}); grading "
                            f"needs {exercise.name!r}, seed {seed}, format {FORMAT}")
    cases = body.get("cases")
    if not isinstance(cases, list) or len(cases) != len(exercise.cases):
        raise ExpectedError(f"{path} holds {len(cases) if isinstance(cases, list) else 'no'} "
                            f"cases; {exercise.name} has {len(exercise.cases)} (another "
                            "version of the exercises?)")
    for number, entry in enumerate(cases, 1):
        if not (isinstance(entry, dict) and isinstance(entry.get("label"), str)
                and isinstance(entry.get("inputs"), str) and "expected" in entry):
            raise ExpectedError(f"{path}: case {number} is not a stored case (an object with "
                                "a label, the digest of its inputs and the expected answer); "
                                "copy the file again from the release")
    try:
        cases = tuple(dict(entry, expected=decode(entry["expected"])) for entry in cases)
    except (TypeError, KeyError, ValueError, RecursionError) as error:
        raise ExpectedError(f"{path}: a case's expected answer cannot be read "
                            f"({type(error).__name__}: {str(error)[:200]}); copy the file "
                            "again from the release") from None
    return Stored(path, cases)


def find(near, name):
    """The nearest ``expected/`` folder holding ``NAME.json`` in ``near``'s folder (``near``
    a file or folder) or a folder above it; None if there is none."""
    start = Path(near).resolve()
    for folder in [start] + list(start.parents):
        if (folder / FOLDER / f"{name}.json").is_file():
            return folder / FOLDER
    return None


def resolve(exercise, expected=None, near=None, seed=0):
    """The stored results to grade ``exercise`` against, or None for the answer key itself:
    those in ``expected`` when it is given; else, when the hidden reference is absent, those
    found by :func:`find` from ``near``. Raises :class:`ExpectedError` for a bad file, and
    :class:`~scratchlm.exercises.tasks.ReferenceMissing` when the exercise needs the
    reference and neither is there."""
    if expected is not None:
        return load(expected, exercise, seed)
    if reference_available():
        return None
    # with no stored results either, an exercise graded by the library or by properties
    # still grades; one that needs the reference raises ReferenceMissing, saying what to do
    folder = find(near, exercise.name) if near is not None else None
    return load(folder, exercise, seed) if folder is not None else None
