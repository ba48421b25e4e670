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
# # 9 · Decoding strategies compared
#
# A language model gives, at each step, a distribution $p(\cdot \mid y_{<t})$ over the next token;
# **decoding** turns it into text. Five ways, from the same trained model:
#
# * **greedy**: $y_t = \arg\max p(\cdot \mid y_{<t})$;
# * **temperature** $\tau$: sample from $p_\tau(i) \propto \exp(z_i/\tau)$, where $z$ are the
#   logits;
# * **top-k**: sample among the $k$ most likely tokens only;
# * **top-p** (nucleus): sample among the smallest set $S$ with $\sum_{i \in S} p(i) \ge p$;
# * **beam search**: keep the $W$ prefixes with the highest $\sum_t \log p(y_t \mid y_{<t})$.
#
# The first maximises each step, the last the whole sequence (approximately); sampling trades
# likelihood for variety. We measure both sides, and draw the tree a beam search explores.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import viz
from scratchlm.generation import beam_search, top_p_filter
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                      n_embd=64))
config = TrainConfig(max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                     eval_interval=300, eval_batches=5, checkpoint_interval=10_000)


def show_validation(trainer, loss):
    print(f"after {trainer.step} steps: validation loss {loss:.4f} "
          f"(perplexity {np.exp(loss):.2f})")


Trainer(model, train_ids, val_ids, config).train(progress=False, on_validate=show_validation)
model.eval()
prompt = np.array([tokenizer.encode("KING:\nWhat")])

# %% [markdown]
# ## Temperature reshapes one distribution
#
# At the prompt's end, the next-character distribution and its entropy
# $H(p_\tau) = -\sum_i p_\tau(i) \log p_\tau(i)$ as $\tau$ varies: $\tau \to 0$ concentrates all
# mass on
# the argmax (greedy), $\tau = 1$ is the model's own distribution, large $\tau$ tends to uniform
# ($H \to \log V$).

# %%
with sl.no_grad():
    z = model(prompt)[0].numpy()[0, -1].astype(np.float64)


def entropy(p):
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


taus = np.geomspace(0.05, 20, 40)
entropies = [entropy(softmax(z / tau)) for tau in taus]
model_p = F.softmax(sl.tensor(z)).numpy()
assert np.isclose(entropy(softmax(z)), entropy(model_p))
assert entropies[0] < 0.01 and abs(entropies[-1] - np.log(len(z))) < 0.1

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5))
order = np.argsort(-z)[:12]
for tau in (0.5, 1.0, 2.0):
    left.plot(range(12), softmax(z / tau)[order], "o-", label=f"τ = {tau}")
left.set_xticks(range(12), [repr(tokenizer.decode([i]))[1:-1] for i in order])
left.set(title="p_τ of the 12 likeliest next characters", ylabel="probability")
left.legend()
right.semilogx(taus, entropies)
right.axhline(np.log(len(z)), ls="--", c="gray", label="log V (uniform)")
right.set(xlabel="temperature τ", ylabel="entropy (nats)", title="H(p_τ)")
right.legend()
plt.show()

# %% [markdown]
# ## What top-p keeps
#
# `top_p_filter` keeps the likeliest tokens until their probability reaches $p$ (the token that
# crosses $p$ included). We count the kept tokens by sorting the probabilities ourselves:

# %%
p_sorted = np.sort(model_p)[::-1]
for p in (0.5, 0.8, 0.9, 0.99):
    kept = int(np.isfinite(top_p_filter(z, p)).sum())
    by_hand = int(np.searchsorted(np.cumsum(p_sorted), p) + 1)
    print(f"p = {p}: {kept} tokens kept")
    assert kept == by_hand

# %% [markdown]
# ## Likelihood against variety
#
# Eight continuations of 48 characters per strategy. For each we measure the mean log-probability
# per character under the model (higher: more "typical" text) and the share of distinct 4-grams
# among all 4-grams (lower: more repetition). Greedy decoding is sampling with $k = 1$, and beam
# search with width 1:

# %%
N_NEW, N_SAMPLES = 48, 8
prompts = np.repeat(prompt, N_SAMPLES, axis=0)


def mean_log_prob(ids):
    with sl.no_grad():
        log_p = F.log_softmax(model(ids)[0]).numpy()
    new = np.arange(prompt.shape[1], ids.shape[1])
    return float(np.take_along_axis(log_p[:, new - 1], ids[:, new, None], -1).mean())


def distinct_4grams(ids):
    grams = [tuple(row[i:i + 4]) for row in ids[:, prompt.shape[1]:] for i in range(N_NEW - 3)]
    return len(set(grams)) / len(grams)


sl.manual_seed(0)
outputs = {
    "greedy": model.generate(prompts, N_NEW, do_sample=False),
    "beam, W = 4": np.repeat(beam_search(model, prompt, N_NEW, beam_width=4)[0], N_SAMPLES, 0),
    "τ = 0.7": model.generate(prompts, N_NEW, temperature=0.7),
    "τ = 1.0": model.generate(prompts, N_NEW, temperature=1.0),
    "τ = 1.5": model.generate(prompts, N_NEW, temperature=1.5),
    "top-k, k = 5": model.generate(prompts, N_NEW, top_k=5),
    "top-p, p = 0.9": model.generate(prompts, N_NEW, top_p=0.9),
}
assert (model.generate(prompt, N_NEW, top_k=1) == outputs["greedy"][:1]).all()
assert (beam_search(model, prompt, N_NEW, beam_width=1)[0] == outputs["greedy"][:1]).all()

scores = {name: (mean_log_prob(ids), distinct_4grams(ids)) for name, ids in outputs.items()}
for name, ids in outputs.items():
    print(f"--- {name}: log p/char {scores[name][0]:.2f}, distinct 4-grams {scores[name][1]:.2f}")
    print(tokenizer.decode(ids[0].tolist()))
assert scores["greedy"][0] > scores["τ = 1.5"][0] and scores["greedy"][1] < scores["τ = 1.5"][1]

fig, ax = plt.subplots(figsize=(6, 4))
below = {"beam, W = 4"}  # it lands next to greedy: its label goes under its point
for name, (log_p, distinct) in scores.items():
    ax.plot(distinct, log_p, "o")
    ax.annotate(name, (distinct, log_p), xytext=(4, -12 if name in below else 4),
                textcoords="offset points")
ax.set(xlabel="distinct 4-grams (variety)", ylabel="mean log p per character (likelihood)")
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Maximising the likelihood (greedy, beam) gives text the model finds most probable, and repeats
# itself; raising the temperature buys variety with likelihood. Top-k and top-p cut the unlikely
# tail, so they sample with variety but rarely produce the nonsense characters a hot temperature
# lets through.
#
# ## The tree a beam search explores
#
# `viz.beam_tree` runs `beam_search` and records, at each step, which hypotheses are kept (best
# first, from the top) and which one each extends, with its summed log-probability; the best
# final hypothesis' path is red. A beam search keeps the runners-up because the hypothesis that
# looks best after a few steps need not lead to the best whole sequence. Whether that happens
# depends on the prompt: we look for a step where the top node is off the red path.

# %%
prompt_tree = np.array(tokenizer.encode("ROMEO:\n"))
levels = viz.beam_search_tree(model, prompt_tree, 6, beam_width=3)
best = [node.token for level in levels for node in level if node.best]
ids, log_p = beam_search(model, prompt_tree[None], 6, beam_width=3)
assert best == ids[0, len(prompt_tree):].tolist()
print(repr(tokenizer.decode(best)), f"log p = {log_p[0]:.3f}")
overtaken = [t + 1 for t, level in enumerate(levels) if not level[0].best]
print("steps whose top hypothesis is not on the best path:", overtaken)
for t in overtaken:
    top = levels[t - 1][0]
    print(f"  after {t} characters the leader ends in {tokenizer.decode([top.token])!r} "
          f"(Σ log p = {top.log_prob:.2f}); it is not a prefix of the winner")
assert overtaken
viz.beam_tree(model, prompt_tree, 6, beam_width=3, decode=tokenizer.decode, lang=LANG)

# %% [markdown]
# From the prompt `ROMEO:\n`, the hypothesis in the lead after the first steps (the top node of
# those columns) is not where the red path runs: a line starting with another word overtakes it
# later, once its following characters turn out likely. Greedy decoding, which keeps only the
# leader, cannot recover from such a start; a beam of three can.
#
# ## Summary
#
# * Greedy and beam search maximise likelihood and repeat themselves; temperature, top-k and
#   top-p buy variety with likelihood, the filters without the nonsense of a hot temperature.
# * Temperature scales the logits: $\tau \to 0$ is greedy, large $\tau$ tends to uniform.
# * A beam keeps runners-up, and a runner-up can win.
#
# ## Exercises
#
# 1. Find a prompt for which beam search with $W = 3$ and greedy decoding agree on every step;
#    what do the log-probabilities of the runners-up look like there?
# 2. Add a repetition penalty (divide the logit of every token already generated by 1.3) and
#    place it on the likelihood/variety plot.
# 3. Course week 10 (`notebooks/COURSE.md`): the `scratchlm.exercises` entries `top_k`, `top_p`
#    and `beam_search` (`python -m scratchlm.exercises show top_p`).
