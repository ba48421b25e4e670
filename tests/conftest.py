"""Shared test helpers: the device parameter and float tolerances."""

import contextlib
import subprocess
import sys

import numpy as np
import pytest

import scratchlm as sl
from scratchlm.fast import threads

#: Run a test on the CPU always, and on CuPy when a GPU is present (skipped cleanly otherwise).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not sl.gpu_available(), reason="no GPU (CuPy with a CUDA device) on this machine"))]

#: Comparison tolerances per dtype, for forward values and gradients against an oracle.
TOLERANCE = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
             np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def two_threads(monkeypatch):
    """The fast layer's shared work (run_shared) on two threads, in a pool of its own (shut
    down afterwards), whatever the machine's core count."""
    monkeypatch.setattr(threads, "THREADS", 2)
    monkeypatch.setattr(threads, "_pool", None)
    yield
    if threads._pool is not None:
        threads._pool.shutdown()


def assert_damage_is_refused(load, data, path, seed, trials=300, max_flips=7):
    """Write ``data`` with 1..max_flips random bytes changed (every third copy also cut
    short) to ``path``, ``trials`` times: ``load(path)`` either loads or raises the library's
    FileFormatError naming the file, never another exception."""
    from scratchlm.errors import FileFormatError

    rng = np.random.default_rng(seed)
    for trial in range(trials):
        damaged = bytearray(data)
        for _ in range(rng.integers(1, max_flips + 1)):
            damaged[rng.integers(len(damaged))] = rng.integers(256)
        if trial % 3 == 0:
            damaged = damaged[:rng.integers(len(damaged))]
        path.write_bytes(bytes(damaged))
        try:
            load(path)
        except FileFormatError as error:
            assert str(path) in str(error)


@contextlib.contextmanager
def lock_held_elsewhere(lock_path):
    """Another process holds ``lock_path``'s exclusive lock (as a run's writer does) for the
    ``with`` block; it is ended after, which frees the lock. Skips where there is no flock."""
    pytest.importorskip("fcntl")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, time\n"
        f"fd = os.open({str(lock_path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
