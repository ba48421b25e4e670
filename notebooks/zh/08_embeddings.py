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
# # 9 · 词嵌入与位置编码
#
# 词元编号只是一个名字。模型的第一层——**词嵌入**——把它变成一个向量：学习得到的矩阵
# $E \in \mathbb{R}^{V \times d}$ 的第 $x$ 行。查一行，等同于用 one-hot 向量乘以 $E$：
#
# $$e(x) = E^\top \mathbf{1}_x = E[x], \qquad \frac{\partial L}{\partial E} = \sum_t
# \mathbf{1}_{x_t}
# \Big(\frac{\partial L}{\partial e_t}\Big)^{\!\top},$$
#
# 所以只有出现过的词元所在的行得到梯度，并对它们的每次出现求和。训练会把行为相似（预测相似的
# 邻居、也被相似的邻居预测）的词元拉到一起：词嵌入变成一个**语义空间**。注意力看不到顺序，
# 所以每个位置也得到一个向量：固定的正弦编码（原始 Transformer），或学习得到的
# $P \in \mathbb{R}^{T \times d}$ 的一行（GPT）——这就是位置编码。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

rng = np.random.default_rng(0)

# %% [markdown]
# ## 查表就是 one-hot 乘积
#
# `nn.Embedding` 做查表；我们把它与 one-hot 乘积比较，把它的梯度与
# $\sum_t \mathbf{1}_{x_t} g_t^\top$
# 比较——一个编号用了两次，就得到两次梯度之和。

# %%
sl.manual_seed(0)
embedding = nn.Embedding(6, 4)
ids = np.array([[1, 3, 1, 5]])  # id 1 twice
out = embedding(ids)
one_hot = np.eye(6)[ids[0]]  # (4, 6)
assert np.allclose(out.numpy()[0], one_hot @ embedding.weight.numpy())

g = rng.standard_normal(out.shape).astype(np.float32)
out.backward(g)
print("rows with a gradient:", np.flatnonzero(np.abs(embedding.weight.grad).sum(1)))
assert np.allclose(embedding.weight.grad, one_hot.T @ g[0], atol=1e-6)

# %% [markdown]
# ## 训练后的字符嵌入
#
# 我们在莎士比亚上把一个小的字符级 GPT 训练 300 步（几秒钟），读取它的词元嵌入
# `transformer.wte.weight`（每个字符 64 个数）。相似度用余弦衡量：
# $\cos(u, v) = u^\top v / (\lVert u\rVert\,\lVert v\rVert)$。训练之前，字母是随机向量：两个小写字
# 母
# 之间的平均余弦，与一个小写和一个大写字母之间的差不多。训练之后两组分开了：

# %%
text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                      n_embd=64))

lower = [tokenizer.encode(c)[0] for c in "abcdefghijklmnopqrstuvwxyz"]
upper = [tokenizer.encode(c)[0] for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]


def cosines():
    weight = model.transformer.wte.weight.numpy()
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    return unit @ unit.T


def group_gap():
    s = cosines()
    within = np.mean([s[i, j] for group in (lower, upper) for i in group for j in group if i != j])
    across = s[np.ix_(lower, upper)].mean()
    return within, across


before = group_gap()
config = TrainConfig(max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                     eval_interval=300, eval_batches=5, checkpoint_interval=10_000)
Trainer(model, train_ids, val_ids, config).train(progress=False)
after = group_gap()
print(f"mean cosine within a case / across cases: before {before[0]:.3f} / {before[1]:.3f}, "
      f"after {after[0]:.3f} / {after[1]:.3f}")
assert abs(before[0] - before[1]) < 0.05 and after[0] - after[1] > 0.2

# %% [markdown]
# ### 最近邻
#
# 与几个选定字符的嵌入最接近（余弦最大）的字符。没有人告诉过模型什么是元音：

# %%
similarity = cosines()
neighbours = {}
for ch in "aeATs.,1":
    i = tokenizer.encode(ch)[0]
    nearest = [j for j in np.argsort(-similarity[i]) if j != i][:5]
    neighbours[ch] = [tokenizer.decode([j]) for j in nearest]
    print(f"{ch!r}: {neighbours[ch]}")
assert sum(c in "aeiouy" for c in neighbours["a"]) >= 3

# %% [markdown]
# ### 嵌入空间的地图
#
# `viz.embedding_map` 把 64 维向量投影到它们的两个主成分上（PCA：向量变化最大的方向，由中心化
# 矩阵的 SVD 得到），并给每个点加标签。元音用红色画出：

# %%
shown = [c for c in tokenizer.chars if c.isalnum() or c in ".,;:!?'-"]
vectors = model.transformer.wte.weight.numpy()[[tokenizer.encode(c)[0] for c in shown]]
viz.embedding_map(vectors, shown, highlight=list("aeiouAEIOU"),
                  title="character embeddings of a GPT trained for 300 steps")

# %% [markdown]
# ## 正弦位置编码：每个偏移量是一次旋转
#
# 第 5 篇画出了正弦编码表。为什么用这些函数？对每个频率 $\omega_i = 10000^{-2i/d}$，
# $(\sin \omega_i p, \cos \omega_i p)$ 向后移动 $k$ 个位置，等于把它旋转角度 $\omega_i k$：
#
# $$\begin{pmatrix}\sin \omega_i (p + k)\\ \cos \omega_i (p + k)\end{pmatrix} =
# \begin{pmatrix}\cos \omega_i k & \sin \omega_i k\\ -\sin \omega_i k & \cos \omega_i
# k\end{pmatrix}
# \begin{pmatrix}\sin \omega_i p\\ \cos \omega_i p\end{pmatrix}.$$
#
# 所以一个固定的线性映射 $R_k$ 把每个位置都映到 $k$ 步之后的位置——一层网络可以一次学会、
# 对所有位置都适用的关系。我们按公式构造 $R_k$，作用在库的编码表上：

# %%
d_model, max_len, k = 32, 128, 7
encoding = nn.SinusoidalPositionalEncoding(d_model, max_len)
table = encoding(sl.tensor(np.zeros((1, max_len, d_model), dtype=np.float32))).numpy()[0]

omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
R = np.zeros((d_model, d_model))
for i, w in enumerate(omega):
    c, s = np.cos(w * k), np.sin(w * k)
    R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, s], [-s, c]]
moved = table[:-k] @ R.T
print("max |R_k PE(p) - PE(p + k)| =", np.abs(moved - table[k:]).max())
assert np.allclose(moved, table[k:], atol=1e-5)

# %% [markdown]
# ## 学习得到的位置
#
# GPT 改为学习它的位置向量，即 `transformer.wpe.weight` 的各行。仅仅 300 步之后它们就已经带有顺序：
# 相邻的位置有相似的向量。左图：64 个学到的位置两两之间的余弦，以及正弦编码两两之间的余弦
# （后者只取决于距离）；右图：学到的位置的地图，每个点标上它的序号。

# %%
learned = model.transformer.wpe.weight.numpy()
unit = learned / np.linalg.norm(learned, axis=1, keepdims=True)
learned_cos = unit @ unit.T
sin_unit = table[:64] / np.linalg.norm(table[:64], axis=1, keepdims=True)
near = np.mean(np.diagonal(learned_cos, 1))
far = np.mean([np.diagonal(learned_cos, d).mean() for d in range(30, 60)])
print(f"learned positions: mean cosine at distance 1 {near:.2f}, at distance 30-59 {far:.2f}")
assert near > far

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, matrix, title in [(axes[0], learned_cos, "learned (GPT)"),
                          (axes[1], sin_unit @ sin_unit.T, "sinusoidal")]:
    image = ax.imshow(matrix, cmap="RdBu", vmin=-1, vmax=1)
    ax.set(title=f"cos(position i, position j), {title}", xlabel="j", ylabel="i")
fig.colorbar(image, ax=axes)
plt.show()
viz.embedding_map(learned, [str(p) for p in range(len(learned))],
                  title="learned position vectors, PCA")

# %% [markdown]
# 词嵌入是模型关于词元的知识所在之处；接下来它们与注意力（第 5 篇）组合成 Transformer 块
# （第 6 篇）。
