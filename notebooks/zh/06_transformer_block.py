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
# # 10 · Transformer 块：残差连接、层归一化，以及为什么需要它们
#
# 一个 Transformer 块由注意力和前馈网络组成，两者各自包在**残差连接**和**层归一化**里：
#
# $$\text{post-LN (2017):}\quad x \leftarrow \operatorname{LN}\big(x + F(x)\big), \qquad
# \text{pre-LN (GPT-2 on):}\quad x \leftarrow x + F\big(\operatorname{LN}(x)\big),$$
#
# 其中 $\operatorname{LN}(x) = \gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$
# 在特征维上计算。
# 为什么两者都要？反向传播把每层的雅可比矩阵连乘起来：
# $\partial L/\partial x_0 = \big(\prod_\ell \partial x_\ell/\partial x_{\ell-1}\big)^{\!\top}
# \partial L/\partial
# x_L$。没有残差时，许多小雅可比矩阵的乘积会缩到零：这就是**梯度消失**。有了残差，
# 每个因子是 $I + \partial F/\partial x$，恒等项把梯度带过每一层。层归一化则让不断被残差流累加的
# 激活值保持在固定的尺度上。
#
# 我们用 `nn.TransformerEncoderLayer` 搭一个 16 层的堆叠，在同一组权重上用四种方式运行，再用
# `viz.gradient_norms` 比较每一层的梯度范数。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm import viz

MODES = ["no residual, no LN", "residual, no LN", "post-LN", "pre-LN"]


class Stack(nn.Module):
    # 16 encoder layers; `mode` picks how each layer's two sublayers are wired
    def __init__(self, n_layers=16, d_model=32, n_head=4):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(d_model, n_head, 4 * d_model, dropout=0.0,
                                       activation="gelu") for _ in range(n_layers)])
        self.mode = "pre-LN"

    def forward(self, x):
        self.scales = []  # the activations' standard deviation after each layer
        for layer in self.layers:
            if self.mode == "no residual, no LN":
                x = layer.feed_forward(layer.self_attn(x))
            elif self.mode == "residual, no LN":
                x = x + layer.self_attn(x)
                x = x + layer.feed_forward(x)
            else:  # the library's layer, post-LN or pre-LN
                layer.norm_first = self.mode == "pre-LN"
                x = layer(x)
            self.scales.append(float(x.numpy().std()))
        return x


rng = np.random.default_rng(0)
x = sl.tensor(rng.standard_normal((4, 8, 32)).astype(np.float32))
target = sl.tensor(rng.standard_normal((4, 8, 32)).astype(np.float32))
sl.manual_seed(0)
stack = Stack()

# %% [markdown]
# ## 逐层的梯度范数
#
# 对每种连接方式：前向、损失 $L = \operatorname{MSE}(\text{output}, \text{target})$、反向，再把每个
# 参数的梯度复制下来。`viz.gradient_norms(..., by="layer")` 把每层参数的梯度合在一起，
# $\lVert g_\ell\rVert = \sqrt{\sum_{\theta \in \ell} \lVert \partial L/\partial\theta\rVert^2}$，
# 画在对数坐标上。

# %%
gradients, scales, ratio = {}, {}, {}
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
    ratio[mode] = per_layer[0] / per_layer[-1]
    print(f"{mode:20s} ‖g‖ first layer / last layer = {ratio[mode]:.3g}")

assert ratio["no residual, no LN"] < 1e-6  # vanished
assert 0.2 < ratio["pre-LN"] < 5  # about even through all 16 layers
assert ratio["post-LN"] < ratio["pre-LN"]  # post-LN: smaller towards the input
viz.gradient_norms(gradients, by="layer", title="gradient norm per layer, 16 layers")

# %% [markdown]
# 没有残差时，前几层的梯度比最后几层小约二十个数量级：它们永远学不到东西。仅有残差就恢复了梯度的
# 流动。post-LN 让每个梯度在相加之后都经过一次层归一化，梯度朝输入方向逐渐变小——这是 post-LN
# Transformer 需要学习率预热的原因之一（Xiong 等，2020）。pre-LN
# 不碰恒等路径，每一层的梯度大致相同。
#
# ## 激活值：层归一化的作用
#
# 故事的另一半在前向过程中。每层之后激活值的标准差：

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for mode in MODES:
    ax.semilogy(range(1, len(scales[mode]) + 1), scales[mode], "o-", ms=3, label=mode)
ax.set(xlabel="layer", ylabel="std of the activations", title="the residual stream's scale")
ax.legend()
ax.grid(alpha=0.3, which="both")
plt.show()
print({mode: round(s[-1], 3) for mode, s in scales.items()})
assert abs(scales["post-LN"][-1] - 1) < 0.05  # LN is the last step: unit scale
assert scales["residual, no LN"][-1] > scales["residual, no LN"][0]  # it keeps growing

# %% [markdown]
# 没有归一化的残差不断往残差流里累加，所以尺度随深度增长；post-LN 在每层之后把它重置为 1；pre-LN
# 让它缓慢增长，只对每个子层读取的输入做归一化（GPT 在输出头之前再加一个最终的 `ln_f`）。scratchlm
# 的每个模型都用这些块：BERT 和编码器-解码器是 post-LN，与各自的论文一致；GPT 是 pre-LN
# （`nn.TransformerEncoderLayer(norm_first=True)` 给出同样的连接方式）。
