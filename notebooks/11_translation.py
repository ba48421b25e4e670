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
# # 11 · Translation with an encoder-decoder Transformer
#
# The original Transformer (Vaswani et al., 2017) translates with two stacks. The **encoder**
# reads the whole source sentence $x$ with self-attention and produces a memory $m$, one vector
# per source token. The **decoder** writes the translation $y$ one token at a time: masked
# (causal) self-attention over the tokens written so far, then **cross-attention** from those
# positions to the memory,
#
# $$\operatorname{CrossAttention}(h, m) = \operatorname{softmax}\!\left(\frac{(h W_Q)(m
# W_K)^\top}{\sqrt{d_k}}\right) m W_V,$$
#
# and finally $p(y_t \mid y_{<t}, x) = \operatorname{softmax}(h_t W^\top + b)$. Token embeddings
# are scaled by $\sqrt{d}$ and added to the sinusoidal positional encoding of notebook 5.
#
# Training maximises the likelihood of the reference translation — the cross-entropy
# $$\mathcal{L} = -\frac{1}{T}\sum_{t=1}^{T} \log p(y_t \mid y_{<t}, x),$$
# with every position computed at once (*teacher forcing*). Translating means searching for a
# likely $y$: **greedy** decoding takes the most likely token at each step; **beam search** keeps
# the $W$ best prefixes by $\sum_t \log p(y_t \mid y_{<t}, x)$. The result is scored with
# **BLEU**, which compares its $n$-grams with those of a reference translation.
#
# We translate short Chinese sentences into English with `scratchlm.models.seq2seq` and score
# the translations with `scratchlm.metrics.bleu`.

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

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

# %% [markdown]
# ## Sentence pairs
#
# `load_zh_en_pairs` reads the graded sentences of the `hsk-sentences-audio` package: Chinese
# sentences of the six HSK levels with their English translations. We take level 1, the
# shortest and simplest, and hold 25 pairs out of training to see how the model does on
# sentences it has never seen.

# %%
pairs = load_zh_en_pairs(max_level=1)
order = np.random.default_rng(0).permutation(len(pairs))
held_out = [pairs[i] for i in order[:25]]
train_pairs = [pairs[i] for i in order[25:]]
print(f"{len(pairs)} pairs: {len(train_pairs)} to train on, {len(held_out)} held out")
for chinese, english in train_pairs[:5]:
    print(f"  {chinese}  ->  {english}")

# %% [markdown]
# ## Tokens and teacher forcing
#
# Each language gets a character vocabulary (`CharVocabulary`), after three special ids:
# `[PAD]` = 0, `[BOS]` = 1 (begin) and `[EOS]` = 2 (end). The decoder's input is the target
# shifted right, $(\text{[BOS]}, y_1, \dots, y_T)$, and its labels are
# $(y_1, \dots, y_T, \text{[EOS]})$: at position $t$ it has seen $y_{<t}$ and must predict $y_t$.
# Sentences of a batch are padded on the right with `[PAD]`, which the encoder's attention masks
# out and the loss ignores.

# %%
source_vocab = CharVocabulary([chinese for chinese, _ in train_pairs])
target_vocab = CharVocabulary([english for _, english in train_pairs])
print(f"vocabularies: {source_vocab.vocab_size} source tokens, {target_vocab.vocab_size} "
      "target tokens")

SPECIAL = {PAD_ID: "[PAD]", BOS_ID: "[BOS]", EOS_ID: "[EOS]"}


def token(vocab, i):
    return SPECIAL.get(i) or vocab.decode([i])


examples = train_pairs[:4]
src = pad_sequences([source_vocab.encode(chinese) for chinese, _ in examples])
targets = [target_vocab.encode(english) for _, english in examples]
tgt_in = pad_sequences([[BOS_ID] + t for t in targets])
tgt_out = pad_sequences([t + [EOS_ID] for t in targets])
print("src", src.shape, " tgt_in", tgt_in.shape, " tgt_out", tgt_out.shape)
print("source:", " ".join(token(source_vocab, i) for i in src[0]))
print("\nposition  decoder sees  must predict")
length = len(targets[0])
for t in [0, 1, 2, 3, None, length - 2, length - 1, length, length + 1]:
    if t is None:
        print(f"{'…':>8s}")
        continue
    print(f"{t:8d}  {token(target_vocab, tgt_in[0, t]):>12s}  {token(target_vocab, tgt_out[0, t])}")

# %% [markdown]
# ## The model, and what its masks guarantee
#
# `Seq2SeqTransformer` takes a `Seq2SeqConfig`; the `"tiny"` preset has two encoder and two
# decoder layers, 32 wide. Given `tgt_out` it returns the logits $(B, T, V)$ and the loss; an
# untrained model does no better than a uniform guess: its loss is near (here a little above)
# $\log V$.
#
# Two masks make teacher forcing honest. The **causal** mask: the logits at position $t$ must
# not depend on any target token after $t$ — otherwise training would let the decoder read the
# answer. The **padding** mask: `[PAD]` added to the source must change nothing. Both can be
# checked from outside:

# %%
sl.manual_seed(0)
config = Seq2SeqConfig.from_preset("tiny", source_vocab.vocab_size, target_vocab.vocab_size)
model = Seq2SeqTransformer(config)
print(f"{model.num_parameters():,} parameters")
with sl.no_grad():
    logits, loss = model(src, tgt_in, tgt_out)
print(f"logits {logits.shape}; loss {loss.item():.3f}, log V = "
      f"{math.log(config.tgt_vocab_size):.3f}")

changed = tgt_in.copy()
changed[:, 6:] = target_vocab.encode("e")[0]  # overwrite the target from position 6 on
padded_src = np.concatenate([src, np.full((len(src), 5), PAD_ID)], axis=1)
with sl.no_grad():
    logits_changed, _ = model(src, changed)
    logits_padded, _ = model(padded_src, tgt_in)
print("positions 0-5 unchanged by a new future:",
      np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5))
print("position 6 changed (it sees the new token 6):",
      not np.allclose(logits_changed.numpy()[:, 6], logits.numpy()[:, 6], atol=1e-5))
print("five [PAD] more in the source change nothing:",
      np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5))
assert np.allclose(logits_changed.numpy()[:, :6], logits.numpy()[:, :6], atol=1e-5)
assert np.allclose(logits_padded.numpy(), logits.numpy(), atol=1e-5)

# %% [markdown]
# ## Training
#
# `train_translation` builds both vocabularies and the model and trains it with the library's
# training loop (`scratchlm.train.Trainer`, the one that trains GPT and BERT) on random batches
# of pairs: AdamW ($\beta = (0.9, 0.98)$, as the paper), a warmup then a cosine decay of the
# learning rate, gradient clipping, and **label smoothing** $\varepsilon = 0.1$: the target
# distribution is $(1 - \varepsilon)$ on the reference token plus $\varepsilon / V$ everywhere,
# which keeps the model from becoming over-confident (and keeps the loss above 0). 1,000 steps
# of 32 pairs follow; the cell prints the time they took.

# %%
started = time.perf_counter()
run = train_translation(train_pairs, preset="tiny", steps=1000, batch_size=32, lr=3e-3,
                        warmup_steps=100, log_every=50, log=None, seed=0)
print(f"1000 steps in {time.perf_counter() - started:.0f} s; "
      f"loss {run.history[0][1]:.2f} (first 50 steps) -> {run.history[-1][1]:.2f} (last 50)")
steps, losses = zip(*run.history)
plt.figure(figsize=(6, 3.5))
plt.plot(steps, losses)
plt.gca().set(xlabel="step", ylabel="cross-entropy, label-smoothed",
              title="training loss (mean over 50 steps)")
plt.show()
assert run.history[-1][1] < 0.5 * run.history[0][1]

# %% [markdown]
# ## Decoding: greedy and beam search
#
# `greedy_decode` feeds the decoder its own output: start from `[BOS]`, append the most likely
# token, repeat until `[EOS]`. Each step computes only the new position; the keys and values of
# the earlier ones are kept in a cache. `beam_search` keeps the `beam_width` best prefixes of
# every sentence, scored by their total log-probability $\sum_t \log p(y_t \mid y_{<t}, x)$
# (divided by length$^\alpha$ with `length_penalty` $\alpha$; $\alpha = 0$ here, to compare raw
# log-probabilities). Greedy can commit to a token that looks best now and leads to a worse
# sentence; a wider beam usually finds a likelier translation (not always: it may drop the
# greedy prefix on the way). With `beam_width=1`, beam search *is* greedy decoding.

# %%
model = run.model
chosen = train_pairs[:6]
src = pad_sequences([run.source_vocab.encode(chinese) for chinese, _ in chosen])
greedy_ids = model.greedy_decode(src, max_len=64, bos_id=BOS_ID, eos_id=EOS_ID)
width_one_ids, greedy_scores = model.beam_search(src, 1, 64, BOS_ID, EOS_ID,
                                                 length_penalty=0.0)
beam_ids, beam_scores = model.beam_search(src, 4, 64, BOS_ID, EOS_ID, length_penalty=0.0)
for i, (chinese, english) in enumerate(chosen):
    print(f"{chinese}   reference: {english}")
    print(f"  greedy, log p = {greedy_scores[i]:6.2f}: {run.target_vocab.decode(greedy_ids[i])!r}")
    print(f"  beam 4, log p = {beam_scores[i]:6.2f}: {run.target_vocab.decode(beam_ids[i])!r}")
assert np.array_equal(width_one_ids, greedy_ids)


# %% [markdown]
# On these six training sentences beam search and greedy decoding give the same translations,
# to the same log-probability. Where beam search finds a more likely output than greedy, it is
# often a *shorter* one: every token multiplies in a probability below 1, so the raw
# log-probability favours stopping early.
# That is why finished hypotheses are usually ranked by $\sum_t \log p(y_t \mid y_{<t}, x) /
# \text{length}^\alpha$; `run.translate` and `run.bleu` below use $\alpha = 1$.

# %% [markdown]
# ## BLEU
#
# BLEU (Papineni et al., 2002) counts how many of the hypothesis' $n$-grams, $n = 1 \dots 4$, also
# occur in the reference (each reference $n$-gram matched at most as often as it occurs there):
#
# $$p_n = \frac{\sum_{g \in n\text{-grams}(h)} \min(\text{count}_h(g),
# \text{count}_r(g))}{|n\text{-grams}(h)|},
# \qquad \mathrm{BP} = \min\!\left(1, e^{1 - r/c}\right),
# \qquad \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Big(\tfrac14 \sum_{n=1}^{4} \log
# p_n\Big).$$
#
# Precision alone would reward a short hypothesis, so the brevity penalty BP punishes a
# hypothesis of $c$ tokens shorter than the reference's $r$. Over a corpus, matches, $n$-gram
# totals and lengths are summed over all sentences before the formula is applied.
# `scratchlm.metrics.bleu` computes it exactly as sacrebleu does (its tests compare the two);
# by hand on two hypotheses:

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
    print(f"{hypothesis!r} against {reference!r}:")
    by_hand = bleu_by_hand(hypothesis, reference)
    library = bleu([hypothesis], [reference])
    print(f"    by hand {by_hand:.2f}, scratchlm.metrics.bleu {library:.2f}")
    assert math.isclose(by_hand, library, rel_tol=1e-9)

# %% [markdown]
# ## How well does the model translate?
#
# Corpus BLEU of greedy and beam-search translations (`run.bleu`, with the default length
# penalty $\alpha = 1$), on sentences from the training set and on the held-out ones:

# %%
scores = {}
for name, subset in [("training", train_pairs[:100]), ("held-out", held_out)]:
    for width in (1, 4):
        scores[name, width] = run.bleu(subset, beam_width=width)
        print(f"{name:8s} sentences, beam width {width}: BLEU {scores[name, width]:5.1f}")
print()
for chinese, english in held_out[:4]:
    print(f"{chinese}   reference: {english}\n    model: {run.translate([chinese], 4)[0]}")
assert scores["training", 1] > 50 > scores["held-out", 1]

# %% [markdown]
# ## ROUGE
#
# BLEU asks how much of the hypothesis is in the reference (precision). **ROUGE** (Lin, 2004), made
# for summaries, looks from the reference's side too: ROUGE-$n$ counts the overlapping $n$-grams
# against both lengths, and ROUGE-L uses the longest common subsequence (LCS, in order but not
# necessarily adjacent),
#
# $$R = \frac{\text{overlap}}{|\text{reference}|}, \qquad P =
# \frac{\text{overlap}}{|\text{hypothesis}|},
# \qquad F = \frac{2PR}{P + R}, \qquad \text{overlap}_L = \operatorname{LCS}(h, r).$$
#
# `scratchlm.metrics.rouge` returns the three scores as rouge-score computes them (its tests
# compare
# the two); by hand, then on the model's translations:

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
    print(f"{name}: by hand F = {value:.4f}, scratchlm.metrics.rouge F = "
          f"{library[name].fmeasure:.4f}")
    assert math.isclose(value, library[name].fmeasure, rel_tol=1e-9)

rouge_l = {}
for name, subset in [("training", train_pairs[:50]), ("held-out", held_out)]:
    translations = run.translate([chinese for chinese, _ in subset], 4)
    rouge_l[name] = np.mean([rouge(t, english)["rougeL"].fmeasure
                             for t, (_, english) in zip(translations, subset)])
    print(f"{name:8s} sentences: mean ROUGE-L F = {rouge_l[name]:.3f}")
assert rouge_l["training"] > rouge_l["held-out"]

# %% [markdown]
# The model reproduces most of its 256 training sentences, and BLEU says so — but a high BLEU on
# training data only measures memory. On held-out sentences BLEU collapses: 256 sentences are far
# too few to learn Chinese, and the held-out translations string together English fragments that
# were frequent in training. This is why BLEU is always reported on a test set the model never
# trained on.
#
# What a real translation model adds is scale: millions of sentence pairs (WMT English–German has
# about 4.5 million), subword tokens instead of characters (`scratchlm.text.BPETokenizer`), the
# `"transformer-base"` preset (6 + 6 layers, 512 wide) and days of GPU time. The code path is the
# same: `Seq2SeqTransformer`, teacher-forced cross-entropy, beam search, BLEU.
#
# ## Summary
#
# * An encoder-decoder Transformer reads the source with bidirectional attention and writes the
#   target with causal attention plus cross-attention to the source; it trains with
#   teacher-forced cross-entropy and decodes with beam search.
# * BLEU (clipped n-gram precision with a brevity penalty) and ROUGE-L (longest common
#   subsequence) score translations against references; on training sentences they measure
#   memory, on held-out ones translation.
#
# ## Exercises
#
# 1. Train on 512 pairs instead of 256 (HSK levels 1–2 hold 819 pairs:
#    `load_zh_en_pairs(max_level=2)`): how do the training and held-out BLEU move?
# 2. Decode the held-out sentences greedily and with beams of 2, 4 and 8: does a wider beam
#    raise BLEU here?
# 3. Course week 11 (`notebooks/COURSE.md`): the `scratchlm.exercises` entries `bleu` and
#    `rouge_l`, and assignment `assignment_03_decoding_metrics`
#    (`python -m scratchlm.exercises show bleu`).
