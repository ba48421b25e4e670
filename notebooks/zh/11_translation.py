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
# # 11 · 用编码器-解码器 Transformer 做机器翻译
#
# 最初的 Transformer（Vaswani 等，2017）由两组堆叠的层构成，用于机器翻译。
# **编码器**用自注意力读入整个源句 $x$，输出“记忆” $m$：每个源词元对应一个向量。
# **解码器**逐个词元地生成译文 $y$：先对已生成的词元做带掩码的（因果）自注意力，
# 再从这些位置出发对记忆做**交叉注意力**，
#
# $$\operatorname{CrossAttention}(h, m) = \operatorname{softmax}\!\left(\frac{(h W_Q)(m
# W_K)^\top}{\sqrt{d_k}}\right) m W_V,$$
#
# 最后输出 $p(y_t \mid y_{<t}, x) = \operatorname{softmax}(h_t W^\top + b)$。词元嵌入先乘以
# $\sqrt{d}$，再加上第 5 篇介绍的正弦位置编码。训练时最大化参考译文的似然，也就是最小化交叉熵
#
# $$\mathcal{L} = -\frac{1}{T}\sum_{t=1}^{T} \log p(y_t \mid y_{<t}, x),$$
#
# 所有位置一次并行算出（**教师强制**，teacher forcing）。翻译就是搜索一个概率高的
# $y$：**贪心搜索**每一步取最可能的词元；**束搜索**按 $\sum_t \log p(y_t \mid y_{<t}, x)$
# 保留得分最高的 $W$ 个前缀。译文质量用 **BLEU** 评价，它比较译文与参考译文中的 $n$ 元语法。
#
# 本篇用 `scratchlm.models.seq2seq` 把简短的中文句子翻译成英文，并用 `scratchlm.metrics.bleu` 评分。

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
# `load_zh_en_pairs` 读取 `hsk-sentences-audio` 包中的分级例句：HSK
# 六个级别的中文句子及其英文译文。这里只取最短、最简单的一级，并留出 25
# 个句对不参加训练，用来考察模型在从未见过的句子上的表现。

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
# 两种语言各有一个字符词表（`CharVocabulary`），字符的索引排在三个特殊词元之后：`[PAD]` =
# 0、`[BOS]` = 1（序列开始）、`[EOS]` = 2（序列结束）。解码器的输入是右移一位的目标序列
# $(\text{[BOS]}, y_1, \dots, y_T)$，标签是 $(y_1, \dots, y_T, \text{[EOS]})$：在位置
# $t$，解码器已经看到 $y_{<t}$，要预测 $y_t$。同一小批量中的句子在右侧用 `[PAD]`
# 填充到相同长度：注意力会屏蔽源句中的填充，计算损失时也会忽略目标句中的填充。

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
print("\n    位置  解码器看到的  必须预测的")
length = len(targets[0])
for t in [0, 1, 2, 3, None, length - 2, length - 1, length, length + 1]:
    if t is None:
        print(f"{'…':>8s}")
        continue
    print(f"{t:8d}  {token(target_vocab, tgt_in[0, t]):>12s}  {token(target_vocab, tgt_out[0, t])}")

# %% [markdown]
# ## 模型及其掩码的保证
#
# `Seq2SeqTransformer` 由一个 `Seq2SeqConfig` 配置；`"tiny"` 预设有两层编码器和两层解码器，宽度为
# 32。传入 `tgt_out` 时，它返回形状为 $(B, T, V)$ 的 logits 和损失；未训练的模型并不比均匀猜测强：
# 损失接近（这里略高于）$\log V$。
#
# 两个掩码保证教师强制不会“作弊”。**因果**掩码：位置 $t$ 的 logits 不能依赖 $t$
# 之后的任何目标词元，否则解码器在训练时就能直接读到答案。**填充**掩码：在源句末尾多加几个 `[PAD]`
# 不应改变任何结果。两者都可以从模型外部检验：

# %%
sl.manual_seed(0)
config = Seq2SeqConfig.from_preset("tiny", source_vocab.vocab_size, target_vocab.vocab_size)
model = Seq2SeqTransformer(config)
print(f"{model.num_parameters():,} 个参数")
with sl.no_grad():
    logits, loss = model(src, tgt_in, tgt_out)
print(f"logits {logits.shape}；损失 {loss.item():.3f}，log V = "
      f"{math.log(config.tgt_vocab_size):.3f}")

changed = tgt_in.copy()
changed[:, 6:] = target_vocab.encode("e")[0]  # 从位置 6 起改写目标句
padded_src = np.concatenate([src, np.full((len(src), 5), PAD_ID)], axis=1)
with sl.no_grad():
    logits_changed, _ = model(src, changed)
    logits_padded, _ = model(padded_src, tgt_in)
print("改写位置 6 起的目标词元，位置 0-5 的输出不变：",
      np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5))
print("位置 6 的输出变了（它看到了改写后的第 6 个词元）：",
      not np.allclose(logits_changed.numpy()[:, 6], logits.numpy()[:, 6], atol=1e-5))
print("源句多 5 个 [PAD] 不改变任何结果：",
      np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5))
assert np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5)
assert np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5)

# %% [markdown]
# ## 训练
#
# `train_translation` 构建两个词表和模型，并用本库的训练循环（`scratchlm.train.Trainer`，训练 GPT
# 和 BERT 用的也是它）在随机抽取的句对小批量上训练：AdamW（$\beta = (0.9, 0.98)$，与论文相同）、
# 先预热再余弦衰减的学习率、梯度裁剪，以及 $\varepsilon = 0.1$
# 的**标签平滑**：目标分布在参考词元上取 $1 - \varepsilon$，再在所有词元上各加
# $\varepsilon / V$，以防模型过度自信（这也使损失始终大于 0）。共训练 1,000 步，每步 32
# 个句对，所用时间由下面的单元格打印。

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
# ## 解码：贪心搜索与束搜索
#
# `greedy_decode` 把解码器自己的输出作为下一步的输入：从 `[BOS]`
# 开始，每步追加最可能的词元，直到生成 `[EOS]`。每一步只计算新的位置，
# 之前各位置的键和值保存在缓存中。`beam_search` 为每个句子保留 `beam_width`
# 个最好的前缀，按总对数概率 $\sum_t \log p(y_t \mid y_{<t}, x)$ 打分（再除以长度的 $\alpha$
# 次方，$\alpha$ 即 `length_penalty`；这里取 $\alpha = 0$，以便比较原始的对数概率）。
# 贪心搜索可能选中一个眼下最好、却通向更差句子的词元；更宽的束通常能找到概率更高的译文（但并非总能：
# 束搜索可能在中途丢掉贪心搜索的那个前缀）。`beam_width=1` 时，束搜索**就是**贪心搜索。

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
    print(f"  贪心搜索        log p = {greedy_scores[i]:6.2f}  "
          f"{run.target_vocab.decode(greedy_ids[i])!r}")
    print(f"  束搜索，束宽 4  log p = {beam_scores[i]:6.2f}  "
          f"{run.target_vocab.decode(beam_ids[i])!r}")
assert np.array_equal(width_one_ids, greedy_ids)


# %% [markdown]
# 在这六个训练句子上，束搜索与贪心搜索给出的译文相同，对数概率也相同。
# 当束搜索确实找到比贪心搜索概率更高的输出时，这个输出往往**更短**：每多一个词元就要再乘上一个小于
# 1 的概率，所以原始的对数概率偏爱早早结束的序列。因此，完成的假设通常按
# $\sum_t \log p(y_t \mid y_{<t}, x) / \text{长度}^\alpha$ 排序；下面的 `run.translate` 和
# `run.bleu` 取 $\alpha = 1$。

# %% [markdown]
# ## BLEU
#
# BLEU（Papineni 等，2002）统计候选译文中的 $n$ 元语法（$n = 1 \dots 4$）
# 有多少也出现在参考译文中（参考译文中的每个 $n$ 元语法，最多只能被匹配它在参考译文中出现的次数）：
#
# $$p_n = \frac{\sum_{g \in \text{$n$ 元语法}(h)} \min(\text{计数}_h(g),
# \text{计数}_r(g))}{|\text{$n$ 元语法}(h)|}, \qquad \mathrm{BP} = \min\!\left(1, e^{1 -
# r/c}\right), \qquad \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\tfrac14 \sum_{n=1}^{4}
# \log p_n\Big).$$
#
# 只看精确率会偏袒短译文，所以用简短惩罚 BP 惩罚长度 $c$ 短于参考长度 $r$ 的候选译文。计算语料级
# BLEU 时，先把所有句子的匹配数、$n$ 元语法总数和长度分别求和，再代入公式。`scratchlm.metrics.bleu`
# 的算法与 sacrebleu 完全一致（测试中对两者做了比较）；下面对两个候选译文手工计算：

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
# 下面分别在训练集句子和留出的句子上，计算贪心搜索和束搜索译文的语料级
# BLEU（`run.bleu`，默认长度惩罚 $\alpha = 1$）：

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
# BLEU 衡量的是候选译文中有多少内容出现在参考译文里（精确率）。**ROUGE**（Lin，2004）
# 原本为自动摘要而设计，它也从参考译文一侧衡量（召回率）：ROUGE-$n$ 把重叠的 $n$
# 元语法数分别与两者的长度相比，ROUGE-L 则使用最长公共子序列（LCS：保持顺序，但不必相邻）：
#
# $$R = \frac{\text{重叠}}{|\text{参考译文}|}, \qquad P =
# \frac{\text{重叠}}{|\text{候选译文}|}, \qquad F = \frac{2PR}{P + R}, \qquad \text{重叠}_L =
# \operatorname{LCS}(h, r).$$
#
# `scratchlm.metrics.rouge` 按 rouge-score 的算法返回三个分数（测试中对两者做了比较）；先手工计算，
# 再用于模型的译文：

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
# 模型能复现 256 个训练句子中的大部分，BLEU 也如实反映了这一点——但训练数据上的高 BLEU
# 衡量的只是记忆。在留出的句子上，BLEU 一落千丈：256 个句子远不足以学会中文，
# 模型给留出句子的译文只是把训练中常见的英文片段拼凑在一起。正因为如此，BLEU
# 总是在模型从未训练过的测试集上报告。
#
# 真正的翻译模型多出的是规模：数百万个句对（WMT 英德数据集约有 450
# 万对）、子词词元而非字符（`scratchlm.text.BPETokenizer`）、`"transformer-base"`
# 预设（编码器和解码器各 6 层，宽度 512），以及数天的 GPU 时间。代码路径是一样的：
# `Seq2SeqTransformer`、教师强制下的交叉熵、束搜索和 BLEU。
#
# ## 小结
#
# * 编码器-解码器 Transformer 用双向注意力读入源句，用因果注意力加上对源句的交叉注意力生成目标句；
#   训练时用教师强制下的交叉熵，解码时用束搜索。
# * BLEU（截断的 $n$ 元语法精确率加上简短惩罚）和 ROUGE-L（最长公共子序列）把译文与参考译文相比较；
#   在训练句子上它们衡量的是记忆，在留出的句子上衡量的才是翻译能力。
#
# ## 练习
#
# 1. 用 512 个句对而不是 256 个训练（HSK 一、二级共有 819 个句对：
#    `load_zh_en_pairs(max_level=2)`）：训练集和留出集上的 BLEU 如何变化？
# 2. 分别用贪心搜索和束宽为 2、4、8 的束搜索解码留出的句子：更宽的束能提高这里的 BLEU 吗？
# 3. 课程第 11 周（`notebooks/COURSE.zh.md`）：`scratchlm.exercises` 中的 `bleu` 和
#    `rouge_l`，以及作业
#    `assignment_03_decoding_metrics`（`python -m scratchlm.exercises show bleu`）。
