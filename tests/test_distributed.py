"""Data-parallel training against one process (scratchlm.distributed).

Each multi-rank test starts ``mpiexec -n 2 python tests/distributed_worker.py ...`` (two
ranks: two cores here) and compares what rank 0 wrote with a one-process Trainer whose batch
is the two ranks' together, N·B; the one-process side is independent of MPI.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import checkpoint
from scratchlm import distributed as dist
from scratchlm.train import Trainer

pytest.importorskip("mpi4py", reason="the `distributed` extra (mpi4py, an MPI) is missing")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (the mpich wheel)")

WORKER = os.path.join(os.path.dirname(__file__), "distributed_worker.py")
RANKS = 2


def run_ranks(case, run_dir, *options, ranks=RANKS, timeout=120, check=True):
    """Run the worker on ``ranks`` MPI processes; (return code, output, seconds)."""
    started = time.perf_counter()
    result = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, WORKER, case,
                             str(run_dir), *options], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [os.path.dirname(os.path.dirname(WORKER))]
                                + os.environ.get("PYTHONPATH", "").split(os.pathsep))})
    output = result.stdout + result.stderr
    if check and result.returncode != 0:
        raise AssertionError(f"mpiexec exited {result.returncode}:\n{output[-3000:]}")
    return result.returncode, output, time.perf_counter() - started


def one_process(dtype, batch_size, run_dir, max_steps=6):
    """The reference: one process, batch N·B, the same model, data and config."""
    from distributed_worker import tiny_case
    model, tokens, config = tiny_case(np.dtype(dtype), batch_size, max_steps)
    trainer = Trainer(model, tokens[:300], tokens[300:], config, run_dir=run_dir)
    trainer.train(progress=False)
    return checkpoint.load(os.path.join(run_dir, "checkpoint.npz"))


def assert_same_run(got, want, rtol, weights_atol=None):
    """The same losses, step, data generator, weights and AdamW moments, to ``rtol`` (float32:
    the weights to ``weights_atol``; the moments of gradients that are only rounding noise,
    such as the key bias's, which softmax ignores, are left out)."""
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(got["history"][key], want["history"][key], rtol=rtol,
                                   atol=0, err_msg=key)
    assert got["step"] == want["step"]
    assert got["rng"]["data"] == want["rng"]["data"]
    for name, value in want["model"].items():
        assert got["model"][name].dtype == value.dtype
        np.testing.assert_allclose(got["model"][name], value, rtol=rtol,
                                   atol=weights_atol or rtol * 1e-2, err_msg=name)
    if weights_atol is not None:
        return
    for name, entries in want["optimizer"]["state"].items():
        assert got["optimizer"]["state"][name]["step"] == entries["step"]
        for moment in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(got["optimizer"]["state"][name][moment],
                                       entries[moment], rtol=rtol, atol=rtol * 1e-4,
                                       err_msg=f"{name}.{moment}")


@pytest.fixture(scope="module")
def single_float64(tmp_path_factory):
    return one_process("float64", 2 * RANKS, tmp_path_factory.mktemp("one"))


@pytest.mark.parametrize("zero", [0, 1])
def test_two_ranks_train_as_one_process_with_twice_the_batch(tmp_path, single_float64, zero):
    run_ranks("train", tmp_path, "--zero", str(zero))
    got = checkpoint.load(tmp_path / "checkpoint.npz")
    assert_same_run(got, single_float64, rtol=1e-10)
    assert got["history"]["train_loss"][0] != got["history"]["train_loss"][-1]  # it learns


def test_float32_agrees_to_rounding(tmp_path):
    run_ranks("train", tmp_path / "two", "--dtype", "float32")
    want = one_process("float32", 2 * RANKS, tmp_path / "one")
    assert_same_run(checkpoint.load(tmp_path / "two" / "checkpoint.npz"), want, rtol=1e-5,
                    weights_atol=1e-5)


def test_zero1_keeps_about_one_nth_of_the_optimizer_state(tmp_path):
    _, output, _ = run_ranks("train", tmp_path, "--zero", "1", "--max-steps", "1")
    per_rank = [int(n) for n in re.findall(r"optimizer bytes (\d+)", output)]
    from distributed_worker import tiny_case
    model = tiny_case(np.float64, 2)[0]
    whole = 2 * sum(p.data.nbytes for p in model.parameters())  # AdamW: m and v
    assert len(per_rank) == RANKS and sum(per_rank) == whole
    assert max(per_rank) <= 0.6 * whole, per_rank


def test_resume_on_every_rank_is_bit_identical(tmp_path, single_float64):
    run_ranks("stop", tmp_path / "straight", "--zero", "1")
    run_ranks("stop", tmp_path / "resumed", "--zero", "1", "--stop-at", "4")
    assert checkpoint.load(tmp_path / "resumed" / "checkpoint.npz")["step"] == 4
    run_ranks("stop", tmp_path / "resumed", "--zero", "1", "--resume")
    straight = checkpoint.load(tmp_path / "straight" / "checkpoint.npz")
    resumed = checkpoint.load(tmp_path / "resumed" / "checkpoint.npz")
    assert_same_run(resumed, straight, rtol=0)


def test_sigterm_on_one_rank_saves_once_and_stops_every_rank(tmp_path):
    code, output, _ = run_ranks("signal", tmp_path, check=False)
    assert code == 0, output[-2000:]
    assert sorted(re.findall(r"rank (\d) stopped at step (\d)", output)) == [
        ("0", "3"), ("1", "3")], output[-2000:]
    assert checkpoint.load(tmp_path / "checkpoint.npz")["step"] == 3
    assert output.count("SIGTERM: stopping after the current step") == 1


def test_ctrl_c_to_mpiexec_stops_every_rank_at_the_same_step(tmp_path):
    """mpiexec forwards SIGINT to every rank; they agree on the step, save once, exit 0."""
    process = subprocess.Popen([MPIEXEC, "-n", str(RANKS), sys.executable, WORKER, "train",
                                str(tmp_path), "--max-steps", "1000"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                   [os.path.dirname(os.path.dirname(WORKER))]
                                   + os.environ.get("PYTHONPATH", "").split(os.pathsep))})
    deadline = time.monotonic() + 90
    while not (tmp_path / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output[-2000:]
    stops = re.findall(r"rank (\d) stopped at step (\d+)", output)
    assert sorted(r for r, _ in stops) == ["0", "1"] and len({s for _, s in stops}) == 1, output
    assert checkpoint.load(tmp_path / "checkpoint.npz")["step"] == int(stops[0][1])


@pytest.mark.parametrize("case", ["kill", "raise"])
def test_a_rank_that_dies_stops_the_others_naming_it(tmp_path, case):
    code, output, seconds = run_ranks(case, tmp_path, "--max-steps", "1000", check=False,
                                      timeout=60)
    assert code != 0 and seconds < 30, (code, seconds)
    if case == "kill":  # mpiexec names the dead process by its pid, init() maps pids to ranks
        pid = re.search(r"rank 1: pid (\d+)", output).group(1)
        assert re.search(rf"PID {pid}\b.*\n.*EXIT CODE: 9", output), output[-2000:]
    else:
        assert "rank 1: RuntimeError: a planted failure" in output, output[-2000:]


# ------------------------------------------------------------------------- one process
def test_one_process_is_a_group_of_one():
    dist.init()
    assert (dist.rank(), dist.world_size()) == (0, 1)
    grads = [np.arange(6.0).reshape(2, 3), np.ones(4)]
    params = [sl.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.copy()
    dist.all_reduce_gradients(params)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad, g)
    assert dist.shard_batch(np.arange(4), 1, 2).tolist() == [2, 3]
    with pytest.raises(ValueError, match="does not split evenly over 2 ranks"):
        dist.shard_batch(np.arange(3), 0, 2)
    with pytest.raises(RuntimeError, match="already initialised with 'mpi'"):
        dist.init("nccl")


def test_buckets_keep_dtype_and_size():
    params = [sl.tensor(np.zeros(n, dtype=d)) for n, d in
              [(100_000, np.float32), (100_000, np.float32), (10, np.float64), (300_000,
                                                                                 np.float32)]]
    groups = dist.buckets(params, bucket_mb=0.8)  # 0.8 MB holds two of the first (0.4 MB)
    assert [[p.size for p in g] for g in groups] == [[100_000, 100_000], [10], [300_000]]


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"^scratchlm.distributed needs mpi4py .*"
                                          r"pip install 'scratchlm\[distributed\]'$"):
        dist._mpi()


@pytest.mark.skipif(not sl.gpu_available(), reason="no GPU (CuPy with a CUDA device) here")
def test_nccl_one_rank_averages_on_the_gpu():
    script = ("import numpy as np, scratchlm as sl, scratchlm.distributed as dist\n"
              "dist.init('nccl')\n"
              "p = sl.tensor(np.ones(3), requires_grad=True).to('cuda')\n"
              "p.grad = p.data * 3\n"
              "dist.all_reduce_gradients([p])\n"
              "print(p.grad.get().tolist())\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[3.0, 3.0, 3.0]"


# ---------------------------------------------------------------------------- command line
def test_train_nproc_matches_one_process_with_the_global_batch(tmp_path):
    from scratchlm.__main__ import main
    common = ["train", "--preset", "tiny", "--max-steps", "2", "--eval-interval", "2",
              "--eval-batches", "2", "--warmup-steps", "1", "--out-dir", str(tmp_path),
              "--no-progress"]
    result = subprocess.run([sys.executable, "-m", "scratchlm", *common, "--run-name", "two",
                             "--batch-size", "4", "--nproc", "2", "--zero", "1"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "memory per rank" in result.stdout and "2 ranks × batch 4" in result.stdout
    main(common + ["--run-name", "one", "--batch-size", "8"])
    two = checkpoint.load(tmp_path / "two" / "checkpoint.npz")
    one = checkpoint.load(tmp_path / "one" / "checkpoint.npz")
    np.testing.assert_allclose(two["history"]["train_loss"], one["history"]["train_loss"],
                               rtol=1e-5)
    np.testing.assert_allclose(two["history"]["val_loss"], one["history"]["val_loss"],
                               rtol=1e-5)


def test_cli_refuses_zero_without_ranks_and_names_the_missing_extra(monkeypatch, capsys):
    from scratchlm.__main__ import main
    with pytest.raises(SystemExit) as done:
        main(["train", "--zero", "1"])
    assert done.value.code == 2 and "add --distributed" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(SystemExit) as done:
        main(["train", "--nproc", "2"])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and err.count("\n") == 0
    assert "pip install 'scratchlm[distributed]'" in err
