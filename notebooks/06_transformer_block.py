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
# # 10 · The Transformer block: residual connections, layer norm, and why
#
# A Transformer block is attention and a feed-forward network, each wrapped in a **residual
# connection** and a **layer normalization**:
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
# ## Gradient norms, layer by layer
#
# For each wiring: a forward pass, the loss $L = \operatorname{MSE}(\text{output}, \text{target})$,
# a backward pass, and a copy of every parameter's gradient. `viz.gradient_norms(..., by="layer")`
# pools the gradients of each layer's parameters, $\lVert g_\ell\rVert = \sqrt{\sum_{\theta \in
# \ell} \lVert \partial L/\partial\theta\rVert^2}$, on a log scale.

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
# Without residuals the first layers get gradients some twenty orders of magnitude smaller than
# the last ones: they would never learn. The residual alone restores the flow. Post-LN passes every
# gradient through a layer norm after the addition, and its gradients shrink towards the input —
# one reason post-LN Transformers need a learning-rate warmup (Xiong et al., 2020). Pre-LN leaves
# the identity path untouched, and the gradient is about the same in every layer.
#
# ## Activations: what layer norm is for
#
# The other half of the story is the forward pass. The standard deviation of the activations after
# each layer:

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
# Residuals without normalization keep adding to the stream, so its scale grows with depth; post-LN
# resets it to 1 after every layer; pre-LN lets it grow slowly and normalizes only what each
# sublayer reads (GPT adds one final `ln_f` before the head). Every model in scratchlm uses these
# blocks: BERT and the encoder-decoder are post-LN, as in their papers; GPT is pre-LN
# (`nn.TransformerEncoderLayer(norm_first=True)` gives the same wiring).
