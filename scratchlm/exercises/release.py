"""``python -m scratchlm.exercises release OUT_DIR``: the student version of the coursework.

It writes::

    OUT_DIR/README.md                        the exercises by track, points, how to grade
    OUT_DIR/exercises/<track>/<name>.py       each exercise's statement and file to complete
    OUT_DIR/expected/<name>.json              what the grader compares each case with
    OUT_DIR/assignments/<notebook>.ipynb      each assignment notebook, student version

``expected/`` lets the copy grade every exercise without the hidden reference: for each case
the grader draws (the same seeded inputs), the answer key's results — the reference's
outputs, the central differences of its forward, the library op's output and gradients —
as JSON numbers, with a checksum; and, for the exercises graded by statistics or properties
(MLM masking, NSP pairs, a topological order, ``no_grad``), a file that says so and holds
what their grading needs. ``grade NAME FILE`` in the copy finds ``OUT_DIR/expected`` above
the file (or takes ``--expected DIR``); see :mod:`scratchlm.exercises.expected`.

A student notebook is the instructor's (``notebooks/assignments/``, nbgrader's format) with
every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region replaced by nbgrader's stub
(``# YOUR CODE HERE`` / ``raise NotImplementedError()``), every ``### BEGIN HIDDEN TESTS``
… ``### END HIDDEN TESTS`` region removed and every output cleared — what nbgrader's
``generate_assignment`` does. The hidden references (``scratchlm/exercises/reference/``)
are never copied (only their results on the grader's inputs are); before it finishes,
``release`` searches what it wrote for every line of their source and refuses (writing
nothing, naming the file) if one is there.

An OUT_DIR that is not empty is refused unless ``overwrite`` is set (then only the files
named above are replaced; nothing else in it is touched).
"""

import ast
import json
import re
import textwrap
from pathlib import Path

from scratchlm.exercises import expected
from scratchlm.exercises.catalog import EXERCISES, TRACKS
from scratchlm.exercises.statements import statement
from scratchlm.exercises.tasks import reference_available

#: the instructor's assignment notebooks (nbgrader's format)
ASSIGNMENTS = Path(__file__).resolve().parents[2] / "notebooks" / "assignments"
#: the hidden references
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*(\n|$)",
                      re.S | re.M)
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*"
                    r"(\n|$)", re.S | re.M)
#: what replaces a solution region (nbgrader's default code stub)
STUB = "{indent}# YOUR CODE HERE\n{indent}raise NotImplementedError()\n"
#: a reference line this long (stripped) that appears in the release is a leak
LEAK_MIN_CHARS = 24


class ReleaseError(Exception):
    """The release was refused: the folder is in use, or a solution would leak."""


def track_folder(track):
    return f"{track}_" + TRACKS[track].split(",")[0].split(" ")[0].lower()


def student_cell_source(source):
    """A code cell's source with solutions stubbed and hidden tests removed."""
    source = SOLUTION.sub(lambda m: STUB.format(indent=m.group(1)), source)
    return HIDDEN.sub("", source)


def student_notebook(notebook):
    """The student version of an nbgrader notebook (a dict, as read from JSON)."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        source = student_cell_source(source)
        cell["source"] = source
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return notebook


def readme():
    lines = ["# Coursework: the student version", "",
             "Each exercise is a file in `exercises/`: its statement in comments, then what to "
             "write. Work in the file, then grade it (each file runs in its own process, with "
             "a time and a memory limit):", "",
             "    python -m scratchlm.exercises show NAME --hint 1   # the first hint",
             "    python -m scratchlm.exercises grade NAME exercises/TRACK/NAME.py", "",
             "Your copy has no reference solutions. It grades every exercise against the "
             "results stored in `expected/` (one JSON file per exercise: what the answer key "
             "gives on the grader's inputs, with a checksum; `grade` finds the folder above "
             "your file, or takes `--expected DIR`). Gradients are still checked against "
             "central differences. Exercises graded by statistics or properties (MLM "
             "masking, NSP pairs, a topological order, `no_grad`) say so in their file. An "
             "edited or damaged file is refused, naming it: copy it again from the release. "
             "The grade that counts is your teacher's (`grade-all`, against the reference).",
             "",
             "A failed grade shows a hint: the one for that kind of mistake where the "
             "exercise has one (a shape error, recursion too deep), else the next one still "
             "locked — one more with each failed attempt, remembered in "
             "`.scratchlm_hints.json` beside your file. `show NAME --hint K` prints hints 1 "
             "to K at any time.", ""]
    for track, title in TRACKS.items():
        names = [e for e in EXERCISES.values() if e.track == track]
        lines += [f"## Track {track}: {title} ({sum(e.points for e in names)} points)", ""]
        lines += [f"- `{e.name}` ({e.points} points): {e.title}" for e in names]
        lines.append("")
    return "\n".join(lines)


def planned_files(out_dir):
    """{path: text} of everything the release writes."""
    out_dir = Path(out_dir)
    files = {out_dir / "README.md": readme()}
    for name, exercise in EXERCISES.items():
        files[out_dir / "exercises" / track_folder(exercise.track) / f"{name}.py"] = (
            statement(name))
    files.update(expected.files(out_dir / expected.FOLDER, EXERCISES))
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        files[out_dir / "assignments" / path.name] = json.dumps(
            student_notebook(notebook), indent=1, ensure_ascii=False) + "\n"
    return files


def solution_bodies():
    """{"module.function@line": body source} for every function and method of the hidden
    references: what must never be released (their def lines, docstrings and constructors,
    which only keep their arguments, aside)."""
    bodies = {}
    for path in sorted(REFERENCE_DIR.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef) and node.name != "__init__":
                body = node.body
                if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    body = body[1:] or body
                text = "\n".join(lines[body[0].lineno - 1:node.end_lineno])
                bodies[f"{path.stem}.{node.name}@{node.lineno}"] = textwrap.dedent(text)
    return bodies


def secret_lines():
    """The distinctive lines of the solutions (and of the assignment notebooks' solution
    regions and hidden tests) that no other module of the package (public anyway) holds."""
    lines = set()
    for body in solution_bodies().values():
        lines |= {line.strip() for line in body.splitlines()}
    for path in sorted(ASSIGNMENTS.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else (
                cell["source"])
            for region in [*SOLUTION.finditer(source), *HIDDEN.finditer(source)]:
                lines |= {line.strip() for line in region.group(0).splitlines()[1:-1]}
    package = Path(__file__).resolve().parents[1]
    public = {line.strip() for path in package.rglob("*.py") if REFERENCE_DIR not in path.parents
              for line in path.read_text(encoding="utf-8").splitlines()}
    return {line for line in lines - public
            if len(line) >= LEAK_MIN_CHARS and not line.startswith(("#", "def ", "class "))}


def leaks(files):
    """(file, line) for every secret line found in ``files`` ({path: text})."""
    secret = secret_lines()
    return [(path, line.strip()) for path, text in files.items()
            for line in text.splitlines() if line.strip() in secret]


def release(out_dir, overwrite=False):
    """Write the student version into ``out_dir``; returns the paths written."""
    out_dir = Path(out_dir)
    missing = [str(path) for path in (REFERENCE_DIR, ASSIGNMENTS) if not path.is_dir()]
    if missing or not reference_available():
        raise ReleaseError(
            "release makes the student version from the instructor's source checkout (the "
            "hidden references in scratchlm/exercises/reference/ and the notebooks in "
            f"notebooks/assignments/); this installation lacks {', '.join(missing) or 'them'}. "
            "Run it from a clone of the repository (pip install -e . there); nothing was "
            "written")
    if out_dir.exists() and not out_dir.is_dir():
        raise ReleaseError(f"release: {out_dir} is a file; name a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ReleaseError(f"release: {out_dir} is not empty; pass --overwrite to replace the "
                           "files the release writes there (nothing else is touched), or name "
                           "a new folder")
    files = planned_files(out_dir)
    found = leaks(files)
    if found:
        path, line = found[0]
        raise ReleaseError(f"release refused: {path.relative_to(out_dir)} would hold a line of "
                           f"a hidden solution ({line!r}) and {len(found) - 1} more; nothing "
                           "was written")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)
