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
# # 12 · Fine-tuning and prompt learning
#
# A pre-trained model is adapted to a new task or domain. The ways compared here, from most to
# fewest trained parameters:
#
# * **full fine-tuning**: every weight trains on the new data, at the pre-training learning rate
#   or at a ten times smaller one;
# * **freezing the bottom layers**: the embeddings and the lower blocks keep their pre-trained
#   weights, only the top block (and the final LayerNorm) trains, at the small rate — the
#   recipe the articles teach, since the lower layers hold the most general features;
# * **LoRA** (Hu et al. 2021): each chosen weight matrix stays frozen and learns a low-rank update,
#   $$y = W x + b + \tfrac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; B = 0 \text{ at the start};$$
# * **prompt tuning** (Lester et al. 2021): the whole model is frozen; only $n$ "virtual token"
#   vectors $P \in \mathbb{R}^{n \times d}$, placed before the input's embeddings, train.
#
# We pre-train a character GPT on Shakespeare, then adapt it to modern English (the English side of
# the HSK sentence pairs) each way, and measure what each costs, what it gains on the new text
# (loss and next-character accuracy) and what it forgets of the old one.

# %%
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.peft import PromptTuning, apply_lora, count_parameters, freeze, merge_lora
from scratchlm.text import (
    CharTokenizer,
    get_batch,
    load_shakespeare,
    load_zh_en_pairs,
    train_val_split,
)
from scratchlm.train import TrainConfig, Trainer

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
old_train, old_val = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
known = set(tokenizer.chars)
modern = "".join(c for c in "\n".join(en for _, en in load_zh_en_pairs()) if c in known)
new_train, new_val = train_val_split(np.array(tokenizer.encode(modern)), val_fraction=0.1)
print(modern[:200])

PRETRAINING_RATE = 3e-3
sl.manual_seed(0)
base = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                     n_embd=64))


def show_validation(trainer, loss):
    print(f"pre-trained {trainer.step} steps: Shakespeare validation loss {loss:.3f}")


Trainer(base, old_train, old_val, TrainConfig(
    max_steps=300, batch_size=16, learning_rate=PRETRAINING_RATE, warmup_steps=20,
    eval_interval=300, eval_batches=5, checkpoint_interval=10_000)).train(
    progress=False, on_validate=show_validation)

# %% [markdown]
# ## Six adapted copies
#
# Each method starts from a copy of the pre-trained weights. `freeze(model, train_top_k=1)`
# sets `requires_grad=False` on everything but the top block and `ln_f` (with two blocks, the
# bottom one and the embeddings stay fixed; the output layer is tied to the token embedding, so it
# stays fixed too). `apply_lora` swaps the attention and MLP projections (`c_attn`, `c_proj`,
# `c_fc`) for `LoRALinear` layers with rank $r = 4$ and freezes everything else; `PromptTuning`
# wraps the frozen model behind 8 trainable virtual tokens (windows are 48 characters, so 8 + 48
# fit the 64 positions). The same training loop, `Trainer`, trains each for 150 steps on random
# windows of the new text.

# %%
WINDOW = 48
SMALL_RATE = PRETRAINING_RATE / 10


def copy_of_base():
    model = GPT(base.config)
    model.load_state_dict(base.state_dict())
    return model


def window_loss(model, batch):
    return model(batch[0], batch[1])[1]


def validation(model, data):
    """Mean loss and next-character accuracy on the same 8 batches for every model."""
    rng = np.random.default_rng(1)
    losses, hits = [], []
    with sl.no_grad():
        for _ in range(8):
            x, y = get_batch(data, 16, WINDOW, rng)
            logits, loss = model(x, y)
            losses.append(loss.item())
            hits.append((logits.numpy()[:, -WINDOW:].argmax(-1) == y).mean())
    return float(np.mean(losses)), float(np.mean(hits))


lora_model = apply_lora(copy_of_base(), ["c_attn", "c_proj", "c_fc"], r=4, alpha=8)
prompt_model = PromptTuning(copy_of_base(), 8)
methods = {  # name: (model, learning rate)
    "full, pre-training rate": (copy_of_base(), PRETRAINING_RATE),
    "full, small rate": (copy_of_base(), SMALL_RATE),
    "bottom frozen, small rate": (freeze(copy_of_base(), train_top_k=1), SMALL_RATE),
    "LoRA, r = 4": (lora_model, PRETRAINING_RATE),
    "prompt tuning, 8 tokens": (prompt_model, 3e-2),
}

probe = get_batch(new_val, 2, WINDOW, np.random.default_rng(5))[0]
with sl.no_grad():  # B = 0: LoRA starts as the base model exactly
    assert np.allclose(lora_model(probe)[0].numpy(), base(probe)[0].numpy(), atol=1e-6)

def pad(text, width):
    """``text`` and the spaces that make it ``width`` columns wide on screen: a Chinese
    character takes two columns, so the Chinese edition's tables cannot align with
    ``f"{text:20s}"``."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


results = {"pre-trained only": (0, *validation(base, new_val), validation(base, old_val)[0])}
for name, (model, rate) in methods.items():
    config = TrainConfig(max_steps=150, batch_size=16, weight_decay=0.0, warmup_steps=10,
                         learning_rate=rate)
    Trainer(model, lambda rng, size: get_batch(new_train, size, WINDOW, rng), None, config,
            loss_fn=window_loss).train(progress=False)
    trainable, total = count_parameters(model)
    results[name] = (trainable, *validation(model, new_val), validation(model, old_val)[0])
    print(f"{pad(name, 26)} lr {rate:.0e}, trains {trainable:6,} of {total:,} parameters")
print()
for name, (_, new, accuracy, old) in results.items():
    print(f"{pad(name, 26)} modern English: loss {new:.3f}, accuracy {accuracy:.1%};  "
          f"Shakespeare loss {old:.3f}")

# %% [markdown]
# ## Checks: what trained, what did not
#
# Freezing, LoRA and prompt tuning must leave the frozen weights bit for bit as they were. And a
# trained LoRA layer can be merged, $W \leftarrow W + \tfrac{\alpha}{r} BA$, into a plain weight
# with the same outputs and no extra cost at inference:

# %%
base_weights = base.state_dict()
frozen_model = methods["bottom frozen, small rate"][0]
for name, model in [("bottom frozen", frozen_model), ("LoRA", lora_model),
                    ("prompt", prompt_model.model)]:
    state = model.state_dict()
    fixed = [k for k, p in model.named_parameters() if not p.requires_grad and k in base_weights]
    assert all(np.array_equal(state[k], base_weights[k]) for k in fixed)
    print(f"{name}: all {len(fixed)} frozen pre-trained arrays unchanged")
assert not any(k.startswith("transformer.h.0.") for k, p in frozen_model.named_parameters()
               if p.requires_grad)

with sl.no_grad():
    before_merge = lora_model(probe)[0].numpy()
    merge_lora(lora_model)
    after_merge = lora_model(probe)[0].numpy()
print("max |merged - unmerged| =", np.abs(after_merge - before_merge).max())
assert np.allclose(after_merge, before_merge, atol=1e-4)

# %% [markdown]
# ## Cost, gain, forgetting
#
# The bars start at zero; "pre-trained only" trains nothing, so it has no bar on the left.

# %%
names = list(results)
new_loss = {n: results[n][1] for n in names}
old_loss = {n: results[n][3] for n in names}
fig, (cost, loss, accuracy) = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
rows = np.arange(len(names))
cost.barh(rows, [max(results[n][0], 1e-9) for n in names], color="C2")
cost.set(xscale="log", xlim=(1e2, 2e5), xlabel="trainable parameters (log scale)")
cost.text(1.3e2, 0, "0: nothing trains", va="center", fontsize=8)
cost.set_yticks(rows, names)
cost.invert_yaxis()
loss.barh(rows - 0.2, [new_loss[n] for n in names], 0.4, label="modern English (new)")
loss.barh(rows + 0.2, [old_loss[n] for n in names], 0.4, label="Shakespeare (old)")
loss.set(xlabel="validation loss (nats/char)", xlim=(0, None))
loss.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8)
accuracy.barh(rows, [results[n][2] for n in names], color="C4")
accuracy.set(xlabel="next-character accuracy, modern English", xlim=(0, None))
for axis in (cost, loss, accuracy):
    axis.grid(axis="x", alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# What the numbers above show, in this run:
#
# * Full fine-tuning at the pre-training rate adapts most (lowest loss on the new text) and
#   forgets most (the Shakespeare loss rises furthest: catastrophic forgetting). A ten times
#   smaller rate moves the weights less: less gain, less forgetting.
# * Freezing the bottom block and the embeddings at the small rate trains about half the
#   parameters and forgets least of the three full-model variants, for the least gain.
# * LoRA, at the pre-training rate, trains 7% of the parameters; here it gains a little less than
#   full fine-tuning at the small rate and forgets a little more.
# * Prompt tuning gains least; its "forgetting" is explained below.

# %%
shakespeare_base = old_loss["pre-trained only"]
forgetting = {n: old_loss[n] - shakespeare_base for n in names}
gain = {n: new_loss["pre-trained only"] - new_loss[n] for n in names}
for n in names:
    print(f"{pad(n, 26)} gain on new text {gain[n]:+.3f}, "
          f"forgetting {forgetting[n]:+.3f} nats/char")
assert new_loss["full, pre-training rate"] < new_loss["full, small rate"] < new_loss[
    "pre-trained only"]
assert forgetting["full, pre-training rate"] > forgetting["full, small rate"]
assert forgetting["bottom frozen, small rate"] < forgetting["full, small rate"]
assert all(new_loss[n] < new_loss["pre-trained only"] for n in methods)
assert gain["LoRA, r = 4"] < gain["full, small rate"]
assert forgetting["LoRA, r = 4"] > forgetting["full, small rate"]
assert min(methods, key=gain.get) == "prompt tuning, 8 tokens"

# %% [markdown]
# ## Why prompt tuning "forgets" with an unchanged model
#
# Prompt tuning's Shakespeare loss above is higher than the pre-trained model's, although not one
# weight of the model changed. The loss was measured *through the wrapper*: every Shakespeare
# window was read after the 8 virtual tokens, which were trained to say "modern English follows".
# The model alone, without the prompt, is the pre-trained model exactly; the prompt is the only
# thing that moved, and taking it away takes the "forgetting" away:

# %%
with_prompt = validation(prompt_model, old_val)[0]
without_prompt = validation(prompt_model.model, old_val)[0]
print(f"Shakespeare loss: with the learned prompt {with_prompt:.3f}, the same model without it "
      f"{without_prompt:.3f}, pre-trained model {shakespeare_base:.3f}")
assert without_prompt == shakespeare_base and with_prompt > shakespeare_base

# %% [markdown]
# ## Prompt learning without training
#
# Prompt *learning* in the articles' sense goes one step further: no parameter trains at all. The
# task is rewritten as the pre-training task. A cloze template for BERT, `"[X]总之很[MASK]。"`,
# turns sentiment classification into filling a blank, and a *verbalizer* maps the blank's words
# to labels (`好` → positive, `差` → negative); a GPT is given a few solved examples before the
# question (in-context learning). Notebook 13 shows both working on small models trained in the
# notebook, and where they come from. `scratchlm.prompting` implements them for real text
# (`label_scores`, `predict`, contextual calibration), and `python -m scratchlm prompt --from RUN
# --shots 8` scores a pre-trained run on the Chinese reviews; `python -m scratchlm finetune --from
# RUN --method lora` fine-tunes one for classification. Both need a model pre-trained for longer
# than a notebook should take; the measured table is in `bench/README.md`.
#
# ## Summary
#
# * Full fine-tuning at the pre-training rate gains most on the new text and forgets most; a
#   smaller rate and frozen bottom layers trade some gain for less forgetting.
# * LoRA and prompt tuning leave every pre-trained weight as it was; a LoRA update merges into
#   the weight, and a prompt's "forgetting" is the prompt, not the model.
#
# ## Exercises
#
# 1. Train the frozen variant at the pre-training rate, and full fine-tuning at a rate between
#    the two: where do they land on the gain/forgetting plot?
# 2. Mix 10% Shakespeare windows into the fine-tuning batches (rehearsal): how much forgetting
#    does it remove, and at what cost on the new text?
# 3. Course week 12 (`notebooks/COURSE.md`): its project puts a `scratchlm.exercises` entry of
#    weeks 7–9 (`rmsnorm`, `rope`, `swiglu`) into a model; fine-tune that model here and compare.
