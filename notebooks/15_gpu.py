# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 15 · Running on a GPU with CuPy
#
# Every op of scratchlm is written on arrays through a module `xp`: NumPy on the CPU, **CuPy** on
# an
# NVIDIA GPU, which offers the same functions (`xp.exp`, `xp.matmul`, ...) running as CUDA kernels.
# One file, `scratchlm/backend.py`, knows which is which: `get_array_module(*arrays)` returns the
# module of the arrays it is given, so an op never names a device. Moving a model is
# `model.to("cuda")`; training is `TrainConfig(device="cuda")` or
# `python -m scratchlm train --device cuda`; installing is `pip install -e ".[gpu]"` (CuPy for
# CUDA 12).
#
# A GPU pays off when the arrays are large: each op launches kernels, and launching costs a few
# microseconds whatever the size. This notebook runs on the GPU when there is one, and on the CPU
# otherwise — with a note — so that every cell still runs.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import backend, viz
from scratchlm.models import GPT, GPTConfig

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

device = "cuda" if sl.gpu_available() else "cpu"
if device == "cpu":
    print("No GPU here (CuPy missing or no CUDA device): every cell below runs on the CPU; the "
          "CPU/GPU comparisons run where there is a GPU.")
    try:
        sl.tensor([1.0, 2.0]).to("cuda")
    except RuntimeError as error:
        print("\nAsking for one anyway:", error)
else:
    print("GPU found: comparing it with the CPU")

# %% [markdown]
# ## The same arrays, another module
#
# A tensor's `.device` and its array module follow its data. Ops mixing devices are refused with an
# error naming both; `.to(device)` copies, `.numpy()` always returns a host NumPy copy.

# %%
x = sl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)).to(device)
print(x.device, backend.get_array_module(x.data).__name__)
y = (x * x).sum()
print("sum of squares:", y.item())
assert y.item() == float((np.arange(6) ** 2).sum())
assert isinstance(y.numpy(), np.ndarray)


# %% [markdown]
# ## One training step, on each device
#
# The same GPT, the same batch: the loss and every gradient must agree between devices up to
# float32 round-off (different kernels sum in different orders). The time of a step (forward and
# backward) is measured with `backend.synchronize`, so that the GPU's asynchronous kernels are
# counted.

# %%
def one_step(device, width=256, repeats=3):
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, n_embd=width))
    model.to(device)
    ids = np.random.default_rng(0).integers(0, 512, (8, 128))
    times = []
    for _ in range(repeats):
        model.zero_grad()
        backend.synchronize(device)
        started = time.perf_counter()
        _, loss = model(ids, ids)
        loss.backward()
        backend.synchronize(device)
        times.append(time.perf_counter() - started)
    gradients = {n: backend.to_numpy(p.grad) for n, p in model.named_parameters()}
    return loss.item(), gradients, min(times), model.num_parameters()


cpu_loss, cpu_grads, _, _ = one_step("cpu")
if device == "cpu":
    print(f"loss on the cpu {cpu_loss:.6f}; no second device to compare it with")
else:
    dev_loss, dev_grads, _, _ = one_step(device)
    worst = max(np.abs(cpu_grads[n] - dev_grads[n]).max() / (np.abs(cpu_grads[n]).max() + 1e-12)
                for n in cpu_grads)
    print(f"loss: cpu {cpu_loss:.6f}, {device} {dev_loss:.6f}; worst relative gradient gap "
          f"{worst:.1e}")
    assert abs(cpu_loss - dev_loss) < 1e-4 and worst < 1e-3

# %% [markdown]
# ## When a device pays off: size
#
# Every op costs a fixed overhead (Python, the autograd graph, on a GPU a kernel launch of a few
# microseconds) plus work that grows with the arrays. So a step's time grows more slowly than its
# arithmetic while the arrays are small, and the useful rate, floating-point operations per
# second, rises with the width. A forward and backward pass costs about $6N$ operations per token
# for $N$ parameters (2 per multiply-add forward, twice that backward; attention's own products are
# left out). We time the same GPT at three widths on each device there is:

# %%
widths = [64, 128, 256]
TOKENS = 8 * 128
devices = ["cpu"] if device == "cpu" else ["cpu", device]
measured = {d: [one_step(d, width)[2:] for width in widths] for d in devices}
rates = {d: [6 * n * TOKENS / seconds / 1e9 for seconds, n in measured[d]] for d in devices}
for d in devices:
    for width, (seconds, n), rate in zip(widths, measured[d], rates[d]):
        print(f"{d:5s} width {width:3d}: {n:9,} parameters, {seconds * 1000:7.1f} ms per step, "
              f"{rate:6.2f} GFLOP/s")
assert rates["cpu"][0] < 0.6 * max(rates["cpu"][1:])  # at width 64, mostly overhead

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
for d in devices:
    left.plot(widths, [seconds * 1000 for seconds, _ in measured[d]], "o-", label=d)
    right.plot(widths, rates[d], "o-", label=d)
left.set(xlabel="width n_embd", ylabel="ms per step", yscale="log",
         title="forward + backward, 4 layers, 8 × 128 tokens")
right.set(xlabel="width n_embd", ylabel="GFLOP/s (6N per token)", ylim=(0, None),
          title="useful arithmetic rate")
for axis in (left, right):
    axis.set_xticks(widths, widths)
    axis.legend()
    axis.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# On the CPU the rate at 64 dimensions is below the rate at 128 and 256: at 64 the step is
# mostly overhead. Beyond that it is bounded by what the cores give (on a shared machine,
# what its other work leaves them; the numbers above move from run to run). A GPU has far more
# arithmetic to offer and a larger overhead per op, so it needs even larger arrays to
# pay off; the measured profile of the library on an H200 (kernel launches per step, the fused
# attention kernel, the main training job on CUDA) is in `bench/results/cuda.md`. Everything
# else in these notebooks is the same code on either device.
#
# ## Summary
#
# * One file, `backend.py`, chooses NumPy or CuPy; ops never name a device, and a model moves
#   with `model.to("cuda")`.
# * Devices agree up to float32 round-off; speed depends on size, because every op has a fixed
#   cost.
#
# ## Exercises
#
# 1. Time one step at batch sizes 1, 8 and 32 at width 128: where does the rate stop rising?
# 2. With `sl.use_fast(False)` the library runs its reference ops only: how much of the step at
#    width 64 was the fast layer saving?
# 3. Course week 12 (`notebooks/COURSE.md`): the project of weeks 7–9's `scratchlm.exercises`
#    entries (`rmsnorm`, `rope`) in a model, timed on the CPU and, if you have one, a GPU.
