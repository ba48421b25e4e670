"""The command line tunes its own process (scratchlm.fast.tune_process) and, since OpenBLAS
reads OPENBLAS_THREAD_TIMEOUT only when NumPy loads, starts itself again once with it set."""

import os
import subprocess
import sys

SCRIPT = ("import os, sys\n"
          "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules, flush=True)\n"
          "from scratchlm.__main__ import main\n"
          "main()\n")


def run_cli(extra_env):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(extra_env)
    return subprocess.run([sys.executable, "-c", SCRIPT, "eval", "--help"], env=env,
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_cli_restarts_once_with_the_openblas_wait_set():
    result = run_cli({})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["None False", "20 False"]  # the first run, then the restarted one
    assert "usage: python -m scratchlm eval" in result.stdout


def test_a_users_value_is_kept_and_nothing_restarts():
    result = run_cli({"OPENBLAS_THREAD_TIMEOUT": "24"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "24 False"
    assert result.stdout.count("24 False") == 1
