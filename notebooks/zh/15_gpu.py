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
# # 13 · 用 CuPy 在 GPU 上运行
#
# scratchlm 的每个运算都通过一个模块 `xp` 写在数组上：CPU 上是 NumPy，NVIDIA GPU 上是
# **CuPy**——它提供
# 同样的函数（`xp.exp`、`xp.matmul`……），以 CUDA 核函数运行。只有一个文件 `scratchlm/backend.py`
# 知道
# 用的是哪个：`get_array_module(*arrays)` 返回传入数组所属的模块，所以运算从不提到设备。移动模型用
# `model.to("cuda")`；训练用 `TrainConfig(device="cuda")` 或 `python -m scratchlm train --device
# cuda`；
# 安装用 `pip install -e ".[gpu]"`（CUDA 12 的 CuPy）。
#
# 数组大时 GPU 才划算：每个运算都要启动核函数，而无论数组大小，每次启动都要几微秒。本篇在有 GPU 时
# 用 GPU 运行，否则在 CPU 上运行并给出说明，保证每个单元格都能运行。

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
# ## 同样的数组，换一个模块
#
# 张量的 `.device` 和它的数组模块跟随它的数据。混用不同设备的运算会被拒绝，错误信息会指出两个设备；
# `.to(device)` 复制数据，`.numpy()` 总是返回主机上的 NumPy 副本。

# %%
x = sl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)).to(device)
print(x.device, backend.get_array_module(x.data).__name__)
y = (x * x).sum()
print("sum of squares:", y.item())
assert y.item() == float((np.arange(6) ** 2).sum())
assert isinstance(y.numpy(), np.ndarray)


# %% [markdown]
# ## 每个设备上的一步训练
#
# 同一个 GPT、同一个批次：两个设备上的损失和每个梯度都必须在 float32
# 舍入误差范围内一致（不同的核函数
# 求和顺序不同）。然后测一步（前向加反向）的时间，并调用 `backend.synchronize`，把 GPU
# 异步执行的核函数
# 也计算在内。

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
# 在 GPU 上，这一步通常比在两个 CPU 核上快好几倍；库在 H200
# 上的实测剖析（每步核函数启动次数、融合的
# 注意力核函数、在 CUDA 上的主训练任务）见
# `bench/results/cuda.md`。这些笔记本里的其余代码在两种设备上
# 完全相同。
