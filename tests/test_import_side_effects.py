"""Importing scratchlm changes nothing in the process: no environment variable, no thread
(the fast layer's pool starts at the first op that shares out work); and fast mode is on by
default, off with ``SCRATCHLM_FAST=0``, and ``sl.use_fast`` switches it, as a context manager
too. The import checks run in fresh interpreters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F
from scratchlm.fast import cpu
from scratchlm.functional.layer_norm import LayerNorm

REPOSITORY = Path(__file__).resolve().parents[1]

#: Imports NumPy (whose OpenBLAS may start threads of its own), notes the environment and
#: the threads, imports scratchlm and its packages, and prints what changed; then runs one
#: op big enough to share its row blocks among two threads, and counts again.
IMPORT_SCRIPT = r"""
import json, os, sys, threading
def tasks():
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None
import numpy as np
env, python_threads, os_threads = dict(os.environ), threading.active_count(), tasks()
import scratchlm
import scratchlm.functional, scratchlm.nn, scratchlm.optim, scratchlm.models
report = {
    "env_added": sorted(set(os.environ) - set(env)),
    "env_removed": sorted(set(env) - set(os.environ)),
    "env_changed": sorted(k for k in env if k in os.environ and os.environ[k] != env[k]),
    "python_threads": [python_threads, threading.active_count()],
    "os_threads": [os_threads, tasks()],
    "pool_at_import": getattr(sys.modules.get("scratchlm.fast.threads"), "_pool", None)
                      is not None,
    "fast_enabled": scratchlm.is_fast_enabled(),
}
from scratchlm.fast import threads
threads.THREADS = 2
x = scratchlm.tensor(np.random.default_rng(0).standard_normal((512, 1024)), requires_grad=True)
y = scratchlm.functional.gelu(x)  # 4 MB: four row blocks, shared out among the threads
report["op"] = type(y._ctx).__name__
report["threads_after_op"] = threading.active_count()
report["pool_after_op"] = threads._pool is not None
print(json.dumps(report))
"""


def run_python(code, **env_changes):
    """Run ``code`` in a fresh interpreter, with this environment changed by ``env_changes``
    (None removes a variable) and SCRATCHLM_FAST unset unless given; its last line of output,
    read as JSON."""
    env = {k: v for k, v in os.environ.items() if k != "SCRATCHLM_FAST"}
    env.update(env_changes)
    env = {k: v for k, v in env.items() if v is not None}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPOSITORY), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, cwd=REPOSITORY)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def import_report():
    return run_python(IMPORT_SCRIPT, OPENBLAS_THREAD_TIMEOUT=None)


def test_import_changes_no_environment_variable(import_report):
    assert import_report["env_added"] == []
    assert import_report["env_removed"] == []
    assert import_report["env_changed"] == []


def test_import_leaves_openblas_wait_unset(import_report):
    """(The fast layer's process tuning sets it, only when asked: fast.tune_process.)"""
    assert "OPENBLAS_THREAD_TIMEOUT" not in import_report["env_added"]


def test_import_starts_no_thread(import_report):
    before, after = import_report["python_threads"]
    assert after == before
    before, after = import_report["os_threads"]
    if before is None:
        pytest.skip("no /proc/self/task on this system")
    assert after == before
    assert not import_report["pool_at_import"]


def test_the_pool_starts_at_the_first_op_that_shares_out_work(import_report):
    """The counting above can see a thread start: the first shared op starts the pool."""
    assert import_report["fast_enabled"] and import_report["op"] == "GELUTanhRowBlocks"
    assert import_report["pool_after_op"]
    assert import_report["threads_after_op"] > import_report["python_threads"][1]


FAST_MODE_SCRIPT = r"""
import json, numpy as np, scratchlm as sl, scratchlm.functional as F
def op():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    return type(F.layer_norm(x, None, None)._ctx).__name__
report = {"enabled": sl.is_fast_enabled(), "op": op()}
with sl.use_fast(True):
    report["inside_on"] = [sl.is_fast_enabled(), op()]
report["after"] = sl.is_fast_enabled()
print(json.dumps(report))
"""


@pytest.mark.parametrize("value, enabled", [(None, True), ("1", True), ("0", False)],
                         ids=["unset", "1", "0"])
def test_scratchlm_fast_in_the_environment_sets_the_start(value, enabled):
    report = run_python(FAST_MODE_SCRIPT, **({} if value is None else {"SCRATCHLM_FAST": value}))
    assert report["enabled"] is enabled and report["after"] is enabled
    assert report["op"] == ("LayerNormRowBlocks" if enabled else "LayerNorm")
    assert report["inside_on"] == [True, "LayerNormRowBlocks"]


def layer_norm_class():
    x = sl.tensor(np.ones((2, 3)), requires_grad=True)
    return type(F.layer_norm(x, None, None)._ctx)


def test_use_fast_as_a_context_manager_restores_the_setting():
    start = sl.is_fast_enabled()
    with sl.use_fast(False):
        assert not sl.is_fast_enabled() and layer_norm_class() is LayerNorm
        with sl.use_fast(True) as inner:
            assert isinstance(inner, sl.use_fast)
            assert sl.is_fast_enabled() and layer_norm_class() is cpu.LayerNormRowBlocks
        assert not sl.is_fast_enabled() and layer_norm_class() is LayerNorm
    assert sl.is_fast_enabled() is start
    with pytest.raises(RuntimeError, match="inside"), sl.use_fast(not start):
        raise RuntimeError("inside")
    assert sl.is_fast_enabled() is start  # restored on an error too


def test_use_fast_called_plainly_stays_in_force():
    start = sl.is_fast_enabled()
    try:
        sl.use_fast(False)
        assert not sl.is_fast_enabled() and layer_norm_class() is LayerNorm
        sl.use_fast(True)
        assert sl.is_fast_enabled() and layer_norm_class() is cpu.LayerNormRowBlocks
    finally:
        sl.use_fast(start)
    assert sl.is_fast_enabled() is start
