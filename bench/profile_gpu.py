"""Where a GPU train step and cached generation spend their time: GPU kernels or Python.

    python bench/profile_gpu.py [--configs medium,gpt2] [--steps 10] [--rows 25]

For each config (bench/run.py's), scratchlm and PyTorch eager side by side:
- the train step's wall time (waiting for the GPU at the end) and the CPU time it takes to
  queue the step's work (not waiting): when the two are about equal, the GPU waits for
  Python and the cure is fewer launches, not faster kernels;
- the kernels' own GPU time, their count per step and the top kernels, from PyTorch's
  profiler (CUPTI sees every kernel the process launches, CuPy's included);
- cProfile's top Python functions of scratchlm's step;
- the same for cached greedy generation at batch 1.
"""

import argparse
import cProfile
import pstats
import time

import harness


def kernel_summary(label, work, synchronize, rows):
    """Run ``work`` under PyTorch's profiler (GPU activity only) and print the kernels'
    total time, their number, and the ``rows`` most expensive ones."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if not torch.cuda.is_available():
        return 0.0, 0
    synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        work()
        synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total_ms = sum(e.self_device_time_total for e in events) / 1e3
    launches = sum(e.count for e in events)
    print(f"\n[{label}] GPU kernels: {total_ms:.2f} ms in {launches} launches")
    events.sort(key=lambda e: -e.self_device_time_total)
    for e in events[:rows]:
        print(f"  {e.self_device_time_total / 1e3:9.3f} ms {e.count:6d}x  {e.key[:110]}")
    return total_ms, launches


def wall_and_queue(work, synchronize, repeats=3):
    """(wall seconds waiting for the GPU, seconds until ``work`` returns), best of repeats."""
    walls, queues = [], []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        work()
        queued = time.perf_counter()
        synchronize()
        walls.append(time.perf_counter() - start)
        queues.append(queued - start)
    return min(walls), min(queues)


def python_profile(label, work, rows):
    profiler = cProfile.Profile()
    profiler.runcall(work)
    print(f"\n[{label}] cProfile, by own time")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(rows)


def profile_config(name, steps, rows, device):
    import numpy as np
    import run

    sync_ours = run.synchronizer("scratchlm", device)
    sync_theirs = run.synchronizer("torch", device)
    model, optimizer, batch = run.scratchlm_setup(name, device)
    reference, torch_optimizer, torch_batch = run.torch_setup(name, device)

    def ours():
        for _ in range(steps):
            run.train_step(model, optimizer, *batch)

    def theirs():
        for _ in range(steps):
            run.train_step(reference, torch_optimizer, *torch_batch)

    ours(), theirs()  # warm-up: kernels compiled, optimizer state, memory pools
    for label, work, sync in (("scratchlm", ours, sync_ours), ("torch", theirs, sync_theirs)):
        wall, queue = wall_and_queue(work, sync)
        print(f"\n{name} train, {label}: {1e3 * wall / steps:.2f} ms/step wall, "
              f"{1e3 * queue / steps:.2f} ms/step to queue")
        total, launches = kernel_summary(f"{name} train {label}", work, sync, rows)
        print(f"  per step: {total / steps:.2f} ms of kernels, {launches / steps:.0f} launches")
    python_profile(f"{name} train scratchlm", ours, rows)

    model.eval()
    reference.eval()
    new_tokens = min(64, run.CONFIGS[name]["block_size"] - 4)
    prompt = np.random.default_rng(1).integers(0, run.CONFIGS[name]["vocab_size"], (1, 4))
    torch_prompt = __import__("torch").from_numpy(prompt).to(device)

    def generate_ours():
        model.generate(prompt, new_tokens, do_sample=False, use_cache=True)

    def generate_theirs():
        reference.generate(torch_prompt, new_tokens, use_cache=True)

    generate_ours(), generate_theirs()
    for label, work, sync in (("scratchlm", generate_ours, sync_ours),
                              ("torch", generate_theirs, sync_theirs)):
        wall, queue = wall_and_queue(work, sync)
        print(f"\n{name} generation, {label}: {1e3 * wall / new_tokens:.3f} ms/token wall, "
              f"{1e3 * queue / new_tokens:.3f} ms/token to queue")
        total, launches = kernel_summary(f"{name} generate {label}", work, sync, rows // 2)
        print(f"  per token: {total / new_tokens:.3f} ms of kernels, "
              f"{launches / new_tokens:.0f} launches")
    python_profile(f"{name} generation scratchlm", generate_ours, rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="medium,gpt2")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    args = parser.parse_args()
    harness.use_repository()
    for name in args.configs.split(","):
        profile_config(name, args.steps, args.rows, args.device)


if __name__ == "__main__":
    main()
