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
# # 16 · 基于 MPI 的数据并行训练
#
# 一个进程只在一个设备上训练。要训练得更快，**数据并行**（data parallelism）同时运行 N
# 份模型副本，每个进程（称为一个 **rank**）一份，各自处理每个小批量中属于自己的那一片（分片）。
# 反向传播之后，各 rank 对梯度做**全归约**（all-reduce）——每个 rank 都得到所有梯度之和——再除以
# N，于是每个 rank 都持有整个小批量的平均梯度，做出相同的更新：
#
# $$g = \frac{1}{N}\sum_{r=0}^{N-1} g_r,\qquad g_r = \nabla_\theta \frac{1}{B}\sum_{i \in
# \text{分片}_r} L_i .$$
#
# 分片大小相等时，这正是单个进程用批量 N·B 算出的梯度：N 个 rank、每个批量 B，与一个进程、批量
# N·B，走出的每一步完全相同。`scratchlm.distributed` 在 CPU 上经由 mpi4py 用
# MPI（超级计算机的通信标准）通信，在 GPU 上用 NCCL；`mpiexec -n N` 负责启动各个
# rank。一个笔记本只是一个进程，所以本篇把小脚本写进自己的运行目录，用 `mpiexec -n 2`
# 启动它们，再把结果读回来。
#
# 安装：`pip install -e ".[distributed]"`（mpi4py，以及自带 `mpiexec` 的 MPICH wheel）。

# %%
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from scratchlm import distributed as dist
from scratchlm import optim, viz
from scratchlm.models import GPT, GPTConfig

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
RUN = Path("runs") / "16_distributed"
RUN.mkdir(parents=True, exist_ok=True)
MPIEXEC = dist.mpiexec_path()


def run_ranks(name, code, ranks=2, *arguments):
    """把 ``code`` 写入 RUN/name，在 ``ranks`` 个 MPI 进程上运行，返回它的标准输出。"""
    script = RUN / name
    script.write_text(textwrap.dedent(code))
    result = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(script),
                             *map(str, arguments)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{name} 运行失败：\n{result.stderr[-2000:]}")
    return result.stdout


print("mpiexec 位于：", MPIEXEC)

# %% [markdown]
# ## 亲手实现全归约：环形算法
#
# 最简单的全归约让每个 rank 把整条向量发给其他每个 rank：每个 rank 发 N−1 条消息，每条 n
# 个数。**环形全归约**（ring all-reduce）更好：把向量切成 N 块，把各 rank 排成一个环，每个 rank
# 向右邻居发送、从左邻居接收：
#
# 1. **归约-分散**（reduce-scatter），共 N−1 步：第 s 步，rank r 发出第 (r − s) mod N
#    块，并把收到的块加到自己的副本上。结束后，rank r 持有第 (r + 1) mod N 块的完整和。
# 2. **全收集**（all-gather），共 N−1 步：完成的块沿环传一圈，覆盖旧值。
#
# 每个 rank 发 2(N−1) 条消息，每条 n/N 个数：总共 2(N−1)/N · n 个数，几乎与 N
# 无关。这就是大集群使用环形算法的原因（NCCL 的环、Horovod）。下面用 mpi4py 的点对点调用 `Sendrecv`
# 实现它，并与 MPI 自带的 `Allreduce` 对照检查。

# %%
RING = '''
import sys
import numpy as np
from mpi4py import MPI

def ring_allreduce(comm, x):
    """x 在各 rank 上的和：沿环先归约-分散，再全收集。"""
    rank, size = comm.Get_rank(), comm.Get_size()
    chunks = [c.copy() for c in np.array_split(x, size)]
    right, left = (rank + 1) % size, (rank - 1) % size
    for step in range(size - 1):                       # 归约-分散
        send, receive = (rank - step) % size, (rank - step - 1) % size
        incoming = np.empty_like(chunks[receive])
        comm.Sendrecv(chunks[send], dest=right, recvbuf=incoming, source=left)
        chunks[receive] += incoming
    for step in range(size - 1):                       # 全收集
        send, receive = (rank + 1 - step) % size, (rank - step) % size
        comm.Sendrecv(chunks[send], dest=right, recvbuf=chunks[receive], source=left)
    return np.concatenate(chunks)

comm = MPI.COMM_WORLD
x = np.random.default_rng(comm.rank).standard_normal(1000)
ours = ring_allreduce(comm, x)
theirs = np.empty_like(x)
comm.Allreduce(x, theirs, op=MPI.SUM)
error = np.abs(ours - theirs).max()
worst = comm.allreduce(error, op=MPI.MAX)
if comm.rank == 0:
    print(f"{comm.size} 个 rank：环形算法与 MPI_Allreduce 的最大差 {worst:.1e}")
'''
for ranks in (2, 3, 4):
    print(run_ranks("ring.py", RING, ranks).strip())

# %% [markdown]
# 两者的差别只是舍入误差：浮点数求和的结果依赖于相加的顺序，而 MPI
# 的相加顺序与我们的环不同。（这里三个、四个 rank 共用两个核：结果正确，但并不快。）
#
# ## 梯度平均之后，每一步都与单进程相同
#
# `dist.DataParallel(model)` 把 rank 0 的权重复制到每个 rank；`dist.shard_batch(batch)`
# 取出全局小批量中属于本 rank 的那些行；`backward()` 之后，`model.all_reduce_gradients()` 把每个
# `.grad` 替换为它在各 rank 上的平均值。梯度装在按参数 dtype
# 排布的扁平**桶**（bucket）里传输，每桶约 25 MB——每桶一条消息，而不是每个参数一条，
# 因为每条消息都要付出固定的延迟。
#
# 下面让两个 rank、每个批量 4，对比一个进程、批量 8，都用 float64。脚本还用
# `dist.ZeroRedundancyOptimizer`（ZeRO 第一阶段）训练：每个 rank 只为自己那一份参数保存 AdamW
# 的矩估计、只更新这一份，然后各 rank 全收集新的权重。输出中的“不分片”指不用 ZeRO 的普通训练：每个
# rank 都保存完整的 AdamW 状态。

# %%
TRAIN = '''
import sys
import numpy as np
import scratchlm as sl
from scratchlm import distributed as dist, optim
from scratchlm.models import GPT, GPTConfig

def tiny_gpt():
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16))
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    return model

def batches(steps, size):
    rng = np.random.default_rng(1)
    for _ in range(steps):
        tokens = rng.integers(0, 16, size=(size, 9))
        yield tokens[:, :-1], tokens[:, 1:]

def train(model, optimizer, global_batch, steps=5):
    losses = []
    for x, y in batches(steps, global_batch):
        loss = model(*dist.shard_batch((x, y)))[1]
        loss.backward()
        model.all_reduce_gradients()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(dist.all_reduce(loss.item())[0])
    return losses

if __name__ == "__main__":
    dist.init()
    results = {}
    for zero in (False, True):
        model = dist.DataParallel(tiny_gpt())
        optimizer = optim.AdamW(model.named_parameters(), lr=1e-2)
        if zero:
            optimizer = dist.ZeroRedundancyOptimizer(optimizer)
        losses = train(model, optimizer, global_batch=8)
        state = optimizer.optimizer.state if zero else optimizer.state
        moment_bytes = sum(v.nbytes for s in state.values() for k, v in s.items() if k != "step")
        results["zero" if zero else "plain"] = (losses, model.state_dict(), moment_bytes)
    if dist.rank() == 0:
        np.savez(sys.argv[1], **{f"{kind}_losses": r[0] for kind, r in results.items()},
                 **{f"{kind}/{k}": v for kind, r in results.items() for k, v in r[1].items()})
    for kind, r in results.items():
        name = "ZeRO-1" if kind == "zero" else "不分片"
        print(f"rank {dist.rank()}，{name}：AdamW 矩估计 {r[2]:,} 字节", flush=True)
'''
print(run_ranks("train.py", TRAIN, 2, RUN / "two_ranks.npz"))

# %% [markdown]
# 现在在本笔记本这一个进程里做同样的训练，用完整的批量 8（这里的 `shard_batch`
# 保留全部行：这个进程自成一个只有一个成员的组）。

# %%
sys.path.insert(0, str(RUN))
from train import tiny_gpt, train  # noqa: E402 （笔记本刚写下的脚本）

dist.init()
model = dist.DataParallel(tiny_gpt())
one_losses = train(model, optim.AdamW(model.named_parameters(), lr=1e-2), global_batch=8)
two = np.load(RUN / "two_ranks.npz")
for kind, name in (("plain", "不分片"), ("zero", "ZeRO-1")):
    loss_gap = np.abs(two[f"{kind}_losses"] - one_losses).max() / np.abs(one_losses).max()
    weight_gap = max(np.abs(two[f"{kind}/{k}"] - v).max() / np.abs(v).max()
                     for k, v in model.state_dict().items())
    print(f"2 个 rank（{name}）对比 1 个进程：损失 {loss_gap:.1e}，权重 {weight_gap:.1e}"
          "（最大相对差）")
    assert loss_gap < 1e-10 and weight_gap < 1e-10
print("损失：", np.round(one_losses, 4))

# %% [markdown]
# 无论用不用 ZeRO-1，结果都在 float64 的舍入误差之内相等——而用 ZeRO-1 时，每个 rank
# 只保存了约一半的 AdamW 矩估计（见上面的输出）。`Trainer` 会替你做完这一切：
# `mpiexec -n 2 python -m scratchlm train --distributed`，或
# `python -m scratchlm train --nproc 2`（它自己启动 mpiexec）；这时 `--batch-size` 是每个 rank
# 的批量，`--zero 1` 把 AdamW 的状态分片。rank 0 写检查点，每个 rank 都从检查点恢复；在任何一个
# rank 上按 Ctrl-C，都只保存一次检查点，并停下所有 rank；一个 rank 崩溃时，其他 rank
# 随之退出，而不是无限地等下去。
#
# ## 每步时间与 rank 数
#
# 固定全局批量为 16 条序列，让 GPT 的一步分别在 1 个和 2 个 rank 上运行，每个 rank 一个线程：2 个
# rank 时，每个 rank 计算半个批量，然后对 0.8 M 个梯度做全归约。（这台机器只有两个核，
# 还与其他工作共用，所以每次运行的数字都会变。）

# %%
STEP = '''
import json, time
import numpy as np
import scratchlm as sl
from scratchlm import distributed as dist, optim
from scratchlm.fast import threads
from scratchlm.models import GPT, GPTConfig

threads.set_thread_limit(1)  # 每个 rank 一个线程（BLAS：OPENBLAS_NUM_THREADS=1）
dist.init()
sl.manual_seed(0)
model = dist.DataParallel(GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4,
                                        n_embd=128)))
optimizer = optim.AdamW(model.parameters(), lr=1e-3)
tokens = np.random.default_rng(0).integers(0, 65, size=(16, 65))
x, y = dist.shard_batch((tokens[:, :-1], tokens[:, 1:]))
times = {"compute": [], "all-reduce": []}
for step in range(4):
    dist.barrier()
    started = time.perf_counter()
    model(x, y)[1].backward()
    computed = time.perf_counter()
    model.all_reduce_gradients()
    reduced = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad()
    if step:  # 第一步用于预热
        times["compute"].append(time.perf_counter() - reduced + computed - started)
        times["all-reduce"].append(reduced - computed)
if dist.rank() == 0:
    print(json.dumps({k: float(np.median(v)) for k, v in times.items()}))
'''
step_times = {}
for ranks in (1, 2):
    step_times[ranks] = json.loads(run_ranks("step.py", STEP, ranks).strip().splitlines()[-1])
    print(f"{ranks} 个 rank：计算 {step_times[ranks]['compute'] * 1e3:.0f} 毫秒，"
          f"梯度全归约 {step_times[ranks]['all-reduce'] * 1e3:.0f} 毫秒")

fig, ax = plt.subplots(figsize=(7, 3))
ranks = list(step_times)
compute = [step_times[n]["compute"] * 1e3 for n in ranks]
reduce_ms = [step_times[n]["all-reduce"] * 1e3 for n in ranks]
ax.bar([str(n) for n in ranks], compute, label="前向、反向与 AdamW")
ax.bar([str(n) for n in ranks], reduce_ms, bottom=compute, label="梯度全归约")
ax.set_xlabel("进程数（每个 1 个线程），全局批量 16")
ax.set_ylabel("每步毫秒数")
ax.set_title("每步时间与进程数")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## α–β 模型：在本机拟合，再做推算
#
# 一条 n 字节的消息大约耗时 **t = α + β·n**：延迟 α（软件开销、网络往返）加上每字节 β
# 秒（带宽的倒数）。在 N 个 rank 上对 n 字节做环形全归约，要依次发送 2(N−1) 条 n/N 字节的消息：
#
# $$T_\text{环形}(n, N) = 2(N-1)\,\alpha + 2\frac{N-1}{N}\, n\,\beta .$$
#
# 我们在 2 个 rank 上测量从 4 B 到 4 MB 各种大小的 `MPI_Allreduce`，用最小二乘法拟合 α 和 β（N = 2
# 时，T = 2α + nβ）。

# %%
TIMING = '''
import json, sys, time
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rows = []
for power in range(2, 23, 2):
    x = np.ones(2 ** power // 4, dtype=np.float32)
    comm.Allreduce(MPI.IN_PLACE, x)
    times = []
    for _ in range(30):
        comm.Barrier()
        started = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, x)
        times.append(time.perf_counter() - started)
    rows.append((x.nbytes, float(np.median(times))))
if comm.rank == 0:
    print(json.dumps(rows))
'''
measured = np.array(json.loads(run_ranks("timing.py", TIMING, 2).strip().splitlines()[-1]))
sizes, seconds = measured[:, 0], measured[:, 1]
# 2 个 rank 上 T = 2α + nβ，按相对误差拟合（每种大小权重相同）
design = np.stack([2 * np.ones_like(sizes), sizes], axis=1) / seconds[:, None]
(alpha, beta), *_ = np.linalg.lstsq(design, np.ones_like(seconds), rcond=None)
alpha = max(alpha, 1e-7)  # 低于 0.1 µs 的延迟超出了这个拟合的分辨能力
print(f"α ≈ {alpha * 1e6:.1f} µs，β ≈ {beta * 1e9:.3f} ns/字节 "
      f"（带宽 ≈ {1 / beta / 1e9:.1f} GB/s，同一台机器上的两个进程之间）")


def ring_time(n_bytes, nodes):
    return 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * n_bytes * beta


gradient_bytes = 4 * GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4,
                                   n_embd=128)).num_parameters()
for nodes in (2, 8, 64):
    print(f"推算，{nodes:>2} 个节点：全归约一步的 {gradient_bytes / 1e6:.1f} MB 梯度 "
          f"≈ {ring_time(gradient_bytes, nodes) * 1e3:.2f} ms")

fig, ax = plt.subplots(figsize=(8.5, 3.6))
ax.loglog(sizes, seconds * 1e6, "o", color="black", label="实测，2 个进程")
grid = np.logspace(np.log10(sizes[0]), np.log10(sizes[-1]), 50)
ax.loglog(grid, ring_time(grid, 2) * 1e6, label="拟合：2α + nβ")
for nodes, style in ((8, "--"), (64, ":")):
    ax.loglog(grid, ring_time(grid, nodes) * 1e6, style,
              label=f"推算：{nodes} 个节点上的环形算法")
ax.set_xlabel("消息大小（字节）")
ax.set_ylabel("全归约时间（µs）")
ax.set_title("α–β 模型：2 个进程上实测，8 个和 64 个节点为推算（未实测）")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# 读这些推算要小心：它们沿用本机的 α 和 β，即两个进程经共享内存通信时的数值——
# 而在这台繁忙的双核机器上，一个 rank 还要等另一个被调度，这会使 α
# 高于空闲机器上大约一微秒的水平。真实节点之间的 α 更大（InfiniBand
# 上为微秒级，以太网上为数十微秒），β 取决于网络，所以这些曲线展示的是*形状*——小消息由延迟主导，
# 耗时随 2(N−1) 增长；大消息由带宽主导，几乎不随 N 增长——而不是集群上的实际时间。
# 正是这个形状决定了梯度要以兆字节大小的桶来传输：桶要足够大，使 β·n 压过 α；又要足够小（例如
# PyTorch 的 DDP），才能在反向传播还在计算其余梯度时就开始发送第一个桶。
#
# ## 小结
#
# * 数据并行让每个 rank 处理小批量的一个分片，再用全归约对梯度求平均：N 个 rank
#   走出的每一步与批量大 N 倍的单个进程相同（这里在 float64 舍入误差之内验证）。
# * 环形全归约让每个 rank 发送 2(N−1)/N · n 个数，几乎与 N 无关；ZeRO-1 把 AdamW 的状态分到各 rank
#   上，2 个 rank 时每个只存一半。
# * α–β 模型：小消息的耗时由延迟主导，大消息由带宽主导，所以梯度按桶传输。
#
# ## 练习
#
# 1. 在 3 个 rank 上对长度为 1000 的向量运行环形算法：每个 rank 一共发送了多少个数？与 2(N−1)/N · n
#    比较。
# 2. 用上面拟合出的 α 和 β，算出延迟与带宽开销相等（α = β·n）时的消息大小，并与 25 MB 的桶比较。
# 3. 用 `python -m scratchlm train --nproc 2` 训练 `tiny` 预设，再用一个进程、两倍的 `--batch-size`
#    训练同样的步数：两条损失曲线一致吗？
