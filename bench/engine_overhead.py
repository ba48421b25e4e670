"""Engine overhead: microseconds per recorded op (forward + backward), against PyTorch eager.

A chain of N ops of one kind, y ← op(y, w), is built with gradients recorded and then
differentiated; the time of the whole forward + backward is divided by N. Small 8×8 arrays
show the bookkeeping cost per op (Python, graph, allocation); 1024×1024 arrays show whether
that bookkeeping disappears behind the arithmetic (BLAS for matmul). Both frameworks run
alternately in one process, float32, with the same thread count; the median of the repeats
is reported, and the ratio is scratchlm time / PyTorch time (lower is better, 1.0 = same).

    python bench/engine_overhead.py [--repeats 7] [--threads 2]
    python bench/engine_overhead.py --versions   # the version counters' cost per op
    python bench/engine_overhead.py --engines    # reference vs fast engine, the main job's step

``--versions`` times what in-place safety adds to one recorded op with two inputs (8×8
``add``): recording the inputs' versions at forward (the expression of
``Function.__call__``) and comparing them at backward
(``scratchlm.autograd.engine.check_inputs_unchanged``), against that op's whole forward +
backward, with the fast layer on and off; and the same per op times the ops recorded in
the main job's step, against that step.

``--engines`` times the main job's training step (``python -m scratchlm train``'s default,
the shakespeare-char preset: GPT 4 × 128, 128 positions, batch 32, AdamW) three ways,
alternated, the fastest of the repeats: the fast ops with the fast engine (the default), the
fast ops with the reference engine (``scratchlm/autograd/engine.py``), and everything
reference (``sl.use_fast(False)``).
"""

import argparse
import os
import statistics
import time
import timeit

import numpy as np
from harness import settle

OPS = {
    "add": lambda y, w: y + w,
    "mul": lambda y, w: y * w,
    "tanh": lambda y, w: (y * w).tanh(),  # two ops per step
    "matmul": lambda y, w: y @ w,
}
OPS_PER_STEP = {"tanh": 2}
CHAIN = {8: 200, 1024: 6}


def chain_time(make_leaf, op, size, steps, backward):
    rng = np.random.default_rng(0)
    x = make_leaf(rng.standard_normal((size, size)).astype(np.float32) / np.sqrt(size))
    w = make_leaf(rng.standard_normal((size, size)).astype(np.float32) / np.sqrt(size) + 1)
    start = time.perf_counter()
    y = x
    for _ in range(steps):
        y = op(y, w)
    backward(y.sum())
    return time.perf_counter() - start


def measure(threads, repeats):
    import torch

    import scratchlm as sl

    torch.set_num_threads(threads)
    frameworks = {
        "scratchlm": (lambda a: sl.tensor(a, requires_grad=True), lambda s: s.backward()),
        "torch": (lambda a: torch.tensor(a, requires_grad=True), lambda s: s.backward()),
    }
    rows = []
    for size, steps in CHAIN.items():
        for name, op in OPS.items():
            recorded = steps * OPS_PER_STEP.get(name, 1) + 1  # + the final sum
            times = {fw: [] for fw in frameworks}
            for _ in range(repeats + 1):  # the first round warms up
                for fw, (make_leaf, backward) in frameworks.items():
                    settle()
                    times[fw].append(chain_time(make_leaf, op, size, steps, backward))
            us = {fw: statistics.median(t[1:]) / recorded * 1e6 for fw, t in times.items()}
            rows.append((f"{size}x{size}", name, us["scratchlm"], us["torch"],
                         us["scratchlm"] / us["torch"]))
    return rows


def version_counter_cost(repeats, fast, calls=2000):
    """(µs to record two inputs' versions, µs to compare them, µs per recorded op) for an
    8×8 add: minimum over the repeats, so that other processes' load counts least."""
    import scratchlm as sl
    from scratchlm.autograd.engine import check_inputs_unchanged

    rng = np.random.default_rng(0)
    x, w = (sl.tensor(rng.standard_normal((8, 8)), requires_grad=True) for _ in range(2))
    fn = (x + w)._ctx
    kept = fn.inputs

    def record():  # as Function.__call__ records them
        return [None if t is None else t._version for t in kept]

    def per_call(function):  # the fastest of many short runs: the least disturbed
        return min(timeit.repeat(function, number=calls, repeat=300)) / calls * 1e6
    steps = CHAIN[8]
    with sl.use_fast(fast):
        per_op = min(chain_time(lambda a: sl.tensor(a, requires_grad=True), OPS["add"], 8,
                                steps, lambda loss: loss.backward())
                     for _ in range(repeats * 5)) / (steps + 1) * 1e6
    return per_call(record), per_call(lambda: check_inputs_unchanged(fn)), per_op


def main_job_step():
    """(step(), loss of a first step): the main job's training step, ready to time."""
    import scratchlm as sl
    import scratchlm.optim as optim
    from scratchlm.models import GPT, GPTConfig
    from scratchlm.models.gpt import PRESETS

    sl.manual_seed(0)
    model = GPT(GPTConfig(**PRESETS["shakespeare-char"]))
    optimizer = optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)

    def step():
        ids = rng.integers(0, 65, size=(32, 129))
        loss = model(ids[:, :-1], ids[:, 1:])[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    return step


def recorded_ops_per_step():
    import scratchlm as sl
    from scratchlm.autograd.engine import topological_order
    from scratchlm.models import GPT, GPTConfig
    from scratchlm.models.gpt import PRESETS

    model = GPT(GPTConfig(**PRESETS["shakespeare-char"]))
    ids = np.random.default_rng(0).integers(0, 65, size=(32, 129))
    with sl.use_fast(True):
        return len(topological_order(model(ids[:, :-1], ids[:, 1:])[1]))


def engine_comparison(repeats):
    """{way: fastest seconds per step} for the three ways, alternated round by round."""
    import pytest

    import scratchlm as sl
    from scratchlm.autograd import dispatch, engine

    ways = {"fast ops, fast engine": (True, False), "fast ops, reference engine": (True, True),
            "reference ops and engine": (False, True)}
    step, looked_up = main_job_step(), dispatch.faster

    def reference_engine(reference, device):
        return None if reference is engine.run_backward else looked_up(reference, device)
    times = {way: [] for way in ways}
    for _ in range(repeats + 1):  # the first round warms up
        for way, (fast, reference) in ways.items():
            with sl.use_fast(fast), pytest.MonkeyPatch.context() as patch:
                if reference:
                    patch.setattr(dispatch, "faster", reference_engine)
                settle()
                start = time.perf_counter()
                step()
                times[way].append(time.perf_counter() - start)
    return {way: min(t[1:]) for way, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per case")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/PyTorch threads")
    parser.add_argument("--versions", action="store_true",
                        help="time the version counters' share of a recorded op instead")
    parser.add_argument("--engines", action="store_true",
                        help="time the main job's step with the reference and fast engines")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.versions:
        for fast in (True, False):
            record, check, per_op = version_counter_cost(args.repeats, fast)
            print(f"fast layer {'on ' if fast else 'off'}: a recorded 8x8 add, forward + "
                  f"backward, {per_op:.2f} µs; recording its inputs' versions {record:.3f} µs, "
                  f"comparing them {check:.3f} µs: {(record + check) / per_op:.1%} of the op")
        ops = recorded_ops_per_step()
        seconds = engine_comparison(args.repeats)["fast ops, fast engine"]
        print(f"the main job's step: {ops} recorded ops, {seconds * 1e3:.1f} ms: the version "
              f"counters {ops * (record + check) / 1e3:.3f} ms, "
              f"{ops * (record + check) * 1e-6 / seconds:.3%} of the step")
        return
    if args.engines:
        seconds = engine_comparison(args.repeats)
        fastest = seconds["fast ops, fast engine"]
        for way, s in seconds.items():
            print(f"the main job's step, {way}: {s * 1e3:.1f} ms ({s / fastest:.2f}x)")
        return
    rows = measure(args.threads, args.repeats)
    print(f"{'arrays':>10} {'op':>7} {'scratchlm µs/op':>16} {'torch µs/op':>12} {'ratio':>6}")
    for shape, name, ours, theirs, ratio in rows:
        print(f"{shape:>10} {name:>7} {ours:16.2f} {theirs:12.2f} {ratio:6.2f}")
    for shape in {r[0] for r in rows}:
        ratios = [r[4] for r in rows if r[0] == shape]
        geo = float(np.exp(np.mean(np.log(ratios))))
        print(f"geometric-mean ratio on {shape}: {geo:.2f}")


if __name__ == "__main__":
    main()
