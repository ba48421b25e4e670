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
# # 14 · GPT-2 的权重与 KV 缓存的收益
#
# scratchlm 的 `GPT` 具有 GPT-2 的结构和 nanoGPT 的参数名，所以能加载公开的 GPT-2
# 预训练权重：`GPT.from_hf_gpt2("model.safetensors")` 读取 Hugging Face 的文件（不需要
# PyTorch，也不经过 pickle），`load_gpt2_tokenizer()` 给出与 GPT-2
# 完全相同的词元索引。这些笔记本离线运行，而本项目只从少数几个包获取数据，其中没有一个包含 GPT-2
# 的权重（约 500 MB）：**这里拿不到预训练好的 GPT-2**，本篇也不下载任何东西。所以我们自己按 Hugging
# Face 的布局写出文件，再把它加载回来——先用一个随机初始化、形状与 GPT-2
# 相同的模型（它生成的文本是噪声），再用一个在本篇中训练的小模型（经过短时间训练，
# 它生成的文本已经有了剧本的格式和常见的词）。加载时走的正是真实权重所走的那条路径。
#
# 接下来是生成。生成第 $t$ 个词元需要之前所有位置的键和值。没有缓存时，
# 每一步都要为整个前缀重新计算它们：第 $t$ 步要做 $O(t)$ 次投影，生成 $T$ 个词元共需 $O(T^2)$
# 次。**KV 缓存**保存每一层的键和值，于是每一步只需投影新词元（$O(1)$
# 次），再对缓存做注意力。代价是内存：每个序列要存 $2 \times L \times T \times d$
# 个数（键和值、每一层、每个位置）。

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.safetensors import load_safetensors, save_safetensors
from scratchlm.text import CharTokenizer, load_gpt2_tokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

tokenizer = load_gpt2_tokenizer()
prompt = np.array([tokenizer.encode("The meaning of life is")])
print(prompt, tokenizer.vocab_size)

# %% [markdown]
# ## Hugging Face 的布局
#
# GPT-2 用 `Conv1D` 层实现，它把投影矩阵存为 (in, out)，计算 $y = xW + b$；scratchlm 的 `Linear` 与
# PyTorch 一样存为 (out, in)，计算 $y = xW^\top + b$。所以文件中每个块的四个投影矩阵是转置的；
# 其余参数都保留原名，只是去掉了 `transformer.` 前缀。下面从一个 GPT-2
# 形状的模型写出这样的文件（词表和头维度 64 与 GPT-2 相同，但只有 4 层、宽度 256，以便快速运行）：

# %%
sl.manual_seed(0)
original = GPT(GPTConfig.from_preset("gpt2", n_layer=4, n_head=4, n_embd=256, block_size=512))
original.eval()
print(f"{original.num_parameters():,} 个参数")

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def save_in_hf_layout(model, path):
    """把模型的权重写成 Hugging Face 的 GPT-2 文件：Conv1D 矩阵转置，没有 `transformer.`
    前缀，没有 lm_head（它与 wte 共享：GPT-2 的文件不必保存它）。"""
    hf_arrays = {}
    for name, array in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        hf_name = name.removeprefix("transformer.")
        hf_arrays[hf_name] = array.T.copy() if hf_name.endswith(CONV1D) else array
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(hf_arrays, path)


save_in_hf_layout(original, "runs/gpt2-shaped/model.safetensors")
print(sorted(load_safetensors("runs/gpt2-shaped/model.safetensors"))[:6], "...")

loaded = GPT.from_hf_gpt2("runs/gpt2-shaped/model.safetensors")
loaded.eval()
with sl.no_grad():
    difference = np.abs(loaded(prompt)[0].numpy() - original(prompt)[0].numpy()).max()
print("从文件读出的配置：", loaded.config)
print("max |logits 之差| =", difference)
assert difference == 0.0 and loaded.config.n_head == 4

# %% [markdown]
# 对真实的文件，调用方式完全相同：
# `GPT.from_hf_gpt2("path/to/gpt2/model.safetensors")`（头数从同一目录下的 `config.json` 读取，或按
# GPT-2 的头维度 64 推算）；`tests/test_text_gpt2.py` 用 GPT-2 的参考词元索引检验分词器。
#
# ## 生成：先用随机权重，再用训练过的权重
#
# 随机的 GPT-2 形状模型在 50,257 个词元上给出近乎均匀的分布；每步取最可能的词元（贪心解码）
# 续写提示，它只会重复同一个词元，得到的只是噪声。
# 为了得到有意义的文本，我们按同样的结构训练一个模型：GPT-2 的块（前置层规范化、使用 GELU 的
# MLP、共享的词嵌入），4 层、宽度 128，在莎士比亚剧本上按字符训练（输出层若有 50,257
# 个词元，要用掉本篇全部的时间预算才训练得动）；然后按 Hugging Face 的布局写出，用 `from_hf_gpt2`
# 加载，再用加载回来的副本生成文本。

# %%
sl.manual_seed(0)
noise = loaded.generate(prompt, 12, do_sample=False)
print("随机的 GPT-2 形状模型：", repr(tokenizer.decode(noise[0].tolist())))

text = load_shakespeare()
chars = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(chars.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
small = GPT(GPTConfig.from_preset("gpt2", vocab_size=chars.vocab_size, n_layer=4, n_head=4,
                                  n_embd=128, block_size=64))


def show_validation(trainer, loss):
    print(f"训练 {trainer.step} 步：验证损失 {loss:.3f} 奈特/字符"
          f"（均匀分布：{np.log(chars.vocab_size):.3f}）")


history = Trainer(small, train_ids, val_ids, TrainConfig(
    max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20, eval_interval=300,
    eval_batches=5, checkpoint_interval=10_000)).train(
    progress=False, on_validate=show_validation)
save_in_hf_layout(small, "runs/gpt2-layout-shakespeare/model.safetensors")
reloaded = GPT.from_hf_gpt2("runs/gpt2-layout-shakespeare/model.safetensors")
reloaded.eval()
assert history["val_loss"][-1] < np.log(chars.vocab_size) - 1.0
sl.manual_seed(0)
sample = reloaded.generate(np.array([chars.encode("KING:\n")]), 160, temperature=0.8)
print("--- 训练过的模型，从 Hugging Face 布局加载回来 ---")
print(chars.decode(sample[0].tolist()))

# %% [markdown]
# ## 有缓存与无缓存的生成
#
# `model.generate(..., use_cache=False)` 每一步都重新计算整个前缀；默认情况下，每一层都保存一个
# `KVCache`。两种方式生成的词元必须完全相同（因果注意力从不让旧位置看到新位置），不同的只是耗时：

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
    print(f"{n:4d} 个新词元：有缓存 {seconds[True][-1]:6.2f} 秒，"
          f"无缓存 {seconds[False][-1]:6.2f} 秒")
assert seconds[False][-1] > seconds[True][-1]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(lengths, seconds[True], "o-", label="KV 缓存：O(T)")
ax.plot(lengths, seconds[False], "o-", label="重新计算前缀：O(T²)")
ax.set(xlabel="新词元数 T", ylabel="秒", title="贪心生成，GPT-2 形状的模型")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# 有缓存时，耗时随长度线性增长；没有缓存时按平方增长。这里每一步还要乘上 50,257
# 个词元的输出层，这是缓存去不掉的固定开销，所以序列越长、模型越深，两者的差距越大。
#
# ## 缓存里存了什么
#
# 生成之后，每一层的缓存保存形状为（批量大小、头数、长度、头维度）的键和值。
# 它们占用的内存正如上面的公式所示：

# %%
caches = loaded.new_kv_caches()
with sl.no_grad():
    loaded(prompt, kv_caches=caches)
layer = caches[0]
print(f"{len(caches)} 个缓存；第 0 层的键 {layer.keys.shape}，已填到 {layer.length}")
L, d, T = loaded.config.n_layer, loaded.config.n_embd, loaded.config.block_size
cache_bytes = sum(c.keys.nbytes + c.values.nbytes for c in caches)
assert cache_bytes == 2 * L * T * d * 4  # float32，按 block_size 个位置分配
print(f"2·L·T·d·4 字节 = {cache_bytes / 2**20:.1f} MiB，对应一个最多 {T} 个词元的序列")
full = GPTConfig.from_preset("gpt2")
print(f"GPT-2 small（L = {full.n_layer}，d = {full.n_embd}，T = {full.block_size}）：每个序列 "
      f"{2 * full.n_layer * full.block_size * full.n_embd * 4 / 2**20:.0f} MiB")

# %% [markdown]
# ## 小结
#
# * scratchlm 的 GPT 具有 GPT-2 的结构；Hugging Face 的文件只在转置的 `Conv1D`
#   矩阵和参数名上有所不同，`from_hf_gpt2` 读取它既不需要 PyTorch，也不经过
#   pickle。这里离线拿不到预训练的 GPT-2，所以加载的是一个随机模型和一个在本篇中训练的模型。
# * KV 缓存使每生成一个词元只需 $O(1)$ 次投影，而不是 $O(t)$ 次，代价是每个序列 $2LTd$ 个数的内存。
#
# ## 练习
#
# 1. 在你自己的机器上获取 GPT-2 真正的 `model.safetensors`，加载它，比较它与随机模型对“The meaning
#    of life is”的续写。
# 2. 分别在 4 层和 8 层时测量有缓存和无缓存时每个新词元的耗时：差距如何随深度增长？
# 3. 课程第 12 周（`notebooks/COURSE.zh.md`）：本周的项目把第 7–9 周的一个 `scratchlm.exercises`
#    练习（`rope`、`gqa`）放进模型；分组查询注意力对缓存的大小有什么影响？
