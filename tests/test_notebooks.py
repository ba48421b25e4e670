"""The teaching notebooks run top to bottom without an error, within their time budget, and
are stored without outputs.

Each notebook is copied into a fresh temporary folder and executed there with nbclient (the
python3 kernel, matplotlib's Agg backend, this checkout first on the path), so the runs/ it
writes never land in the repository. The notebooks assert what they teach (a loss by hand
equals the library's, a trained model beats chance, ...), so a run that ends is a run that
checked. Run only these with ``pytest tests/test_notebooks.py``; skip them with
``--ignore=tests/test_notebooks.py``.
"""

import os
import shutil
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Each notebook must finish within this on a 2-core CPU (no single cell may take longer).
NOTEBOOK_BUDGET_S = 90


def test_the_teaching_path_is_there():
    names = {path.stem for path in NOTEBOOKS}
    assert {"01_autograd", "02_backprop_and_sgd", "03_attention", "04_gpt_shakespeare",
            "05_bert_pretraining", "06_translation", "07_exercises"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stored_clean(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# ")
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: cell {index} has stored outputs; clear them before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
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
