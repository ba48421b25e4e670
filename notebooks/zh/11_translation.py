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
# # 11 · 用编码器-解码器 Transformer 做翻译
#
# 原始 Transformer（Vaswani 等，2017）用两叠层做翻译。**编码器**用自注意力读完整个源句 $x$，
# 产生记忆 $m$，每个源词元一个向量。**解码器**一次写一个词元地生成译文 $y$：先对已写出的词元做带掩码
# （因果）的自注意力，再从这些位置对记忆做**交叉注意力**，
#
# $$\operatorname{CrossAttention}(h, m) = \operatorname{softmax}\!\left(\frac{(h W_Q)(m
# W_K)^\top}{\sqrt{d_k}}\right) m W_V,$$
#
# 最后 $p(y_t \mid y_{<t}, x) = \operatorname{softmax}(h_t W^\top + b)$。词元嵌入乘以 $\sqrt{d}$，
# 再加上第 5 篇的正弦位置编码。训练最大化参考译文的似然——即交叉熵
#
# $$\mathcal{L} = -\frac{1}{T}\sum_{t=1}^{T} \log p(y_t \mid y_{<t}, x),$$
#
# 所有位置一次算完（**教师强制**，teacher forcing）。翻译就是搜索一个可能性高的 $y$：
# **贪心**解码每一步取最可能的词元；**束搜索**按 $\sum_t \log p(y_t \mid y_{<t}, x)$ 保留最好的 $W$
# 个前缀。结果用 **BLEU** 打分，它把译文的 $n$ 元语法与参考译文的比较。
#
# 我们用 `scratchlm.models.seq2seq` 把简短的中文句子翻译成英文，用 `scratchlm.metrics.bleu` 打分。

# %%
import math
import time
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz
from scratchlm.metrics import bleu
from scratchlm.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer
from scratchlm.text import CharVocabulary, load_zh_en_pairs, pad_sequences
from scratchlm.text.char_vocabulary import BOS_ID, EOS_ID, PAD_ID
from scratchlm.translate import train_translation

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

# %% [markdown]
# ## 句对
#
# `load_zh_en_pairs` 读取 `hsk-sentences-audio` 包中的分级例句：HSK 六个级别的中文句子及其英文翻译。
# 我们取最短最简单的一级，留出 25 对不参加训练，看模型在从未见过的句子上表现如何。

# %%
pairs = load_zh_en_pairs(max_level=1)
order = np.random.default_rng(0).permutation(len(pairs))
held_out = [pairs[i] for i in order[:25]]
train_pairs = [pairs[i] for i in order[25:]]
print(f"{len(pairs)} 个句对：{len(train_pairs)} 个用于训练，{len(held_out)} 个留出")
for chinese, english in train_pairs[:5]:
    print(f"  {chinese}  ->  {english}")

# %% [markdown]
# ## 词元与教师强制
#
# 每种语言各有一个字符词表（`CharVocabulary`），排在三个特殊编号之后：`[PAD]` = 0、 `[BOS]` = 1（开
# 始）、`[EOS]` = 2（结束）。解码器的输入是右移一位的目标 $(\text{[BOS]}, y_1, \dots, y_T)$，
# 标签是 $(y_1, \dots, y_T, \text{[EOS]})$：在位置 $t$ 它已看到 $y_{<t}$，必须预测 $y_t$。
# 一个批次中的句子在右侧用 `[PAD]` 填充，编码器的注意力会屏蔽它们，损失也忽略它们。

# %%
source_vocab = CharVocabulary([chinese for chinese, _ in train_pairs])
target_vocab = CharVocabulary([english for _, english in train_pairs])
print(f"词表：源语言 {source_vocab.vocab_size} 个词元，目标语言 {target_vocab.vocab_size} "
      "个词元")

SPECIAL = {PAD_ID: "[PAD]", BOS_ID: "[BOS]", EOS_ID: "[EOS]"}


def token(vocab, i):
    return SPECIAL.get(i) or vocab.decode([i])


examples = train_pairs[:4]
src = pad_sequences([source_vocab.encode(chinese) for chinese, _ in examples])
targets = [target_vocab.encode(english) for _, english in examples]
tgt_in = pad_sequences([[BOS_ID] + t for t in targets])
tgt_out = pad_sequences([t + [EOS_ID] for t in targets])
print("src", src.shape, " tgt_in", tgt_in.shape, " tgt_out", tgt_out.shape)
print("源句：", " ".join(token(source_vocab, i) for i in src[0]))
print("\n位置  解码器看到的  必须预测的")
length = len(targets[0])
for t in [0, 1, 2, 3, None, length - 2, length - 1, length, length + 1]:
    if t is None:
        print(f"{'…':>8s}")
        continue
    print(f"{t:8d}  {token(target_vocab, tgt_in[0, t]):>12s}  {token(target_vocab, tgt_out[0, t])}")

# %% [markdown]
# ## 模型，以及它的掩码保证了什么
#
# `Seq2SeqTransformer` 接收一个 `Seq2SeqConfig`；`"tiny"` 预设有两层编码器和两层解码器，宽 32。
# 给定 `tgt_out` 时它返回 logits $(B, T, V)$ 和损失；未训练的模型不比均匀猜测强：
# 损失接近（这里略高于）$\log V$。
#
# 两个掩码保证教师强制是诚实的。**因果**掩码：位置 $t$ 的 logits 不能依赖 $t$ 之后的任何目标词元
# ——否则训练时解码器就能读到答案。**填充**掩码：在源句后加 `[PAD]` 不应改变任何东西。
# 两者都可以从外部检验：

# %%
sl.manual_seed(0)
config = Seq2SeqConfig.from_preset("tiny", source_vocab.vocab_size, target_vocab.vocab_size)
model = Seq2SeqTransformer(config)
print(f"{model.num_parameters():,} 个参数")
with sl.no_grad():
    logits, loss = model(src, tgt_in, tgt_out)
print(f"logits {logits.shape}; loss {loss.item():.3f}, log V = "
      f"{math.log(config.tgt_vocab_size):.3f}")

changed = tgt_in.copy()
changed[:, 6:] = target_vocab.encode("e")[0]  # 从位置 6 起改写目标句
padded_src = np.concatenate([src, np.full((len(src), 5), PAD_ID)], axis=1)
with sl.no_grad():
    logits_changed, _ = model(src, changed)
    logits_padded, _ = model(padded_src, tgt_in)
print("位置 0-5 不受新的未来影响：",
      np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5))
print("位置 6 变了（它看到了新的第 6 个词元）：",
      not np.allclose(logits_changed.numpy()[:, 6], logits.numpy()[:, 6], atol=1e-5))
print("源句多 5 个 [PAD] 不改变任何结果：",
      np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5))
assert np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5)
assert np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5)

# %% [markdown]
# ## 训练
#
# `train_translation` 构建两个词表和模型，并用库的训练循环（`scratchlm.train.Trainer`，
# 也是训练 GPT 和 BERT 的那个）在随机抽取的句对批次上训练：AdamW（$\beta = (0.9, 0.98)$，
# 与论文相同）、学习率先预热再余弦衰减、梯度裁剪，以及**标签平滑** $\varepsilon = 0.1$：
# 目标分布在参考词元上为 $(1 - \varepsilon)$，再在所有词元上加 $\varepsilon / V$，
# 防止模型过度自信（也使损失保持在 0 以上）。 1,000 步、每步 32 对，所用时间由下面的单元格打印出来。

# %%
started = time.perf_counter()
run = train_translation(train_pairs, preset="tiny", steps=1000, batch_size=32, lr=3e-3,
                        warmup_steps=100, log_every=50, log=None, seed=0)
print(f"1000 步用了 {time.perf_counter() - started:.0f} 秒；"
      f"损失 {run.history[0][1]:.2f}（前 50 步）-> {run.history[-1][1]:.2f}（最后 50 步）")
steps, losses = zip(*run.history)
plt.figure(figsize=(6, 3.5))
plt.plot(steps, losses)
plt.gca().set(xlabel="步数", ylabel="交叉熵（标签平滑）",
              title="训练损失（每 50 步的平均）")
plt.show()
assert run.history[-1][1] < 0.5 * run.history[0][1]

# %% [markdown]
# ## 解码：贪心与束搜索
#
# `greedy_decode` 把解码器自己的输出喂回去：从 `[BOS]` 开始，追加最可能的词元，重复直到 `[EOS]`。
# 每一步只计算新位置；之前位置的键和值保存在缓存中。`beam_search` 为每个句子保留 `beam_width` 个最好
# 的前缀，按总对数概率 $\sum_t \log p(y_t \mid y_{<t}, x)$ 打分（再除以长度$^\alpha$， $\alpha$ 即
# `length_penalty`；这里 $\alpha = 0$，以便比较原始对数概率）。贪心可能选中一个眼下看来最好、
# 却导向更差句子的词元；更宽的束通常能找到可能性更高的译文（并非总是：它可能在途中丢掉贪心的前缀）。
# `beam_width=1` 时，束搜索**就是**贪心解码。

# %%
model = run.model
chosen = train_pairs[:6]
src = pad_sequences([run.source_vocab.encode(chinese) for chinese, _ in chosen])
greedy_ids = model.greedy_decode(src, max_len=64, bos_id=BOS_ID, eos_id=EOS_ID)
width_one_ids, greedy_scores = model.beam_search(src, 1, 64, BOS_ID, EOS_ID,
                                                 length_penalty=0.0)
beam_ids, beam_scores = model.beam_search(src, 4, 64, BOS_ID, EOS_ID, length_penalty=0.0)
for i, (chinese, english) in enumerate(chosen):
    print(f"{chinese}   参考译文：{english}")
    print(f"  贪心，log p = {greedy_scores[i]:6.2f}: {run.target_vocab.decode(greedy_ids[i])!r}")
    print(f"  束宽 4，log p = {beam_scores[i]:6.2f}: {run.target_vocab.decode(beam_ids[i])!r}")
assert np.array_equal(width_one_ids, greedy_ids)


# %% [markdown]
# 束搜索找到比贪心更可能的输出时，它往往**更短**：每个词元都乘上一个小于 1 的概率，
# 所以原始对数概率偏爱早早结束。这就是为什么完成的假设通常按
# $\sum_t \log p(y_t \mid y_{<t}, x) / \text{长度}^\alpha$ 排序；下面的 `run.translate` 和
# `run.bleu` 用 $\alpha = 1$。

# %% [markdown]
# ## BLEU
#
# BLEU（Papineni 等，2002）统计假设译文的 $n$ 元语法（$n = 1 \dots 4$）有多少也出现在参考译文中（每
# 个参考 $n$ 元语法最多匹配它在参考中出现的次数）：
#
# $$p_n = \frac{\sum_{g \in \text{$n$ 元语法}(h)} \min(\text{计数}_h(g),
# \text{计数}_r(g))}{|\text{$n$ 元语法}(h)|}, \qquad \mathrm{BP} = \min\!\left(1, e^{1 -
# r/c}\right), \qquad \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\tfrac14 \sum_{n=1}^{4}
# \log p_n\Big).$$
#
# 只看精确率会奖励短译文，所以简短惩罚 BP 惩罚长度 $c$ 短于参考长度 $r$ 的假设。在语料级别，匹配数、
# $n$ 元语法总数和长度先对所有句子求和，再代入公式。`scratchlm.metrics.bleu` 的算法与 sacrebleu 完全
# 相同（测试中比较了两者）；在两个假设上手算：

# %%
def bleu_by_hand(hypothesis, reference):
    hyp, ref = hypothesis.split(), reference.split()
    log_precisions = []
    for n in range(1, 5):
        hyp_ngrams = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
        ref_ngrams = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
        matched = sum(min(count, ref_ngrams[g]) for g, count in hyp_ngrams.items())
        total = sum(hyp_ngrams.values())
        print(f"    p_{n} = {matched}/{total}", end="")
        log_precisions.append(math.log(matched / total))
    brevity = min(1.0, math.exp(1 - len(ref) / len(hyp)))
    print(f"    BP = {brevity:.3f}")
    return 100 * brevity * math.exp(sum(log_precisions) / 4)


reference = "the cat is on the mat"
for hypothesis in ["the cat is on the red mat", "the cat is on"]:
    print(f"{hypothesis!r} 对照 {reference!r}：")
    by_hand = bleu_by_hand(hypothesis, reference)
    library = bleu([hypothesis], [reference])
    print(f"    手算 {by_hand:.2f}，scratchlm.metrics.bleu {library:.2f}")
    assert math.isclose(by_hand, library, rel_tol=1e-9)

# %% [markdown]
# ## 模型翻译得怎么样？
#
# 贪心和束搜索译文的语料 BLEU（`run.bleu`，默认长度惩罚 $\alpha = 1$），分别在训练集的句子和留出的句
# 子上：

# %%
scores = {}
for name, subset in [("训练集", train_pairs[:100]), ("留出集", held_out)]:
    for width in (1, 4):
        scores[name, width] = run.bleu(subset, beam_width=width)
        print(f"{name}句子，束宽 {width}：BLEU {scores[name, width]:5.1f}")
print()
for chinese, english in held_out[:4]:
    print(f"{chinese}   参考译文：{english}\n    模型：{run.translate([chinese], 4)[0]}")
assert scores["训练集", 1] > 50 > scores["留出集", 1]

# %% [markdown]
# ## ROUGE
#
# BLEU 问的是假设译文有多少出现在参考译文里（精确率）。**ROUGE**（Lin，2004）为摘要而设计，
# 也从参考译文一侧来看：ROUGE-$n$ 把重叠的 $n$ 元语法数同时与两者的长度比较，ROUGE-L 用最长公共子序
# 列（LCS，保持顺序但不必相邻）：
#
# $$R = \frac{\text{重叠}}{|\text{参考译文}|}, \qquad P =
# \frac{\text{重叠}}{|\text{译文}|}, \qquad F = \frac{2PR}{P + R}, \qquad \text{重叠}_L =
# \operatorname{LCS}(h, r).$$
#
# `scratchlm.metrics.rouge` 按 rouge-score 的算法返回三个分数（测试中比较了两者）；先手算，
# 再用在模型的译文上：

# %%
from scratchlm.metrics import rouge


def lcs_length(a, b):
    table = np.zeros((len(a) + 1, len(b) + 1), dtype=int)
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1, j + 1] = table[i, j] + 1 if x == y else max(table[i, j + 1],
                                                                     table[i + 1, j])
    return int(table[-1, -1])


def f_measure(overlap, n_hyp, n_ref):
    p, r = overlap / n_hyp, overlap / n_ref
    return 0.0 if overlap == 0 else 2 * p * r / (p + r)


hypothesis, reference = "the cat sat on the red mat", "the cat is on the mat"
hyp, ref = hypothesis.split(), reference.split()
bigrams = [Counter(zip(words, words[1:])) for words in (hyp, ref)]
by_hand = {"rouge1": f_measure(sum((Counter(hyp) & Counter(ref)).values()), len(hyp), len(ref)),
           "rouge2": f_measure(sum((bigrams[0] & bigrams[1]).values()), len(hyp) - 1,
                               len(ref) - 1),
           "rougeL": f_measure(lcs_length(hyp, ref), len(hyp), len(ref))}
library = rouge(hypothesis, reference)
for name, value in by_hand.items():
    print(f"{name}：手算 F = {value:.4f}，scratchlm.metrics.rouge F = "
          f"{library[name].fmeasure:.4f}")
    assert math.isclose(value, library[name].fmeasure, rel_tol=1e-9)

rouge_l = {}
for name, subset in [("训练集", train_pairs[:50]), ("留出集", held_out)]:
    translations = run.translate([chinese for chinese, _ in subset], 4)
    rouge_l[name] = np.mean([rouge(t, english)["rougeL"].fmeasure
                             for t, (_, english) in zip(translations, subset)])
    print(f"{name}句子：平均 ROUGE-L F = {rouge_l[name]:.3f}")
assert rouge_l["训练集"] > rouge_l["留出集"]

# %% [markdown]
# 模型复现了它 256 个训练句子中的大部分，BLEU 也如实反映——但训练数据上的高 BLEU 只衡量记忆。
# 在留出的句子上 BLEU 崩溃了：256 个句子远远不够学会中文，留出句子的译文只是把训练中常见的英文片段拼
# 在一起。这就是为什么 BLEU 总是在模型从未训练过的测试集上报告。
#
# 真正的翻译模型多出来的是规模：数百万句对（WMT 英德约 450 万）、
# 子词词元而不是字符（`scratchlm.text.BPETokenizer`）、`"transformer-base"` 预设（6 + 6 层，
# 宽 512），以及数天的 GPU 时间。代码路径相同：`Seq2SeqTransformer`、教师强制的交叉熵、束搜索、
# BLEU。
#
# ## 小结
#
# * 编码器-解码器 Transformer 用双向注意力读源句，用因果注意力加上对源句的交叉注意力写目标句；
#   它用教师强制下的交叉熵训练，用束搜索解码。
# * BLEU（截断的 $n$ 元语法精确率加简短惩罚）和 ROUGE-L（最长公共子序列）拿译文和参考译文比较；
#   在训练句子上它们衡量的是记忆，在留出的句子上衡量的才是翻译。
#
# ## 练习
#
# 1. 用 512 个句对而不是 256 个训练：训练集和留出集上的 BLEU 如何变化？
# 2. 对留出的句子分别用贪心和宽度 2、4、8 的束搜索解码：更宽的束在这里能提高 BLEU 吗？
# 3. 课程第 11 周（`notebooks/COURSE.zh.md`）：`scratchlm.exercises` 中的 `bleu` 和 `rouge_l`，
#    以及作业 `assignment_03_decoding_metrics`（`python -m scratchlm.exercises show bleu`）。
