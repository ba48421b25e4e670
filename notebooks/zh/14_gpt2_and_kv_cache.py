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
# # 14 · GPT-2 的权重，以及 KV 缓存带来了什么
#
# scratchlm 的 `GPT` 具有 GPT-2 的结构和 nanoGPT 的参数名，所以公开的 GPT-2
# 预训练权重可以直接加载：
# `GPT.from_hf_gpt2("model.safetensors")` 读取 Hugging Face 的文件（不需要 PyTorch，也不用
# pickle），
# `load_gpt2_tokenizer()` 给出与 GPT-2 完全相同的词元编号。这些笔记本离线运行，所以我们不下载 500
# MB
# 的文件，而是用一个随机初始化、形状与 GPT-2 相同的模型，按 Hugging Face
# 的布局写出一个文件再加载回来：
# 走的正是真实权重走的那条路径。
#
# 然后是生成。生成第 $t$
# 个词元需要之前所有位置的键和值。没有缓存时，每一步都为整个前缀重新计算它们：
# 第 $t$ 步要做 $O(t)$ 次投影，生成 $T$ 个词元共 $O(T^2)$。**KV
# 缓存**保存每一层的键和值，所以每一步
# 只投影新词元，$O(1)$，再对缓存做注意力。代价是内存：每个序列 $2 \times L \times T \times d$ 个数
# （键和值、每一层、每个位置）。

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm.models import GPT, GPTConfig
from scratchlm.safetensors import load_safetensors, save_safetensors
from scratchlm.text import load_gpt2_tokenizer

tokenizer = load_gpt2_tokenizer()
prompt = np.array([tokenizer.encode("The meaning of life is")])
print(prompt, tokenizer.vocab_size)

# %% [markdown]
# ## Hugging Face 的布局
#
# GPT-2 用 `Conv1D` 层写成，它把投影存为 (in, out) 并计算 $y = xW + b$；scratchlm 的 `Linear` 与
# PyTorch 一样存为 (out, in)，计算
# $y = xW^\top + b$。所以文件中每个块的四个投影矩阵是转置的；其余一切
# 保留原名，只是没有 `transformer.` 前缀。我们从一个 GPT-2 形状的模型写出这样的文件（GPT-2 的词表、
# 头维度 64，但只有 4 层、宽 256，以便快速运行）：

# %%
sl.manual_seed(0)
original = GPT(GPTConfig.from_preset("gpt2", n_layer=4, n_head=4, n_embd=256, block_size=512))
original.eval()
print(f"{original.num_parameters():,} parameters")

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
hf_arrays = {}
for name, array in original.state_dict().items():
    if name == "lm_head.weight":
        continue  # tied to wte: GPT-2's file need not hold it
    hf_name = name.removeprefix("transformer.")
    hf_arrays[hf_name] = array.T.copy() if hf_name.endswith(CONV1D) else array
os.makedirs("runs/gpt2-shaped", exist_ok=True)
save_safetensors(hf_arrays, "runs/gpt2-shaped/model.safetensors")
print(sorted(load_safetensors("runs/gpt2-shaped/model.safetensors"))[:6], "...")

loaded = GPT.from_hf_gpt2("runs/gpt2-shaped/model.safetensors")
loaded.eval()
with sl.no_grad():
    difference = np.abs(loaded(prompt)[0].numpy() - original(prompt)[0].numpy()).max()
print("config read from the file:", loaded.config)
print("max |logits difference| =", difference)
assert difference == 0.0 and loaded.config.n_head == 4

# %% [markdown]
# 对真实文件，调用方式完全相同：`GPT.from_hf_gpt2("path/to/gpt2/model.safetensors")`（头数从旁边的
# `config.json` 读取，或按 GPT-2 的头维度 64 推出），`tests/test_text_gpt2.py` 用 GPT-2
# 的参考编号检验
# 分词器。
#
# ## 有缓存与无缓存的生成
#
# `model.generate(..., use_cache=False)` 每一步都重新计算整个前缀；默认情况下每层保存一个
# `KVCache`。
# 生成的词元必须完全相同（因果注意力从不让旧位置看到新位置），不同的只是时间：

# %%
lengths = [16, 32, 64, 128, 192]
seconds = {True: [], False: []}
for n in lengths:
    outputs = {}
    for use_cache in (True, False):
        started = time.perf_counter()
        outputs[use_cache] = loaded.generate(prompt, n, do_sample=False, use_cache=use_cache)
        seconds[use_cache].append(time.perf_counter() - started)
    assert (outputs[True] == outputs[False]).all()
    print(f"{n:4d} new tokens: cache {seconds[True][-1]:6.2f} s, "
          f"no cache {seconds[False][-1]:6.2f} s")
assert seconds[False][-1] > seconds[True][-1]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(lengths, seconds[True], "o-", label="KV cache: O(T)")
ax.plot(lengths, seconds[False], "o-", label="recompute the prefix: O(T²)")
ax.set(xlabel="new tokens T", ylabel="seconds", title="greedy generation, GPT-2-shaped model")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# 有缓存时时间线性增长；没有缓存时按平方增长。这里每一步还要乘上 50,257 个词的输出层，这是缓存无法
# 去掉的固定开销，所以序列越长、模型越深，差距越大。
#
# ## 缓存里存了什么
#
# 生成之后，每一层的缓存保存形状为（批次、头数、长度、头维度）的键和值。它们占用的内存就是上面的公
# 式：

# %%
caches = loaded.new_kv_caches()
with sl.no_grad():
    loaded(prompt, kv_caches=caches)
layer = caches[0]
print(f"{len(caches)} caches; layer 0 keys {layer.keys.shape}, filled up to {layer.length}")
L, d, T = loaded.config.n_layer, loaded.config.n_embd, loaded.config.block_size
cache_bytes = sum(c.keys.nbytes + c.values.nbytes for c in caches)
assert cache_bytes == 2 * L * T * d * 4  # float32, allocated for block_size positions
print(f"2·L·T·d·4 bytes = {cache_bytes / 2**20:.1f} MiB for one sequence of up to {T} tokens")
full = GPTConfig.from_preset("gpt2")
print(f"GPT-2 small (L = {full.n_layer}, d = {full.n_embd}, T = {full.block_size}): "
      f"{2 * full.n_layer * full.block_size * full.n_embd * 4 / 2**20:.0f} MiB per sequence")
