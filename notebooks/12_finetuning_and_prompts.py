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
# # 12 · Fine-tuning and prompt learning
#
# A pre-trained model is adapted to a new task or domain. Three ways, from most to fewest trained
# parameters:
#
# * **full fine-tuning**: every weight trains on the new data;
# * **LoRA** (Hu et al. 2021): each chosen weight matrix stays frozen and learns a low-rank update,
#   $$y = W x + b + \tfrac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; B = 0 \text{ at the start};$$
# * **prompt tuning** (Lester et al. 2021): the whole model is frozen; only $n$ "virtual token"
#   vectors $P \in \mathbb{R}^{n \times d}$, placed before the input's embeddings, train.
#
# We pre-train a character GPT on Shakespeare, then adapt it to modern English (the English side of
# the HSK sentence pairs) each way, and measure what each costs and gains — and what it forgets.

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm.models import GPT, GPTConfig
from scratchlm.peft import PromptTuning, apply_lora, count_parameters, merge_lora
from scratchlm.text import (
    CharTokenizer,
    get_batch,
    load_shakespeare,
    load_zh_en_pairs,
    train_val_split,
)
from scratchlm.train import TrainConfig, Trainer

text = load_shakespeare()
tokenizer = CharTokenizer().train(text)
old_train, old_val = train_val_split(np.array(tokenizer.encode(text)), val_fraction=0.1)
known = set(tokenizer.chars)
modern = "".join(c for c in "\n".join(en for _, en in load_zh_en_pairs()) if c in known)
new_train, new_val = train_val_split(np.array(tokenizer.encode(modern)), val_fraction=0.1)
print(modern[:200])

sl.manual_seed(0)
base = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=4,
                     n_embd=64))
Trainer(base, old_train, old_val, TrainConfig(
    max_steps=300, batch_size=16, learning_rate=3e-3, warmup_steps=20, eval_interval=300,
    eval_batches=5, checkpoint_interval=10_000)).train(progress=False)

# %% [markdown]
# ## Three adapted copies
#
# Each method starts from a copy of the pre-trained weights. `apply_lora` swaps the attention and
# MLP projections (`c_attn`, `c_proj`, `c_fc`) for `LoRALinear` layers with rank $r = 4$ and
# freezes everything else; `PromptTuning` wraps the frozen model behind 8 trainable virtual tokens
# (windows are 48 characters, so 8 + 48 fit the 64 positions). The same training loop,
# `Trainer`, trains each for 150 steps on random windows of the new text.

# %%
WINDOW = 48


def copy_of_base():
    model = GPT(base.config)
    model.load_state_dict(base.state_dict())
    return model


def window_loss(model, batch):
    return model(batch[0], batch[1])[1]


def validation_loss(model, data):
    rng = np.random.default_rng(1)  # the same batches for every model
    with sl.no_grad():
        return float(np.mean([window_loss(model, get_batch(data, 16, WINDOW, rng)).item()
                              for _ in range(8)]))


lora_model = apply_lora(copy_of_base(), ["c_attn", "c_proj", "c_fc"], r=4, alpha=8)
models = {"full fine-tuning": copy_of_base(), "LoRA, r = 4": lora_model,
          "prompt tuning, 8 tokens": PromptTuning(copy_of_base(), 8)}

probe = get_batch(new_val, 2, WINDOW, np.random.default_rng(5))[0]
with sl.no_grad():  # B = 0: LoRA starts as the base model exactly
    assert np.allclose(lora_model(probe)[0].numpy(), base(probe)[0].numpy(), atol=1e-6)

results = {"pre-trained only": (count_parameters(base)[0], validation_loss(base, new_val),
                                validation_loss(base, old_val))}
for name, model in models.items():
    config = TrainConfig(max_steps=150, batch_size=16, weight_decay=0.0, warmup_steps=10,
                         learning_rate=3e-2 if name.startswith("prompt") else 3e-3)
    Trainer(model, lambda rng, size: get_batch(new_train, size, WINDOW, rng), None, config,
            loss_fn=window_loss).train(progress=False)
    trainable, total = count_parameters(model)
    results[name] = (trainable, validation_loss(model, new_val), validation_loss(model, old_val))
    print(f"{name:24s} trains {trainable:7,} of {total:,} parameters")
for name, (_, new, old) in results.items():
    print(f"{name:24s} loss on modern English {new:.3f}, on Shakespeare {old:.3f}")

# %% [markdown]
# ## Checks: what trained, what did not
#
# LoRA and prompt tuning must leave the pre-trained weights bit for bit as they were. And a trained
# LoRA layer can be merged, $W \leftarrow W + \tfrac{\alpha}{r} BA$, into a plain weight with the
# same
# outputs and no extra cost at inference:

# %%
base_weights = base.state_dict()
for name, model in [("LoRA", lora_model), ("prompt", models["prompt tuning, 8 tokens"].model)]:
    state = model.state_dict()
    frozen = [k for k in base_weights if k in state]
    assert all(np.array_equal(state[k], base_weights[k]) for k in frozen)
    print(f"{name}: all {len(frozen)} pre-trained arrays unchanged")

with sl.no_grad():
    before_merge = lora_model(probe)[0].numpy()
    merge_lora(lora_model)
    after_merge = lora_model(probe)[0].numpy()
print("max |merged - unmerged| =", np.abs(after_merge - before_merge).max())
assert np.allclose(after_merge, before_merge, atol=1e-4)

new_loss = {name: r[1] for name, r in results.items()}
assert (new_loss["full fine-tuning"] < new_loss["LoRA, r = 4"]
        < new_loss["prompt tuning, 8 tokens"] < new_loss["pre-trained only"])

# %% [markdown]
# ## Cost, gain, forgetting
#
# Every method lowers the loss on the new text; the more parameters train, the lower it goes, and
# the more the model forgets Shakespeare (catastrophic forgetting). Prompt tuning trains a
# two-hundredth of the parameters and forgets least: the model itself has not changed.

# %%
names = list(results)
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
left.barh(names, [results[n][0] for n in names])
left.set(xscale="log", xlabel="trainable parameters (log scale)")
positions = np.arange(len(names))
right.bar(positions - 0.2, [results[n][1] for n in names], 0.4, label="modern English (new)")
right.bar(positions + 0.2, [results[n][2] for n in names], 0.4, label="Shakespeare (old)")
right.set_xticks(positions, [n.split(",")[0] for n in names])
right.set(ylabel="validation loss (nats/char)", ylim=(1.5, None))
right.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Prompt learning without training
#
# Prompt *learning* in the articles' sense goes one step further: no parameter trains at all. The
# task is rewritten as the pre-training task. A cloze template for BERT, `"[X]总之很[MASK]。"`,
# turns
# sentiment classification into filling a blank, and a *verbalizer* maps the blank's words to
# labels
# (`好` → positive, `差` → negative); a GPT is given a few solved examples before the question
# (in-context learning). `scratchlm.prompting` implements both (`label_scores`, `predict`,
# contextual calibration), and `python -m scratchlm prompt --from RUN --shots 8` scores a
# pre-trained run
# on the Chinese reviews; `python -m scratchlm finetune --from RUN --method lora` fine-tunes one
# for
# classification. Both need a model pre-trained for longer than a notebook should take; the
# measured
# table is in `bench/README.md`.
