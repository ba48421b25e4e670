"""Forward + backward time of scratchlm's fused layers against PyTorch eager, in one run.

    python bench/layers.py [--device cpu|cuda] [--repeats 7] [--threads N]

Each case builds the same float32 inputs for both frameworks, then times forward + backward
(with a fixed random cotangent, so the backward is the general one, not the special case
of a sum), alternating the two so drifting machine load hits both alike; the figures are
medians, per forward + backward, of runs that each repeat a short case for ≳ 0.3 s.
The ratio is PyTorch's time over scratchlm's: above 1 means scratchlm is faster.

- layer_norm: x (8, 256, 768) with weight and bias;
- attention: causal ``scaled_dot_product_attention``, q, k, v (B=8, H=6, T=256, d=64);
- cross_entropy: 8·256 rows of GPT-2's 50,257 classes, mean reduction;
- block: one GPT-2 pre-LN Transformer block (LN, causal self-attention, LN, tanh-GELU MLP,
  residuals), 384 wide, 6 heads, on (8, 256, 384).

Run ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/layers.py`` to measure as
a machine without this one's OpenBLAS pins would.
"""

import argparse
import math
import os
import time

import harness

CASES = ("layer_norm", "attention", "cross_entropy", "block")
MIN_TIMED_SECONDS = 0.3  # a timed run repeats a short case until it lasts about this long


def inputs(case, seed=0):
    """The case's float32 NumPy inputs (integer targets for cross_entropy) and cotangent."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    if case == "layer_norm":
        arrays = {"x": normal(8, 256, 768), "weight": normal(768), "bias": normal(768)}
        return arrays, normal(8, 256, 768)
    if case == "attention":
        return {name: normal(8, 6, 256, 64) for name in "qkv"}, normal(8, 6, 256, 64)
    if case == "cross_entropy":
        return {"logits": normal(8 * 256, 50257),
                "target": rng.integers(0, 50257, 8 * 256)}, None
    return {"x": normal(8, 256, 384)}, normal(8, 256, 384)


def forward_backward(tensors, forward, cotangent):
    """One step of a case, the same code for both frameworks: clear the inputs' gradients,
    run ``forward()``, backpropagate ``cotangent`` (None for a scalar loss)."""
    def step():
        for tensor in tensors.values():
            tensor.grad = None
        forward().backward(cotangent)
    return step


def scratchlm_case(case, device):
    """A callable doing one forward + backward in scratchlm."""
    import scratchlm as sl
    import scratchlm.functional as F
    from scratchlm import backend
    from scratchlm.models import GPTConfig
    from scratchlm.models.gpt import Block

    arrays, cotangent = inputs(case)
    t = {name: sl.tensor(backend.to_device(a, device), requires_grad=a.dtype.kind == "f")
         for name, a in arrays.items()}
    if cotangent is not None:
        cotangent = backend.to_device(cotangent, device)
    if case == "layer_norm":
        forward = lambda: F.layer_norm(t["x"], t["weight"], t["bias"])  # noqa: E731
    elif case == "attention":
        forward = lambda: F.scaled_dot_product_attention(  # noqa: E731
            t["q"], t["k"], t["v"], is_causal=True)
    elif case == "cross_entropy":
        forward = lambda: F.cross_entropy(t["logits"], t["target"])  # noqa: E731
    else:
        sl.manual_seed(0)
        block = Block(GPTConfig(vocab_size=65, n_layer=1, n_head=6, n_embd=384,
                                block_size=256)).to(device)
        forward = lambda: block(t["x"])  # noqa: E731
    return forward_backward(t, forward, cotangent)


def torch_case(case, device):
    """The same forward + backward in PyTorch eager."""
    import torch
    import torch.nn.functional as F
    from torch_gpt import Block

    arrays, cotangent = inputs(case)
    t = {name: torch.from_numpy(a).to(device).requires_grad_(a.dtype.kind == "f")
         for name, a in arrays.items()}
    if cotangent is not None:
        cotangent = torch.from_numpy(cotangent).to(device)
    if case == "layer_norm":
        forward = lambda: F.layer_norm(t["x"], (768,), t["weight"], t["bias"])  # noqa: E731
    elif case == "attention":
        forward = lambda: F.scaled_dot_product_attention(  # noqa: E731
            t["q"], t["k"], t["v"], is_causal=True)
    elif case == "cross_entropy":
        forward = lambda: F.cross_entropy(t["logits"], t["target"])  # noqa: E731
    else:
        torch.manual_seed(0)
        block = Block(384, 6, dropout=0.0, bias=True).to(device)
        forward = lambda: block(t["x"])  # noqa: E731
    return forward_backward(t, forward, cotangent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for NumPy's BLAS and for PyTorch")
    parser.add_argument("--cases", default=",".join(CASES), help=f"from {', '.join(CASES)}")
    args = parser.parse_args()
    harness.thread_environment(args.threads)  # before NumPy and torch load their BLAS
    harness.use_repository()
    blas = harness.limit_threads(args.threads)
    import torch

    from scratchlm import backend

    env = harness.environment(args.threads, blas)
    print(harness.describe(args.device, env))
    print(f"forward + backward, median of {args.repeats} alternated runs")
    print(f"{'case':>14} {'scratchlm ms':>13} {'torch ms':>9} {'torch/scratchlm':>16}")
    sync_torch = torch.cuda.synchronize if args.device == "cuda" else None
    for case in args.cases.split(","):
        steps = {"scratchlm": scratchlm_case(case, args.device),
                 "torch": torch_case(case, args.device)}
        syncs = {"scratchlm": lambda: backend.synchronize(args.device), "torch": sync_torch}
        # short cases repeat inside one timed run, so that a run lasts ≳ MIN_TIMED_SECONDS
        start = time.perf_counter()
        for name, step in steps.items():
            step()
            (syncs[name] or (lambda: None))()
        count = max(1, math.ceil(MIN_TIMED_SECONDS / ((time.perf_counter() - start) / 2)))
        timed = harness.alternate(
            {name: harness.stopwatch(harness.repeated(step, count), syncs[name])
             for name, step in steps.items()},
            repeats=args.repeats, warmup=1)
        ours, theirs = timed["scratchlm"][0] / count, timed["torch"][0] / count
        print(f"{case:>14} {ours * 1e3:13.2f} {theirs * 1e3:9.2f} {theirs / ours:15.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
