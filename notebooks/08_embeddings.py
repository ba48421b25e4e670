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
# # 8 · Embeddings and positional encodings
#
# The GPT of notebook 7 began with two tables we used without looking inside. This notebook
# opens them. A token id is only a name. The model's first layer, the **embedding**, turns it
# into a vector:
# row $x$ of a learned matrix $E \in \mathbb{R}^{V \times d}$. Looking up a row is the same as
# multiplying a one-hot vector by $E$,
#
# $$e(x) = E^\top \mathbf{1}_x = E[x], \qquad \frac{\partial L}{\partial E} = \sum_t
# \mathbf{1}_{x_t}
# \Big(\frac{\partial L}{\partial e_t}\Big)^{\!\top},$$
#
# so only the rows of tokens that occur get a gradient, summed over their occurrences. Training
# moves tokens that behave alike (that predict, and are predicted by, similar neighbours) close
# together: the embedding becomes a *semantic space*. Attention sees no order, so each position
# also gets a vector: a fixed sinusoidal code (the original Transformer) or a learned row of
# $P \in \mathbb{R}^{T \times d}$ (GPT).

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.text import CharTokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)

# %% [markdown]
# ## A lookup is a one-hot product
#
# `nn.Embedding` does the lookup; we compare it with the one-hot product, and its gradient with
# $\sum_t \mathbf{1}_{x_t} g_t^\top$ — an id used twice gets the sum of both gradients.

# %%
sl.manual_seed(0)
embedding = nn.Embedding(6, 4)
ids = np.array([[1, 3, 1, 5]])  # id 1 twice
out = embedding(ids)
one_hot = np.eye(6)[ids[0]]  # (4, 6)
assert np.allclose(out.numpy()[0], one_hot @ embedding.weight.numpy())

g = rng.standard_normal(out.shape).astype(np.float32)
out.backward(g)
print("rows with a gradient:", np.flatnonzero(np.abs(embedding.weight.grad).sum(1)))
assert np.allclose(embedding.weight.grad, one_hot.T @ g[0], atol=1e-6)

# %% [markdown]
# ## Trained character embeddings
#
# As in notebook 7, we train a character GPT on Shakespeare, smaller and shorter (2 layers,
# 300 steps), and read its token embedding `transformer.wte.weight` (64 numbers per
# character). Similarity is measured by the
# cosine, $\cos(u, v) = u^\top v / (\lVert u\rVert\,\lVert v\rVert)$. Before training, letters are
# random vectors: the mean cosine between two lowercase letters is about the same as between a
# lowercase and an uppercase one. After training the two groups have separated:

# %%
text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                      n_embd=64))

lower = [tokenizer.encode(c)[0] for c in "abcdefghijklmnopqrstuvwxyz"]
upper = [tokenizer.encode(c)[0] for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]


def cosines():
    weight = model.transformer.wte.weight.numpy()
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    return unit @ unit.T


def group_gap():
    s = cosines()
    within = np.mean([s[i, j] for group in (lower, upper) for i in group for j in group if i != j])
    across = s[np.ix_(lower, upper)].mean()
    return within, across


before = group_gap()
config = TrainConfig(max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                     eval_interval=300, eval_batches=5, checkpoint_interval=10_000)


def show_validation(trainer, loss):
    print(f"after {trainer.step} steps: validation loss {loss:.4f} "
          f"(perplexity {np.exp(loss):.2f})")


Trainer(model, train_ids, val_ids, config).train(progress=False, on_validate=show_validation)
after = group_gap()
print(f"mean cosine within a case / across cases: before {before[0]:.3f} / {before[1]:.3f}, "
      f"after {after[0]:.3f} / {after[1]:.3f}")
assert abs(before[0] - before[1]) < 0.05 and after[0] - after[1] > 0.2

# %% [markdown]
# ### Nearest neighbours
#
# The characters whose embeddings are closest (highest cosine) to a few chosen ones. Nobody told
# the model what a vowel is:

# %%
similarity = cosines()
neighbours = {}
for ch in "aeATs.,1":
    i = tokenizer.encode(ch)[0]
    nearest = [j for j in np.argsort(-similarity[i]) if j != i][:5]
    neighbours[ch] = [tokenizer.decode([j]) for j in nearest]
    print(f"{ch!r}: {neighbours[ch]}")
assert sum(c in "aeiouy" for c in neighbours["a"]) >= 3

# %% [markdown]
# ### A map of the embedding space
#
# `viz.embedding_map` projects the 64-dimensional vectors on their two principal components
# (PCA: the directions along which the vectors vary most, from the SVD of the centred matrix) and
# labels each point. Vowels are drawn in red:

# %%
shown = [c for c in tokenizer.chars if c.isalnum() or c in ".,;:!?'-"]
vectors = model.transformer.wte.weight.numpy()[[tokenizer.encode(c)[0] for c in shown]]
viz.embedding_map(vectors, shown, highlight=list("aeiouAEIOU"),
                  title="character embeddings of a GPT trained for 300 steps", lang=LANG)

# %% [markdown]
# ## Sinusoidal positional encoding: a rotation per offset
#
# Notebook 5 drew the sinusoidal table. Why these functions? For each frequency
# $\omega_i = 10000^{-2i/d}$ the pair $(\sin \omega_i p, \cos \omega_i p)$ moved on by $k$
# positions is
# a rotation of itself by the angle $\omega_i k$:
#
# $$\begin{pmatrix}\sin \omega_i (p + k)\\ \cos \omega_i (p + k)\end{pmatrix} =
# \begin{pmatrix}\cos \omega_i k & \sin \omega_i k\\ -\sin \omega_i k & \cos \omega_i
# k\end{pmatrix}
# \begin{pmatrix}\sin \omega_i p\\ \cos \omega_i p\end{pmatrix}.$$
#
# So one fixed linear map $R_k$ takes every position to the position $k$ further on — a relation a
# layer can learn once for all positions. We build $R_k$ from the formula and apply it to the
# library's table:

# %%
d_model, max_len, k = 32, 128, 7
encoding = nn.SinusoidalPositionalEncoding(d_model, max_len)
table = encoding(sl.tensor(np.zeros((1, max_len, d_model), dtype=np.float32))).numpy()[0]

omega = 10000.0 ** (-np.arange(0, d_model, 2) / d_model)
R = np.zeros((d_model, d_model))
for i, w in enumerate(omega):
    c, s = np.cos(w * k), np.sin(w * k)
    R[2 * i:2 * i + 2, 2 * i:2 * i + 2] = [[c, s], [-s, c]]
moved = table[:-k] @ R.T
print("max |R_k PE(p) - PE(p + k)| =", np.abs(moved - table[k:]).max())
assert np.allclose(moved, table[k:], atol=1e-5)

# %% [markdown]
# ## Learned positions
#
# GPT learns its position vectors instead, the rows of `transformer.wpe.weight`. After only 300
# steps they already carry order: neighbouring positions have similar vectors. Left, the cosine
# between every two of the 64 learned positions, and between every two sinusoidal codes (which
# depends on the distance only); right, the learned positions' map, each point labelled with its
# index.

# %%
learned = model.transformer.wpe.weight.numpy()
unit = learned / np.linalg.norm(learned, axis=1, keepdims=True)
learned_cos = unit @ unit.T
sin_unit = table[:64] / np.linalg.norm(table[:64], axis=1, keepdims=True)
near = np.mean(np.diagonal(learned_cos, 1))
far = np.mean([np.diagonal(learned_cos, d).mean() for d in range(30, 60)])
print(f"learned positions: mean cosine at distance 1 {near:.2f}, at distance 30-59 {far:.2f}")
assert near > far

fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), layout="constrained")
for ax, matrix, title in [(axes[0], learned_cos, "learned (GPT)"),
                          (axes[1], sin_unit @ sin_unit.T, "sinusoidal")]:
    image = ax.imshow(matrix, cmap="RdBu", vmin=-1, vmax=1)
    ax.set(title=title, xlabel="position j", ylabel="position i")
fig.suptitle("cosine between the vectors of positions i and j")
fig.colorbar(image, ax=axes)
plt.show()
viz.embedding_map(learned, [str(p) for p in range(len(learned))],
                  title="learned position vectors, PCA", lang=LANG)

# %% [markdown]
# Embeddings are where a model's knowledge of tokens lives. Notebooks 5 and 6 fed such vectors
# to attention and to the Transformer block, and notebook 7 trained them inside a GPT;
# notebook 9 decodes text from such a model.
#
# ## Summary
#
# - An embedding lookup $E[x]$ is the product of a one-hot vector with $E$; its gradient
#   reaches only the rows of the ids that occur, summed over their occurrences.
# - After 300 steps of training, the character embeddings group by case (mean cosine 0.38
#   within a case, −0.14 across) and the nearest neighbours of `a` are the other vowels.
# - A sinusoidal code moved on by $k$ positions is a fixed rotation $R_k$ of itself; GPT's
#   learned position vectors are most similar for neighbouring positions (cosine 0.47 at
#   distance 1, −0.19 at distances 30–59).
#
# ## Exercises
#
# 1. Train for 1,000 steps instead of 300: does the gap between the within-case and the
#    across-case cosine grow?
# 2. Find the character whose nearest neighbours change most between step 300 and step 1,000.
# 3. The graded exercise **`embedding`** (week 5 of [COURSE.md](COURSE.md)) asks for the lookup's
#    backward: a scatter-add over repeated ids (`python -m scratchlm.exercises show embedding`).
