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
# # 8 · 词嵌入与位置编码
#
# 第 7 篇的 GPT 一开头就用了两张表，我们当时没有打开看。这一篇打开它们。词元的编号只是一个
# 名字，模型的第一层——**嵌入层**——把它变成一个向量：可学习矩阵 $E \in \mathbb{R}^{V \times d}$
# 的第 $x$ 行。取出一行，等于用独热向量乘以 $E$：
#
# $$e(x) = E^\top \mathbf{1}_x = E[x], \qquad \frac{\partial L}{\partial E} = \sum_t
# \mathbf{1}_{x_t} \Big(\frac{\partial L}{\partial e_t}\Big)^{\!\top},$$
#
# 所以只有出现过的词元所在的行才得到梯度，并且按出现次数累加。训练会让行为相似的词元（预测
# 相似的邻居、也被相似的邻居预测）彼此靠近：嵌入成为一个**语义空间**。注意力不考虑顺序，所以每个
# 位置也要有一个向量：固定的正弦编码（原始 Transformer），或者可学习矩阵
# $P \in \mathbb{R}^{T \times d}$ 的一行（GPT）。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)

# %% [markdown]
# ## 查表就是与独热向量相乘
#
# `nn.Embedding` 负责查表；我们把它与独热向量的乘积比较，并把它的梯度与
# $\sum_t \mathbf{1}_{x_t} g_t^\top$ 比较——一个编号用了两次，就得到两次梯度之和。

# %%
sl.manual_seed(0)
embedding = nn.Embedding(6, 4)
ids = np.array([[1, 3, 1, 5]])  # 编号 1 出现两次
out = embedding(ids)
one_hot = np.eye(6)[ids[0]]  # (4, 6)
assert np.allclose(out.numpy()[0], one_hot @ embedding.weight.numpy())

g = rng.standard_normal(out.shape).astype(np.float32)
out.backward(g)
print("有梯度的行：", np.flatnonzero(np.abs(embedding.weight.grad).sum(1)))
assert np.allclose(embedding.weight.grad, one_hot.T @ g[0], atol=1e-6)

# %% [markdown]
# ## 训练出来的字符嵌入
#
# 和第 7 篇一样，我们在莎士比亚文本上训练一个字符级 GPT，只是更小、更短（2 层，300 步），
# 然后读出它的词元嵌入 `transformer.wte.weight`（每个字符 64 个数）。相似度用余弦衡量：
# $\cos(u, v) = u^\top v / (\lVert u\rVert\,\lVert v\rVert)$。训练之前，字母都是随机向量：两个小写
# 字母之间的平均余弦，与一个小写字母和一个大写字母之间的差不多。训练之后，两组分开了：

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


def show_validation(trainer, loss):
    print(f"训练 {trainer.step} 步后：验证损失 {loss:.4f}"
          f"（困惑度 {np.exp(loss):.2f}）")


Trainer(model, train_ids, val_ids, config).train(progress=False, on_validate=show_validation)
after = group_gap()
print(f"平均余弦（同一种大小写内 / 不同大小写之间）：训练前 {before[0]:.3f} / {before[1]:.3f}，"
      f"训练后 {after[0]:.3f} / {after[1]:.3f}")
assert abs(before[0] - before[1]) < 0.05 and after[0] - after[1] > 0.2

# %% [markdown]
# ### 最近邻
#
# 下面列出与几个选定字符的嵌入最接近（余弦最大）的字符。没有人告诉过模型什么是元音：

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
# `viz.embedding_map` 把 64 维向量投影到它们的前两个主成分上（PCA：向量变化最大的两个方向，
# 由中心化矩阵的奇异值分解得到），并给每个点标上字符。元音画成红色：

# %%
shown = [c for c in tokenizer.chars if c.isalnum() or c in ".,;:!?'-"]
vectors = model.transformer.wte.weight.numpy()[[tokenizer.encode(c)[0] for c in shown]]
viz.embedding_map(vectors, shown, highlight=list("aeiouAEIOU"),
                  title="训练 300 步的 GPT 的字符嵌入", lang=LANG)

# %% [markdown]
# ## 正弦位置编码：每个偏移对应一个旋转
#
# 第 5 篇画出了正弦位置编码表。为什么用这些函数？对每个频率 $\omega_i = 10000^{-2i/d}$，把
# $(\sin \omega_i p, \cos \omega_i p)$ 向后移动 $k$ 个位置，等于把它旋转角度 $\omega_i k$：
#
# $$\begin{pmatrix}\sin \omega_i (p + k)\\ \cos \omega_i (p + k)\end{pmatrix} =
# \begin{pmatrix}\cos \omega_i k & \sin \omega_i k\\ -\sin \omega_i k & \cos \omega_i
# k\end{pmatrix}
# \begin{pmatrix}\sin \omega_i p\\ \cos \omega_i p\end{pmatrix}.$$
#
# 所以同一个线性映射 $R_k$ 把每个位置都带到 $k$ 个位置之后——模型的一层只需学一次，就对所有
# 位置适用。我们按公式构造 $R_k$，作用在库给出的编码表上：

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
# ## 可学习的位置向量
#
# GPT 则学习它的位置向量，即 `transformer.wpe.weight` 的各行。只训练了 300 步，它们就已经带有
# 顺序信息：相邻位置的向量相似。左图是 64 个可学习位置两两之间的余弦，右图是正弦编码两两之间的
# 余弦（只取决于距离）；下面的地图是可学习位置向量的 PCA 投影，每个点标上它的位置编号。

# %%
learned = model.transformer.wpe.weight.numpy()
unit = learned / np.linalg.norm(learned, axis=1, keepdims=True)
learned_cos = unit @ unit.T
sin_unit = table[:64] / np.linalg.norm(table[:64], axis=1, keepdims=True)
near = np.mean(np.diagonal(learned_cos, 1))
far = np.mean([np.diagonal(learned_cos, d).mean() for d in range(30, 60)])
print(f"可学习的位置：距离 1 的平均余弦 {near:.2f}，距离 30-59 的 {far:.2f}")
assert near > far

fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
for ax, matrix, title in [(axes[0], learned_cos, "可学习（GPT）"),
                          (axes[1], sin_unit @ sin_unit.T, "正弦编码")]:
    image = ax.imshow(matrix, cmap="RdBu", vmin=-1, vmax=1)
    ax.set(title=title, xlabel="位置 j", ylabel="位置 i")
fig.suptitle("位置 i 与位置 j 的向量之间的余弦")
fig.colorbar(image, ax=axes)
plt.show()
viz.embedding_map(learned, [str(p) for p in range(len(learned))],
                  title="可学习的位置向量，PCA 投影", lang=LANG)

# %% [markdown]
# 嵌入是模型关于词元的知识所在之处。第 5、6 篇把这样的向量送进注意力和 Transformer 块，第 7 篇
# 在 GPT 中训练了它们；第 9 篇用这样的模型解码生成文本。
#
# ## 小结
#
# - 嵌入查表 $E[x]$ 等于独热向量与 $E$ 的乘积；它的梯度只到达出现过的编号所在的行，并按出现
#   次数累加。
# - 训练 300 步后，字符嵌入按大小写分组（同一种大小写内的平均余弦为 0.38，不同大小写之间为
#   −0.14），`a` 的最近邻是其他元音。
# - 正弦编码向后移动 $k$ 个位置，等于它自身的一个固定旋转 $R_k$；GPT 学到的位置向量在相邻位置
#   之间最相似（距离 1 时余弦为 0.47，距离 30–59 时为 −0.19）。
#
# ## 练习
#
# 1. 把训练从 300 步改为 1,000 步：同一种大小写内与不同大小写之间的余弦差距会变大吗？
# 2. 找出在第 300 步和第 1,000 步之间最近邻变化最大的字符。
# 3. 计分练习 **`embedding`**（[COURSE.zh.md](../COURSE.zh.md) 第 5 周）要求写出查表的反向传播：
#    对重复编号做分散累加（`python -m scratchlm.exercises show embedding`）。
