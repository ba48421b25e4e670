"""Engine overhead: microseconds per recorded op (forward + backward), against PyTorch eager.

A chain of N ops of one kind, y ← op(y, w), is built with gradients recorded and then
differentiated; the time of the whole forward + backward is divided by N. Small 8×8 arrays
show the bookkeeping cost per op (Python, graph, allocation); 1024×1024 arrays show whether
that bookkeeping disappears behind the arithmetic (BLAS for matmul). Both frameworks run
alternately in one process, float32, with the same thread count; the median of the repeats
is reported, and the ratio is scratchlm time / PyTorch time (lower is better, 1.0 = same).

    python bench/engine_overhead.py [--repeats 7] [--threads 2]
"""

import argparse
import os
import statistics
import time

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per case")
    parser.add_argument("--threads", type=int, default=2, help="BLAS/PyTorch threads")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
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
