"""scratchlm.fast.load: BLAS's thread count set and restored through its own library, decoding
on one thread, and training's threads fitted to the cores another process leaves free (the
formula on a made-up clock, and a real busy process seen by the real measurement)."""

import subprocess
import sys
import time

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import fast, generation
from scratchlm.fast import load, threads
from scratchlm.models import GPT, GPTConfig
from scratchlm.train import TrainConfig, Trainer

needs_blas_control = pytest.mark.skipif(load.blas_threads() is None,
                                        reason="no BLAS library found to set threads of")


@pytest.fixture(autouse=True)
def fast_on():
    """These are the fast layer's settings: on for every test here, even in CI's pass with
    SCRATCHLM_FAST=0 (a test turns it off where it checks that nothing changes then)."""
    with sl.use_fast(True):
        yield


@pytest.fixture
def blas_at_two():
    """BLAS on two threads for the test (where the library allows two), restored after."""
    before = load.blas_threads()
    load.set_blas_threads(2)
    yield load.blas_threads()
    if before is not None:
        load.set_blas_threads(before)


@needs_blas_control
def test_blas_threads_are_set_through_the_library_numpy_loaded(blas_at_two):
    load.set_blas_threads(1)
    assert load.blas_threads() == 1
    load.set_blas_threads(blas_at_two)
    assert load.blas_threads() == blas_at_two


@needs_blas_control
def test_one_thread_inside_the_block_and_the_counts_restored_after(two_threads, blas_at_two):
    with pytest.raises(RuntimeError, match="inside"), fast.one_thread():
        assert load.blas_threads() == 1 and threads.active_threads() == 1
        raise RuntimeError("inside")
    assert load.blas_threads() == blas_at_two and threads.active_threads() == 2
    with sl.use_fast(False), fast.one_thread():  # the fast layer off: nothing changes
        assert load.blas_threads() == blas_at_two and threads.active_threads() == 2


@needs_blas_control
def test_decoding_runs_on_one_thread(monkeypatch, two_threads, blas_at_two):
    seen = []
    next_token_logits = generation._next_token_logits

    def recording(*args):
        seen.append((load.blas_threads(), threads.active_threads()))
        return next_token_logits(*args)

    monkeypatch.setattr(generation, "_next_token_logits", recording)
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=11))
    generation.generate(model, np.zeros((1, 2), dtype=np.int64), 5, do_sample=False)
    assert seen == [(1, 1)] * 5
    assert (load.blas_threads(), threads.active_threads()) == (blas_at_two, 2)


class FakeMachine:
    """A clock, the machine's busy CPU-seconds and this process's, advanced by hand."""

    def __init__(self):
        self.wall = self.busy = self.own = 0.0

    def advance(self, wall, others_cores, own_cores):
        self.wall += wall
        self.busy += wall * (others_cores + own_cores)
        self.own += wall * own_cores


@pytest.mark.parametrize("others, own, expected", [
    (0.0, 2.0, 2),   # an idle machine: every core
    (1.0, 1.0, 1),   # a busy process on one of two cores: one left
    (1.0, 0.2, 1),   # the same while this process ran light: its own time is taken out
    (0.3, 1.7, 2),   # a little load rounds away
    (1.8, 0.2, 1),   # nearly all taken: still one
])
def test_threads_follow_the_cores_others_leave(two_threads, blas_at_two, others, own,
                                               expected):
    machine = FakeMachine()
    follow = load.ThreadsFollowLoad(interval_s=2.0, cores=2, clock=lambda: machine.wall,
                                    machine_busy=lambda: machine.busy, own=lambda: machine.own)
    with follow:
        machine.advance(1.0, others, own)
        assert follow.check() is None  # not two seconds yet: no measurement
        machine.advance(1.5, others, own)
        assert follow.check() == pytest.approx(others)
        assert follow.threads == expected
        assert threads.active_threads() == expected
        if blas_at_two is not None:
            assert load.blas_threads() == min(expected, blas_at_two)
    assert threads.active_threads() == 2
    if blas_at_two is not None:
        assert load.blas_threads() == blas_at_two


def test_a_loop_starts_on_the_threads_measured_before_it(two_threads, blas_at_two):
    """start_threads (what the run's time estimate measured): from the first step, not
    after the first interval; the first check measures as usual; all restored on exit."""
    machine = FakeMachine()
    follow = load.ThreadsFollowLoad(interval_s=2.0, cores=2, clock=lambda: machine.wall,
                                    machine_busy=lambda: machine.busy, own=lambda: machine.own,
                                    start_threads=1)
    with follow:
        assert follow.threads == 1 and threads.active_threads() == 1
        if blas_at_two is not None:
            assert load.blas_threads() == 1
        machine.advance(1.0, 0.0, 2.0)
        assert follow.check() is None and threads.active_threads() == 1
        machine.advance(1.5, 0.0, 2.0)  # the other process is gone: both cores again
        assert follow.check() == pytest.approx(0.0) and threads.active_threads() == 2
    assert threads.active_threads() == 2
    if blas_at_two is not None:
        assert load.blas_threads() == blas_at_two


@pytest.mark.skipif(load._machine_busy_seconds() is None, reason="needs Linux's /proc/stat")
def test_the_measurement_sees_a_busy_process():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start
        with load.ThreadsFollowLoad(interval_s=0.0) as follow:
            time.sleep(1.0)
            others = follow.check()
    finally:
        busy.kill()
        busy.wait()
    assert others >= 0.5  # the busy loop's core (plus whatever else the machine runs)


def test_training_checks_the_load_every_step(monkeypatch):
    checks = []

    class Recording(load.ThreadsFollowLoad):
        def check(self):
            checks.append(self)
            return super().check()

    monkeypatch.setattr(fast, "ThreadsFollowLoad", Recording)
    ids = np.arange(200) % 11
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=11, block_size=8))
    config = TrainConfig(max_steps=4, batch_size=2, eval_interval=100,
                         checkpoint_interval=100)
    Trainer(model, ids, None, config).train(progress=False)
    assert len(checks) == 4 and len(set(map(id, checks))) == 1
