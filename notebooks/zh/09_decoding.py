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
# # 9 · 解码策略比较
#
# 语言模型在每一步给出下一个词元的概率分布 $p(\cdot \mid y_{<t})$；**解码**负责把这些分布变成文本。
# 下面在同一个训练好的模型上比较五种方法：
#
# * **贪心搜索**：$y_t = \arg\max p(\cdot \mid y_{<t})$；
# * **温度** $\tau$：从 $p_\tau(i) \propto \exp(z_i/\tau)$ 中采样，$z$ 是 logits；
# * **top-k**：只在最可能的 $k$ 个词元中采样；
# * **top-p**（核采样）：只在满足 $\sum_{i \in S} p(i) \ge p$ 的最小集合 $S$ 中采样；
# * **束搜索**：保留 $\sum_t \log p(y_t \mid y_{<t})$ 最高的 $W$ 个前缀。
#
# 贪心搜索在每一步分别取概率最大的词元，束搜索则（近似地）在整个序列上取最大；
# 采样以牺牲似然为代价换取多样性。下面把这两个方面都度量出来，并画出束搜索所探索的树。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import viz
from scratchlm.generation import beam_search, top_p_filter
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                      n_embd=64))
config = TrainConfig(max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                     eval_interval=300, eval_batches=5, checkpoint_interval=10_000)


def show_validation(trainer, loss):
    print(f"训练 {trainer.step} 步后：验证损失 {loss:.4f}"
          f"（困惑度 {np.exp(loss):.2f}）")


Trainer(model, train_ids, val_ids, config).train(progress=False, on_validate=show_validation)
model.eval()
prompt = np.array([tokenizer.encode("KING:\nWhat")])

# %% [markdown]
# ## 温度改变同一个分布的形状
#
# 下面看提示末尾处下一个字符的分布及其熵 $H(p_\tau) = -\sum_i p_\tau(i) \log p_\tau(i)$ 如何随
# $\tau$ 变化：$\tau \to 0$ 时全部概率集中到最大的那一项上（即贪心搜索），$\tau = 1$
# 时就是模型本身的分布，$\tau$ 很大时趋于均匀分布（$H \to \log V$）。

# %%
with sl.no_grad():
    z = model(prompt)[0].numpy()[0, -1].astype(np.float64)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


taus = np.geomspace(0.05, 20, 40)
entropies = [entropy(softmax(z / tau)) for tau in taus]
model_p = F.softmax(sl.tensor(z)).numpy()
assert np.isclose(entropy(softmax(z)), entropy(model_p))
assert entropies[0] < 0.01 and abs(entropies[-1] - np.log(len(z))) < 0.1

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
order = np.argsort(-z)[:12]
for tau in (0.5, 1.0, 2.0):
    left.plot(range(12), softmax(z / tau)[order], "o-", label=f"τ = {tau}")
left.set_xticks(range(12), [repr(tokenizer.decode([i]))[1:-1] for i in order])
left.set(title="最可能的 12 个下一字符的 p_τ", ylabel="概率")
left.legend()
right.semilogx(taus, entropies)
right.axhline(np.log(len(z)), ls="--", c="gray", label="log V（均匀分布）")
right.set(xlabel="温度 τ", ylabel="熵（奈特）", title="H(p_τ)")
right.legend()
plt.show()

# %% [markdown]
# ## top-p 保留了哪些词元
#
# `top_p_filter` 从最可能的词元开始依次保留，直到累计概率达到 $p$（使累计概率越过 $p$
# 的那个词元也保留）。下面自己把概率排序，数一数应当保留几个词元，与它的结果对照：

# %%
p_sorted = np.sort(model_p)[::-1]
for p in (0.5, 0.8, 0.9, 0.99):
    kept = int(np.isfinite(top_p_filter(z, p)).sum())
    by_hand = int(np.searchsorted(np.cumsum(p_sorted), p) + 1)
    print(f"p = {p}：保留 {kept} 个词元")
    assert kept == by_hand

# %% [markdown]
# ## 似然与多样性
#
# 每种策略各生成 8 段续写，每段 48 个字符。对每段续写度量两个量：
# 模型给出的每个字符的平均对数概率（越高，文本越“典型”），以及互不相同的 4 元语法占全部 4
# 元语法的比例（越低，重复越多）。贪心搜索就是 $k = 1$ 的 top-k 采样，也是束宽为 1 的束搜索：

# %%
N_NEW, N_SAMPLES = 48, 8
prompts = np.repeat(prompt, N_SAMPLES, axis=0)


def mean_log_prob(ids):
    with sl.no_grad():
        log_p = F.log_softmax(model(ids)[0]).numpy()
    new = np.arange(prompt.shape[1], ids.shape[1])
    return float(np.take_along_axis(log_p[:, new - 1], ids[:, new, None], -1).mean())


def distinct_4grams(ids):
    grams = [tuple(row[i:i + 4]) for row in ids[:, prompt.shape[1]:] for i in range(N_NEW - 3)]
    return len(set(grams)) / len(grams)


sl.manual_seed(0)
outputs = {
    "贪心搜索": model.generate(prompts, N_NEW, do_sample=False),
    "束搜索，W = 4": np.repeat(beam_search(model, prompt, N_NEW, beam_width=4)[0], N_SAMPLES, 0),
    "τ = 0.7": model.generate(prompts, N_NEW, temperature=0.7),
    "τ = 1.0": model.generate(prompts, N_NEW, temperature=1.0),
    "τ = 1.5": model.generate(prompts, N_NEW, temperature=1.5),
    "top-k，k = 5": model.generate(prompts, N_NEW, top_k=5),
    "top-p，p = 0.9": model.generate(prompts, N_NEW, top_p=0.9),
}
assert (model.generate(prompt, N_NEW, top_k=1) == outputs["贪心搜索"][:1]).all()
assert (beam_search(model, prompt, N_NEW, beam_width=1)[0] == outputs["贪心搜索"][:1]).all()

scores = {name: (mean_log_prob(ids), distinct_4grams(ids)) for name, ids in outputs.items()}
for name, ids in outputs.items():
    print(f"--- {name}：每字符 log p {scores[name][0]:.2f}，不同的 4 元语法 {scores[name][1]:.2f}")
    print(tokenizer.decode(ids[0].tolist()))
assert scores["贪心搜索"][0] > scores["τ = 1.5"][0] and scores["贪心搜索"][1] < scores["τ = 1.5"][1]

fig, ax = plt.subplots(figsize=(6, 4))
below = {"束搜索，W = 4"}  # 它落在贪心旁边：标签放到点的下方
for name, (log_p, distinct) in scores.items():
    ax.plot(distinct, log_p, "o")
    ax.annotate(name, (distinct, log_p), xytext=(4, -12 if name in below else 4),
                textcoords="offset points")
ax.set(xlabel="不同的 4 元语法的比例（多样性）", ylabel="每字符平均 log p（似然）")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# 最大化似然的方法（贪心搜索、束搜索）得到的是模型认为最可能的文本，但会不断重复自己；
# 提高温度是以似然换取多样性。top-k 和 top-p 截掉了概率很小的长尾，因此采样结果既有多样性，
# 又很少出现高温度下混进来的无意义字符。
#
# ## 束搜索所探索的树
#
# `viz.beam_tree` 运行 `beam_search`，记录每一步保留了哪些假设（自上而下排列，最好的在最上面）、
# 每个假设由哪个假设扩展而来，以及它的累计对数概率；最终最佳假设的路径画成红色。
# 束搜索之所以保留次优的假设，是因为几步之后暂时领先的假设未必通向整体最好的序列。
# 实际是否出现这种情况取决于提示：下面找出最上面的节点不在红色路径上的那些步。

# %%
prompt_tree = np.array(tokenizer.encode("ROMEO:\n"))
levels = viz.beam_search_tree(model, prompt_tree, 6, beam_width=3)
best = [node.token for level in levels for node in level if node.best]
ids, log_p = beam_search(model, prompt_tree[None], 6, beam_width=3)
assert best == ids[0, len(prompt_tree):].tolist()
print(repr(tokenizer.decode(best)), f"log p = {log_p[0]:.3f}")
overtaken = [t + 1 for t, level in enumerate(levels) if not level[0].best]
print("最上面的假设不在最佳路径上的步：", overtaken)
for t in overtaken:
    top = levels[t - 1][0]
    print(f"  {t} 个字符之后，领先者以 {tokenizer.decode([top.token])!r} 结尾"
          f"（Σ log p = {top.log_prob:.2f}）；它不是最终胜出者的前缀")
assert overtaken
viz.beam_tree(model, prompt_tree, 6, beam_width=3, decode=tokenizer.decode, lang=LANG)

# %% [markdown]
# 从提示 `ROMEO:\n` 出发，在上面打印出的那几步，领先的假设（相应各列最上面的节点）都不在红色路径上：
# 另一种开头的续写凭借后面几个高概率的字符反超了它们。贪心搜索只保留领先者，
# 一旦走上这样的开头就无法回头；束宽为 3 的束搜索则可以。
#
# ## 小结
#
# * 贪心搜索和束搜索最大化似然，生成的文本会不断重复；温度、top-k 和 top-p
#   以似然换取多样性，而两种过滤方法又避开了高温度带来的无意义字符。
# * 温度对 logits 进行缩放：$\tau \to 0$ 即贪心搜索，$\tau$ 很大时趋于均匀分布。
# * 束搜索会保留次优的假设，而次优的假设可能最终胜出。
#
# ## 练习
#
# 1. 找一个提示，使束宽 $W = 3$ 的束搜索与贪心搜索每一步都一致；这时次优假设的对数概率有什么特点？
# 2. 加入重复惩罚（把每个已生成过的词元的 logit 除以 1.3），并把它画到似然–多样性图上。
# 3. 课程第 10 周（`notebooks/COURSE.zh.md`）：`scratchlm.exercises` 中的 `top_k`、`top_p` 和
#    `beam_search`（`python -m scratchlm.exercises show top_p`）。
