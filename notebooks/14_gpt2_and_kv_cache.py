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
# # 14 · GPT-2's weights, and what the KV cache buys
#
# scratchlm's `GPT` has GPT-2's architecture and nanoGPT's parameter names, so the published GPT-2
# weights load into it: `GPT.from_hf_gpt2("model.safetensors")` reads Hugging Face's file (without
# PyTorch and without pickle), and `load_gpt2_tokenizer()` gives GPT-2's exact token ids. These
# notebooks run offline and this project installs data only from a few packages, none of which
# holds GPT-2's weights (about 500 MB): **no pre-trained GPT-2 is available here**, and this
# notebook downloads nothing. So we write files in exactly Hugging Face's layout ourselves and load
# them back — first from a randomly initialised GPT-2-shaped model (its text is noise), then from
# a small model trained in this notebook (after a short run its text has Shakespeare's layout and
# common words). The loading path is the one real weights take.
#
# Then generation. Producing token $t$ needs the keys and values of all earlier positions. Without
# a cache each step recomputes them for the whole prefix: step $t$ costs $O(t)$ projections, and
# $T$ new tokens cost $O(T^2)$. A **KV cache** keeps each layer's keys and values, so a step
# projects
# only the new token, $O(1)$, and attends over the cache. It costs memory,
# $2 \times L \times T \times d$ numbers per sequence (keys and values, every layer, every
# position).

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.safetensors import load_safetensors, save_safetensors
from scratchlm.text import CharTokenizer, load_gpt2_tokenizer, load_shakespeare, train_val_split
from scratchlm.train import TrainConfig, Trainer

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

tokenizer = load_gpt2_tokenizer()
prompt = np.array([tokenizer.encode("The meaning of life is")])
print(prompt, tokenizer.vocab_size)

# %% [markdown]
# ## Hugging Face's layout
#
# GPT-2 was written with `Conv1D` layers, which store a projection as (in, out) and compute
# $y = xW + b$; scratchlm's `Linear`, like PyTorch's, stores (out, in) and computes
# $y = xW^\top + b$.
# So the four projection matrices of each block are transposed in the file; everything else keeps
# its name, without the `transformer.` prefix. We write such a file from a GPT-2-shaped model
# (GPT-2's vocabulary, head size 64, but 4 layers and 256 wide, to stay quick):

# %%
sl.manual_seed(0)
original = GPT(GPTConfig.from_preset("gpt2", n_layer=4, n_head=4, n_embd=256, block_size=512))
original.eval()
print(f"{original.num_parameters():,} parameters")

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def save_in_hf_layout(model, path):
    """Write model's weights as Hugging Face's GPT-2 file: Conv1D matrices transposed, no
    `transformer.` prefix, no lm_head (tied to wte: GPT-2's file need not hold it)."""
    hf_arrays = {}
    for name, array in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        hf_name = name.removeprefix("transformer.")
        hf_arrays[hf_name] = array.T.copy() if hf_name.endswith(CONV1D) else array
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(hf_arrays, path)


save_in_hf_layout(original, "runs/gpt2-shaped/model.safetensors")
print(sorted(load_safetensors("runs/gpt2-shaped/model.safetensors"))[:6], "...")

loaded = GPT.from_hf_gpt2("runs/gpt2-shaped/model.safetensors")
loaded.eval()
with sl.no_grad():
    difference = np.abs(loaded(prompt)[0].numpy() - original(prompt)[0].numpy()).max()
print("config read from the file:", loaded.config)
print("max |logits difference| =", difference)
assert difference == 0.0 and loaded.config.n_head == 4

# %% [markdown]
# With the real file the call is the same: `GPT.from_hf_gpt2("path/to/gpt2/model.safetensors")`
# (the head count comes from a `config.json` beside it, or from GPT-2's head size of 64), and
# `tests/test_text_gpt2.py` checks the tokenizer against GPT-2's reference ids.
#
# ## Generation: random weights, then trained ones
#
# The random GPT-2-shaped model's distribution over 50,257 ids is near uniform; taking its most
# likely token at every step (greedy decoding), it repeats one token — noise. For text that
# means something we train a model in the same layout: GPT-2's blocks (pre-LN, GELU MLP, tied
# embedding), 4 layers, 128 wide, on Shakespeare one character per token (a 50,257-id output
# layer would take this notebook's whole time budget to train), write it in Hugging Face's
# layout, load it with `from_hf_gpt2` and generate from the loaded copy.

# %%
sl.manual_seed(0)
noise = loaded.generate(prompt, 12, do_sample=False)
print("random GPT-2-shaped model:", repr(tokenizer.decode(noise[0].tolist())))

text = load_shakespeare()
chars = CharTokenizer().train(text)
train_ids, val_ids = train_val_split(np.array(chars.encode(text)), val_fraction=0.1)
sl.manual_seed(0)
small = GPT(GPTConfig.from_preset("gpt2", vocab_size=chars.vocab_size, n_layer=4, n_head=4,
                                  n_embd=128, block_size=64))


def show_validation(trainer, loss):
    print(f"trained {trainer.step} steps: validation loss {loss:.3f} nats/char "
          f"(uniform: {np.log(chars.vocab_size):.3f})")


history = Trainer(small, train_ids, val_ids, TrainConfig(
    max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20, eval_interval=300,
    eval_batches=5, checkpoint_interval=10_000)).train(
    progress=False, on_validate=show_validation)
save_in_hf_layout(small, "runs/gpt2-layout-shakespeare/model.safetensors")
reloaded = GPT.from_hf_gpt2("runs/gpt2-layout-shakespeare/model.safetensors")
reloaded.eval()
assert history["val_loss"][-1] < np.log(chars.vocab_size) - 1.0
sl.manual_seed(0)
sample = reloaded.generate(np.array([chars.encode("KING:\n")]), 160, temperature=0.8)
print("--- trained model, loaded back from the Hugging Face layout ---")
print(chars.decode(sample[0].tolist()))

# %% [markdown]
# ## Generation with and without the cache
#
# `model.generate(..., use_cache=False)` recomputes the whole prefix at every step; the default
# keeps a `KVCache` per layer. The tokens must be identical (causal attention never lets an old
# position see a new one), only the time differs:

# %%
lengths = [16, 32, 64, 128, 192]
seconds = {True: [], False: []}
for n in lengths:
    outputs = {}
    for use_cache in (True, False):
        started = time.perf_counter()
        outputs[use_cache] = loaded.generate(prompt, n, do_sample=False, use_cache=use_cache)
        seconds[use_cache].append(time.perf_counter() - started)
    assert (outputs[True] == outputs[False]).all()
    print(f"{n:4d} new tokens: cache {seconds[True][-1]:6.2f} s, "
          f"no cache {seconds[False][-1]:6.2f} s")
assert seconds[False][-1] > seconds[True][-1]

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(lengths, seconds[True], "o-", label="KV cache: O(T)")
ax.plot(lengths, seconds[False], "o-", label="recompute the prefix: O(T²)")
ax.set(xlabel="new tokens T", ylabel="seconds", title="greedy generation, GPT-2-shaped model")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# With the cache the time grows linearly; without it, quadratically. Here every step also
# multiplies by the 50,257-word output layer, a fixed cost the cache cannot remove, so the gap
# widens with the length and with the model's depth.
#
# ## What the cache holds
#
# After generating, each layer's cache holds keys and values of shape (batch, heads, length,
# head size). Their memory is the formula above:

# %%
caches = loaded.new_kv_caches()
with sl.no_grad():
    loaded(prompt, kv_caches=caches)
layer = caches[0]
print(f"{len(caches)} caches; layer 0 keys {layer.keys.shape}, filled up to {layer.length}")
L, d, T = loaded.config.n_layer, loaded.config.n_embd, loaded.config.block_size
cache_bytes = sum(c.keys.nbytes + c.values.nbytes for c in caches)
assert cache_bytes == 2 * L * T * d * 4  # float32, allocated for block_size positions
print(f"2·L·T·d·4 bytes = {cache_bytes / 2**20:.1f} MiB for one sequence of up to {T} tokens")
full = GPTConfig.from_preset("gpt2")
print(f"GPT-2 small (L = {full.n_layer}, d = {full.n_embd}, T = {full.block_size}): "
      f"{2 * full.n_layer * full.block_size * full.n_embd * 4 / 2**20:.0f} MiB per sequence")

# %% [markdown]
# ## Summary
#
# * scratchlm's GPT has GPT-2's layout; Hugging Face's file differs only in transposed `Conv1D`
#   matrices and names, and `from_hf_gpt2` reads it without PyTorch or pickle. No pre-trained
#   GPT-2 is available offline here, so the loaded models are a random one and one trained above.
# * A KV cache makes each generated token cost $O(1)$ projections instead of $O(t)$, for
#   $2LTd$ numbers of memory per sequence.
#
# ## Exercises
#
# 1. With GPT-2's real `model.safetensors` on your own machine, load it, and compare its
#    continuation of "The meaning of life is" with the random model's.
# 2. Measure the time per new token with and without the cache at 4 and 8 layers: how does the
#    gap grow with depth?
# 3. Course week 12 (`notebooks/COURSE.md`): its project puts a `scratchlm.exercises` entry of
#    weeks 7–9 (`rope`, `gqa`) into the model; what does grouped-query attention do to the cache's
#    size?
