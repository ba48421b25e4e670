"""Execute the teaching notebooks in place, keeping their outputs and figures, and rewrite
each one's jupytext percent pair (``NN_name.py`` beside ``NN_name.ipynb``).

    python notebooks/execute_all.py              # every notebook, English and Chinese
    python notebooks/execute_all.py 03 zh/03     # those whose path (under notebooks/) starts so
    python notebooks/execute_all.py --from-py    # take the cells from the .py scripts first

Each notebook runs in a fresh python3 kernel, with this checkout first on the path, in its
own folder (so what it writes lands in ``notebooks/runs/`` or ``notebooks/zh/runs/``, which
git ignores), on one BLAS thread (the arrays are small; on a shared machine threads only
wait for each other). Each one's time is printed twice: the kernel's CPU time (user + system,
its subprocesses included: what the notebook costs, the same on a busy machine) and the wall
clock. Needs the ``notebooks`` extra: ``pip install -e ".[notebooks]"``.
"""

import argparse
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: The pair's format: jupytext's percent scripts, kept beside each notebook.
FORMATS = "ipynb,py:percent"


def notebooks(prefixes=()):
    paths = sorted(HERE.glob("[0-9][0-9]_*.ipynb")) + sorted(HERE.glob("zh/[0-9][0-9]_*.ipynb"))
    if not prefixes:
        return paths
    chosen = [p for p in paths if any(p.relative_to(HERE).as_posix().startswith(prefix)
                                       for prefix in prefixes)]
    if not chosen:
        sys.exit(f"execute_all: no notebook under {HERE} starts with {' or '.join(prefixes)}")
    return chosen


def children_cpu_seconds():
    """CPU time (user + system) of this process's finished and reaped child processes: the
    kernels, once they have exited."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def execute(path, from_py=False, timeout=900):
    """Run one notebook in place; return its (CPU seconds, wall seconds)."""
    import jupytext
    import nbclient
    import nbformat

    script = path.with_suffix(".py")
    notebook = jupytext.read(script) if from_py and script.exists() else nbformat.read(
        path, as_version=4)
    notebook.metadata.setdefault("jupytext", {})["formats"] = FORMATS
    notebook.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                       "name": "python3"}
    for cell in notebook.cells:  # no timings or ids that change at every run
        cell.metadata.pop("execution", None)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get(
        "PYTHONPATH")])])}
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[variable] = "1"
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend: figures are kept
    try:
        client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=timeout,
                                         record_timing=False,
                                         resources={"metadata": {"path": str(path.parent)}})
        cpu_before, started = children_cpu_seconds(), time.perf_counter()
        client.execute()
        elapsed = time.perf_counter() - started
        cpu = children_cpu_seconds() - cpu_before
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    jupytext.write(notebook, script, fmt="py:percent")
    return cpu, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prefixes", nargs="*", help="run only notebooks whose path under "
                                                    "notebooks/ starts with one of these")
    parser.add_argument("--from-py", action="store_true",
                        help="read each notebook's cells from its .py pair (after editing it)")
    args = parser.parse_args(argv)
    total_cpu = total_wall = 0.0
    for path in notebooks(args.prefixes):
        cpu, wall = execute(path, args.from_py)
        total_cpu, total_wall = total_cpu + cpu, total_wall + wall
        print(f"{path.relative_to(HERE)}: {cpu:.1f} s CPU, {wall:.1f} s wall", flush=True)
    print(f"total: {total_cpu:.1f} s CPU, {total_wall:.1f} s wall")


if __name__ == "__main__":
    main()
