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
# 1. a two-layer GPT trained on random sequences in which a segment repeats, at a distance that
#    changes from sequence to sequence, learns to continue the repeat, abruptly (a phase change
#    in the loss), with an induction head (Olsson et al. 2022): a second-layer attention head
#    that finds the earlier occurrence of the current token and reads the token after it,
#    helped by a first-layer head that looks at the previous token;
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
# ## A repeat at a random distance
#
# Each training sequence is $T = 32$ tokens drawn uniformly from a vocabulary of $V = 16$.
# Somewhere in it a segment $A$ of $L$ distinct tokens is followed at once by $A$ again: $L$ is
# drawn between 8 and 14, and $A$ starts at a random place. Nothing in a sequence can be stored
# in a weight (the tokens are new every time), and outside the second copy the best loss is
# $\log V$. Inside the second copy, from its second token on, the next token is known exactly to
# a model that finds where the current token occurred before and reads the token that came after
# it. No rule of the form "copy the token $k$ positions back" does it, since $k = L$ changes from
# sequence to sequence, and so does where the repeat begins. A model's accuracy there above
# chance ($1/V$) is in-context learning in its plainest form.
#
# Three sequences (the tokens in brackets are the ones the repeat makes predictable):

# %%
V, T = 16, 32  # vocabulary size, sequence length
LENGTHS = np.arange(8, 15)  # the repeated segment's possible lengths L


def repeat_at_random_distance(rng, size):
    """size sequences of random tokens in which a segment of L distinct tokens (L drawn from
    LENGTHS) starts at a random place and follows itself at once. Returns the inputs, the
    next-token targets and the mask of the targets the repeat makes predictable."""
    tokens = rng.integers(0, V, (size, T + 1))
    in_repeat = np.zeros((size, T), bool)
    for row in range(size):
        length = rng.choice(LENGTHS)
        start = rng.integers(0, T + 2 - 2 * length)
        tokens[row, start:start + 2 * length] = np.tile(rng.permutation(V)[:length], 2)
        in_repeat[row, start + length:start + 2 * length - 1] = True  # the copy's 2nd token on
    return tokens[:, :-1], tokens[:, 1:], in_repeat


def next_token_loss(model, batch):
    inputs, targets, _ = batch
    return model(inputs, targets)[1]


x_probe, y_probe, in_repeat = repeat_at_random_distance(np.random.default_rng(99), 256)
for row in range(3):
    print(f"{x_probe[row, 0]:3d} " + " ".join(f"[{t:2d}]" if predictable else f" {t:2d} "
                                             for t, predictable in zip(y_probe[row],
                                                                       in_repeat[row])))

# %% [markdown]
# The model is scratchlm's GPT with two blocks of one head each, 32 wide (its blocks keep their
# MLP, 128 wide), trained with Adam at a constant rate of $10^{-3}$, no weight decay, batches of
# 32 fresh sequences, for 1,500 steps. Every 50 steps a probe measures, on 256 fixed sequences,
# the loss and accuracy on the repeat and elsewhere, and the *induction score* of the last
# layer's head: the attention weight a query $i$ in the repeat puts on the keys $j + 1$ whose
# predecessor is the query's own token ($x_j = x_i$, $j < i$), the tokens an induction head
# reads. The attention weights are recomputed from the layer's own weights, as in notebook 7
# (checked here against the layer's output).

# %%
STEPS, PROBE_EVERY = 1500, 50


def attention_maps(model, ids):
    """Each layer's attention weights (B, heads, T, T) for the token ids (B, T), recomputed
    from the layer's own weights; checks that they rebuild the layer's output."""
    maps = []
    B, T_ids = ids.shape
    causal = np.tril(np.ones((T_ids, T_ids), bool))
    with sl.no_grad():
        h = model.transformer.wte(ids) + model.transformer.wpe(np.arange(T_ids))
        for block in model.transformer.h:
            x_ln = block.ln_1(h)
            q, k, v = (part.reshape(B, T_ids, block.attn.num_heads, -1).transpose(0, 2, 1, 3)
                       for part in np.split(block.attn.c_attn(x_ln).numpy(), 3, -1))
            scores = np.where(causal, q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]),
                              -np.inf)
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            weights /= weights.sum(-1, keepdims=True)
            rebuilt = block.attn.c_proj((weights @ v).transpose(0, 2, 1, 3).reshape(B, T_ids, -1))
            assert np.allclose(rebuilt.numpy(), block.attn(x_ln, is_causal=True).numpy(),
                               atol=1e-4)
            maps.append(weights)
            h = block(h)
    return maps


def induction_score(weights, ids, mask):
    """Per head: the attention weight a query i (where mask is True) puts on the keys j + 1
    with x_j = x_i and j < i, the tokens that followed earlier occurrences of its token,
    averaged over the queries."""
    before = np.concatenate([np.full((len(ids), 1), -1), ids[:, :-1]], axis=1)  # x_(k-1)
    follows_same = (before[:, None, :] == ids[:, :, None]) & np.tril(
        np.ones(weights.shape[-2:], bool))
    return (weights * follows_same[:, None]).sum(-1).transpose(1, 0, 2)[:, mask].mean(-1)


def previous_token_score(weights):
    """Per head: the mean attention weight of a query on the token just before it."""
    T_ids = weights.shape[-1]
    return weights[..., np.arange(1, T_ids), np.arange(T_ids - 1)].mean((0, 2))


def probe(model):
    """Loss and accuracy on the repeat and elsewhere on the probe sequences, and the highest
    induction score among the last layer's heads."""
    with sl.no_grad():
        log_p = F.log_softmax(model(x_probe)[0]).numpy()
    nll = -np.take_along_axis(log_p, y_probe[..., None], -1)[..., 0]
    hit = log_p.argmax(-1) == y_probe
    last_layer = attention_maps(model, x_probe[:64])[-1]
    return (nll[in_repeat].mean(), hit[in_repeat].mean(), nll[~in_repeat].mean(),
            hit[~in_repeat].mean(), induction_score(last_layer, x_probe[:64],
                                                    in_repeat[:64]).max())


def train_gpt(n_layer, seed):
    """A GPT of n_layer one-head blocks trained on repeat_at_random_distance; returns it and
    its probe every PROBE_EVERY steps (step, the probe's five numbers)."""
    sl.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=n_layer, n_head=1, n_embd=32))
    curve = [(0, *probe(model))]

    def record(trainer, loss):
        if trainer.step % PROBE_EVERY == 0:
            curve.append((trainer.step, *probe(model)))

    config = TrainConfig(max_steps=STEPS, batch_size=32, learning_rate=1e-3, warmup_steps=0,
                         min_lr_ratio=1.0, weight_decay=0.0, seed=seed)
    Trainer(model, repeat_at_random_distance, None, config,
            loss_fn=next_token_loss).train(progress=False, on_step=record)
    return model, np.array(curve)


runs = {seed: train_gpt(2, seed) for seed in SEEDS}
chance = 1 / V
print(f"chance: accuracy 1/V = {chance:.3f}, loss log V = {np.log(V):.3f}")
for seed, (_, curve) in runs.items():
    print(f"seed {seed}: accuracy on the repeat {curve[0, 2]:.3f} before training, "
          f"{curve[-1, 2]:.3f} after (loss {curve[-1, 1]:.2f}); elsewhere {curve[-1, 4]:.3f} "
          f"after (loss {curve[-1, 3]:.2f}); induction score "
          f"{curve[0, 5]:.2f} before, {curve[-1, 5]:.2f} after")

# %%
before = np.array([curve[0, 2] for _, curve in runs.values()])
after = np.array([curve[-1, 2] for _, curve in runs.values()])
elsewhere = np.array([curve[-1, 4] for _, curve in runs.values()])
assert (before < 2 * chance).all() and (after > 0.9).all()
assert (np.abs(elsewhere - chance) < 0.03).all()  # nothing to learn there: still chance
# the phase change: the last probe below 40% accuracy on the repeat, the first above 85%
low = np.array([curve[curve[:, 2] < 0.4, 0].max() for _, curve in runs.values()])
high = np.array([curve[curve[:, 2] > 0.85, 0].min() for _, curve in runs.values()])
for seed, start, end, (_, curve) in zip(SEEDS, low, high, runs.values()):
    (_, loss_start, *_, score_start), (_, loss_end, *_, score_end) = (
        curve[curve[:, 0] == step][0] for step in (start, end))
    print(f"seed {seed}: accuracy on the repeat below 40% until step {start:.0f}, above 85% "
          f"from step {end:.0f}; meanwhile the loss on it goes {loss_start:.2f} → "
          f"{loss_end:.2f} nats and the induction score {score_start:.2f} → {score_end:.2f}")
assert (low >= 500).all() and (high - low <= 400).all()  # a long wait, then a quick change

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
for seed, (_, curve) in runs.items():
    left.plot(curve[:, 0], curve[:, 1], color="C0", alpha=0.8,
              label="loss on the repeat" if seed == 0 else None)
    left.plot(curve[:, 0], curve[:, 3], color="C1", alpha=0.8,
              label="loss elsewhere" if seed == 0 else None)
    right.plot(curve[:, 0], curve[:, 5], color="C2", alpha=0.8,
               label="induction score (layer 2)" if seed == 0 else None)
    right.plot(curve[:, 0], curve[:, 2], color="C0", alpha=0.8, ls=":",
               label="accuracy on the repeat" if seed == 0 else None)
left.axhline(np.log(V), ls="--", c="gray", label="log V (a uniform guess)")
left.set(xlabel="training step", ylabel="cross-entropy (nats)",
         title=f"{len(SEEDS)} seeds: the loss on the repeat")
right.axhline(chance, ls="--", c="gray", label="chance 1/V")
right.set(xlabel="training step", ylim=(0, 1.02),
          title="the induction head forms during the drop")
for axis in (left, right):
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# The accuracy before training is below chance, while the loss is about $\log V$ (why is measured
# in the next section).
#
# The loss on the repeat stays at $\log V$ for the first 200 steps or so, then falls slowly
# while the accuracy stays below 40% and the induction score below 0.25; then, within about
# 250 steps, the loss falls by about one nat, the accuracy crosses from 40% to 85% and the
# induction score climbs to about 0.7 (the steps are printed above for each seed). That sudden
# drop, at a step that differs from seed to seed (between steps 850 and 1,350 here), is the
# phase change, and the head forms during it, as Olsson et al. found in large models.
# Elsewhere the loss ends a little *above* $\log V$, presumably because a token that recurs by
# chance makes the model predict a continuation that does not come.
#
# ## What the heads read
#
# The induction score and the previous-token score of each layer's head, on all 256 probe
# sequences, for the three trained models and an untrained one:

# %%
def head_scores(model):
    """(previous-token score, induction score) of each layer's head on the probe sequences."""
    maps = attention_maps(model, x_probe)
    return [(previous_token_score(w)[0], induction_score(w, x_probe, in_repeat)[0])
            for w in maps]


sl.manual_seed(0)
fresh = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=1, n_embd=32))
scores = {"untrained": head_scores(fresh)} | {
    f"seed {seed}": head_scores(model) for seed, (model, _) in runs.items()}
for name, layers in scores.items():
    print(f"{name:>9}: " + "; ".join(
        f"layer {n} previous-token {previous:.2f}, induction {induction:.2f}"
        for n, (previous, induction) in enumerate(layers, start=1)))
trained = np.array([scores[f"seed {seed}"] for seed in SEEDS])  # (seed, layer, score)
assert (trained[:, 1, 1] > 0.7).all() and (trained[:, 0, 1] < 0.1).all()
assert (trained[:, 0, 0] > 2 * scores["untrained"][0][0]).all()
with sl.no_grad():
    reads_own = (fresh(x_probe)[0].numpy().argmax(-1) == x_probe)[in_repeat].mean()
print(f"untrained, in the repeat: the prediction is the token being read at {reads_own:.0%} "
      f"of the positions")

# %% [markdown]
# The untrained model, whose output layer is its token embedding (tied weights), mostly predicts
# the token it is reading; inside a segment of distinct tokens that is never the next one, hence
# its accuracy below chance on the repeat.
#
# In every trained model the layer-2 head puts most of its weight (0.83–0.88 against 0.06
# untrained) on the tokens that followed earlier occurrences of the current token, and layer
# 1's head puts three times its untrained weight on the previous token (0.30–0.33 against
# 0.10), while its own induction score is about zero (0.00–0.01). That division of labour is
# the induction circuit: layer 1 adds to each position something of the token before it;
# layer 2's query, made from the current token $x_i$, matches the key at $j + 1$ whose
# predecessor $x_j$ is the same token, and that key's value carries $x_{j+1}$, the prediction.
# The distance $i - j$ never enters.
#
# Both heads on one probe sequence (seed 0; rows: the position that predicts, columns: the
# positions it reads; red circles, for the rows in the repeat: the tokens after the earlier
# occurrences of the row's token):

# %%
model, row = runs[0][0], 0
ids = x_probe[row:row + 1]
maps = attention_maps(model, ids)
labels = [str(t) for t in ids[0]]
figure = viz.attention_heatmap(np.concatenate([w[0] for w in maps]), labels, labels,
                               title="seed 0, one probe sequence",
                               head_names=["layer 1: the tokens just before",
                                           "layer 2: induction"],
                               lang=LANG)
previous = np.concatenate([[-1], ids[0, :-1]])
queries, keys = np.nonzero((previous[None, :] == ids[0][:, None])
                           & np.tril(np.ones((T, T), bool)) & in_repeat[row][:, None])
figure.axes[1].scatter(keys, queries, s=40, facecolors="none", edgecolors="red")
figure  # noqa: B018 (a cell shows its last value: the figure)

# %% [markdown]
# Layer 1's head is not a pure previous-token head: it spreads its weight over the current token
# and the few before it, less and less with distance. Layer 2's head, in the second copy, puts
# nearly all its weight on one circle per row, the one inside the first copy, on a diagonal
# $L - 1$ columns to the left of the main one. On the circles off that diagonal, where the row's
# token also occurred by chance earlier in the sequence, it puts little weight, presumably
# because the tokens before such an occurrence differ from those before the query and layer 1
# mixes more than one of them into each key.
#
# Layer 2's head needs layer 1: a key at position $j + 1$ can match the query's token only if
# it carries something of the token before it, and only an earlier attention layer can put it
# there. The control: the same data, steps and seed, one block instead of two.

# %%
one_layer, one_curve = train_gpt(1, 0)
one_scores = head_scores(one_layer)[0]
print(f"one layer, {STEPS} steps: accuracy on the repeat {one_curve[-1, 2]:.3f} (chance "
      f"{chance:.3f}, two layers {after.min():.3f}–{after.max():.3f}); loss on the repeat "
      f"{one_curve[-1, 1]:.2f} nats (log V = {np.log(V):.2f}); its head's induction score "
      f"{one_scores[1]:.2f}")
assert one_curve[-1, 2] < 0.25 and one_scores[1] < 0.1

# %% [markdown]
# With one layer the accuracy on the repeat stays near chance (0.10 against 0.06; two layers
# reach 0.93–0.97) and its head's induction score near zero (0.02): nothing in the sequence
# says how far back the repeat starts, and one layer cannot find it by content. The two-layer
# model's in-context copying is the two heads composing.

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
left.set(title="GPT: next-token accuracy on the repeat", ylabel="accuracy",
         ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
right.bar(positions - 0.2, cloze_before, 0.4, label="untrained")
right.bar(positions + 0.2, cloze_after, 0.4, label="pre-trained (MLM only)")
right.axhline(0.5, ls="--", c="gray", label="chance 1/2")
right.set(title="BERT: cloze prompt + verbalizer",
          ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
for axis in (left, right):
    axis.set_xticks(positions, [f"seed {seed}" for seed in SEEDS])
    axis.legend(loc="upper center", ncol=3, fontsize=8)
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
#   two-layer GPT trained on random sequences with a repeat at a random distance goes from
#   chance to continuing the repeat (93–97% here), through a plateau and a sudden drop of the
#   loss (a phase change).
# * The drop is an induction head forming: a layer-2 head that attends to the token after the
#   earlier occurrence of the current token, on top of a layer-1 head that attends to the
#   previous token. A one-layer model on the same data stays near chance.
# * A cloze prompt with a verbalizer classifies without training on labels, once the MLM's
#   pre-training text made the blank predictable; untrained, it is at chance.
#
# ## Exercises
#
# 1. Fix the repeat's length (L = 10) and its start (position 0), so that the copy is always
#    L tokens back. Does the one-layer model copy now, and where does its head look? Then
#    allow repeated tokens inside the segment: what limits the two-layer model's accuracy?
# 2. Change the template to one the pre-training text never contains (for example the summary
#    word before the review). What is the cloze accuracy now?
# 3. Swap the verbalizer's words. What accuracy do you expect, and why is it a useful check?
# 4. Course week 12 (`notebooks/COURSE.md`); the `scratchlm.exercises` entries behind this
#    notebook: `attention_masked` (the causal attention the heads compute) and `mlm_masking`
#    (the corruption BERT learns from), `python -m scratchlm.exercises show attention_masked`.
