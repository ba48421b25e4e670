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
# # 10 · BERT 预训练：掩码语言模型与下一句预测
#
# GPT 从左往右读文本。BERT（Devlin 等，2018）则是一个 Transformer
# **编码器**：每个位置都关注所有其他位置，左右两侧都能看到。
# 这样的模型无法用“预测下一个词元”来训练（它能直接看到答案），因此 BERT 改用另外两个任务进行预训练：
#
# * **掩码语言模型（MLM）。** 随机选出 15% 的词元，其中 80% 替换为 `[MASK]`，10%
#   替换为随机词元，10% 保持不变；模型要在每个被选中的位置 $i \in M$ 上，根据被破坏的输入
#   $\tilde x$ 预测原来的词元：
#   $$\mathcal{L}_\text{MLM} = -\frac{1}{|M|}\sum_{i \in M} \log P(x_i \mid \tilde x).$$
# * **下一句预测（NSP）。** 给定句子 A 和 B，判断 B 是 A 真正的下一句（占句对的一半），
#   还是随机抽取的一句（另一半）：
#   $$\mathcal{L}_\text{NSP} = -\log P(y \mid A, B), \qquad y \in \{\text{是下一句},
# \text{不是下一句}\}.$$
# * 两个任务同时训练：$$\mathcal{L} = \mathcal{L}_\text{MLM} + \lambda\,\mathcal{L}_\text{NSP}$$
#   （BERT 取 $\lambda = 1$，对应 `BertConfig.nsp_weight`）。
#
# 输入序列为 `[CLS] A [SEP] B [SEP]`，
# 其嵌入为 $h_0 = \operatorname{LN}(E_\text{tok}[x_t] + E_\text{pos}[t] + E_\text{seg}[s_t])$，其中
# A 部分的片段索引 $s_t = 0$，B 部分为 $1$；NSP 分类器读取 `[CLS]` 位置的最终向量。
#
# 本篇用 `scratchlm.text` 和 `scratchlm.models.bert` 从莎士比亚剧本构造数据，手工验算每个损失，
# 用约一分钟 CPU 时间预训练一个很小的 BERT，然后换一个“下一句”可以预测的语料，观察 NSP 如何学会。

# %%
import math
import time
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import viz
from scratchlm.models.bert import BertConfig, BertForPreTraining, make_pretraining_batch
from scratchlm.text import (
    IGNORE_INDEX,
    CharTokenizer,
    load_shakespeare,
    make_nsp_pairs,
    mask_tokens,
    pack_bert_pair,
)
from scratchlm.train import TrainConfig, Trainer

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

rng = np.random.default_rng(0)

# %% [markdown]
# ## 文档、句子与词表
#
# NSP 需要由连续句子组成的文档。这里把 `load_shakespeare()` 中的每段台词当作一个文档，
# 台词的每一行当作一个句子。词元是字符（`CharTokenizer`），其索引整体后移 4 位，为 BERT
# 的特殊词元腾出位置：`[PAD]` = 0、`[CLS]` = 1、`[SEP]` = 2、`[MASK]` =
# 3。打印时这四个特殊词元分别显示为 `·`、`#`、`|` 和 `_`，各占一个字符，这样词元、
# 片段和标签各行才能上下对齐。

# %%
text = load_shakespeare()
speeches = [speech.split("\n")[1:] for speech in text.split("\n\n") if speech]  # 去掉说话人一行
documents_text = [lines for lines in speeches if len(lines) >= 2]
print(f"{len(documents_text):,} 段两行以上的台词；其中一段：")
print("\n".join(documents_text[10]))

PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3
SPECIAL_IDS = (PAD_ID, CLS_ID, SEP_ID, MASK_ID)
SYMBOLS = "·#|_"  # 特殊词元的打印方式
chars = CharTokenizer().train(text)
vocab_size = len(SPECIAL_IDS) + chars.vocab_size


def encode(sentence):
    return [len(SPECIAL_IDS) + i for i in chars.encode(sentence)]


def show(ids):
    return "".join(SYMBOLS[i] if i < len(SPECIAL_IDS) else chars.decode([i - len(SPECIAL_IDS)])
                   for i in ids)


documents = [[encode(line) for line in lines] for lines in documents_text]
print(f"\n词表：{vocab_size} 个词元； {show(documents[10][0][:8])!r} = {documents[10][0][:8]}")

# %% [markdown]
# ## MLM：选出 15%，再按 80/10/10 处理
#
# `mask_tokens` 以 0.15 的概率选中每个普通词元（特殊词元永远不会被选中）。被选中的词元以 0.8
# 的概率替换为 `[MASK]`，以 0.1 的概率替换为随机词元，以 0.1
# 的概率保持不变；它的标签是原来的词元，其余位置的标签为 −100，计算交叉熵时会被忽略。
# 为什么不全部替换成 `[MASK]`？因为之后使用模型时，输入中根本不会出现这个词元；
# 模型也必须为那些看得见、却不能完全相信的词元学到好的表示。
# 下面在整个语料上统计（随机词元恰好等于原词元时，算作“保持不变”）：

# %%
def pad(text, width):
    """在 ``text`` 后面补空格，使它在屏幕上占 ``width`` 列：一个汉字占两列，所以中文版的
    表格不能用 ``f"{text:20s}"`` 对齐。"""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


corpus_ids = np.concatenate([sentence for document in documents for sentence in document])
inputs, labels = mask_tokens(corpus_ids, MASK_ID, vocab_size, special_ids=SPECIAL_IDS,
                             mask_prob=0.15, rng=rng)
chosen = labels != IGNORE_INDEX
to_mask = chosen & (inputs == MASK_ID)
unchanged = chosen & (inputs == corpus_ids)
to_random = chosen & ~to_mask & ~unchanged
print(f"选中：{corpus_ids.size:,} 个词元中的 {chosen.mean():.2%}，其中")
for name, part in [("[MASK]", to_mask), ("随机词元", to_random), ("保持不变", unchanged)]:
    print(f"  {pad(name, 13)} {part.sum() / chosen.sum():6.2%}")
assert abs(chosen.mean() - 0.15) < 0.002
assert abs(to_mask.sum() / chosen.sum() - 0.8) < 0.005

start = 0
for sentence in documents[0][:3]:  # 语料以第一段台词的各行开头
    window = slice(start, start + len(sentence))
    print("\n输入：", show(inputs[window]))
    print("标签：", "".join(show([t]) if t != IGNORE_INDEX else " " for t in labels[window]))
    print("原文：", show(corpus_ids[window]))
    start += len(sentence)

# %% [markdown]
# **一条被写反了的规则。** 有一篇源文章（介绍掩码语言模型的那篇）写道：被选中的词元以 80%
# 的概率**保持**原样，10% 替换为随机词元，10% 替换为 `[MASK]`。这恰好把 BERT 的规则写反了：按
# Devlin 等（2018，第 3.1 节与附录 C.2），被选中的词元 80% 变为 `[MASK]`，10% 变为随机词元，10%
# 保持不变。若按写反了的规则，大多数“被掩码”的位置会在输入中直接露出答案，模型只会学会照抄。
# 记词表大小为 $V$，按真正的规则，被选中的位置中各类所占的比例应为（随机抽取也可能恰好抽到 `[MASK]`
# 或原词元）：
#
# $$P(\text{[MASK]}) = 0.8 + \tfrac{0.1}{V}, \qquad P(\text{保持不变}) = 0.1 + \tfrac{0.1}{V},
# \qquad P(\text{其他词元}) = 0.1\,\tfrac{V-2}{V}.$$
#
# 下面把实测的比例与两种规则比较，容差取二项分布标准差的四倍：

# %%
n_chosen = chosen.sum()
measured = np.array([to_mask.sum(), unchanged.sum(), to_random.sum()]) / n_chosen
real_rule = np.array([0.8 + 0.1 / vocab_size, 0.1 + 0.1 / vocab_size,
                      0.1 * (vocab_size - 2) / vocab_size])
reversed_rule = np.array([0.1, 0.8, 0.1])  # 原文章所写的规则
tolerance = 4 * np.sqrt(real_rule * (1 - real_rule) / n_chosen)
for name, m, r, a, t in zip(["[MASK]", "保持不变", "其他词元"], measured, real_rule,
                            reversed_rule, tolerance):
    print(f"{pad(name, 12)} 实测 {m:.4f}   BERT 的规则 {r:.4f} ± {t:.4f}   原文章 {a:.2f}")
assert (np.abs(measured - real_rule) < tolerance).all()
assert not (np.abs(measured - reversed_rule) < 0.05).all()

fig, ax = plt.subplots(figsize=(10, 3.5))
positions = np.arange(3)
ax.bar(positions - 0.25, measured, 0.25, label="实测")
ax.bar(positions, real_rule, 0.25, label="BERT 的规则：80% [MASK] / 10% / 10%")
ax.bar(positions + 0.25, reversed_rule, 0.25, label="原文章写反了的规则")
ax.set_xticks(positions, ["[MASK]", "保持不变", "其他词元"])
ax.set(ylabel="占选中词元的比例", title=f"选中的 {n_chosen:,} 个词元")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## NSP：一半是真正的下一句，一半是随机句子
#
# `make_nsp_pairs` 把同一文档中每两个相邻的句子组成一个句对 (A,
# B)。随机选出的一半句对以真正的下一句作为 B（`is_next = 1`）；另一半的 B
# 换成另一个文档中的随机句子（`is_next = 0`）。句子也可以直接是字符串，这样打印出来的句对便于阅读：

# %%
pairs = make_nsp_pairs(documents_text[:300], rng)
is_next = np.array([label for _, _, label in pairs])
print(f"{len(pairs)} 个句对，其中 {is_next.mean():.1%} 是真实的下一句\n")
for a, b, label in pairs[:4]:
    print(f"is_next = {label}   A: {a}\n              B: {b}")
assert abs(is_next.mean() - 0.5) < 0.01

# %% [markdown]
# ## 打包一个句对：`[CLS] A [SEP] B [SEP]`
#
# `pack_bert_pair` 构造模型的三个输入：词元索引、**片段索引**（`[CLS] A [SEP]` 部分为 0，`B [SEP]`
# 部分为 1，用来选取 $E_\text{seg}$ 的行）和**注意力掩码**（填充位置为
# False：任何位置都不关注填充的键）。句对长于 `max_length` 时，
# 每次从较长的那个句子末尾删去一个词元，直到长度合适。

# %%
a, b, _ = pairs[0]
packed = pack_bert_pair(encode(a), encode(b), CLS_ID, SEP_ID, PAD_ID, max_length=64)
print("词元：  ", show(packed.input_ids))
print("片段：  ", "".join(map(str, packed.token_type_ids)))
print("注意力：", "".join("1" if real else "0" for real in packed.attention_mask))

short = pack_bert_pair(encode(a), encode(b), CLS_ID, SEP_ID, PAD_ID, max_length=24)
print("\nmax_length=24:", show(short.input_ids))

# %% [markdown]
# ## 一个预训练小批量
#
# `make_pretraining_batch` 一次完成三步：用给定的文档构造 NSP 句对、打包，再对打包后的索引做 MLM
# 掩码（`[CLS]`、`[SEP]` 和 `[PAD]` 永远不会被掩码）。每次调用都会抽取新的句对和新的掩码，
# 所以模型不会两次看到同样的破坏方式（**动态掩码**）。它为传入的每个文档都构造句对，
# 所以每一步我们传入 64 段新抽取的台词，取 64 个句对。

# %%
MAX_LENGTH, BATCH_SIZE = 32, 64


def shakespeare_batch():
    sample = rng.choice(len(documents), BATCH_SIZE, replace=False)
    return make_pretraining_batch([documents[i] for i in sample], vocab_size, CLS_ID, SEP_ID,
                                  PAD_ID, MASK_ID, MAX_LENGTH, rng, batch_size=BATCH_SIZE)


batch = shakespeare_batch()
for name, array in batch._asdict().items():
    print(f"{name:15s} 形状 {array.shape}，类型 {array.dtype}")
print()
for row in range(3):
    print(f"is_next = {batch.nsp_labels[row]}  输入：{show(batch.input_ids[row])}")
    print("            标签：",
          "".join(show([t]) if t != IGNORE_INDEX else " " for t in batch.mlm_labels[row]))

# %% [markdown]
# ## 模型与训练前的损失
#
# `BertForPreTraining` 由 `BertModel` 加上两个输出头组成。`BertModel`
# 包括三种嵌入、若干后置层规范化（post-LN）的编码器层（前馈网络使用 GELU）以及池化层
# $\tanh(W_p h_\text{[CLS]} + b_p)$；MLM 头依次是全连接层、GELU
# 和层规范化，最后是一个解码器，其权重**就是**词元嵌入矩阵；NSP 头把池化后的 `[CLS]`
# 向量线性映射为两个 logits，下标 1 表示“是下一句”。这里用 `"tiny"` 预设（2 层），并加宽到 64 维、4
# 个头。
#
# 未训练的模型给出的预测接近均匀分布，所以 $\mathcal{L}_\text{MLM} \approx \log V$，
# $\mathcal{L}_\text{NSP} \approx \log 2$。下面用 log-softmax 从 logits
# 重新计算这两项损失，再由它们算出 $\mathcal{L}$：

# %%
sl.manual_seed(0)
config = BertConfig.from_preset("tiny", vocab_size=vocab_size, max_position=MAX_LENGTH,
                                n_embd=64, n_head=4)
model = BertForPreTraining(config)
print(f"{model.num_parameters():,} 个参数")

with sl.no_grad():
    out = model(**batch._asdict())
mlm_log_p = F.log_softmax(out.mlm_logits).numpy()  # (B, T, V)
chosen = batch.mlm_labels != IGNORE_INDEX
mlm_by_hand = -mlm_log_p[chosen, batch.mlm_labels[chosen]].mean()  # 对 M 中的 i 取平均
nsp_log_p = F.log_softmax(out.nsp_logits).numpy()  # (B, 2)
nsp_by_hand = -nsp_log_p[np.arange(BATCH_SIZE), batch.nsp_labels].mean()
total_by_hand = mlm_by_hand + config.nsp_weight * nsp_by_hand

print(f"L_MLM = {out.mlm_loss.item():.4f}  手算 {mlm_by_hand:.4f}  "
      f"（log V = {math.log(vocab_size):.4f}，在 {chosen.sum()} 个选中的位置上）")
print(f"L_NSP = {out.nsp_loss.item():.4f}  手算 {nsp_by_hand:.4f}  （log 2 = {math.log(2):.4f}）")
print(f"L     = {out.loss.item():.4f}  = L_MLM + {config.nsp_weight} · L_NSP = {total_by_hand:.4f}")
assert np.isclose(out.mlm_loss.item(), mlm_by_hand, rtol=1e-4)
assert np.isclose(out.nsp_loss.item(), nsp_by_hand, rtol=1e-4)
assert np.isclose(out.loss.item(), total_by_hand, rtol=1e-4)


# %% [markdown]
# ## 在莎士比亚剧本上预训练
#
# BERT 的训练同样使用库中唯一的训练循环 `Trainer`，第 7 篇的 GPT 和第 11 篇的翻译模型用的也是它：按
# BERT 的设置配置 AdamW，只对权重矩阵做权重衰减（`optim.weight_decay_groups`），学习率先线性预热、
# 再余弦衰减。只有损失函数是 BERT 特有的：它接收模型和一个小批量，返回
# $\mathcal{L}$（这里还顺便记下每一步的两项损失，用于画图）。小批量由 `shakespeare_batch`
# 生成，它使用本篇的随机数生成器。这个单元格会打印 700 步（每步 64
# 个句对）所用的时间。整个笔记本大约需要一分钟 CPU 时间；在繁忙的共享机器上，
# 打印出的实际耗时可能是它的好几倍。
#
# 要读懂 MLM 曲线，可以把它与字符频率的熵 $H = -\sum_c p(c)\log p(c)$
# 相比：这是一个不看上下文、只按各字符的出现频率做预测的模型的损失。

# %%
def pretrain(model, next_batch, steps, lr=5e-3, warmup_steps=30):
    # 返回每一步的（MLM, NSP）损失
    history = []

    def pretraining_loss(model, batch):
        out = model(**batch._asdict())
        history.append((out.mlm_loss.item(), out.nsp_loss.item()))
        return out.loss

    config = TrainConfig(max_steps=steps, learning_rate=lr, warmup_steps=warmup_steps,
                         weight_decay=0.01, beta2=0.999, grad_clip=0.0)
    trainer = Trainer(model, lambda rng, batch_size: next_batch(), None, config,
                      loss_fn=pretraining_loss)
    trainer.train(progress=False)
    return np.array(history)


def plot_losses(history, mlm_lines):
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.plot(history[:, 0], label="$L_{MLM}$")
    for label, value in mlm_lines.items():
        left.axhline(value, ls="--", c="gray" if label.startswith("log") else "C1", label=label)
    right.plot(history[:, 1], label="$L_{NSP}$")
    right.axhline(math.log(2), ls="--", c="gray", label="log 2（随机猜测）")
    for axis, title in [(left, "掩码语言模型"), (right, "下一句预测")]:
        axis.set(xlabel="步数", ylabel="交叉熵（奈特）", title=title)
        axis.legend()
    plt.show()


values, counts = np.unique(corpus_ids, return_counts=True)
frequencies = counts / counts.sum()
unigram_entropy = -(frequencies * np.log(frequencies)).sum()

started = time.perf_counter()
history = pretrain(model, shakespeare_batch, steps=700)
print(f"700 步用了 {time.perf_counter() - started:.0f} 秒")
final_mlm, final_nsp = history[-50:].mean(axis=0)
print(f"最后 50 步：L_MLM = {final_mlm:.3f}（H = {unigram_entropy:.3f}），"
      f"L_NSP = {final_nsp:.3f}（log 2 = {math.log(2):.3f}）")
plot_losses(history, {"log V（均匀分布）": math.log(vocab_size),
                      "H（字符频率）": unigram_entropy})
assert final_mlm < unigram_entropy
window = 20  # 单步的 MLM 损失噪声大：取最近 20 步的平均
running = np.convolve(history[:, 0], np.ones(window) / window, mode="valid")
below_h = int(np.argmax(running < unigram_entropy)) + window
print(f"L_MLM 的 {window} 步平均在第 {below_h} 步首次降到 H 以下")
assert below_h < 100

# %% [markdown]
# $\mathcal{L}_\text{MLM}$ 从 $\log V$ 降到了 $H$ 以下：模型不再只是预测常见字符，
# 而是利用了每个空位周围的字符。$\mathcal{L}_\text{NSP}$ 则停在
# $\log 2$——仅凭每行几十个字符来区分真正的下一行和随机的一行，需要的训练远不止这些（BERT
# 训练了一百万步，每步 256 个长度为 512 个词元的序列）。MLM 猜得有多准？
# 我们在一个新的小批量上统计它还原了多少被替换为 `[MASK]` 的字符，并与总是猜最常见字符（空格）
# 的做法比较。然后取一句名句，依次遮住其中的每个字符（每个字符用一份输入副本），
# 让模型根据其余的字符把它猜出来。

# %%
model.eval()
batch = shakespeare_batch()
with sl.no_grad():
    predicted = model(**batch._asdict()).mlm_logits.numpy().argmax(axis=-1)
masked = (batch.mlm_labels != IGNORE_INDEX) & (batch.input_ids == MASK_ID)
accuracy = (predicted[masked] == batch.mlm_labels[masked]).mean()
print(f"{masked.sum()} 个被 [MASK] 的字符还原了 {accuracy:.0%}；总是猜 "
      f"{show([values[counts.argmax()]])!r} 能还原 {frequencies.max():.0%}\n")
assert accuracy > frequencies.max()

packed = pack_bert_pair(encode("Out, damned spot!"), encode("out, I say!"), CLS_ID, SEP_ID,
                        PAD_ID, MAX_LENGTH)
positions = np.flatnonzero(packed.input_ids >= len(SPECIAL_IDS))  # 每个字符的位置
rows = np.arange(len(positions))
hidden = np.repeat(packed.input_ids[None], len(positions), axis=0)
hidden[rows, positions] = MASK_ID  # 第 r 份副本遮住第 r 个字符
with sl.no_grad():
    logits = model(hidden, np.repeat(packed.token_type_ids[None], len(positions), axis=0),
                   np.repeat(packed.attention_mask[None], len(positions), axis=0)).mlm_logits
guesses = logits.numpy()[rows, positions].argmax(axis=-1)
restored = packed.input_ids.copy()
restored[positions] = guesses
real = packed.attention_mask
print("一份副本：", show(hidden[4][real]))
print("原句：    ", show(packed.input_ids[real]))
print("还原：    ", show(restored[real]))
print(f"还原了 {(guesses == packed.input_ids[positions]).mean():.0%} 的字符")

# %% [markdown]
# ## 当下一句可以预测时
#
# 只要句对中含有模型能够捕捉的信号，NSP 就能学会。在下面这个人造的小语言里，
# 每个文档只谈一个话题（由四个词构成的循环），文档的三个句子沿着这个循环依次往下数。
# 真正的下一句仍属于同一话题，并从 A 结束的地方接着数；随机的一句（来自另一个文档）
# 通常属于别的话题。其余代码完全不变：`make_pretraining_batch`、`BertForPreTraining` 和同一个
# `pretrain` 循环。

# %%
TOPICS = [["spring", "summer", "autumn", "winter"], ["north", "east", "south", "west"],
          ["one", "two", "three", "four"], ["do", "re", "mi", "fa"],
          ["red", "green", "blue", "white"], ["bread", "milk", "eggs", "tea"],
          ["cat", "dog", "horse", "cow"], ["head", "hand", "knee", "foot"]]
words = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"] + [word for topic in TOPICS for word in topic]
word_ids = {word: i for i, word in enumerate(words)}


toy_rng = np.random.default_rng(1)


def toy_document():
    # 同一话题上的三个句子，每句 3–5 个词，沿话题的循环往下数
    topic, position = TOPICS[toy_rng.integers(len(TOPICS))], toy_rng.integers(4)
    sentences = []
    for _ in range(3):
        length = toy_rng.integers(3, 6)
        sentences.append([word_ids[topic[(position + k) % 4]] for k in range(length)])
        position += length
    return sentences


def to_words(ids):
    return " ".join(words[i] for i in ids)


toy_documents = [toy_document() for _ in range(400)]
for sentence in toy_documents[0]:
    print(to_words(sentence))


def toy_batch():
    sample = toy_rng.choice(len(toy_documents), 32, replace=False)
    return make_pretraining_batch([toy_documents[i] for i in sample], len(words), CLS_ID,
                                  SEP_ID, PAD_ID, MASK_ID, 16, toy_rng, batch_size=32)


sl.manual_seed(0)
toy_model = BertForPreTraining(BertConfig.from_preset(
    "tiny", vocab_size=len(words), max_position=16, n_embd=64, n_head=4))
toy_history = pretrain(toy_model, toy_batch, steps=400, warmup_steps=20)
final_mlm, final_nsp = toy_history[-30:].mean(axis=0)
print(f"\n最后 30 步：L_MLM = {final_mlm:.3f}（log V = {math.log(len(words)):.3f}），"
      f"L_NSP = {final_nsp:.3f}（log 2 = {math.log(2):.3f}）")
plot_losses(toy_history, {"log V（均匀分布）": math.log(len(words))})
assert final_nsp < 0.5 and final_mlm < 0.6 * math.log(len(words))


# %% [markdown]
# 向训练好的模型提两个问题。NSP：对一个真正的后续句子和一个其他话题的句子，B 紧跟在 A
# 后面的概率分别是多少。MLM：一个空位上最可能是哪个词。

# %%
def run_toy(sentence_a, sentence_b):
    packed = pack_bert_pair([word_ids[w] for w in sentence_a.split()],
                            [word_ids[w] for w in sentence_b.split()],
                            CLS_ID, SEP_ID, PAD_ID, max_length=16)
    with sl.no_grad():
        out = toy_model(packed.input_ids[None], packed.token_type_ids[None],
                        packed.attention_mask[None])
    return packed, out


toy_model.eval()
p_next = {}
for sentence_b in ["winter spring summer autumn", "milk eggs tea"]:
    _, out = run_toy("spring summer autumn", sentence_b)
    p_next[sentence_b] = F.softmax(out.nsp_logits).numpy()[0, 1]
    print(f"A: spring summer autumn   B: {sentence_b:28s} P(是下一句) = {p_next[sentence_b]:.2f}")
assert p_next["winter spring summer autumn"] > 0.5 > p_next["milk eggs tea"]

packed, out = run_toy("north east [MASK] west", "north east")
blank = int(np.flatnonzero(packed.input_ids == MASK_ID)[0])
probabilities = F.softmax(out.mlm_logits).numpy()[0, blank]
best = np.argsort(probabilities)[::-1][:4]
on_topic = probabilities[[word_ids[w] for w in TOPICS[1]]].sum()
print("\nnorth east [MASK] west | north east  ->",
      ", ".join(f"{words[i]} {probabilities[i]:.2f}" for i in best))
print(f"落在该话题四个词上的概率：{on_topic:.2f}")
assert on_topic > 0.8

# %% [markdown]
# NSP 学会了它的任务；MLM 也学会了空位属于哪个话题：几乎全部概率都落在该话题的四个词上。
# 至于四个词中哪一个才是下一个，这是顺序问题，而顺序信息只能通过位置嵌入传给模型——
# 这里的位置嵌入是从零开始学的，这么短的训练学不到这一点。莎士比亚模型的 MLM
# 损失也一样：它在最初一百步之内就降到了字符频率的熵以下（具体步数见上面的输出），
# 但此后只是缓慢下降——要充分利用上下文，需要长得多的训练。
#
# ## 接下来
#
# * 用同样的类可以搭建真正的模型：`BertConfig.from_preset("bert-base")` 有 12 层、768 维、12
#   个头（1.1 亿个参数），原模型是在 BooksCorpus 和维基百科的 WordPiece
#   词元上训练的。`tests/test_bert.py` 在相同权重下把这个实现与 Hugging Face 的
#   `BertForPreTraining` 逐项比较：隐藏状态、logits、两项损失以及每个梯度。
# * $\lambda$ 即 `BertConfig(nsp_weight=...)`；设 `nsp_weight=0` 就只训练 MLM。RoBERTa（Liu
#   等，2019）发现 NSP 对下游任务没有帮助，便是这样做的。
# * 预训练之后要对 BERT 进行微调：在 `[CLS]` 向量上加一个小的输出头（用于分类），
#   或在每个位置上各加一个（用于序列标注）。`BertModel` 为这两种情况分别提供了 `pooler_output` 和
#   `last_hidden_state`。
#
# ## 小结
#
# * BERT 的损失是 $\mathcal{L}_\text{MLM} + \lambda\,\mathcal{L}_\text{NSP}$；MLM
#   根据每个空位左右两侧的上下文预测被选中的 15% 的词元，这些词元按 80/10/10 的比例被破坏。
# * 很短的训练就能让 MLM 损失降到字符频率的熵以下；NSP 在莎士比亚剧本上停留在随机猜测的水平，
#   而当句对带有可学的信号时（人造的话题语言），它在一两百步之内就学会了。
#
# ## 练习
#
# 1. 用 `nsp_weight=0` 训练，把 MLM 曲线与上面的比较：在这里，NSP 对 MLM 是有帮助还是有妨碍？
# 2. 把掩码比例从 15% 改为 30%（`mask_prob`）：MLM 损失以及被 `[MASK]`
#    替换的字符的还原准确率会怎样变化？
# 3. 课程第 11 周（`notebooks/COURSE.zh.md`）：`scratchlm.exercises` 中的 `mlm_masking` 和
#    `nsp_pairs`（`python -m scratchlm.exercises show mlm_masking`）。
