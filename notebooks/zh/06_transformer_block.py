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
# # 6 · Transformer 块：残差连接、层规范化及其作用
#
# 一个 Transformer 块由注意力（第 5 篇）和前馈网络组成，两者各自包在**残差连接**和
# **层规范化**里：
#
# $$\text{后置层规范化（post-LN，2017）：}\quad x \leftarrow \operatorname{LN}\big(x + F(x)\big),
# \qquad \text{前置层规范化（pre-LN，GPT-2 起）：}\quad
# x \leftarrow x + F\big(\operatorname{LN}(x)\big),$$
#
# 其中 $\operatorname{LN}(x) = \gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$ 在特征维上
# 计算。为什么两者都需要？反向传播把每层的雅可比矩阵连乘起来：
# $\partial L/\partial x_0 = \big(\prod_\ell \partial x_\ell/\partial x_{\ell-1}\big)^{\!\top}
# \partial L/\partial x_L$。没有残差连接时，许多小雅可比矩阵的乘积会缩到零，这就是
# **梯度消失**。有了残差连接，每个因子是 $I + \partial F/\partial x$，其中的恒等项把梯度带过每一层。
# 层规范化则让残差流中不断累加的激活值保持在固定的尺度上。
#
# 我们用 `nn.TransformerEncoderLayer` 搭一个 16 层的堆叠，在同一组权重上用四种方式运行，再用
# `viz.gradient_norms` 比较每一层的梯度范数。

# %%
import math
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm import viz

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
MODES = ["无残差、无层规范化", "有残差、无层规范化", "后置层规范化", "前置层规范化"]


class Stack(nn.Module):
    # 16 个编码器层；`mode` 决定每层的两个子层如何连接
    def __init__(self, n_layers=16, d_model=32, n_head=4):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout=0.0,
                                       activation="gelu") for _ in range(n_layers)])
        self.mode = "前置层规范化"

    def forward(self, x):
        self.scales = []  # 每层之后激活值的标准差
        for layer in self.layers:
            if self.mode == "无残差、无层规范化":
                x = layer.feed_forward(layer.self_attn(x))
            elif self.mode == "有残差、无层规范化":
                x = x + layer.self_attn(x)
                x = x + layer.feed_forward(x)
            else:  # 库中的层，后置或前置层规范化
                layer.norm_first = self.mode == "前置层规范化"
                x = layer(x)
            self.scales.append(float(x.numpy().std()))
        return x


rng = np.random.default_rng(0)
x = sl.tensor(rng.standard_normal((4, 8, 32)).astype(np.float32))
target = sl.tensor(rng.standard_normal((4, 8, 32)).astype(np.float32))
sl.manual_seed(0)
stack = Stack()

# %% [markdown]
# ## 前馈网络
#
# 块的第二个子层是**前馈网络**（FFN）：一个两层感知机，对每个位置单独作用，先把 $d$ 个特征
# 扩宽到 $d_{ff} = 4d$，再变回 $d$：
#
# $$\operatorname{FFN}(x) = W_2\,\operatorname{GELU}(W_1 x + b_1) + b_2,\qquad
# \operatorname{GELU}(u) = u\,\Phi(u) = \frac{u}{2}\Big(1 + \operatorname{erf}
# \frac{u}{\sqrt 2}\Big),$$
#
# 其中 $W_1 \in \mathbb{R}^{d_{ff}\times d}$，$W_2 \in \mathbb{R}^{d \times d_{ff}}$。注意力在位置
# 之间混合信息，前馈网络则逐个位置地变换。在 scratchlm 中它是 `nn.FeedForward`（`c_fc` 即
# $W_1, b_1$，`c_proj` 即 $W_2, b_2$）。下面用 NumPy 按公式计算并与库比较，再检验它对各位置
# 独立（打乱位置，输出也只是跟着打乱）：

# %%
ffn = stack.layers[0].feed_forward
W1, b1 = ffn.c_fc.weight.numpy(), ffn.c_fc.bias.numpy()
W2, b2 = ffn.c_proj.weight.numpy(), ffn.c_proj.bias.numpy()
erf = np.vectorize(math.erf)
u = x.numpy() @ W1.T + b1  # (批量, T, 4d)
by_hand = (u / 2 * (1 + erf(u / math.sqrt(2)))) @ W2.T + b2
library = ffn(x).numpy()
print(f"W1 {W1.shape}，W2 {W2.shape}；最大 |库 − 手算| = "
      f"{np.abs(library - by_hand).max():.1e}")
assert np.allclose(library, by_hand, atol=1e-5)
order = rng.permutation(x.shape[1])
assert np.allclose(ffn(sl.tensor(x.numpy()[:, order])).numpy(), library[:, order], atol=1e-6)

# %% [markdown]
# ## 逐层的梯度范数
#
# 对每种连接方式：前向、损失 $L = \operatorname{MSE}(\text{输出}, \text{目标})$、反向，再把每个
# 参数的梯度复制下来。`viz.gradient_norms(..., by="layer")` 把每层参数的梯度合在一起，
# $\lVert g_\ell\rVert = \sqrt{\sum_{\theta \in \ell} \lVert \partial L/\partial\theta\rVert^2}$，
# 画在对数坐标上。

# %%
def pad(text, width):
    """在 ``text`` 后面补空格，使它在屏幕上占 ``width`` 列：一个汉字占两列，所以中文版的
    表格不能用 ``f"{text:20s}"`` 对齐。"""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


gradients, scales, ratio, norms = {}, {}, {}, {}
for mode in MODES:
    stack.mode = mode
    stack.zero_grad()
    F.mse_loss(stack(x), target).backward()
    gradients[mode] = {name: p.grad.copy() for name, p in stack.named_parameters()
                       if p.grad is not None}
    scales[mode] = stack.scales
    per_layer = [np.sqrt(sum(float((g.astype(np.float64) ** 2).sum())
                             for name, g in gradients[mode].items()
                             if name.startswith(f"layers.{i}.")))
                 for i in range(len(stack.layers))]
    norms[mode], ratio[mode] = np.array(per_layer), per_layer[0] / per_layer[-1]
    print(f"{pad(mode, 20)} ‖g‖ 第一层 / 最后一层 = {ratio[mode]:.3g}")
for mode in ("后置层规范化", "前置层规范化"):
    print(f"{pad(mode, 20)} 每层的 ‖g‖：", " ".join(f"{n:.2f}" for n in norms[mode]))

assert ratio["无残差、无层规范化"] < 1e-6  # 消失了
assert 0.2 < ratio["前置层规范化"] < 5  # 16 层大致相同
post = norms["后置层规范化"]
assert post[:-1].max() < 1.5 * post[:-1].min()  # 后置层规范化：直到最后一层之前都持平……
assert post[-1] > 1.5 * post[:-1].max()  # ……最后一层的梯度更大
viz.gradient_norms(gradients, by="layer", title="每层的梯度范数，共 16 层", lang=LANG)

# %% [markdown]
# 没有残差连接时，第一层的梯度比最后一层小约十九个数量级：它永远学不到东西。只加残差连接就
# 恢复了梯度的流动。在这个未经训练的 16 层堆叠中，后置层规范化的梯度在第 0–14 层基本持平，
# 在最后一层（离损失最近的一层）约大一倍；前置层规范化的梯度保持在 2.0 到 3.4 之间。
# Xiong 等（2020）在初始化时看到同样的模式，而且模型越深越宽越明显：靠近输出的层梯度最大，
# 所以从第一步就用完整的学习率对它们来说太大了，这是后置层规范化的 Transformer 需要学习率
# 预热的原因之一。我们在这里测到的只是最后一层的跳升，而不是朝输入方向的逐层下降。
#
# ## 激活值：层规范化的作用
#
# 层规范化作用在前向计算中。每层之后激活值的标准差：

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for mode in MODES:
    ax.semilogy(range(1, len(scales[mode]) + 1), scales[mode], "o-", ms=3, label=mode)
ax.set(xlabel="层", ylabel="激活值的标准差", title="残差流的尺度")
ax.set_xticks(range(1, len(stack.layers) + 1))
ax.legend()
ax.grid(alpha=0.3, which="both")
plt.show()
print({mode: round(s[-1], 3) for mode, s in scales.items()})
assert abs(scales["后置层规范化"][-1] - 1) < 0.05  # 层规范化是最后一步：尺度为 1
assert scales["有残差、无层规范化"][-1] > scales["有残差、无层规范化"][0]  # 它一直在增长

# %% [markdown]
# 没有规范化的残差连接不断往残差流里累加，所以它的尺度随深度增长；后置层规范化在每层之后把它
# 重置为 1；前置层规范化让它缓慢增长，只对每个子层读入的输入做规范化（GPT 在输出头之前再加一个
# 最终的 `ln_f`）。scratchlm 的每个模型都用这些块：BERT 和编码器-解码器是后置层规范化，与各自的
# 论文一致；GPT 是前置层规范化（`nn.TransformerEncoderLayer(norm_first=True)` 给出同样的连接
# 方式）。
#
# ## 小结
#
# - 一个 Transformer 块由注意力和前馈网络
#   $\operatorname{FFN}(x) = W_2\operatorname{GELU}(W_1x + b_1) + b_2$（逐位置作用）组成，两者
#   各自包在残差连接和层规范化里（后置：相加之后规范化；前置：进入子层之前规范化）。
# - 没有残差连接时，16 层中第一层的梯度只有最后一层的 10⁻¹⁹；有了残差连接，第一层和最后一层
#   相差不到 1.4 倍。
# - 后置层规范化的梯度在最后一层之前基本持平（0.29–0.39），最后一层（0.66）约为其他层的两倍；
#   前置层规范化的梯度保持在 2.0 到 3.4 之间。
# - 没有层规范化时，残差流的尺度随深度增长；后置层规范化在每层之后把它重置为 1。
#
# ## 练习
#
# 1. 把堆叠加深到 32 层：后置层规范化最后一层的跳升会变大吗？其他层仍然持平吗？
# 2. 把前馈网络中的 GELU 换成 ReLU（`activation="relu"`），重做手算。
# 3. 计分练习 **`transformer_block`**（[COURSE.zh.md](../COURSE.zh.md) 第 7 周）要求手推整个
#    前置层规范化块的反向传播（包括前馈网络）：13 个梯度，每个都要通过检验
#    （`python -m scratchlm.exercises show transformer_block`）。
