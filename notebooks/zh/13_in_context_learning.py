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
# # 13 · 上下文学习与提示从何而来
#
# 大语言模型能照着只在提示里出现的模式做事：给它几个解好的例子，它就能回答下一个（上下文学习，
# in-context learning）；把分类任务改写成一个待填的空（完形填空提示，cloze prompt），
# 它不经任何针对该任务的训练就能作答。这两种能力都不是编出来的，而是在预训练中学到的。
# 本篇在小到能当场训练的模型上让这两种能力出现，并与随机猜测对比：
#
# 1. 一个 GPT 在“后半段重复前半段”的序列上训练，学会从上下文里复制，而且是突然学会的——损失出现相变
#    （phase change）；它的注意力头的模式可以直接读出来（Olsson 等 2022 所说的归纳头，
#    induction head）；
# 2. 一个 BERT 只用掩码语言模型损失，在“每条评论后面跟一句总结”的文本上预训练，
#    之后借助完形填空提示和标签词映射器（verbalizer）完成分类，而它从未见过一个标签。

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

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))

started = time.perf_counter()
SEEDS = [0, 1, 2]

# %% [markdown]
# ## 重复的随机序列
#
# 每条训练序列先是从 $V = 16$ 个词元中均匀抽取的 $N = 10$ 个词元，然后把这 $N$ 个词元原样再来一遍。
# 前半段无从预测，最好的损失就是 $\log V$；后半段可以被准确预测，但只能靠读上下文：
# 每条序列里的词元都是新抽的，没有哪个权重能记住它们。模型在后半段的准确率高于随机猜测（$1/V$），
# 就是最朴素的上下文学习。

# %%
V, N = 16, 10


def repeated_sequences(rng, size):
    half = rng.integers(0, V, (size, N))
    sequence = np.concatenate([half, half], axis=1)
    return sequence[:, :-1], sequence[:, 1:]  # 输入，下一个词元的目标


x_probe, y_probe = repeated_sequences(np.random.default_rng(99), 256)
in_context = np.zeros(y_probe.shape, bool)
in_context[:, N - 1:] = True  # 重复段内的目标（第一个重复的是第 0 个词元）


def probe(model, x, y, mask):
    """mask 为 True 处与为 False 处下一个词元预测的（损失，准确率）。"""
    with sl.no_grad():
        log_p = F.log_softmax(model(x)[0]).numpy()
    nll = -np.take_along_axis(log_p, y[..., None], -1)[..., 0]
    hit = log_p.argmax(-1) == y
    return nll[mask].mean(), hit[mask].mean(), nll[~mask].mean(), hit[~mask].mean()


def train_gpt(draw, block_size, n_layer, n_head, n_embd, steps, seed, probe_batch):
    """在 draw 生成的序列上训练的 GPT；返回模型和每 10 步一次的探测结果。"""
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
print(f"随机猜测：准确率 {chance:.3f}，损失 log V = {np.log(V):.3f}")
for seed, (_, curve) in runs.items():
    print(f"种子 {seed}：重复段上的准确率 训练前 {curve[0, 2]:.3f}，"
          f"训练后 {curve[-1, 2]:.3f}；前半段上训练后 {curve[-1, 4]:.3f}")

# %%
before = np.array([curve[0, 2] for _, curve in runs.values()])
after = np.array([curve[-1, 2] for _, curve in runs.values()])
first_half = np.array([curve[-1, 4] for _, curve in runs.values()])
assert (before < 2 * chance).all() and (after > 0.95).all()
assert (np.abs(first_half - chance) < 0.05).all()  # 那里无可学习：仍是随机水平
leaves = np.array([curve[np.argmax(curve[:, 1] < np.log(V) - 0.1), 0]
                   for _, curve in runs.values()])
low = np.array([curve[np.argmax(curve[:, 1] < 0.5), 0] for _, curve in runs.values()])
for seed, start, end, (_, curve) in zip(SEEDS, leaves, low, runs.values()):
    print(f"种子 {seed}：重复段上的损失在第 {start:.0f} 步离开 log V，"
          f"在第 {end:.0f} 步降到 0.5 以下；前半段的损失最高到 {curve[:, 3].max():.2f}")
assert (leaves >= 20).all() and (low - leaves <= 150).all()  # 先是平台期，然后迅速下降

fig, ax = plt.subplots(figsize=(8, 3.6))
for seed, (_, curve) in runs.items():
    ax.plot(curve[:, 0], curve[:, 1], color="C0", alpha=0.8,
            label="重复段上的损失（上下文中）" if seed == 0 else None)
    ax.plot(curve[:, 0], curve[:, 3], color="C1", alpha=0.8,
            label="前半段上的损失" if seed == 0 else None)
ax.axhline(np.log(V), ls="--", c="gray", label="log V（均匀猜测）")
ax.set(xlabel="训练步数", ylabel="交叉熵（奈特）",
       title=f"{len(SEEDS)} 个随机种子：先停在 log V，然后骤降")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# 重复段上的损失在最初几十步停在 $\log V$——模型只预测词元频率，别的什么也没学到——然后在大约一百步内
# 降到 0.5 奈特以下（步数打印在上面）。曲线有两个阶段，中间只隔一个很短的过渡，这就是相变；
# 每个随机种子都在差不多同一步发生。前半段的损失在学习复制的过程中一度升到 $\log V$ 以上（模型还不确
# 定重复从哪里开始，在没有重复的地方也预期重复），随后回到 $\log V$：那里没有什么可学的。
#
# ## 注意力头在读什么
#
# 每一层的注意力权重 $A = \operatorname{softmax}(QK^\top/\sqrt{d} + M)$，像第 7 篇那样由该层自己的权
# 重重新算出，画在一条序列上（行：做预测的位置；列：它读取的位置）：

# %%
def attention_maps(model, ids):
    """一条词元序列在每一层上的注意力权重 (heads, T, T)。"""
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
    """t ≥ offset 处的每个查询放在键 t - offset + 1 上的平均权重：offset 个位置之前
    当前词元那次出现之后的词元。"""
    T = weights.shape[-1]
    return weights[..., np.arange(offset, T), np.arange(1, T - offset + 1)].mean(-1)


model = runs[0][0]
sequence = x_probe[:1]
maps = attention_maps(model, sequence)
labels = [str(t) for t in sequence[0]]
for layer, weights in enumerate(maps):
    print(f"第 {layer} 层：放在前一次出现之后那个词元上的权重 "
          f"{copy_score(weights, N).round(2)}")
viz.attention_heatmap(np.concatenate(maps), labels, labels,
                      title="重复序列（种子 0）", head_names=["第 0 层", "第 1 层"],
                      lang=LANG)

# %% [markdown]
# 复制是第 0 层做的：从后半段开始，它的权重落在前半段同一位置之后的那个词元上。这是按*位置*复制：
# 重复总是从 $N$ 个词元之前开始，所以“读 $N - 1$ 个位置之前的词元”不看任何词元内容就能解决这个任务。
# 一层的模型也做得到：

# %%
one_layer, one_curve = train_gpt(repeated_sequences, 2 * N - 1, 1, 1, 32, 300, 0,
                                 (x_probe, y_probe, in_context))
print(f"一层：重复段上的准确率 {one_curve[-1, 2]:.3f}；放在前一次出现之后"
      f"那个词元上的权重 {copy_score(attention_maps(one_layer, sequence)[0], N)[0]:.2f}")
assert one_curve[-1, 2] > 0.95

# %% [markdown]
# 真正的归纳头是按*内容*找到之前的出现位置的，距离任意：“找到当前词元上一次出现的地方，
# 预测紧随其后的那个词元”。一层注意力表达不了这条规则（一个头可以匹配当前词元，
# 但读到的是那次出现本身，而不是它的后继）；两层可以：第一层的一个头把每个词元的前一个词元复制到它的
# 位置上（前一词元头），第二层的一个头再拿当前词元去匹配这些“前一个词元”。我们试过让重复出现在随机距
# 离上（互不相同的词元，重复之前放随机词元），用两层、每层两个头、宽 64 的模型：训练 1,500 步后，
# 它在重复段上的损失仍没有离开平台期。 Olsson 等人看到归纳头在数十亿个词元之后形成，
# 而我们的模型只见过大约一百万个。练习 1 请你测出这里需要多久。

# %% [markdown]
# ## 完形填空提示与标签词映射器
#
# 对掩码语言模型做提示，就是把任务改写成预训练任务。一条评论变成 `评论 + "总之很[MASK]。"`，
# 再由 *标签词映射器*（verbalizer）把模型可能填进空里的字映射成标签：`好` → 正面，`差` → 负面。
# 哪个标签的字在空位上得分更高，预测就是哪个标签。整个过程没有在任何标签上训练过。
#
# 只有当预训练文本让这个空能从评论中预测出来时，这才行得通。这里的预训练文本是合成的中文餐馆评论：
# 三个分句“菜名很形容词”，每个形容词随机地是好的（香、鲜……）或差的（咸、淡……），后面跟一句总结：
# 三个中至少两个是好的就写“总之很好。”，否则写“总之很差。”。一个小 BERT 只用掩码语言模型损失在这样的
# 文本上训练：随机遮住 30% 的字（句子很短），总结里那个字被遮住的机会并不比别的字多。

# %%
DISHES = "菜汤茶饭面肉鱼虾"
GOOD, BAD = "香鲜甜嫩热脆", "咸淡苦老凉腻"
TEMPLATE = "总之很{}。"
VERBALIZER = {"好": 1, "差": 0}  # 空位上的字 → 标签（1 = 正面）
chars = ["[MASK]"] + sorted(set(DISHES + GOOD + BAD + "很，。" + TEMPLATE.format("好差")))
char_id = {c: i for i, c in enumerate(chars)}
MASK_ID = char_id["[MASK]"]


def reviews(rng, size):
    """size 条由三个分句组成的评论及其标签：至少两个分句是好的时为 1。"""
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
print("预训练文本：", [t + TEMPLATE.format("好" if y else "差")
                        for t, y in zip(texts, labels)])
corrupted, _ = pretraining_batch(np.random.default_rng(1), 1)
print("一条遮盖后的输入：", "".join(chars[i] for i in corrupted[0]))

# %% [markdown]
# 测试评论是新抽的（同一个生成器，另一个种子）；提示以模板结尾，总结字的位置换成 `[MASK]`，
# 预测比较的是两个标签词在这个位置上的 logit。随机猜测是 50%；标签接近平衡（正面评论的比例打印在下面
# ：总是回答“正面”就能得到这个准确率）。我们对三个随机种子分别测量未训练的模型和预训练后的模型。

# %%
test_texts, test_labels = reviews(np.random.default_rng(100), 500)
prompts = encode([text + TEMPLATE.format("好") for text in test_texts])
blank = prompts.shape[1] - 2  # 总结字原来的位置
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
    print(f"种子 {seed}：完形填空准确率 未训练 {untrained:.1%}，预训练后 {cloze[seed][1]:.1%}"
          f"（随机猜测 50%）")
print(f"测试评论中正面的比例：{test_labels.mean():.1%}")

# %%
cloze_before, cloze_after = np.array(list(cloze.values())).T
assert (np.abs(cloze_before - 0.5) < 0.1).all() and (cloze_after > 0.9).all()

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.4))
positions = np.arange(len(SEEDS))
left.bar(positions - 0.2, before, 0.4, label="未训练")
left.bar(positions + 0.2, after, 0.4, label="训练后")
left.axhline(chance, ls="--", c="gray", label="随机猜测 1/V")
left.set(title="GPT：重复段上下一个词元的准确率", ylabel="准确率", ylim=(0, 1.05))
right.bar(positions - 0.2, cloze_before, 0.4, label="未训练")
right.bar(positions + 0.2, cloze_after, 0.4, label="预训练后（只用掩码语言模型）")
right.axhline(0.5, ls="--", c="gray", label="随机猜测 1/2")
right.set(title="BERT：完形填空提示 + 标签词映射器", ylim=(0, 1.05))
for axis in (left, right):
    axis.set_xticks(positions, [f"种子 {seed}" for seed in SEEDS])
    axis.legend(loc="lower right", fontsize=8)
fig.tight_layout()
plt.show()
print(f"本篇运行了 {time.perf_counter() - started:.0f} 秒")

# %% [markdown]
# 预训练后的 BERT 在没见过的评论上几乎总能答对这个提示，尽管它的训练中没有任何一步用过标签：
# 它学的是在评论之后把空填上，而标签词映射器把这个填空读成了分类。同一个提示在未训练的模型上只是随机
# 水平。提示之所以有效，是因为预训练文本里有它的模式——这里是我们有意构造的；在大模型里，
# 是因为网页文本里满是“评论后面跟着评价”“问题后面跟着答案”“一串例子后面再来一个”。
#
# ## 小结
#
# * 上下文学习是用到了只存在于上下文中的信息的预测。在重复随机序列上训练的 GPT 从随机水平走到完全正
#   确的复制，中间经过平台期和损失的骤降（相变），复制由一个注意力头完成。
# * 在我们的重复序列里，副本总在同一距离上，所以这个头按位置就能找到它（一层就够）；归纳头则按内容、
#   在任意距离上找到它，这需要两层注意力组合起来。
# * 掩码语言模型的预训练文本让空位可以预测之后，完形填空提示加标签词映射器不用任何标签训练就能分类；
#   未训练时，它只有随机水平。
#
# ## 练习
#
# 1. 让重复从随机位置开始（前面放随机词元）。一层的模型还能复制吗？两层的模型需要多少步，
#    它的各个头在读什么？
# 2. 把模板换成预训练文本里从未出现过的样子（例如把总结字放到评论前面）。完形填空准确率变成多少？
# 3. 交换标签词映射器的两个字。你预期准确率是多少？为什么这是一个有用的检查？
# 4. 课程第 12 周（`notebooks/COURSE.zh.md`）；与本篇相关的 `scratchlm.exercises` 练习：
#    `attention_masked` （这些头计算的因果注意力）和 `mlm_masking`（BERT 学习所用的遮盖），
#    `python -m scratchlm.exercises show attention_masked`。
