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
# # 16 · Data-parallel training over MPI
#
# One process trains on one device. To train faster, **data parallelism** runs N copies of the
# model, one per process (a **rank**), each on its own shard of every batch. After the backward
# pass the ranks **all-reduce** their gradients — every rank ends with the sum of all of them —
# and divide by N, so each rank holds the mean gradient of the whole batch and makes the same
# update:
#
# $$g = \frac{1}{N}\sum_{r=0}^{N-1} g_r,\qquad g_r = \nabla_\theta \frac{1}{B}\sum_{i \in
# \text{shard}_r} L_i .$$
#
# With equal shards that is exactly the gradient of one process with batch N·B: N ranks × batch B
# take the steps of one process × batch N·B. `scratchlm.distributed` does the communication with
# MPI (the standard of supercomputers, through mpi4py) on CPUs and NCCL on GPUs; `mpiexec -n N`
# starts the ranks. A notebook is one process, so this one writes small scripts into its run
# folder and launches them with `mpiexec -n 2`, then reads their results back.
#
# Install: `pip install -e ".[distributed]"` (mpi4py and the MPICH wheel, which ships `mpiexec`).

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

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
RUN = Path("runs") / "16_distributed"
RUN.mkdir(parents=True, exist_ok=True)
MPIEXEC = dist.mpiexec_path()


def run_ranks(name, code, ranks=2, *arguments):
    """Write ``code`` to RUN/name and run it on ``ranks`` MPI processes; return its stdout."""
    script = RUN / name
    script.write_text(textwrap.dedent(code))
    result = subprocess.run([MPIEXEC, "-n", str(ranks), sys.executable, str(script),
                             *map(str, arguments)], capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-2000:]}")
    return result.stdout


print("mpiexec:", MPIEXEC)

# %% [markdown]
# ## All-reduce by hand: the ring
#
# The simplest all-reduce sends every rank's whole vector to every other rank: N−1 messages of
# n numbers each, per rank. The **ring all-reduce** does better. Cut the vector into N chunks and
# place the ranks on a ring, each sending to its right neighbour and receiving from its left:
#
# 1. **Reduce-scatter**, N−1 steps: at step s, rank r sends chunk (r − s) mod N and adds the chunk
#    it receives into its own copy. Afterwards rank r holds the full sum of chunk (r + 1) mod N.
# 2. **All-gather**, N−1 steps: the finished chunks travel once around the ring, overwriting.
#
# Each rank sends 2(N−1) messages of n/N numbers: 2(N−1)/N · n in all, almost independent of N.
# That is why large clusters use it (NCCL's rings, Horovod). Below, with mpi4py's point-to-point
# `Sendrecv`, checked against MPI's own `Allreduce`.

# %%
RING = '''
import sys
import numpy as np
from mpi4py import MPI

def ring_allreduce(comm, x):
    """The sum over ranks of x, by reduce-scatter then all-gather around the ring."""
    rank, size = comm.Get_rank(), comm.Get_size()
    chunks = [c.copy() for c in np.array_split(x, size)]
    right, left = (rank + 1) % size, (rank - 1) % size
    for step in range(size - 1):                       # reduce-scatter
        send, receive = (rank - step) % size, (rank - step - 1) % size
        incoming = np.empty_like(chunks[receive])
        comm.Sendrecv(chunks[send], dest=right, recvbuf=incoming, source=left)
        chunks[receive] += incoming
    for step in range(size - 1):                       # all-gather
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
    print(f"{comm.size} ranks: ring vs MPI_Allreduce, largest difference {worst:.1e}")
'''
for ranks in (2, 3, 4):
    print(run_ranks("ring.py", RING, ranks).strip())

# %% [markdown]
# The differences are rounding: a sum of floats depends on its order, and MPI adds in another
# order than our ring. (Three and four ranks share two cores here: correct, not fast.)
#
# ## Gradient averaging gives one process's steps
#
# `dist.DataParallel(model)` copies rank 0's weights to every rank; `dist.shard_batch(batch)`
# takes this rank's rows of a global batch; after `backward()`, `model.all_reduce_gradients()`
# replaces every `.grad` by its mean over the ranks. The gradients travel in flat **buckets** of
# about 25 MB in the parameters' dtype — one message per bucket, not one per parameter, since every
# message pays a fixed latency.
#
# Two ranks × batch 4, against one process × batch 8, in float64. The script also trains with
# `dist.ZeroRedundancyOptimizer` (ZeRO stage 1): each rank keeps AdamW's moments for only its
# share of the parameters, updates that share, and the ranks all-gather the new weights.

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
        print(f"rank {dist.rank()} {kind}: AdamW moments {r[2]:,} bytes", flush=True)
'''
print(run_ranks("train.py", TRAIN, 2, RUN / "two_ranks.npz"))

# %% [markdown]
# Now the same training in this notebook's one process, with the whole batch of 8 (its
# `shard_batch` keeps all rows: this process is a group of one).

# %%
sys.path.insert(0, str(RUN))
from train import tiny_gpt, train  # noqa: E402 (the script the notebook just wrote)

dist.init()
model = dist.DataParallel(tiny_gpt())
one_losses = train(model, optim.AdamW(model.named_parameters(), lr=1e-2), global_batch=8)
two = np.load(RUN / "two_ranks.npz")
for kind, name in (("plain", "plain AdamW"), ("zero", "ZeRO-1")):
    loss_gap = np.abs(two[f"{kind}_losses"] - one_losses).max() / np.abs(one_losses).max()
    weight_gap = max(np.abs(two[f"{kind}/{k}"] - v).max() / np.abs(v).max()
                     for k, v in model.state_dict().items())
    print(f"2 ranks ({name}) vs 1 process: loss {loss_gap:.1e}, weights {weight_gap:.1e} "
          "(largest relative difference)")
    assert loss_gap < 1e-10 and weight_gap < 1e-10
print("losses:", np.round(one_losses, 4))

# %% [markdown]
# Equal to float64 rounding, with and without ZeRO-1 — and with ZeRO-1 each rank kept about half
# of AdamW's moments (printed above). The `Trainer` does all of this for you:
# `mpiexec -n 2 python -m scratchlm train --distributed`, or `python -m scratchlm train --nproc 2`
# (which starts mpiexec itself); `--batch-size` is then per rank and `--zero 1` shards AdamW's
# state. Rank 0 writes the checkpoints, every rank resumes from them, Ctrl-C on any rank saves
# once and stops them all, and a rank that dies takes the others down with it instead of leaving
# them waiting.
#
# ## Time per step against the number of ranks
#
# A GPT step at a fixed global batch of 16 sequences, on 1 and 2 ranks of one thread each: with 2
# ranks each computes half the batch, then they all-reduce 0.8 M gradients. (This machine has two
# cores shared with other work, so the figures move from run to run.)

# %%
STEP = '''
import json, time
import numpy as np
import scratchlm as sl
from scratchlm import distributed as dist, optim
from scratchlm.fast import threads
from scratchlm.models import GPT, GPTConfig

threads.set_thread_limit(1)  # one thread per rank (BLAS: OPENBLAS_NUM_THREADS=1)
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
    if step:  # the first step warms up
        times["compute"].append(time.perf_counter() - reduced + computed - started)
        times["all-reduce"].append(reduced - computed)
if dist.rank() == 0:
    print(json.dumps({k: float(np.median(v)) for k, v in times.items()}))
'''
step_times = {}
for ranks in (1, 2):
    step_times[ranks] = json.loads(run_ranks("step.py", STEP, ranks).strip().splitlines()[-1])
    print(f"{ranks} rank(s): compute {step_times[ranks]['compute'] * 1e3:.0f} ms, "
          f"all-reduce {step_times[ranks]['all-reduce'] * 1e3:.0f} ms")

fig, ax = plt.subplots(figsize=(7, 3))
ranks = list(step_times)
compute = [step_times[n]["compute"] * 1e3 for n in ranks]
reduce_ms = [step_times[n]["all-reduce"] * 1e3 for n in ranks]
ax.bar([str(n) for n in ranks], compute, label="forward, backward, AdamW")
ax.bar([str(n) for n in ranks], reduce_ms, bottom=compute, label="gradient all-reduce")
ax.set_xlabel("ranks (1 thread each), global batch 16")
ax.set_ylabel("ms per step")
ax.set_title("Time per step against the number of ranks")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The α–β model, fitted here and projected
#
# A message of n bytes takes about **t = α + β·n**: a latency α (software, the network's round
# trip) plus β seconds per byte (one over the bandwidth). The ring all-reduce of n bytes on N
# ranks sends 2(N−1) messages of n/N bytes one after another:
#
# $$T_\text{ring}(n, N) = 2(N-1)\,\alpha + 2\frac{N-1}{N}\, n\,\beta .$$
#
# We measure `MPI_Allreduce` on 2 ranks for sizes from 4 B to 4 MB and fit α and β by least
# squares (with N = 2, T = 2α + nβ).

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
# T = 2α + nβ on 2 ranks, fitted with relative errors (each size weighs alike)
design = np.stack([2 * np.ones_like(sizes), sizes], axis=1) / seconds[:, None]
(alpha, beta), *_ = np.linalg.lstsq(design, np.ones_like(seconds), rcond=None)
alpha = max(alpha, 1e-7)  # a latency below 0.1 µs is below what this fit can resolve
print(f"α ≈ {alpha * 1e6:.1f} µs, β ≈ {beta * 1e9:.3f} ns/byte "
      f"(bandwidth ≈ {1 / beta / 1e9:.1f} GB/s, between two processes of one machine)")


def ring_time(n_bytes, nodes):
    return 2 * (nodes - 1) * alpha + 2 * (nodes - 1) / nodes * n_bytes * beta


gradient_bytes = 4 * GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4,
                                   n_embd=128)).num_parameters()
for nodes in (2, 8, 64):
    print(f"projection, {nodes:>2} nodes: all-reduce of the step's {gradient_bytes / 1e6:.1f} MB "
          f"of gradients ≈ {ring_time(gradient_bytes, nodes) * 1e3:.2f} ms")

fig, ax = plt.subplots(figsize=(8.5, 3.6))
ax.loglog(sizes, seconds * 1e6, "o", color="black", label="measured, 2 ranks")
grid = np.logspace(np.log10(sizes[0]), np.log10(sizes[-1]), 50)
ax.loglog(grid, ring_time(grid, 2) * 1e6, label="fit: 2α + nβ")
for nodes, style in ((8, "--"), (64, ":")):
    ax.loglog(grid, ring_time(grid, nodes) * 1e6, style,
              label=f"projection: ring on {nodes} nodes")
ax.set_xlabel("message size (bytes)")
ax.set_ylabel("all-reduce time (µs)")
ax.set_title("α–β model: measured on 2 ranks, projected (not measured) to 8 and 64")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the projection with care: it keeps this machine's α and β, which are those of two processes
# talking through shared memory — and on this busy two-core machine a rank also waits for the
# other to be scheduled, which can inflate α above the microsecond or so of a quiet one. Between
# real nodes α is larger (microseconds on InfiniBand, tens of microseconds on Ethernet) and β
# depends on the network, so the lines show the *shape* — latency dominates small messages and
# grows with 2(N−1); bandwidth dominates large ones and hardly grows with N — not the times of a
# cluster. That shape is why gradients travel in buckets of megabytes: big enough that β·n
# outweighs α, and (in PyTorch's DDP, for example) small enough to start sending the first bucket
# while the backward pass still computes the rest.
#
# ## Summary
#
# * Data parallelism gives each rank a shard of the batch and averages the gradients with an
#   all-reduce: N ranks take the steps of one process with an N times larger batch (checked here
#   to float64 rounding).
# * A ring all-reduce sends 2(N−1)/N · n numbers per rank, almost independent of N; ZeRO-1
#   shards AdamW's state over the ranks, so on 2 ranks each holds half of it.
# * The α–β model: latency dominates small messages, bandwidth large ones, so gradients travel
#   in buckets.
#
# ## Exercises
#
# 1. Run the ring on 3 ranks with a vector of 1000 numbers: how many numbers does each rank
#    send in all? Compare with 2(N−1)/N · n.
# 2. From the fitted α and β, find the message size at which latency and bandwidth cost the same
#    (α = β·n), and compare it with the 25 MB buckets.
# 3. Train the `tiny` preset with `python -m scratchlm train --nproc 2`, then with one process and
#    twice the `--batch-size` for the same steps: do the two loss curves agree?
