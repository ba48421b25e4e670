"""The teaching notebooks: stored executed (outputs and figures kept, so they read complete on
GitHub), each in sync with its jupytext percent script, the Chinese edition (``notebooks/zh/``)
with the English code cells (comments and string literals aside: those are Chinese, so are its
figures' titles, labels and legends), and every notebook of both editions runs top to bottom
within its CPU-time budget.

Executing: each notebook is copied into a fresh temporary folder and run there with nbclient
(the python3 kernel, matplotlib's Agg backend, this checkout first on the path), so the runs/
it writes never land in the repository. The notebooks assert what they teach (a loss by hand
equals the library's, a trained model beats chance, ...), so a run that ends is a run that
checked. Run only these with ``pytest tests/test_notebooks.py``; skip them with
``--ignore=tests/test_notebooks.py``. ``python notebooks/execute_all.py`` re-executes them in
place and rewrites the pairs.
"""

import ast
import io
import os
import re
import resource
import shutil
import time
import tokenize
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
#: Each notebook's kernel may spend this much CPU time (user + system, its subprocesses
#: included). CPU time, not wall-clock time: on a loaded machine the wall clock also counts the
#: time other processes hold the cores, and the notebooks run on one BLAS thread.
NOTEBOOK_CPU_BUDGET_S = 120
#: A cell that runs longer than this by the wall clock is stuck (a loaded machine included).
CELL_WALL_TIMEOUT_S = 900
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


def _string_token(source):
    """A string literal (f-strings included) reduced to what code it runs: the expressions of
    its replacement fields, sorted (a translation may reorder them)."""
    node = ast.parse(source.strip(), mode="eval").body
    if isinstance(node, ast.JoinedStr):
        return tuple(sorted(ast.unparse(part.value) for part in ast.walk(node)
                            if isinstance(part, ast.FormattedValue)))
    return ()


def code_without_text(source):
    """The tokens of a code cell with its comments and line breaks inside brackets dropped
    and each run of string literals (implicit concatenation included) replaced by one
    placeholder holding the expressions of its f-string fields: what the cell does, not
    what it says."""
    fstring_start = getattr(tokenize, "FSTRING_START", None)  # Python 3.12+
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    lines = source.splitlines(keepends=True)

    def text_between(start, end):
        (row0, col0), (row1, col1) = start, end
        if row0 == row1:
            return lines[row0 - 1][col0:col1]
        return lines[row0 - 1][col0:] + "".join(lines[row0:row1 - 1]) + lines[row1 - 1][:col1]

    out, tokens = [], iter(tokenize.generate_tokens(io.StringIO(source).readline))
    for token in tokens:
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING):
            continue
        if token.type == fstring_start:
            depth, start = 1, token.start
            while depth:
                inner = next(tokens)
                depth += (inner.type == fstring_start) - (inner.type == fstring_end)
            literal = ("STR", _string_token(text_between(start, inner.end)))
        elif token.type == tokenize.STRING:
            literal = ("STR", _string_token(token.string))
        else:
            out.append((token.type, token.string))
            continue
        if out and out[-1][0] == "STR":  # "a" "b": one literal
            out[-1] = ("STR", tuple(sorted(out[-1][1] + literal[1])))
        else:
            out.append(literal)
    return out


def test_code_without_text_ignores_only_comments_and_strings():
    english = 'print(f"{n} vectors of {d} dims", x)  # show\nplot(label="loss")\n'
    chinese = 'print(f"{d} 维的 {n} 个"\n      "向量", x)\nplot(label="损失")  # 画\n'
    assert code_without_text(english) == code_without_text(chinese)
    assert code_without_text(english) != code_without_text(english.replace("x)", "y)"))
    assert code_without_text(english) != code_without_text(english.replace("{n}", "{n + 1}"))
    assert code_without_text("a = 1\nb = 2\n") != code_without_text("a = 1\n")


def code_cells(path):
    return [cell.source for cell in nbformat.read(path, as_version=4).cells
            if cell.cell_type == "code"]


@pytest.mark.parametrize("path", CHINESE, ids=[path.stem for path in CHINESE])
def test_chinese_edition_runs_the_english_code_with_chinese_text(path):
    """The code cells match the English ones once comments and string literals are dropped;
    every markdown cell is Chinese."""
    english_code, chinese_code = code_cells(NOTEBOOKS_DIR / path.name), code_cells(path)
    assert len(chinese_code) == len(english_code), (
        f"zh/{path.name} has {len(chinese_code)} code cells, the English {len(english_code)}")
    for index, (zh, en) in enumerate(zip(chinese_code, english_code)):
        assert code_without_text(zh) == code_without_text(en), (
            f"zh/{path.name}: code cell {index} does something the English one does not "
            "(only comments and strings may differ)")
    chinese = nbformat.read(path, as_version=4)
    for index, cell in enumerate(chinese.cells):
        if cell.cell_type == "markdown":
            assert CJK.search(cell.source), f"zh/{path.name}: markdown cell {index} is not Chinese"


#: Calls whose string arguments are text a figure shows.
FIGURE_TEXT_CALLS = {"set_title", "set_xlabel", "set_ylabel", "suptitle", "title", "xlabel",
                     "ylabel", "text", "annotate", "legend", "set_xticks", "set_yticks",
                     "set_xticklabels", "set_yticklabels", "bar_label", "table"}
#: Keyword arguments that are text a figure shows, in any call.
FIGURE_TEXT_KEYWORDS = {"label", "labels", "title", "xlabel", "ylabel", "tick_label",
                        "head_names"}
#: Words a Chinese figure may keep in English: names, not prose.
NAMES = {"Adam", "AdamW", "ReLU", "GELU", "tanh", "softmax", "exp", "log", "max", "argmax",
         "sin", "cos", "Value", "Tensor", "scratchlm", "micrograd", "NumPy", "PyTorch"}


def needs_chinese(text):
    """Prose: an English word that is not an acronym (GPT, SGD), a name (Adam) or maths."""
    text = re.sub(r"\$[^$]*\$", "", text)
    return any(not word.isupper() and word not in NAMES
               for word in re.findall(r"[A-Za-z]{2,}", text))


def figure_strings(tree):
    """(line, text) of every literal string a figure would show in this code: the arguments
    of title/label/legend/tick/text calls and of label=/title=... keywords."""
    found = []

    def collect(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            found.append((node.lineno, "".join(part.value for part in node.values
                                               if isinstance(part, ast.Constant))))
        elif isinstance(node, (ast.List, ast.Tuple)):
            for element in node.elts:
                collect(element)
        elif isinstance(node, ast.Dict):
            for value in node.values:
                collect(value)

    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
            node.func, "id", "")
        if name in FIGURE_TEXT_CALLS:
            for argument in node.args:
                collect(argument)
        for keyword in node.keywords:
            if keyword.arg in FIGURE_TEXT_KEYWORDS:
                collect(keyword.value)
    return found


def viz_calls_without_chinese(tree, lang):
    """viz.<function>(...) calls that do not draw in Chinese: no lang=, or lang= neither "zh"
    nor the notebook's LANG (when LANG is "zh")."""
    wrong = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "viz"
                and node.func.attr in VIZ_FIGURES):
            value = next((k.value for k in node.keywords if k.arg == "lang"), None)
            chinese = (isinstance(value, ast.Constant) and value.value == "zh") or (
                isinstance(value, ast.Name) and value.id == "LANG" and lang == "zh")
            if not chinese:
                wrong.append((node.lineno, node.func.attr))
    return wrong


VIZ_FIGURES = {"draw_graph", "attention_heatmap", "embedding_map", "beam_tree", "lr_schedule",
               "gradient_norms", "loss_curves", "history_curves"}


def test_figure_text_check_catches_english_labels():
    tree = ast.parse('ax.set_title("loss per step")\nax.plot(x, label="训练 (SGD)")\n'
                     'ax.set_xticks([0, 1], ["pre-LN", "层规范化在后"])\nviz.lr_schedule(s)\n'
                     'ax.legend([f"{k} heads"])\nax.set(ylabel="$\\\\log p$")\n')
    flagged = [text for _, text in figure_strings(tree) if needs_chinese(text)]
    assert flagged == ["loss per step", "pre-LN", " heads"]
    assert viz_calls_without_chinese(tree, "zh") == [(4, "lr_schedule")]


#: zh notebooks whose figures are still labelled in English (issue 25): expected to fail
#: this check until translated; strict, so a translated one must leave this set.
FIGURES_NOT_YET_CHINESE = set()


@pytest.mark.parametrize("path", [
    pytest.param(path, marks=pytest.mark.xfail(strict=True, reason="figures not yet Chinese"))
    if path.stem in FIGURES_NOT_YET_CHINESE else path for path in CHINESE],
    ids=[path.stem for path in CHINESE])
def test_chinese_figures_have_chinese_text(path):
    """Every title, axis label, legend entry and word tick label a zh notebook writes is
    Chinese, and its viz figures are drawn with lang="zh" (whose text tests/test_viz.py
    checks). Text built from variables is not seen here: look at the figures."""
    cells = code_cells(path)
    lang = next((m.group(1) for cell in cells
                 for m in [re.search(r'^LANG = "(\w+)"', cell, re.MULTILINE)] if m), None)
    problems = []
    for index, cell in enumerate(cells):
        tree = ast.parse(cell)
        problems += [f"code cell {index}, line {line}: {text!r}"
                     for line, text in figure_strings(tree) if needs_chinese(text)]
        problems += [f"code cell {index}, line {line}: viz.{name} without lang=LANG "
                     f"(LANG = {lang!r})" for line, name in viz_calls_without_chinese(tree, lang)]
    if any("plt." in cell for cell in cells) and not any("font_settings(LANG)" in cell
                                                          for cell in cells):
        problems.append("no plt.rcParams.update(viz.font_settings(LANG)): its own plots "
                            "would draw Chinese without a CJK font")
    assert not problems, f"zh/{path.name}: English text in figures:\n" + "\n".join(problems)


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


def children_cpu_seconds():
    """CPU time (user + system) of this process's finished and reaped child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_runs(path, tmp_path, monkeypatch):
    """Runs top to bottom (its asserts checking what it teaches) within its CPU-time budget:
    the kernel's CPU time, read when it has exited, is the same on a quiet machine and on a
    busy one, where the wall clock is not."""
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
    client = nbclient.NotebookClient(notebook, kernel_name="python3",
                                     timeout=CELL_WALL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(tmp_path)}})
    cpu_before, started = children_cpu_seconds(), time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell and its traceback
    cpu, elapsed = children_cpu_seconds() - cpu_before, time.perf_counter() - started
    print(f"{path.name}: {cpu:.1f} s CPU, {elapsed:.1f} s wall")
    assert cpu > 0.5, "the kernel's CPU time was not measured (was it reaped?)"
    assert cpu < NOTEBOOK_CPU_BUDGET_S, f"{path.name} took {cpu:.0f} s of CPU time"


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
    namespace, seen = {}, set()  # the classes themselves: an id could be reused once freed
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        exec(compile(cell.source, str(path), "exec"), namespace)
        for value in list(namespace.values()):
            if (isinstance(value, type) and value not in by_skeleton and value not in seen
                    and any(issubclass(value, skeleton) for skeleton in by_skeleton)):
                seen.add(value)
                skeleton = next(s for s in by_skeleton if issubclass(value, s))
                report = grade(by_skeleton[skeleton], value)
                assert not report.passed, f"{path.name} holds a passing {value.__name__}"
    capsys.readouterr()
    assert len(seen) == 5  # two softmax and two embedding attempts, one delegating softmax
