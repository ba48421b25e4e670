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
# # 6 · The Transformer block: residual connections, layer norm, and why
#
# A Transformer block is attention (notebook 5) and a feed-forward network, each wrapped in a
# **residual connection** and a **layer normalization**:
#
# $$\text{post-LN (2017):}\quad x \leftarrow \operatorname{LN}\big(x + F(x)\big), \qquad
# \text{pre-LN (GPT-2 on):}\quad x \leftarrow x + F\big(\operatorname{LN}(x)\big),$$
#
# with $\operatorname{LN}(x) = \gamma \odot (x - \mu)/\sqrt{\sigma^2 + \epsilon} + \beta$ over the
# features. Why both? Backpropagation multiplies one Jacobian per layer,
# $\partial L/\partial x_0 = \big(\prod_\ell \partial x_\ell/\partial x_{\ell-1}\big)^{\!\top}
# \partial L/\partial x_L$. Without the residual, a product of many small Jacobians shrinks to
# nothing: **vanishing gradients**. With it, each factor is $I + \partial F/\partial x$, and the
# identity carries the gradient through every layer. Layer norm keeps the activations, which a
# residual stream keeps adding to, at a fixed scale.
#
# We build one 16-layer stack from `nn.TransformerEncoderLayer` and run it four ways on the same
# weights, then compare the gradient norm of every layer with `viz.gradient_norms`.

# %%
import math
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
from scratchlm import viz

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
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
# ## The feed-forward network
#
# The block's second sublayer, the **feed-forward network** (FFN), is a two-layer perceptron
# applied to every position on its own, widening the $d$ features to $d_{ff} = 4d$ and back:
#
# $$\operatorname{FFN}(x) = W_2\,\operatorname{GELU}(W_1 x + b_1) + b_2,\qquad
# \operatorname{GELU}(u) = u\,\Phi(u) = \frac{u}{2}\Big(1 + \operatorname{erf}
# \frac{u}{\sqrt 2}\Big),$$
#
# with $W_1 \in \mathbb{R}^{d_{ff}\times d}$, $W_2 \in \mathbb{R}^{d \times d_{ff}}$. Attention
# mixes positions; the FFN transforms each one. In scratchlm it is `nn.FeedForward`
# (`c_fc` is $W_1, b_1$, `c_proj` is $W_2, b_2$). The formula in NumPy, against the library, and
# the check that it treats positions separately (permuting them permutes the output):

# %%
ffn = stack.layers[0].feed_forward
W1, b1 = ffn.c_fc.weight.numpy(), ffn.c_fc.bias.numpy()
W2, b2 = ffn.c_proj.weight.numpy(), ffn.c_proj.bias.numpy()
erf = np.vectorize(math.erf)
u = x.numpy() @ W1.T + b1  # (batch, T, 4d)
by_hand = (u / 2 * (1 + erf(u / math.sqrt(2)))) @ W2.T + b2
library = ffn(x).numpy()
print(f"W1 {W1.shape}, W2 {W2.shape};  max |library − by hand| = "
      f"{np.abs(library - by_hand).max():.1e}")
assert np.allclose(library, by_hand, atol=1e-5)
order = rng.permutation(x.shape[1])
assert np.allclose(ffn(sl.tensor(x.numpy()[:, order])).numpy(), library[:, order], atol=1e-6)

# %% [markdown]
# ## Gradient norms, layer by layer
#
# For each wiring: a forward pass, the loss $L = \operatorname{MSE}(\text{output}, \text{target})$,
# a backward pass, and a copy of every parameter's gradient. `viz.gradient_norms(..., by="layer")`
# pools the gradients of each layer's parameters, $\lVert g_\ell\rVert = \sqrt{\sum_{\theta \in
# \ell} \lVert \partial L/\partial\theta\rVert^2}$, on a log scale.

# %%
def pad(text, width):
    """``text`` and the spaces that make it ``width`` columns wide on screen: a Chinese
    character takes two columns, so the Chinese edition's tables cannot align with
    ``f"{text:20s}"``."""
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
    print(f"{pad(mode, 20)} ‖g‖ first layer / last layer = {ratio[mode]:.3g}")
for mode in ("post-LN", "pre-LN"):
    print(f"{pad(mode, 20)} ‖g‖ per layer:", " ".join(f"{n:.2f}" for n in norms[mode]))

assert ratio["no residual, no LN"] < 1e-6  # vanished
assert 0.2 < ratio["pre-LN"] < 5  # about even through all 16 layers
post = norms["post-LN"]
assert post[:-1].max() < 1.5 * post[:-1].min()  # post-LN: flat up to the last layer ...
assert post[-1] > 1.5 * post[:-1].max()  # ... whose gradient is larger
viz.gradient_norms(gradients, by="layer", title="gradient norm per layer, 16 layers", lang=LANG)

# %% [markdown]
# Without residuals the first layer gets a gradient some nineteen orders of magnitude smaller
# than the last one: it would never learn. The residual alone restores the flow. In this
# untrained 16-layer stack, post-LN's gradient is flat over layers 0–14 and about twice as
# large at the last layer, the one nearest the loss; pre-LN's stays between 2.0 and 3.4.
# Xiong et al. (2020) found the same pattern at initialization, larger for deeper and wider
# post-LN models: the layers near the output get the largest gradients, so a full learning
# rate from the first step is too large for them, one reason post-LN Transformers need a
# learning-rate warmup. What we measure here is only the last layer's jump, not a steady
# decline towards the input.
#
# ## Activations: what layer norm is for
#
# Layer norm acts in the forward pass. The standard deviation of the activations after each
# layer:

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for mode in MODES:
    ax.semilogy(range(1, len(scales[mode]) + 1), scales[mode], "o-", ms=3, label=mode)
ax.set(xlabel="layer", ylabel="std of the activations", title="the residual stream's scale")
ax.set_xticks(range(1, len(stack.layers) + 1))
ax.legend()
ax.grid(alpha=0.3, which="both")
plt.show()
print({mode: round(s[-1], 3) for mode, s in scales.items()})
assert abs(scales["post-LN"][-1] - 1) < 0.05  # LN is the last step: unit scale
assert scales["residual, no LN"][-1] > scales["residual, no LN"][0]  # it keeps growing

# %% [markdown]
# Residuals without normalization keep adding to the stream, so its scale grows with depth; post-LN
# resets it to 1 after every layer; pre-LN lets it grow slowly and normalizes only what each
# sublayer reads (GPT adds one final `ln_f` before the head). Every model in scratchlm uses these
# blocks: BERT and the encoder-decoder are post-LN, as in their papers; GPT is pre-LN
# (`nn.TransformerEncoderLayer(norm_first=True)` gives the same wiring).
#
# ## Summary
#
# - A Transformer block is attention and a feed-forward network,
#   $\operatorname{FFN}(x) = W_2\operatorname{GELU}(W_1x + b_1) + b_2$ applied to each position,
#   each wrapped in a residual connection and a layer norm (after the addition in post-LN,
#   before the sublayer in pre-LN).
# - Without residuals, the gradient of the first of 16 layers is 10⁻¹⁹ of the last one's; with
#   them the first and the last are within a factor of 1.4.
# - Post-LN's gradients are flat (0.29–0.39) up to the last layer, whose gradient (0.66) is
#   about twice the others'; pre-LN's stay between 2.0 and 3.4.
# - Without layer norm the residual stream's scale grows with depth; post-LN resets it to 1
#   after every layer.
#
# ## Exercises
#
# 1. Double the stack to 32 layers: does post-LN's last-layer jump grow, and do the other
#    layers stay flat?
# 2. Replace GELU by ReLU in the FFN (`activation="relu"`) and redo the hand computation.
# 3. The graded exercise **`transformer_block`** (week 7 of [COURSE.md](COURSE.md)) asks for the
#    whole pre-LN block's backward by hand, FFN included: 13 gradients, each checked
#    (`python -m scratchlm.exercises show transformer_block`).
