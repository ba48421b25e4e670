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
# # 5 · 注意力
#
# Transformer 用**缩放点积注意力**在位置之间混合信息。每个位置提出一个查询 $q$，每个位置也
# 提供一个键 $k$ 和一个值 $v$（查询、键、值分别是 $Q$、$K$、$V$ 的行）。输出是各个值的
# 加权平均，权重取决于查询与每个键的匹配程度：
#
# $$\operatorname{Attention}(Q, K, V) = \operatorname{softmax}\!\left(\frac{Q
# K^\top}{\sqrt{d_k}}\right) V$$
#
# 其中 $Q \in \mathbb{R}^{T_q \times d_k}$，$K \in \mathbb{R}^{T_k \times d_k}$，
# $V \in \mathbb{R}^{T_k \times d_v}$，softmax 沿每一行（对所有键）计算。我们先在 NumPy 数组上
# 手算，再与 `F.scaled_dot_product_attention` 比较——它是一个融合的运算，反向传播也是手工推导的。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm import viz

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)


# %%
def softmax_rows(scores):
    """沿最后一个轴的 softmax，先减去最大值（结果不变，不会溢出）。"""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


T_q, T_k, d_k, d_v = 3, 5, 4, 2
Q = rng.standard_normal((T_q, d_k))
K = rng.standard_normal((T_k, d_k))
V = rng.standard_normal((T_k, d_v))

weights = softmax_rows(Q @ K.T / np.sqrt(d_k))  # (T_q, T_k)：每行之和为 1
by_hand = weights @ V
library = F.scaled_dot_product_attention(sl.tensor(Q), sl.tensor(K), sl.tensor(V))
print("注意力权重（每行之和为 1）：\n", weights.round(3))
print("手算：\n", by_hand)
print("F.scaled_dot_product_attention:\n", library.numpy())
assert np.allclose(library.numpy(), by_hand)

# %% [markdown]
# ## 为什么要除以 $\sqrt{d_k}$？
#
# 如果 $q$ 和 $k$ 的分量相互独立、均值为 0、方差为 1，那么 $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$
# 的方差是 $d_k$；除以 $\sqrt{d_k}$ 让方差回到 1，与头的维度无关：

# %%
for d in (4, 64, 512):
    q, k = rng.standard_normal((2, 10_000, d))
    dots = (q * k).sum(axis=1)
    scaled = dots / np.sqrt(d)
    print(f"d_k = {d:3d}: std(q·k) = {dots.std():6.2f},  std(q·k/√d_k) = {scaled.std():.2f}")

# %% [markdown]
# 这为什么重要：softmax 的雅可比矩阵是 $\partial p_i/\partial s_j = p_i(\delta_{ij} - p_j)$，所以
# 对上游梯度 $g = \partial L/\partial p$，到达分数的梯度是 $\partial L/\partial s = p \odot (g -
# p\cdot g)$。当分数很大、$p$ 几乎是 one-hot 向量时（一个键上 $p_i \approx 1$，其余 $\approx 0$），
# 每个因子 $p_i(\delta_{ij}-p_j)$ 都接近 0，梯度也就接近 0。下面让一个查询面对 16 个随机的键，
# 每种头维度重复 500 次；梯度来自引擎（`F.softmax` 的反向传播），$g$ 随机，并与公式核对一次。

# %%
def softmax_gradient_norms(d, scale, samples=500, keys=16):
    """最大权重的平均值，以及随机 g 经过 F.softmax 得到的 ‖∂L/∂s‖ 的中位数。"""
    q = rng.standard_normal((samples, 1, d))
    k = rng.standard_normal((samples, keys, d))
    scores = sl.tensor((q * k).sum(axis=-1) * scale, requires_grad=True)  # (samples, keys)
    g = rng.standard_normal((samples, keys))
    p = F.softmax(scores, axis=-1)
    (p * sl.tensor(g)).sum().backward()
    P = p.numpy()
    formula = P * (g - (P * g).sum(axis=-1, keepdims=True))  # p ⊙ (g − p·g)，逐行
    assert np.allclose(scores.grad, formula, atol=1e-10)
    return P.max(axis=-1).mean(), np.median(np.linalg.norm(scores.grad, axis=-1))


print("d_k   最大权重：  q·k   q·k/√d_k     ‖∂L/∂s‖ 中位数：  q·k   q·k/√d_k")
for d in (4, 64, 512):
    raw_top, raw_grad = softmax_gradient_norms(d, 1.0)
    top, grad = softmax_gradient_norms(d, 1 / np.sqrt(d))
    print(f"{d:3d}   {raw_top:21.3f} {top:10.3f}   {raw_grad:22.2e} {grad:10.2e}")
    if d == 512:
        assert raw_top > 0.9 and raw_grad < 0.01 * grad  # 权重接近 one-hot，梯度消失

# %% [markdown]
# ## 掩码
#
# 布尔掩码说明每个查询**可以**关注哪些键（True），与 PyTorch 一致。被屏蔽的分数在 softmax 之前
# 变成 $-\infty$，所以它们的权重恰好为 0。
#
# * **因果**掩码只让位置 $i$ 看到位置 $j \le i$：**自回归语言模型**（GPT）根据前面的词元
#   预测每个词元，不能偷看它正要预测的词元：`is_causal=True`。**反向语言模型**根据后面的
#   词元预测每个词元：它的掩码是转置，$j \ge i$，等同于在倒序的序列上做因果注意力（下面核对）。
# * **填充**掩码在一个批量中遮住较短序列的填充键。

# %%
T = 4
X = rng.standard_normal((T, d_k))
causal = np.tril(np.ones((T, T), dtype=bool))
scores = X @ X.T / np.sqrt(d_k)
causal_weights = softmax_rows(np.where(causal, scores, -np.inf))
print("因果注意力权重：\n", causal_weights.round(3))

Xt = sl.tensor(X)
out = F.scaled_dot_product_attention(Xt, Xt, Xt, is_causal=True)
assert np.allclose(out.numpy(), causal_weights @ X)
same = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=causal)
assert np.allclose(same.numpy(), out.numpy())

padding = np.array([True, True, True, False])  # 最后一个键是填充
padded = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=padding)
assert np.allclose(padded.numpy(), softmax_rows(np.where(padding, scores, -np.inf)) @ X)
reverse = F.scaled_dot_product_attention(Xt, Xt, Xt, attn_mask=causal.T)  # j ≥ i
flipped = sl.tensor(X[::-1].copy())
backwards = F.scaled_dot_product_attention(flipped, flipped, flipped, is_causal=True)
assert np.allclose(reverse.numpy(), backwards.numpy()[::-1])
print("因果掩码、反向掩码和填充掩码都与手算一致")

# %% [markdown]
# 这个运算的反向传播是手工推导的（见它的文档字符串）：记 $P$ 为权重，$G = \partial L/\partial O$，
# 则 $\partial L/\partial V = P^\top G$，
# $\partial L/\partial S = P \odot (G V^\top - \operatorname{rowsum}(G V^\top \odot P))$，
# $\partial L/\partial Q = \partial L/\partial S\, K/\sqrt{d_k}$，
# $\partial L/\partial K = (\partial L/\partial S)^\top Q/\sqrt{d_k}$。
# float64 梯度检验（带批量维度、带因果掩码）确认了这一点：

# %%
q, k, v = (sl.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True) for _ in range(3))
print(sl.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                   [q, k, v]))

# %% [markdown]
# ## 多头注意力
#
# 一个注意力只用一组权重做平均。**多头**注意力在 $d/H$ 维的投影上并行运行 $H$ 个注意力，
# 再把结果拼接起来：
#
# $$\operatorname{MultiHead}(X) = \operatorname{Concat}(\text{head}_1, \dots, \text{head}_H)\,
# W_O^\top, \qquad \text{head}_h = \operatorname{Attention}(X W_{Q,h}^\top, X W_{K,h}^\top, X
# W_{V,h}^\top).$$
#
# `nn.MultiHeadAttention` 用一个融合的投影 `c_attn` 同时算出 $Q, K, V$（$d \to 3d$：先是 $Q$ 的行，
# 再是 $K$，最后是 $V$），并用跨步视图切分各个头，不对头做循环。下面从它的权重出发逐头算一遍：

# %%
sl.manual_seed(0)
d_model, n_heads, T = 8, 2, 5
mha = nn.MultiHeadAttention(d_model, n_heads)
x = rng.standard_normal((1, T, d_model)).astype(np.float32)

W_qkv, b_qkv = mha.c_attn.weight.numpy(), mha.c_attn.bias.numpy()
W_o, b_o = mha.c_proj.weight.numpy(), mha.c_proj.bias.numpy()
Q_all, K_all, V_all = np.split(x[0] @ W_qkv.T + b_qkv, 3, axis=-1)  # 每个都是 (T, d_model)
head_dim = d_model // n_heads
heads = []
for h in range(n_heads):  # 循环只为便于阅读；库一次算出所有头
    cols = slice(h * head_dim, (h + 1) * head_dim)
    w = softmax_rows(Q_all[:, cols] @ K_all[:, cols].T / np.sqrt(head_dim))
    heads.append(w @ V_all[:, cols])
by_hand = np.concatenate(heads, axis=-1) @ W_o.T + b_o

library = mha(sl.tensor(x)).numpy()[0]
print("最大 |库 − 手算| =", np.abs(library - by_hand).max())
assert np.allclose(library, by_hand, atol=1e-5)

# %% [markdown]
# ## 正弦位置编码
#
# 注意力本身不考虑顺序：打乱位置，输出也只是跟着打乱。原始 Transformer 给每个词元向量加上一个
# 固定的位置编码：
#
# $$PE_{(pos,\,2i)} = \sin\!\left(\frac{pos}{10000^{2i/d}}\right), \qquad PE_{(pos,\,2i+1)} =
# \cos\!\left(\frac{pos}{10000^{2i/d}}\right),$$
#
# 每个频率一对正弦、余弦，频率从 1 到 1/10000 按几何级数递减。
# `nn.SinusoidalPositionalEncoding` 保存这张表；我们按公式重建它。

# %%
d_model, max_len = 64, 100
encoding = nn.SinusoidalPositionalEncoding(d_model, max_len)
table = encoding(sl.tensor(np.zeros((1, max_len, d_model), dtype=np.float32))).numpy()[0]

pos = np.arange(max_len)[:, None]
two_i = np.arange(0, d_model, 2)[None, :]
angle = pos / 10000 ** (two_i / d_model)
formula = np.empty((max_len, d_model))
formula[:, 0::2], formula[:, 1::2] = np.sin(angle), np.cos(angle)
assert np.allclose(table, formula, atol=1e-6)

fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
image = left.imshow(table, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
left.set(xlabel="特征", ylabel="位置", title="PE（位置，特征）")
fig.colorbar(image, ax=left)
for feature in (10, 16, 24, 40):
    right.plot(table[:, feature], label=f"特征 {feature}")
right.set(xlabel="位置", title="编号小的特征振荡快，编号大的振荡慢")
right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
plt.show()

# %% [markdown]
# 因为 $pos + k$ 处的 $\sin$、$\cos$ 是 $pos$ 处的一个旋转，两个编码的点积只取决于它们的距离
# $k$，所以相对位置很容易读出来：

# %%
dots = table @ table.T
for k in (1, 5, 20):
    along_diagonal = np.diagonal(dots, offset=k)
    spread = np.ptp(along_diagonal)
    print(f"PE(pos)·PE(pos+{k:2d}) = {along_diagonal[:3].round(4)} …（极差 {spread:.1e}）")
    assert spread < 1e-3

# %% [markdown]
# ## 小结
#
# - 注意力用权重 $\operatorname{softmax}(QK^\top/\sqrt{d_k})$ 对值做加权平均，每个查询一行；
#   手算结果等于 `F.scaled_dot_product_attention`。
# - 不缩放时，$q\cdot k$ 的标准差是 $\sqrt{d_k}$（$d_k = 512$ 时为 22）；这时 softmax 平均把
#   0.94 的权重放在一个键上，到达分数的梯度缩小到 2·10⁻⁴，而按 $1/\sqrt{d_k}$ 缩放时为 0.27。
# - 掩码把被屏蔽的分数设为 $-\infty$：因果掩码（不能偷看后面）和填充掩码。
# - 多头注意力在 $d/H$ 维的投影上运行 $H$ 个注意力再拼接；正弦位置编码给每个位置一个编码，
#   两个编码的点积只取决于距离。
#
# ## 练习
#
# 1. 把键的个数从 16 改成 256，重做梯度表：不缩放的 softmax 变得更接近还是更远离 one-hot？
# 2. 说明在因果掩码下，$\partial L/\partial K_j$ 不会从查询 $i < j$ 那里得到贡献：让梯度经过
#    `is_causal=True`，其中 $g$ 只在第 0 行非零。
# 3. [COURSE.zh.md](../COURSE.zh.md) 第 6 周的计分练习：**`attention`**（它的反向传播，一次一个
#    矩阵乘法）、**`attention_masked`** 和 **`split_heads`**
#    （`python -m scratchlm.exercises show attention`）。
