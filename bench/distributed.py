"""Data-parallel figures: all-reduce latency and bandwidth, GPT step time on ranks against
threads, ZeRO-1's memory per rank — scratchlm on mpi4py beside PyTorch on gloo.

    python bench/distributed.py [--configs small,medium] [--steps 4] [--max-mb 64]

Every measurement runs under ``mpiexec -n R`` (this script starting itself with ``--part``);
rank 0 writes its figures as JSON, and this driver prints the tables and saves them in
bench/results/distributed.json.

1. All-reduce of float32 buffers from 4 B to ``--max-mb`` MB on 2 ranks: mpi4py's
   ``Allreduce`` (MPICH) and ``torch.distributed.all_reduce`` (gloo) in the same processes;
   the median time per call, and the bus bandwidth 2(N−1)/N · bytes / time (the bytes each
   rank sends and receives in a ring all-reduce).
2. One training step (forward, backward, gradient averaging, AdamW) of bench/run.py's small
   and medium GPTs at the same global batch: 1 rank × 2 threads against 2 ranks × 1 thread,
   scratchlm (DataParallel) and PyTorch (DistributedDataParallel, gloo). The ratio of the
   two times is the data-parallel "scaling efficiency" against threads on the same 2 cores.
3. ZeRO-1: AdamW's state bytes on each of 2 ranks, against the whole.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "distributed.json"
CONFIGS = {  # bench/run.py's
    "small": dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=128, batch=16),
    "medium": dict(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8),
}


# ------------------------------------------------------------------------------ rank side
def setup_threads(threads):
    """Thread counts for BLAS, OpenMP, scratchlm's fast layer and torch (before imports)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]
    import torch

    import scratchlm
    from scratchlm.fast import threads as fast_threads

    scratchlm.fast.tune_process()
    fast_threads.set_thread_limit(threads)
    torch.set_num_threads(threads)


def torch_group(world, rank, store):
    import torch.distributed as tdist
    tdist.init_process_group("gloo", init_method=f"file://{store}", world_size=world,
                             rank=rank)
    return tdist


def part_allreduce(args, comm, MPI):
    import numpy as np
    import torch
    tdist = torch_group(comm.size, comm.rank, args.store)
    rows = []
    size = 4
    while size <= args.max_mb * 2 ** 20:
        n = size // 4
        calls = int(min(200, max(5, 2e8 / size)))
        buffer = np.ones(n, dtype=np.float32)
        tensor = torch.ones(n, dtype=torch.float32)
        timings = {"mpi4py": [], "gloo": []}
        for _ in range(2):  # alternate, so that drifting load hits both alike
            calls_by_name = (("mpi4py", lambda b=buffer: comm.Allreduce(MPI.IN_PLACE, b)),
                             ("gloo", lambda t=tensor: tdist.all_reduce(t)))
            for name, call in calls_by_name:
                call()
                comm.Barrier()
                for _ in range(calls):
                    started = time.perf_counter()
                    call()
                    timings[name].append(time.perf_counter() - started)
        row = {"bytes": size}
        for name, times in timings.items():
            local = np.array([statistics.median(times)])
            comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)
            row[name] = float(local[0])
        rows.append(row)
        size *= 4
    tdist.destroy_process_group()
    return rows


def part_step(args, comm, MPI):
    import numpy as np
    config = dict(CONFIGS[args.config])
    global_batch = config.pop("batch")
    batch = global_batch // comm.size
    tokens = np.random.default_rng(comm.rank).integers(0, config["vocab_size"],
                                                       size=(batch, config["block_size"] + 1))
    x, y = np.ascontiguousarray(tokens[:, :-1]), np.ascontiguousarray(tokens[:, 1:])
    if args.framework == "scratchlm":
        import scratchlm as sl
        import scratchlm.distributed as dist
        from scratchlm import optim
        from scratchlm.models import GPT, GPTConfig
        dist.init()
        sl.manual_seed(0)
        model = dist.DataParallel(GPT(GPTConfig(**config)))
        optimizer = optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            model(x, y)[1].backward()
            model.all_reduce_gradients()
            optimizer.step()
            optimizer.zero_grad()
    else:
        import torch
        from torch_gpt import TorchGPT
        torch.manual_seed(0)
        model = TorchGPT(**config)
        if comm.size > 1:
            torch_group(comm.size, comm.rank, args.store)
            model = torch.nn.parallel.DistributedDataParallel(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def step():
            model(xt, yt)[1].backward()
            optimizer.step()
            optimizer.zero_grad()

    step()
    times = []
    for _ in range(args.steps):
        comm.Barrier()
        started = time.perf_counter()
        step()
        local = np.array([time.perf_counter() - started])
        comm.Allreduce(MPI.IN_PLACE, local, op=MPI.MAX)  # a step ends when every rank's does
        times.append(float(local[0]))
    return {"seconds": statistics.median(times), "steps": len(times)}


def part_zero(args, comm, MPI):
    import scratchlm as sl
    import scratchlm.distributed as dist
    from scratchlm import optim
    from scratchlm.models import GPT, GPTConfig
    dist.init()
    sl.manual_seed(0)
    config = {k: v for k, v in CONFIGS[args.config].items() if k != "batch"}
    model = dist.DataParallel(GPT(GPTConfig(**config)))
    zero = dist.ZeroRedundancyOptimizer(optim.AdamW(model.named_parameters(), lr=1e-4))
    for p in model.parameters():
        p.grad = p.data * 0 + 1e-3
    zero.step()
    per_rank = comm.gather(zero.state_bytes(), root=0)
    whole = 2 * sum(p.data.nbytes for p in model.parameters())
    return {"per_rank": per_rank, "whole": whole}


def run_part(args):
    setup_threads(args.threads)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    result = {"allreduce": part_allreduce, "step": part_step, "zero": part_zero}[args.part](
        args, comm, MPI)
    if comm.rank == 0:
        Path(args.out).write_text(json.dumps(result))


# --------------------------------------------------------------------------------- driver
def launch(ranks, threads, part, **options):
    sys.path.insert(0, str(HERE.parent))
    from scratchlm.distributed import mpiexec_path
    with tempfile.TemporaryDirectory() as folder:
        out, store = os.path.join(folder, "out.json"), os.path.join(folder, "store")
        command = [mpiexec_path(), "-n", str(ranks), sys.executable, __file__, "--part", part,
                   "--threads", str(threads), "--out", out, "--store", store]
        for key, value in options.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        subprocess.run(command, check=True)
        return json.loads(Path(out).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", default="small,medium")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--max-mb", type=int, default=64)
    parser.add_argument("--part", choices=["allreduce", "step", "zero"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    parser.add_argument("--store")
    parser.add_argument("--config", default="small")
    parser.add_argument("--framework", default="scratchlm")
    args = parser.parse_args()
    if args.part:
        return run_part(args)

    results = {"machine": f"{os.cpu_count()} cores (shared with other work while measured)"}
    results["allreduce"] = launch(2, 1, "allreduce", max_mb=args.max_mb)
    print("all-reduce of float32 on 2 ranks: median µs per call (bus bandwidth GB/s)")
    print("| bytes | mpi4py (MPICH) | PyTorch gloo |\n|---:|---:|---:|")
    for row in results["allreduce"]:
        cells = [f"{row[k] * 1e6:,.1f} ({row['bytes'] / row[k] / 1e9:.2f})"
                 for k in ("mpi4py", "gloo")]
        print(f"| {row['bytes']:,} | {cells[0]} | {cells[1]} |")

    results["step"] = {}
    print("\nseconds per training step at the same global batch (median of "
          f"{args.steps} steps)")
    print("| model | framework | 1 rank × 2 threads | 2 ranks × 1 thread | ratio |")
    print("|---|---|---:|---:|---:|")
    for config in args.configs.split(","):
        for framework in ("scratchlm", "torch"):
            one = launch(1, 2, "step", config=config, framework=framework, steps=args.steps)
            two = launch(2, 1, "step", config=config, framework=framework, steps=args.steps)
            results["step"][f"{config}/{framework}"] = {"1x2": one, "2x1": two}
            print(f"| {config} | {framework} | {one['seconds']:.3f} | {two['seconds']:.3f} | "
                  f"{one['seconds'] / two['seconds']:.2f} |", flush=True)

    results["zero"] = launch(2, 1, "zero", config=args.configs.split(",")[-1])
    zero = results["zero"]
    print(f"\nZeRO-1, {args.configs.split(',')[-1]} GPT on 2 ranks: AdamW state per rank "
          f"{[f'{b / 2**20:.2f} MiB' for b in zero['per_rank']]} of "
          f"{zero['whole'] / 2**20:.2f} MiB "
          f"({max(zero['per_rank']) / zero['whole']:.3f} of it on the larger)")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"saved {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
