"""The teaching notebooks: stored executed (outputs and figures kept, so they read complete on
GitHub), each in sync with its jupytext percent script, the Chinese edition (``notebooks/zh/``)
with the same code cells as the English one, and every notebook of both editions runs top to
bottom within its time budget.

Executing: each notebook is copied into a fresh temporary folder and run there with nbclient
(the python3 kernel, matplotlib's Agg backend, this checkout first on the path), so the runs/
it writes never land in the repository. The notebooks assert what they teach (a loss by hand
equals the library's, a trained model beats chance, ...), so a run that ends is a run that
checked. Run only these with ``pytest tests/test_notebooks.py``; skip them with
``--ignore=tests/test_notebooks.py``. ``python notebooks/execute_all.py`` re-executes them in
place and rewrites the pairs.
"""

import os
import re
import shutil
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
ENGLISH = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
CHINESE = sorted((NOTEBOOKS_DIR / "zh").glob("[0-9][0-9]_*.ipynb"))
ALL = ENGLISH + CHINESE
IDS = [path.relative_to(NOTEBOOKS_DIR).with_suffix("").as_posix() for path in ALL]
#: Each notebook must finish within this on a 2-core CPU (no single cell may take longer).
NOTEBOOK_BUDGET_S = 90
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_the_teaching_path_is_there():
    names = {path.stem for path in ENGLISH}
    assert {"01_autograd", "02_backprop_and_sgd", "05_attention", "07_gpt_shakespeare",
            "10_bert_pretraining", "11_translation", "03_exercises"} <= names
    assert {path.stem for path in CHINESE} == names, "every notebook needs a notebooks/zh/ edition"


def test_runs_written_by_notebooks_are_ignored_by_git():
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert "/notebooks/runs/" in ignored and "/notebooks/zh/runs/" in ignored


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_is_stored_executed(path):
    """Executed top to bottom in one kernel (execution counts 1, 2, 3 ...), no error output,
    and every cell that draws holds its picture."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), (
        f"{path.name}: execution counts {counts}; run `python notebooks/execute_all.py` to "
        "store it executed top to bottom")
    for index, cell in enumerate(code):
        kinds = [output.output_type for output in cell.outputs]
        assert "error" not in kinds, f"{path.name}: code cell {index} stored an error"
        last_line = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
        draws = "plt.show()" in cell.source or re.match(r"(viz\.\w+|Image)\(", last_line)
        if draws:
            assert any("image/png" in output.get("data", {}) for output in cell.outputs), (
                f"{path.name}: code cell {index} draws a figure but holds no image")


def percent_cells(text):
    """The cells of a jupytext percent script, parsed here (not by jupytext, so this check
    cannot be skipped): a ``# %%`` line starts a code cell, ``# %% [markdown]`` a markdown
    cell whose lines carry a leading ``# ``; the ``# ---`` header before the first cell is
    metadata."""
    cells, kind, lines = [], None, []

    def close():
        if kind is not None:
            while lines and not lines[-1].strip():
                lines.pop()
            if kind == "markdown":
                body = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in lines]
            else:
                body = lines
            cells.append((kind, "\n".join(body)))

    for line in text.splitlines():
        if line.startswith("# %%"):
            close()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    close()
    return cells


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_and_its_percent_script_hold_the_same_cells(path):
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no jupytext pair {script.name}"
    notebook = nbformat.read(path, as_version=4)
    stored = [(cell.cell_type, cell.source.rstrip()) for cell in notebook.cells]
    text = script.read_text(encoding="utf-8")
    assert percent_cells(text) == stored, (
        f"{script.name} and {path.name} differ; run `python notebooks/execute_all.py "
        f"{path.relative_to(NOTEBOOKS_DIR).as_posix()[:2]}` (add --from-py if you edited the "
        "script)")
    try:
        import jupytext
    except ImportError:
        return
    read = jupytext.reads(text, fmt="py:percent")
    assert [(cell.cell_type, cell.source.rstrip()) for cell in read.cells] == stored


@pytest.mark.parametrize("path", CHINESE, ids=[path.stem for path in CHINESE])
def test_chinese_edition_has_the_same_code_and_chinese_prose(path):
    english = nbformat.read(NOTEBOOKS_DIR / path.name, as_version=4)
    chinese = nbformat.read(path, as_version=4)
    english_code = [cell.source for cell in english.cells if cell.cell_type == "code"]
    chinese_code = [cell.source for cell in chinese.cells if cell.cell_type == "code"]
    assert len(chinese_code) == len(english_code), (
        f"zh/{path.name} has {len(chinese_code)} code cells, the English {len(english_code)}")
    for index, (zh, en) in enumerate(zip(chinese_code, english_code)):
        assert zh == en, f"zh/{path.name}: code cell {index} differs from the English edition"
    for index, cell in enumerate(chinese.cells):
        if cell.cell_type == "markdown":
            assert CJK.search(cell.source), f"zh/{path.name}: markdown cell {index} is not Chinese"


def test_glossary_names_notebooks_that_exist_and_teach_the_term():
    """Each glossary row: 中文 | English | API | notebook; the notebook exists in both
    editions, and its Chinese edition uses the Chinese term."""
    lines = (NOTEBOOKS_DIR / "GLOSSARY.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|---")) + 1
    rows = [line for line in lines[start:] if line.startswith("|")]
    assert len(rows) >= 30
    for row in rows:
        chinese, english, api, where = (part.strip() for part in row.strip("|").split("|"))
        names = re.findall(r"\d\d_\w+", where)
        assert names, f"glossary row {chinese!r} names no notebook"
        for name in names:
            assert (NOTEBOOKS_DIR / f"{name}.ipynb").exists(), name
            zh = (NOTEBOOKS_DIR / "zh" / f"{name}.ipynb").read_text(encoding="utf-8")
            assert chinese.split("（")[0] in zh, f"zh/{name} never says {chinese!r}"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_runs(path, tmp_path, monkeypatch):
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # The notebooks' arrays are small: one BLAS thread is as fast, and on a shared machine
    # much faster than threads that wait for each other's cores.
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=NOTEBOOK_BUDGET_S,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell and its traceback
    elapsed = time.perf_counter() - started
    print(f"{path.name}: {elapsed:.1f} s")
    assert elapsed < NOTEBOOK_BUDGET_S, f"{path.name} took {elapsed:.0f} s"


@pytest.mark.parametrize("path", [NOTEBOOKS_DIR / "03_exercises.ipynb",
                                  NOTEBOOKS_DIR / "zh" / "03_exercises.ipynb"],
                         ids=["03_exercises", "zh/03_exercises"])
def test_the_exercise_notebook_shows_no_worked_answer(path, monkeypatch, tmp_path, capsys):
    """Every backward the exercises notebook writes, run cell by cell as the notebook runs
    and graded here, fails: it teaches with wrong attempts and leaves the answers to the
    reader ("your turn" cells)."""
    from scratchlm.exercises import EXERCISES, grade

    monkeypatch.chdir(tmp_path)
    by_skeleton = {}
    for name, exercise in EXERCISES.items():
        if getattr(exercise, "kind", None) == "backward":
            by_skeleton.setdefault(exercise.skeleton, name)
    namespace, seen = {}, set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, str(path), "exec"), namespace)
        for value in list(namespace.values()):
            if (isinstance(value, type) and value not in by_skeleton and id(value) not in seen
                    and any(issubclass(value, skeleton) for skeleton in by_skeleton)):
                seen.add(id(value))
                skeleton = next(s for s in by_skeleton if issubclass(value, s))
                report = grade(by_skeleton[skeleton], value)
                assert not report.passed, f"{path.name} holds a passing {value.__name__}"
    capsys.readouterr()
    assert len(seen) == 5  # two softmax and two embedding attempts, one delegating softmax
