"""GPT training and generation speed of scratchlm against the same GPT in PyTorch eager.

    python bench/run.py [--device cpu|cuda] [--configs tiny,small,medium,gpt2]
                        [--repeats 5] [--threads N]

For each config both frameworks get the same model (PyTorch loads scratchlm's initial
weights, ``tests/torch_gpt.py``), the same float32 data and the same thread count, and run
in one process, alternately, after a warm-up; the numbers are medians of ``--repeats`` runs.

- train tokens/s: B·T tokens per step of forward + backward + AdamW step + zero_grad (steps
  of a few milliseconds are timed in groups, so each timed run lasts ≳ 0.3 s);
- ratio: scratchlm's tokens/s over PyTorch's (higher is better for scratchlm);
- peak memory: each framework trains two steps in a fresh subprocess of its own that
  imports only itself; on the CPU the peak is the process's resident-set high-water mark
  (Linux's ``VmHWM``, reset after the imports; ``ru_maxrss`` where there is no /proc)
  minus the resident set after the imports, so it counts parameters, gradients, optimizer
  state, activations and temporaries, not the libraries; on a GPU it is the bytes
  the caching allocator holds afterwards (CuPy's memory pool, torch's
  ``max_memory_reserved``);
- MFU: model FLOPs per second over the machine's float32 GEMM peak, measured here as the
  best of a few large matmuls (``np.matmul`` and ``torch.mm``; the faster one is the peak).
  Model FLOPs per trained token are nanoGPT's / PaLM's estimate 6N + 12·L·C·T (N the
  parameters without the position table; attention counted in full, not causally halved);
- generation tokens/s, batch 1, greedy: scratchlm with and without its KV cache, and
  PyTorch's own cached generation. The prompt is 4 tokens and 256 new tokens are asked for,
  capped so prompt + new ≤ block_size (252 for block 256, 60 and 124 for tiny and small):
  both implementations cache only within the block. A cached timed run repeats the
  generation until it lasts about 0.3 s, as the train runs do; uncached runs stop
  repeating once they have taken a minute (gpt2's takes longer than that on two cores).

Results go to ``bench/results/<device>.json`` and a bar chart ``bench/results/<device>.png``.
The machine may set ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (pinning NumPy's OpenBLAS to
older kernels); the header prints them and the kernel OpenBLAS runs, and to measure without
them unset both for that one command: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
python bench/run.py``.
"""

import argparse
import functools
import json
import math
import os
import resource
import subprocess
import sys
import time

import harness

CONFIGS = {
    "tiny": dict(vocab_size=65, n_layer=2, n_head=2, n_embd=64, block_size=64, batch=16),
    "small": dict(vocab_size=65, n_layer=4, n_head=4, n_embd=128, block_size=128, batch=16),
    "medium": dict(vocab_size=65, n_layer=6, n_head=6, n_embd=384, block_size=256, batch=8),
    "gpt2": dict(vocab_size=50257, n_layer=12, n_head=12, n_embd=768, block_size=256, batch=2),
}
PROMPT_TOKENS, NEW_TOKENS = 4, 256
MIN_TIMED_SECONDS = 0.3  # a timed train run repeats steps until it lasts about this long
UNCACHED_BUDGET_S = 60.0
LEARNING_RATE = 3e-4


# ------------------------------------------------------------------------------ models
def model_config(name):
    return {k: v for k, v in CONFIGS[name].items() if k != "batch"}


def batch_data(name, seed=0):
    """Token ids and next-token targets (B, block_size), as int64 NumPy arrays."""
    import numpy as np

    config = CONFIGS[name]
    rng = np.random.default_rng(seed)
    shape = (config["batch"], config["block_size"])
    return (rng.integers(0, config["vocab_size"], shape),
            rng.integers(0, config["vocab_size"], shape))


def scratchlm_setup(name, device):
    """(model, optimizer, (idx, targets)) for scratchlm on ``device``."""
    import scratchlm as sl
    import scratchlm.optim as optim
    from scratchlm import backend
    from scratchlm.models import GPT, GPTConfig

    sl.manual_seed(0)
    model = GPT(GPTConfig(**model_config(name))).to(device)
    optimizer = optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    return model, optimizer, tuple(backend.to_device(a, device) for a in batch_data(name))


def torch_setup(name, device, state_dict=None):
    """(model, optimizer, (idx, targets)) for the PyTorch GPT, with scratchlm's initial
    weights when ``state_dict`` (scratchlm's NumPy arrays) is given."""
    import torch
    from torch_gpt import TorchGPT

    torch.manual_seed(0)
    model = TorchGPT(**model_config(name))
    if state_dict is not None:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    return model, optimizer, tuple(torch.from_numpy(a).to(device) for a in batch_data(name))


def synchronizer(framework, device):
    """A callable that waits for ``device`` to finish the framework's queued work."""
    if framework == "torch":
        import torch

        return torch.cuda.synchronize if device == "cuda" else (lambda: None)
    from scratchlm import backend

    return lambda: backend.synchronize(device)


def train_step(model, optimizer, idx, targets):
    """One training step, the same code for both frameworks."""
    _, loss = model(idx, targets)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


def train_flops_per_token(name):
    """6N + 12·L·C·T: 2 FLOPs per weight per token forward, 4 backward, plus the attention
    score and value matmuls (nanoGPT's ``estimate_mfu``)."""
    c = CONFIGS[name]
    L, C, T, V = c["n_layer"], c["n_embd"], c["block_size"], c["vocab_size"]
    per_layer = 12 * C * C + 13 * C  # c_attn, c_proj, c_fc, c_proj weights and biases, 2 LNs
    params = V * C + L * per_layer + 2 * C  # wte (the tied head) + blocks + ln_f
    return 6 * params + 12 * L * C * T


# ------------------------------------------------------------------------- measuring
def gemm_peak(device, repeats=5):
    """Best float32 GEMM FLOP/s of NumPy (CuPy on a GPU) and of torch on a large square
    product: the best run, not the median, since a peak is what the hardware can do."""
    import numpy as np
    import torch

    from scratchlm import backend

    n = 2048 if device == "cpu" else 8192
    xp = backend.xp_for(device)
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    ta = torch.from_numpy(backend.to_numpy(a)).to(device)
    timers = {"numpy": harness.stopwatch(lambda: xp.matmul(a, a),
                                         lambda: backend.synchronize(device)),
              "torch": harness.stopwatch(lambda: torch.mm(ta, ta),
                                         torch.cuda.synchronize if device == "cuda" else None)}
    best = {}
    for name, timer in timers.items():
        timer()  # warm-up
        best[name] = 2 * n ** 3 / min(timer() for _ in range(repeats))
    return best


def training(name, device, repeats):
    """Median train-step seconds of both frameworks, alternated."""
    ours = scratchlm_setup(name, device)
    theirs = torch_setup(name, device, ours[0].state_dict())
    runs = {"scratchlm": (functools.partial(train_step, *ours[:2], *ours[2]),
                          synchronizer("scratchlm", device)),
            "torch": (functools.partial(train_step, *theirs[:2], *theirs[2]),
                      synchronizer("torch", device))}
    start = time.perf_counter()  # the warm-up, timed once, sets how many steps make a run
    for step, sync in runs.values():
        sync()
        step()
        sync()
    steps = max(1, math.ceil(MIN_TIMED_SECONDS / ((time.perf_counter() - start) / 2)))

    result = harness.alternate(
        {fw: harness.stopwatch(harness.repeated(step, steps), sync)
         for fw, (step, sync) in runs.items()},
        repeats=repeats)
    return {fw: seconds / steps for fw, (seconds, _) in result.items()}, steps


def generation(name, device, repeats):
    """Tokens/s of greedy decoding: scratchlm with and without the cache, torch cached."""
    import numpy as np
    import torch

    model = scratchlm_setup(name, device)[0]
    reference = torch_setup(name, device, model.state_dict())[0]
    sync_ours, sync_theirs = synchronizer("scratchlm", device), synchronizer("torch", device)
    model.eval()
    reference.eval()
    new_tokens = min(NEW_TOKENS, CONFIGS[name]["block_size"] - PROMPT_TOKENS)
    prompt = np.random.default_rng(1).integers(0, CONFIGS[name]["vocab_size"],
                                               (1, PROMPT_TOKENS))
    torch_prompt = torch.from_numpy(prompt).to(device)

    def ours(use_cache, n=new_tokens):
        return lambda: model.generate(prompt, n, do_sample=False, use_cache=use_cache)

    def theirs(n=new_tokens):
        return lambda: reference.generate(torch_prompt, n, use_cache=True)

    def repeats_per_run(warm, sync):
        """How many generations make a timed run of ≳ MIN_TIMED_SECONDS, estimated from an
        8-token warm-up (a tiny GPT's 60 tokens take ~12 ms: alone, they would be timed
        mostly as the CPU wakes up after the pause before each run)."""
        seconds = harness.stopwatch(warm, sync)()
        return max(1, math.ceil(MIN_TIMED_SECONDS / (seconds * new_tokens / 8)))

    counts = {"scratchlm_cache": repeats_per_run(ours(True, 8), sync_ours),
              "torch_cache": repeats_per_run(theirs(8), sync_theirs),
              "scratchlm_no_cache": 1}  # slow enough alone; UNCACHED_BUDGET_S bounds it
    ours(False, 8)()  # warm-up
    timed = harness.alternate(
        {"scratchlm_cache": harness.stopwatch(
            harness.repeated(ours(True), counts["scratchlm_cache"]), sync_ours),
         "scratchlm_no_cache": harness.stopwatch(ours(False), sync_ours),
         "torch_cache": harness.stopwatch(
             harness.repeated(theirs(), counts["torch_cache"]), sync_theirs)},
        repeats=repeats, warmup=0, budget_s=UNCACHED_BUDGET_S)
    return new_tokens, {mode: {"tokens_per_s": counts[mode] * new_tokens / seconds,
                               "runs": runs, "generations_per_run": counts[mode]}
                        for mode, (seconds, runs) in timed.items()}


def peak_memory(framework, name, device, threads):
    """Peak training memory (bytes) of one framework, measured in a fresh subprocess."""
    command = [sys.executable, __file__, "--memory-probe", framework, "--configs", name,
               "--device", device, "--threads", str(threads)]
    if "--reference" in sys.argv:
        command.append("--reference")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_bytes"]


def resident_kib(field):
    """``VmRSS`` (the resident set now) or ``VmHWM`` (its high-water mark) of this process,
    in KiB, from Linux's /proc/self/status; None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Lower the high-water mark to the resident set now (/proc/self/clear_refs), so a
    transient peak while importing does not hide a small model's memory under it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_rss_kib():
    """The resident-set high-water mark. ``VmHWM`` where Linux has it: ``ru_maxrss`` also
    counts the parent's mark, inherited across ``exec``, so it is wrong in a subprocess."""
    peak = resident_kib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_probe(framework, name, device):
    """Run in the subprocess: two training steps; print the peak as a JSON line."""
    if framework == "scratchlm":
        import numpy  # noqa: F401  (the libraries' own memory is in the baseline)

        import scratchlm  # noqa: F401
    else:
        import torch  # noqa: F401
        import torch_gpt  # noqa: F401
    reset_peak_rss()
    baseline = resident_kib("VmRSS") or peak_rss_kib()
    model, optimizer, (idx, targets) = (scratchlm_setup if framework == "scratchlm"
                                        else torch_setup)(name, device)
    for _ in range(2):
        train_step(model, optimizer, idx, targets)
    synchronizer(framework, device)()
    if device == "cpu":
        peak = (peak_rss_kib() - baseline) * 1024
    elif framework == "scratchlm":
        from scratchlm import backend

        peak = backend.xp_for("cuda").get_default_memory_pool().total_bytes()
    else:
        import torch

        peak = torch.cuda.max_memory_reserved()
    print(json.dumps({"peak_bytes": int(peak)}))


# --------------------------------------------------------------------------- reporting
def measure_config(name, device, repeats, threads, peak_flops):
    config = CONFIGS[name]
    tokens = config["batch"] * config["block_size"]
    step_seconds, steps = training(name, device, repeats)
    flops = train_flops_per_token(name) * tokens
    result = {"config": config, "train_steps_per_run": steps}
    for fw, seconds in step_seconds.items():
        result[fw] = {"step_ms": seconds * 1e3, "train_tokens_per_s": tokens / seconds,
                      "mfu": flops / seconds / peak_flops,
                      "peak_memory_mib": peak_memory(fw, name, device, threads) / 2 ** 20}
    ours, theirs = result["scratchlm"], result["torch"]
    result["train_ratio"] = ours["train_tokens_per_s"] / theirs["train_tokens_per_s"]
    result["memory_ratio"] = ours["peak_memory_mib"] / theirs["peak_memory_mib"]
    new_tokens, generated = generation(name, device, repeats)
    result["generation"] = {"prompt_tokens": PROMPT_TOKENS, "new_tokens": new_tokens,
                            **generated}
    cached = generated["scratchlm_cache"]["tokens_per_s"]
    result["cache_speedup"] = cached / generated["scratchlm_no_cache"]["tokens_per_s"]
    result["generation_ratio"] = cached / generated["torch_cache"]["tokens_per_s"]
    return result


TRAIN_HEADER = (f"{'config':>7} {'ms/step':>15} {'train tok/s':>17} {'ratio':>6} "
                f"{'peak MiB':>13} {'mem':>5} {'MFU %':>11}")
GENERATE_HEADER = (f"{'config':>7} {'new':>4} {'no cache':>9} {'cache':>9} {'speedup':>8} "
                   f"{'torch cache':>12} {'ratio':>6}   (tokens/s, batch 1, greedy)")


def train_row(name, r):
    ours, theirs = r["scratchlm"], r["torch"]
    return (f"{name:>7} {ours['step_ms']:7.1f}/{theirs['step_ms']:<7.1f} "
            f"{ours['train_tokens_per_s']:8.0f}/{theirs['train_tokens_per_s']:<8.0f} "
            f"{r['train_ratio']:5.2f}x {ours['peak_memory_mib']:6.0f}/"
            f"{theirs['peak_memory_mib']:<6.0f} {r['memory_ratio']:4.2f}x "
            f"{100 * ours['mfu']:5.1f}/{100 * theirs['mfu']:<5.1f}")


def generate_row(name, r):
    g = r["generation"]
    return (f"{name:>7} {g['new_tokens']:4d} {g['scratchlm_no_cache']['tokens_per_s']:9.1f} "
            f"{g['scratchlm_cache']['tokens_per_s']:9.1f} {r['cache_speedup']:7.1f}x "
            f"{g['torch_cache']['tokens_per_s']:12.1f} {r['generation_ratio']:5.2f}x")


def bar_chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(results["configs"])
    series = {"train tokens/s": "train_ratio", "cached generation tokens/s": "generation_ratio",
              "peak memory (lower is better)": "memory_ratio"}
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (label, key) in enumerate(series.items()):
        values = [results["configs"][n][key] for n in names]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(x, names)
    ax.set_ylabel("scratchlm / PyTorch eager")
    ax.set_title(f"scratchlm vs PyTorch, {results['device']}, "
                 f"{results['environment']['threads']} threads")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for NumPy's BLAS and for PyTorch")
    parser.add_argument("--reference", action="store_true",
                        help="run scratchlm's reference ops (sl.use_fast(False))")
    parser.add_argument("--memory-probe", choices=("scratchlm", "torch"),
                        help=argparse.SUPPRESS)  # internal: the peak-memory subprocess
    args = parser.parse_args()
    names = args.configs.split(",")
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")

    harness.thread_environment(args.threads)  # before NumPy and torch load their BLAS
    harness.use_repository(fast=not args.reference)
    blas = harness.limit_threads(args.threads)
    if args.device == "cuda":
        import scratchlm.backend

        scratchlm.backend.check_device("cuda")
    if args.memory_probe:
        memory_probe(args.memory_probe, names[0], args.device)
        return

    env = harness.environment(args.threads, blas)
    peaks = gemm_peak(args.device)
    peak = max(peaks.values())
    print(harness.describe(args.device, env))
    print(f"float32 GEMM peak: NumPy {peaks['numpy'] / 1e9:.0f} GFLOP/s, torch "
          f"{peaks['torch'] / 1e9:.0f} GFLOP/s; MFU is against {peak / 1e9:.0f} GFLOP/s")
    print(f"medians of {args.repeats} alternated runs; each pair below is scratchlm/torch, "
          "ratios are scratchlm over torch (memory: lower is better)")
    results = {"device": args.device, "environment": env, "repeats": args.repeats,
               "gemm_peak_flops": {**peaks, "machine": peak}, "configs": {}}
    print(TRAIN_HEADER)
    for name in names:
        results["configs"][name] = measure_config(name, args.device, args.repeats,
                                                  args.threads, peak)
        print(train_row(name, results["configs"][name]), flush=True)
    print(GENERATE_HEADER)
    for name in names:
        print(generate_row(name, results["configs"][name]))

    out_dir = harness.REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.device + ("-reference" if args.reference else "")
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    bar_chart(results, png_path)
    print(f"wrote {json_path.relative_to(harness.REPO)} and {png_path.relative_to(harness.REPO)}")


if __name__ == "__main__":
    main()
