"""scratchlm.threads.run_shared: every piece once, a slot per thread, errors re-raised, and a
forked child that can still use it; scratchlm.openblas_wait set before NumPy loads."""

import os
import signal
import subprocess
import sys
import threading

import pytest

from scratchlm import openblas_wait, threads


def test_every_piece_runs_once_and_each_slot_is_one_thread():
    seen, thread_of_slot = [], {}
    lock = threading.Lock()

    def work(piece, slot):
        with lock:
            seen.append(piece)
            assert thread_of_slot.setdefault(slot, threading.get_ident()) == \
                threading.get_ident()

    threads.run_shared(work, range(11))
    assert sorted(seen) == list(range(11))
    assert set(thread_of_slot) <= set(range(threads.THREADS))


def test_an_error_in_a_piece_is_raised_to_the_caller():
    def work(piece, slot):
        if piece == 3:
            raise ValueError("piece 3 failed")

    with pytest.raises(ValueError, match="piece 3 failed"):
        threads.run_shared(work, range(6))


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin",
                    reason="needs fork")
def test_a_forked_child_gets_a_pool_of_its_own():
    threads.run_shared(lambda piece, slot: None, range(4))  # the parent's pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's worker threads are not here
        signal.alarm(20)  # a pool waiting on threads that do not exist would hang: end it
        done = []
        threads.run_shared(lambda piece, slot: done.append(piece), range(4))
        os._exit(0 if sorted(done) == [0, 1, 2, 3] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.parametrize("preset, expected", [(None, openblas_wait.THREAD_TIMEOUT), ("24", "24")])
def test_openblas_wait_is_set_before_numpy_loads_and_keeps_a_users_value(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = ("import os, sys\n"
            "class AtNumpyImport:  # prints the variable as NumPy (and OpenBLAS) loads\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'numpy':\n"
            "            print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
            "sys.meta_path.insert(0, AtNumpyImport())\n"
            "import scratchlm\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == expected
