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
# # 13 · Where in-context learning and prompts come from
#
# A large language model can follow a pattern it is shown only in its prompt: given a few
# solved examples it answers the next one (in-context learning), and a classification task
# rewritten as a blank to fill (a cloze prompt) is answered without any training for it. Neither
# is programmed; both are learned in pre-training. This notebook makes both appear in models
# small enough to train here, and measures them against chance:
#
# 1. a GPT trained on sequences whose second part repeats their first learns to copy from its
#    context, abruptly — a phase change in the loss — with attention heads whose pattern we
#    can read (the induction heads of Olsson et al. 2022);
# 2. a BERT pre-trained with its masked-language-model loss on text in which a summary follows
#    each review answers a cloze prompt with a verbalizer, never having seen a label.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import viz
from scratchlm.models import GPT, GPTConfig
from scratchlm.models.bert import BertConfig, BertForPreTraining
from scratchlm.text.masked_lm import mask_tokens
from scratchlm.train import TrainConfig, Trainer

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))

started = time.perf_counter()
SEEDS = [0, 1, 2]

# %% [markdown]
# ## Repeated random sequences
#
# Each training sequence is $N = 10$ tokens drawn uniformly from $V = 16$, then the same $N$
# tokens again. The first half cannot be predicted by anything: its best loss is $\log V$. The
# second half can be predicted exactly, but only by reading the context: the tokens are new in
# every sequence, so no weight can hold them. A model's accuracy on the second half above chance
# ($1/V$) is in-context learning in its plainest form.

# %%
V, N = 16, 10


def repeated_sequences(rng, size):
    half = rng.integers(0, V, (size, N))
    sequence = np.concatenate([half, half], axis=1)
    return sequence[:, :-1], sequence[:, 1:]  # inputs, next-token targets


x_probe, y_probe = repeated_sequences(np.random.default_rng(99), 256)
in_context = np.zeros(y_probe.shape, bool)
in_context[:, N - 1:] = True  # targets inside the repeat (the first one repeats token 0)


def probe(model, x, y, mask):
    """(loss, accuracy) of the next-token predictions where mask is True, and where it is False."""
    with sl.no_grad():
        log_p = F.log_softmax(model(x)[0]).numpy()
    nll = -np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    hit = log_p.argmax(-1) == y
    return nll[mask].mean(), hit[mask].mean(), nll[~mask].mean(), hit[~mask].mean()


def train_gpt(draw, block_size, n_layer, n_head, n_embd, steps, seed, probe_batch):
    """A GPT trained on draw's sequences; returns it and its probe every 10 steps."""
    sl.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=V, block_size=block_size, n_layer=n_layer, n_head=n_head,
                          n_embd=n_embd))
    curve = [(0, *probe(model, *probe_batch))]

    def record(trainer, loss):
        if trainer.step % 10 == 0:
            curve.append((trainer.step, *probe(model, *probe_batch)))

    config = TrainConfig(max_steps=steps, batch_size=32, learning_rate=3e-3, warmup_steps=20,
                         weight_decay=0.0, seed=seed)
    Trainer(model, draw, None, config).train(progress=False, on_step=record)
    return model, np.array(curve)


runs = {seed: train_gpt(repeated_sequences, 2 * N - 1, 2, 1, 32, 300, seed,
                        (x_probe, y_probe, in_context)) for seed in SEEDS}
chance = 1 / V
print(f"chance: accuracy {chance:.3f}, loss log V = {np.log(V):.3f}")
for seed, (_, curve) in runs.items():
    print(f"seed {seed}: accuracy on the repeat {curve[0, 2]:.3f} before training, "
          f"{curve[-1, 2]:.3f} after; on the first half {curve[-1, 4]:.3f} after")

# %%
before = np.array([curve[0, 2] for _, curve in runs.values()])
after = np.array([curve[-1, 2] for _, curve in runs.values()])
first_half = np.array([curve[-1, 4] for _, curve in runs.values()])
assert (before < 2 * chance).all() and (after > 0.95).all()
assert (np.abs(first_half - chance) < 0.05).all()  # nothing to learn there: still chance
leaves = np.array([curve[np.argmax(curve[:, 1] < np.log(V) - 0.1), 0]
                   for _, curve in runs.values()])
low = np.array([curve[np.argmax(curve[:, 1] < 0.5), 0] for _, curve in runs.values()])
for seed, start, end, (_, curve) in zip(SEEDS, leaves, low, runs.values()):
    print(f"seed {seed}: the loss on the repeat leaves log V at step {start:.0f} and is below 0.5 "
          f"at step {end:.0f}; the first half's loss peaks at {curve[:, 3].max():.2f}")
assert (leaves >= 20).all() and (low - leaves <= 150).all()  # a plateau, then a quick fall

fig, ax = plt.subplots(figsize=(8, 3.6))
for seed, (_, curve) in runs.items():
    ax.plot(curve[:, 0], curve[:, 1], color="C0", alpha=0.8,
            label="loss on the repeat (in context)" if seed == 0 else None)
    ax.plot(curve[:, 0], curve[:, 3], color="C1", alpha=0.8,
            label="loss on the first half" if seed == 0 else None)
ax.axhline(np.log(V), ls="--", c="gray", label="log V (a uniform guess)")
ax.set(xlabel="training step", ylabel="cross-entropy (nats)",
       title=f"{len(SEEDS)} seeds: a plateau at log V, then a sudden drop")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The loss on the repeat sits at $\log V$ for the first few dozen steps — the model predicts the
# token frequencies and nothing else — then falls below 0.5 nats within about a hundred steps
# (the steps are printed above). The curve has two regimes and a short transition between them,
# a phase change; every seed shows it at about the same step. The first half's loss rises above
# $\log V$ while the copying is being learned (the model, not yet sure where a repeat starts,
# also expects repeats where there are none), then returns to $\log V$: nothing can be learned
# there.
#
# ## What the heads read
#
# The attention weights of each layer, $A = \operatorname{softmax}(QK^\top/\sqrt{d} + M)$,
# recomputed from the layer's own weights as in notebook 7, on one sequence (rows: the position
# that predicts; columns: the positions it reads):

# %%
def attention_maps(model, ids):
    """Each layer's attention weights (heads, T, T) for one sequence of ids."""
    maps = []
    T = ids.shape[1]
    with sl.no_grad():
        h = model.transformer.wte(ids) + model.transformer.wpe(np.arange(T))
        for block in model.transformer.h:
            qkv = block.attn.c_attn(block.ln_1(h)).numpy()[0]
            heads = block.attn.num_heads
            q, k, _ = (part.reshape(T, heads, -1).transpose(1, 0, 2)
                       for part in np.split(qkv, 3, -1))
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
            scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            maps.append(weights / weights.sum(-1, keepdims=True))
            h = block(h)
    return maps


def copy_score(weights, offset):
    """Mean weight each query at t ≥ offset puts on key t - offset + 1: the token that followed
    the earlier occurrence of the current one, offset positions back."""
    T = weights.shape[-1]
    return weights[..., np.arange(offset, T), np.arange(1, T - offset + 1)].mean(-1)


model = runs[0][0]
sequence = x_probe[:1]
maps = attention_maps(model, sequence)
labels = [str(t) for t in sequence[0]]
for layer, weights in enumerate(maps):
    print(f"layer {layer}: weight on the token after the earlier occurrence "
          f"{copy_score(weights, N).round(2)}")
viz.attention_heatmap(np.concatenate(maps), labels, labels,
                      title="repeated sequence (seed 0)", head_names=["layer 0", "layer 1"],
                      lang=LANG)

# %% [markdown]
# Layer 0 does the copying: from the second half on, its weight sits on the token that followed
# the same position one half earlier. That is a copy by *position*: the repeat always starts $N$
# tokens back, so "read the token $N - 1$ back" solves the task without looking at any token. A
# one-layer model does it too:

# %%
one_layer, one_curve = train_gpt(repeated_sequences, 2 * N - 1, 1, 1, 32, 300, 0,
                                 (x_probe, y_probe, in_context))
print(f"one layer: accuracy on the repeat {one_curve[-1, 2]:.3f}; weight on the token after "
      f"the earlier occurrence {copy_score(attention_maps(one_layer, sequence)[0], N)[0]:.2f}")
assert one_curve[-1, 2] > 0.95

# %% [markdown]
# An induction head proper finds the earlier occurrence by *content*, at any distance: "find the
# earlier occurrence of the current token and predict the token that followed it". One layer
# cannot express that rule (a head can match the current token, but it then reads the occurrence
# itself, not its successor); two can, when a first-layer head copies each token's predecessor
# into its position and a second-layer head matches the current token against those
# predecessors. We tried repeats at random distances (distinct tokens, random tokens before the
# repeat) with a two-layer model of two heads, 64 wide: after 1,500 steps its loss on the repeat
# had not left the plateau. Olsson et al. saw induction heads form after billions of tokens; ours
# saw about a million. Exercise 1 asks how long it takes here.

# %% [markdown]
# ## A cloze prompt and a verbalizer
#
# Prompting a masked language model rewrites a task as the pre-training task. A review becomes
# `review + "总之很[MASK]。"` ("all in all, very [MASK]."), and a *verbalizer* maps the words the
# model may put in the blank to labels: `好` (good) → positive, `差` (bad) → negative. The
# prediction is the label whose word gets the higher score in the blank. No label is ever
# trained on.
#
# It works only if the pre-training text makes the blank predictable from the review. Here the
# pre-training text is synthetic Chinese restaurant reviews: three clauses "dish 很 adjective"
# (the dish is very …), each adjective good (香 fragrant, 鲜 fresh, …) or bad (咸 salty, 淡 bland,
# …) at random, followed by the summary "总之很好。" when at least two of the three are good,
# "总之很差。" otherwise. A small BERT is trained on this text with the masked-language-model
# loss only: 30% of the characters masked at random (the sentences are short), the summary
# character among them no more often than any other.

# %%
DISHES = "菜汤茶饭面肉鱼虾"
GOOD, BAD = "香鲜甜嫩热脆", "咸淡苦老凉腻"
TEMPLATE = "总之很{}。"
VERBALIZER = {"好": 1, "差": 0}  # the blank's word → the label (1 = positive)
chars = ["[MASK]"] + sorted(set(DISHES + GOOD + BAD + "很，。" + TEMPLATE.format("好差")))
char_id = {c: i for i, c in enumerate(chars)}
MASK_ID = char_id["[MASK]"]


def reviews(rng, size):
    """size reviews of three clauses, and their labels: 1 when at least two are good."""
    good = rng.integers(0, 2, (size, 3))
    texts = []
    for row in good:
        dishes = rng.choice(list(DISHES), 3, replace=False)
        texts.append("，".join(f"{dish}很{rng.choice(list(GOOD if g else BAD))}"
                              for dish, g in zip(dishes, row)) + "。")
    return texts, (good.sum(axis=1) >= 2).astype(int)


def encode(texts):
    return np.array([[char_id[c] for c in text] for text in texts])


def pretraining_batch(rng, size):
    texts, labels = reviews(rng, size)
    words = {label: word for word, label in VERBALIZER.items()}
    full = [text + TEMPLATE.format(words[label]) for text, label in zip(texts, labels)]
    return mask_tokens(encode(full), MASK_ID, len(chars), special_ids=[MASK_ID],
                       mask_prob=0.3, rng=rng)


def mlm_loss(model, batch):
    return model(batch[0], mlm_labels=batch[1]).mlm_loss


texts, labels = reviews(np.random.default_rng(1), 2)
print("pre-training text:", [t + TEMPLATE.format("好" if y else "差")
                             for t, y in zip(texts, labels)])
corrupted, _ = pretraining_batch(np.random.default_rng(1), 1)
print("one masked input :", "".join(chars[i] for i in corrupted[0]))

# %% [markdown]
# The test reviews are new draws (the same generator, another seed); the prompt ends in the
# template with a `[MASK]` where the summary word goes, and the prediction compares the two
# verbalizer words' logits there. Chance is 50%; the labels are nearly balanced (the share of
# positive reviews is printed below: always answering "positive" would score that). We measure the
# untrained model and the pre-trained one, for three seeds.

# %%
test_texts, test_labels = reviews(np.random.default_rng(100), 500)
prompts = encode([text + TEMPLATE.format("好") for text in test_texts])
blank = prompts.shape[1] - 2  # where the summary word stood
prompts[:, blank] = MASK_ID
word_ids = {word: char_id[word] for word in VERBALIZER}


def cloze_accuracy(model):
    with sl.no_grad():
        logits = model(prompts).mlm_logits.numpy()[:, blank]
    positive = logits[:, word_ids["好"]] > logits[:, word_ids["差"]]
    return float((positive.astype(int) == test_labels).mean())


cloze = {}
for seed in SEEDS:
    sl.manual_seed(seed)
    bert = BertForPreTraining(BertConfig(vocab_size=len(chars), max_position=prompts.shape[1],
                                         n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    untrained = cloze_accuracy(bert)
    config = TrainConfig(max_steps=1000, batch_size=32, learning_rate=3e-3, warmup_steps=20,
                         weight_decay=0.0, seed=seed)
    Trainer(bert, pretraining_batch, None, config, loss_fn=mlm_loss).train(progress=False)
    cloze[seed] = (untrained, cloze_accuracy(bert))
    print(f"seed {seed}: cloze accuracy {untrained:.1%} untrained, {cloze[seed][1]:.1%} after "
          f"pre-training (chance 50%)")
print(f"share of positive test reviews: {test_labels.mean():.1%}")

# %%
cloze_before, cloze_after = np.array(list(cloze.values())).T
assert (np.abs(cloze_before - 0.5) < 0.1).all() and (cloze_after > 0.9).all()

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
positions = np.arange(len(SEEDS))
left.bar(positions - 0.2, before, 0.4, label="untrained")
left.bar(positions + 0.2, after, 0.4, label="trained")
left.axhline(chance, ls="--", c="gray", label="chance 1/V")
left.set(title="GPT: next-token accuracy on the repeat", ylabel="accuracy", ylim=(0, 1.05))
right.bar(positions - 0.2, cloze_before, 0.4, label="untrained")
right.bar(positions + 0.2, cloze_after, 0.4, label="pre-trained (MLM only)")
right.axhline(0.5, ls="--", c="gray", label="chance 1/2")
right.set(title="BERT: cloze prompt + verbalizer", ylim=(0, 1.05))
for axis in (left, right):
    axis.set_xticks(positions, [f"seed {seed}" for seed in SEEDS])
    axis.legend(loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()
print(f"notebook ran in {time.perf_counter() - started:.0f} s")

# %% [markdown]
# The pre-trained BERT answers the prompt correctly almost always, on reviews it has not seen,
# although no step of its training had a label: it learned to fill the blank after a review,
# and the verbalizer reads that as a classification. The same prompt is at chance on the
# untrained model. A prompt works when the pre-training text contains its pattern — here by
# construction, in a large model because web text is full of reviews followed by verdicts,
# questions by answers, and lists of examples by one more.
#
# ## Summary
#
# * In-context learning is a prediction that uses information present only in the context. A
#   GPT trained on repeated random sequences goes from chance to perfect copying, through a
#   plateau and a sudden drop of the loss (a phase change), and one attention head does the
#   copying.
# * In our repeats the copy always sits at the same distance, so the head finds it by position
#   (one layer suffices); an induction head finds it by content, at any distance, which needs
#   two layers composing.
# * A cloze prompt with a verbalizer classifies without training on labels, once the MLM's
#   pre-training text made the blank predictable; untrained, it is at chance.
#
# ## Exercises
#
# 1. Make the repeat start at a random position (random tokens before it). Does the one-layer
#    model still copy? How many steps does the two-layer model need, and what do its heads read?
# 2. Change the template to one the pre-training text never contains (for example the summary
#    word before the review). What is the cloze accuracy now?
# 3. Swap the verbalizer's words. What accuracy do you expect, and why is it a useful check?
# 4. Course week 12 (`notebooks/COURSE.md`); the `scratchlm.exercises` entries behind this
#    notebook: `attention_masked` (the causal attention the heads compute) and `mlm_masking`
#    (the corruption BERT learns from), `python -m scratchlm.exercises show attention_masked`.
