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
# # 15 · 用 CuPy 在 GPU 上运行
#
# scratchlm 的每个运算都通过一个模块 `xp` 写在数组上：CPU 上是 NumPy，NVIDIA GPU 上是 **CuPy**——它提
# 供同样的函数（`xp.exp`、`xp.matmul`……），以 CUDA 核函数运行。只有一个文件 `scratchlm/backend.py`
# 知道用的是哪个：`get_array_module(*arrays)` 返回传入数组所属的模块，所以运算从不提到设备。
# 移动模型用 `model.to("cuda")`；训练用 `TrainConfig(device="cuda")` 或
# `python -m scratchlm train --device cuda`；安装用 `pip install -e ".[gpu]"`（CUDA 12 的 CuPy）。
#
# 数组大时 GPU 才划算：每个运算都要启动核函数，而无论数组大小，每次启动都要几微秒。
# 本篇在有 GPU 时用 GPU 运行，否则在 CPU 上运行并给出说明，保证每个单元格都能运行。

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import backend, viz
from scratchlm.models import GPT, GPTConfig

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

device = "cuda" if sl.gpu_available() else "cpu"
if device == "cpu":
    print("这里没有 GPU（没有安装 CuPy 或没有 CUDA 设备）：下面每个单元格都在 CPU 上运行；"
          "CPU 与 GPU 的比较只在有 GPU 的地方运行。")
    try:
        sl.tensor([1.0, 2.0]).to("cuda")
    except RuntimeError as error:
        print("\n仍然请求 GPU：", error)
else:
    print("找到 GPU：与 CPU 比较")

# %% [markdown]
# ## 同样的数组，换一个模块
#
# 张量的 `.device` 和它的数组模块跟随它的数据。混用不同设备的运算会被拒绝，错误信息会指出两个设备；
# `.to(device)` 复制数据，`.numpy()` 总是返回主机上的 NumPy 副本。

# %%
x = sl.tensor(np.arange(6, dtype=np.float32).reshape(2, 3)).to(device)
print(x.device, backend.get_array_module(x.data).__name__)
y = (x * x).sum()
print("平方和：", y.item())
assert y.item() == float((np.arange(6) ** 2).sum())
assert isinstance(y.numpy(), np.ndarray)


# %% [markdown]
# ## 每个设备上的一步训练
#
# 同一个 GPT、同一个批次：两个设备上的损失和每个梯度都必须在 float32 舍入误差范围内一致（不同的核函
# 数求和顺序不同）。一步（前向加反向）的时间用 `backend.synchronize` 来测，把 GPU 异步执行的核函数也
# 计算在内。

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
    print(f"CPU 上的损失 {cpu_loss:.6f}；没有第二个设备可以比较")
else:
    dev_loss, dev_grads, _, _ = one_step(device)
    worst = max(np.abs(cpu_grads[n] - dev_grads[n]).max() / (np.abs(cpu_grads[n]).max() + 1e-12)
                for n in cpu_grads)
    print(f"损失：cpu {cpu_loss:.6f}，{device} {dev_loss:.6f}；梯度最大相对差 "
          f"{worst:.1e}")
    assert abs(cpu_loss - dev_loss) < 1e-4 and worst < 1e-3

# %% [markdown]
# ## 设备什么时候划算：规模
#
# 每个运算都有固定开销（Python、自动微分的计算图，在 GPU 上还有几微秒的核函数启动），
# 再加上随数组增长的计算量。所以数组小时，一步的时间比它的计算量增长得慢，有用的速率——每秒浮点运算次
# 数——随宽度上升。前向加反向一次，对 $N$ 个参数大约每个词元 $6N$ 次运算（前向每次乘加 2 次，
# 反向是它的两倍；注意力自身的矩阵乘法不计）。我们在每个现有的设备上，用三种宽度测同一个 GPT：

# %%
widths = [64, 128, 256]
TOKENS = 8 * 128
devices = ["cpu"] if device == "cpu" else ["cpu", device]
measured = {d: [one_step(d, width)[2:] for width in widths] for d in devices}
rates = {d: [6 * n * TOKENS / seconds / 1e9 for seconds, n in measured[d]] for d in devices}
for d in devices:
    for width, (seconds, n), rate in zip(widths, measured[d], rates[d]):
        print(f"{d:5s} 宽度 {width:3d}：{n:9,} 个参数，每步 {seconds * 1000:7.1f} 毫秒，"
              f"{rate:6.2f} GFLOP/s")
assert rates["cpu"][0] < 0.6 * max(rates["cpu"][1:])  # 宽 64 时大部分是开销

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
for d in devices:
    left.plot(widths, [seconds * 1000 for seconds, _ in measured[d]], "o-", label=d)
    right.plot(widths, rates[d], "o-", label=d)
left.set(xlabel="宽度（嵌入维数）", ylabel="每步毫秒数", yscale="log",
         title="前向 + 反向，4 层，8 × 128 个词元")
right.set(xlabel="宽度（嵌入维数）", ylabel="GFLOP/s（每个词元 6N 次）", ylim=(0, None),
          title="有用的运算速率")
for axis in (left, right):
    axis.set_xticks(widths, widths)
    axis.legend()
    axis.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# 在 CPU 上，宽 64 时的速率低于宽 128 和 256 时：宽 64 时，一步的时间大部分是开销。
# 再往上，速率受限于这些核能给出的水平（在共享的机器上，是其他任务留给它们的水平；
# 上面的数字每次运行都会变）。GPU 能提供的算力多得多，每个运算的开销也更大，所以要更大的数组才划算；
# 库在 H200 上的实测剖析（每步核函数启动次数、融合的注意力核函数、在 CUDA 上的主训练任务）见
# `bench/results/cuda.md`。这些笔记本里的其余代码在两种设备上完全相同。
#
# ## 小结
#
# * 只有一个文件 `backend.py` 在 NumPy 和 CuPy 之间选择；运算从不提到设备，
#   模型用 `model.to("cuda")` 移动。
# * 不同设备的结果在 float32 舍入误差内一致；速度取决于规模，因为每个运算都有固定开销。
#
# ## 练习
#
# 1. 在宽度 128 时，分别用批次大小 1、8、32 测一步：速率在哪里不再上升？
# 2. 用 `sl.use_fast(False)` 时库只运行参考实现的运算：在宽度 64 时，快速层省下了多少时间？
# 3. 课程第 12 周（`notebooks/COURSE.zh.md`）：项目是把第 7–9 周的 `scratchlm.exercises` 练习
#    （`rmsnorm`、`rope`）放进模型，在 CPU 上计时，有 GPU 的话也在 GPU 上计时。
