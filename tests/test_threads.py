"""scratchlm.fast.threads.run_shared: every piece once, a slot per thread, two threads
really at work at once, errors re-raised, and a forked child that can still use it;
scratchlm.fast.process.set_openblas_wait: in force when NumPy is not loaded yet, a user's
value kept (each in a fresh interpreter)."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from scratchlm.fast import process, threads


def test_every_piece_runs_once_and_each_slot_is_one_thread(two_threads):
    seen, thread_of_slot = [], {}
    lock = threading.Lock()

    def work(piece, slot):
        with lock:
            seen.append(piece)
            assert thread_of_slot.setdefault(slot, threading.get_ident()) == \
                threading.get_ident()

    threads.run_shared(work, range(11))
    assert sorted(seen) == list(range(11))
    assert sorted(thread_of_slot) == [0, 1]


def test_two_slots_run_at_the_same_time(two_threads):
    """Each slot waits for the other at a barrier: run one after the other, they would time
    out."""
    barrier = threading.Barrier(2, timeout=20)
    threads.run_shared(lambda piece, slot: barrier.wait(), range(2))


def test_one_piece_or_one_thread_runs_inline(monkeypatch):
    caller = threading.get_ident()
    ran_on = []
    threads.run_shared(lambda piece, slot: ran_on.append((threading.get_ident(), slot)), [0])
    monkeypatch.setattr(threads, "THREADS", 1)
    threads.run_shared(lambda piece, slot: ran_on.append((threading.get_ident(), slot)),
                       range(3))
    assert ran_on == [(caller, 0)] * 4


def test_an_error_in_a_piece_is_raised_to_the_caller(two_threads):
    def work(piece, slot):
        if piece == 3:
            raise ValueError("piece 3 failed")

    with pytest.raises(ValueError, match="piece 3 failed"):
        threads.run_shared(work, range(6))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="needs fork")
def test_a_forked_child_gets_a_pool_of_its_own(two_threads):
    threads.run_shared(lambda piece, slot: None, range(4))  # the parent's pool exists
    assert threads._pool is not None
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker threads are not here
        signal.alarm(20)  # a pool waiting on threads that do not exist would hang: end it
        done, idents = [], set()
        barrier = threading.Barrier(2, timeout=10)

        def work(piece, slot):
            done.append(piece)
            idents.add(threading.get_ident())
            if piece < 2:
                barrier.wait()  # two threads of the child's own pool at once
        threads.run_shared(work, range(4))
        os._exit(0 if sorted(done) == [0, 1, 2, 3] and len(idents) == 2 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------- OPENBLAS_THREAD_TIMEOUT
#: Loads scratchlm/fast/process.py by its path (importing it as scratchlm.fast.process would
#: run scratchlm/__init__.py, which loads NumPy), calls set_openblas_wait, and prints what
#: it returned and the variable as NumPy (and its OpenBLAS) loads afterwards.
SET_BEFORE_NUMPY = """
import importlib.util, os, sys
class AtNumpyImport:
    def find_spec(self, name, path=None, target=None):
        if name == 'numpy':
            print('at numpy import:', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))
sys.meta_path.insert(0, AtNumpyImport())
if {numpy_first}:
    import numpy
spec = importlib.util.spec_from_file_location('process', {path!r})
process = importlib.util.module_from_spec(spec)
spec.loader.exec_module(process)
assert 'numpy' in sys.modules or not {numpy_first}
print('in force:', process.set_openblas_wait())
print('set:', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))
import numpy
"""


def run_set_openblas_wait(preset, numpy_first):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = SET_BEFORE_NUMPY.format(path=str(Path(process.__file__)), numpy_first=numpy_first)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_set_openblas_wait_before_numpy_loads_is_in_force():
    assert run_set_openblas_wait(None, numpy_first=False) == [
        "in force: True", f"set: {process.OPENBLAS_THREAD_TIMEOUT}",
        f"at numpy import: {process.OPENBLAS_THREAD_TIMEOUT}"]


def test_set_openblas_wait_after_numpy_loaded_sets_it_for_children_only():
    assert run_set_openblas_wait(None, numpy_first=True) == [
        "at numpy import: None", "in force: False", f"set: {process.OPENBLAS_THREAD_TIMEOUT}"]


@pytest.mark.parametrize("numpy_first", [False, True], ids=["before-numpy", "after-numpy"])
def test_set_openblas_wait_keeps_a_users_value(numpy_first):
    lines = run_set_openblas_wait("24", numpy_first)
    assert "in force: True" in lines and "set: 24" in lines
    assert "at numpy import: 24" in lines


def test_openblas_wait_is_shorter_than_openblas_default():
    assert process.OPENBLAS_THREAD_TIMEOUT == "20"  # 2²⁰ cycles, not OpenBLAS's 2²⁸
