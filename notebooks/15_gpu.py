# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 13 · Running on a GPU with CuPy
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
from scratchlm import backend
from scratchlm.models import GPT, GPTConfig

device = "cuda" if sl.gpu_available() else "cpu"
if device == "cpu":
    print("No GPU here (CuPy missing or no CUDA device): every cell below runs on the CPU, and "
          "the CPU/GPU comparisons compare the CPU with itself.")
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
# float32 round-off (different kernels sum in different orders). Then the time of a step
# (forward and backward), with `backend.synchronize` so that the GPU's asynchronous kernels are
# counted.

# %%
def one_step(device, repeats=3):
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=128, n_layer=4, n_head=4, n_embd=256))
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
    return loss.item(), gradients, min(times)


cpu_loss, cpu_grads, cpu_time = one_step("cpu")
dev_loss, dev_grads, dev_time = one_step(device)
worst = max(np.abs(cpu_grads[n] - dev_grads[n]).max() / (np.abs(cpu_grads[n]).max() + 1e-12)
            for n in cpu_grads)
print(f"loss: cpu {cpu_loss:.6f}, {device} {dev_loss:.6f}; worst relative gradient gap {worst:.1e}")
assert abs(cpu_loss - dev_loss) < 1e-4 and worst < 1e-3

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(["cpu", f"{device} (this run)"], [cpu_time * 1000, dev_time * 1000])
ax.set(ylabel="ms per step", title="forward + backward, 4 layers, 8 × 128 tokens")
plt.show()

# %% [markdown]
# On a GPU this step is typically several times faster than on two CPU cores; the measured profile
# of the library on an H200 (kernel launches per step, the fused attention kernel, the main
# training job on CUDA) is in `bench/results/cuda.md`. Everything else in these notebooks is the
# same code on either device.
