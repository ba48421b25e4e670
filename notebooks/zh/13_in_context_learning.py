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
# 1. 一个两层的 GPT 在随机序列上训练，序列中有一段会重复，而重复的距离每条序列都不同。它学会接着
#    重复往下写，而且是突然学会的——损失出现相变（phase change）——靠的是一个归纳头（induction
#    head，Olsson 等 2022）：第二层的一个注意力头找到当前词元上一次出现的位置，读取紧随其后的词元；
#    第一层的一个头关注前一个词元，为它提供帮助；
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
# ## 距离随机的重复
#
# 每条训练序列由 $T = 32$ 个词元组成，每个词元从大小为 $V = 16$ 的词表中均匀抽取。序列中某处有一段
# 由 $L$ 个互不相同的词元组成的片段 $A$，紧接着又是一遍 $A$：$L$ 在 8 到 14 之间随机抽取，$A$ 的起点
# 也是随机的。序列里没有任何东西能存进权重（词元每次都是新抽的），在第二遍副本之外，最好的损失就是
# $\log V$。在第二遍副本里，从它的第二个词元起，下一个词元是完全确定的——前提是模型能找到当前词元
# 上一次出现的位置，并读出紧随其后的那个词元。“复制 $k$ 个位置之前的词元”这类规则做不到，因为
# $k = L$ 每条序列都不同，重复从哪里开始也不同。模型在这里的准确率高于随机猜测（$1/V$），
# 就是最朴素的上下文学习。
#
# 三条序列（方括号里是重复使之可以预测的词元）：

# %%
V, T = 16, 32  # 词表大小，序列长度
LENGTHS = np.arange(8, 15)  # 重复片段可能的长度 L


def repeat_at_random_distance(rng, size):
    """size 条随机词元序列，每条里有一段 L 个互不相同的词元（L 取自 LENGTHS），从随机位置开始，
    紧接着再重复一遍。返回输入、下一个词元的目标，以及重复使之可以预测的那些目标的掩码。"""
    tokens = rng.integers(0, V, (size, T + 1))
    in_repeat = np.zeros((size, T), bool)
    for row in range(size):
        length = rng.choice(LENGTHS)
        start = rng.integers(0, T + 2 - 2 * length)
        tokens[row, start:start + 2 * length] = np.tile(rng.permutation(V)[:length], 2)
        in_repeat[row, start + length:start + 2 * length - 1] = True  # 副本的第 2 个词元起
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
# 模型是 scratchlm 的 GPT：两个块，每块一个注意力头，宽 32（块里保留了宽 128 的 MLP），用 Adam
# 以恒定学习率 $10^{-3}$ 训练，不用权重衰减，每批 32 条新抽的序列，共 1,500 步。每 50 步在 256 条
# 固定序列上探测一次：重复段上和其他位置上的损失与准确率，以及最后一层那个头的*归纳分数*——
# 重复段中的查询 $i$ 放在这样一些键 $j + 1$ 上的注意力权重：它们的前一个词元就是查询自己的词元
# （$x_j = x_i$，$j < i$），也就是归纳头要读的那些词元。注意力权重像第 7 篇那样由该层自己的权重
# 重新算出（这里还与该层的输出核对）。

# %%
STEPS, PROBE_EVERY = 1500, 50


def attention_maps(model, ids):
    """词元 ids (B, T) 在每一层上的注意力权重 (B, heads, T, T)，由该层自己的权重重新算出；
    并核对它们能重建该层的输出。"""
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
    """每个头：查询 i（mask 为 True 处）放在满足 x_j = x_i、j < i 的键 j + 1 上的注意力权重，
    即它的词元之前每次出现之后的那些词元，对查询取平均。"""
    before = np.concatenate([np.full((len(ids), 1), -1), ids[:, :-1]], axis=1)  # x_(k-1)
    follows_same = (before[:, None, :] == ids[:, :, None]) & np.tril(
        np.ones(weights.shape[-2:], bool))
    return (weights * follows_same[:, None]).sum(-1).transpose(1, 0, 2)[:, mask].mean(-1)


def previous_token_score(weights):
    """每个头：查询放在紧挨着它的前一个词元上的平均注意力权重。"""
    T_ids = weights.shape[-1]
    return weights[..., np.arange(1, T_ids), np.arange(T_ids - 1)].mean((0, 2))


def probe(model):
    """探测序列上重复段与其他位置的损失和准确率，以及最后一层各头中最高的归纳分数。"""
    with sl.no_grad():
        log_p = F.log_softmax(model(x_probe)[0]).numpy()
    nll = -np.take_along_axis(log_p, y_probe[..., None], -1)[..., 0]
    hit = log_p.argmax(-1) == y_probe
    last_layer = attention_maps(model, x_probe[:64])[-1]
    return (nll[in_repeat].mean(), hit[in_repeat].mean(), nll[~in_repeat].mean(),
            hit[~in_repeat].mean(), induction_score(last_layer, x_probe[:64],
                                                    in_repeat[:64]).max())


def train_gpt(n_layer, seed):
    """在 repeat_at_random_distance 上训练的、n_layer 个单头块的 GPT；返回模型和每
    PROBE_EVERY 步一次的探测结果（步数，探测的五个数）。"""
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
print(f"随机猜测：准确率 1/V = {chance:.3f}，损失 log V = {np.log(V):.3f}")
for seed, (_, curve) in runs.items():
    print(f"种子 {seed}：重复段上的准确率 训练前 {curve[0, 2]:.3f}，"
          f"训练后 {curve[-1, 2]:.3f}（损失 {curve[-1, 1]:.2f}）；其他位置训练后 {curve[-1, 4]:.3f}"
          f"（损失 {curve[-1, 3]:.2f}）；归纳分数 "
          f"训练前 {curve[0, 5]:.2f}，训练后 {curve[-1, 5]:.2f}")

# %%
before = np.array([curve[0, 2] for _, curve in runs.values()])
after = np.array([curve[-1, 2] for _, curve in runs.values()])
elsewhere = np.array([curve[-1, 4] for _, curve in runs.values()])
assert (before < 2 * chance).all() and (after > 0.9).all()
assert (np.abs(elsewhere - chance) < 0.03).all()  # 那里无可学习：仍是随机水平
# 相变：重复段上准确率低于 40% 的最后一次探测，与高于 85% 的第一次探测
low = np.array([curve[curve[:, 2] < 0.4, 0].max() for _, curve in runs.values()])
high = np.array([curve[curve[:, 2] > 0.85, 0].min() for _, curve in runs.values()])
for seed, start, end, (_, curve) in zip(SEEDS, low, high, runs.values()):
    (_, loss_start, *_, score_start), (_, loss_end, *_, score_end) = (
        curve[curve[:, 0] == step][0] for step in (start, end))
    print(f"种子 {seed}：重复段上的准确率到第 {start:.0f} 步为止低于 40%，从第 {end:.0f} 步起"
          f"高于 85%；其间它的损失从 {loss_start:.2f} 降到 "
          f"{loss_end:.2f} 奈特，归纳分数从 {score_start:.2f} 升到 {score_end:.2f}")
assert (low >= 500).all() and (high - low <= 400).all()  # 长时间的等待，然后迅速转变

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
for seed, (_, curve) in runs.items():
    left.plot(curve[:, 0], curve[:, 1], color="C0", alpha=0.8,
              label="重复段上的损失" if seed == 0 else None)
    left.plot(curve[:, 0], curve[:, 3], color="C1", alpha=0.8,
              label="其他位置的损失" if seed == 0 else None)
    right.plot(curve[:, 0], curve[:, 5], color="C2", alpha=0.8,
               label="归纳分数（第 2 层）" if seed == 0 else None)
    right.plot(curve[:, 0], curve[:, 2], color="C0", alpha=0.8, ls=":",
               label="重复段上的准确率" if seed == 0 else None)
left.axhline(np.log(V), ls="--", c="gray", label="log V（均匀猜测）")
left.set(xlabel="训练步数", ylabel="交叉熵（奈特）",
         title=f"{len(SEEDS)} 个随机种子：重复段上的损失")
right.axhline(chance, ls="--", c="gray", label="随机猜测 1/V")
right.set(xlabel="训练步数", ylim=(0, 1.02),
          title="归纳头在骤降期间形成")
for axis in (left, right):
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# 训练前的准确率低于随机猜测，而损失约为 $\log V$（原因在下一节测量）。
#
# 重复段上的损失在最初 200 步左右停在 $\log V$，然后缓慢下降，这期间准确率一直低于 40%，归纳分数低于
# 0.25；接着在大约 250 步之内，损失下降约一个奈特，准确率从 40% 升过 85%，归纳分数升到 0.7 左右
# （每个随机种子的步数打印在上面）。这次骤降就是相变，它发生在哪一步因种子而异（这里在第 850 到
# 1,350 步之间），而归纳头正是在骤降期间形成的——Olsson 等人在大模型里看到的也是这样。其他位置的
# 损失最后略*高于* $\log V$，可能是因为某个词元偶然再次出现时，模型会预测一个并不会到来的后续。
#
# ## 注意力头在读什么
#
# 每一层那个头的归纳分数和前一词元分数，在全部 256 条探测序列上，分别对三个训练好的模型和一个
# 未训练的模型：

# %%
def head_scores(model):
    """每一层那个头在探测序列上的（前一词元分数，归纳分数）。"""
    maps = attention_maps(model, x_probe)
    return [(previous_token_score(w)[0], induction_score(w, x_probe, in_repeat)[0])
            for w in maps]


sl.manual_seed(0)
fresh = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=2, n_head=1, n_embd=32))
scores = {"未训练": head_scores(fresh)} | {
    f"种子 {seed}": head_scores(model) for seed, (model, _) in runs.items()}
for name, layers in scores.items():
    print(f"{name}：" + "；".join(
        f"第 {n} 层 前一词元 {previous:.2f}，归纳 {induction:.2f}"
        for n, (previous, induction) in enumerate(layers, start=1)))
trained = np.array([scores[f"种子 {seed}"] for seed in SEEDS])  # (种子, 层, 分数)
assert (trained[:, 1, 1] > 0.7).all() and (trained[:, 0, 1] < 0.1).all()
assert (trained[:, 0, 0] > 2 * scores["未训练"][0][0]).all()
with sl.no_grad():
    reads_own = (fresh(x_probe)[0].numpy().argmax(-1) == x_probe)[in_repeat].mean()
print(f"未训练的模型在重复段上：{reads_own:.0%} 的位置上，"
      f"预测就是它正在读的那个词元")

# %% [markdown]
# 未训练的模型的输出层就是它的词元嵌入（权重共享），所以它多半预测自己正在读的那个词元；而在一段
# 互不相同的词元里，这个词元从来不是下一个，所以它在重复段上的准确率低于随机猜测。
#
# 在每个训练好的模型里，第 2 层的头都把大部分权重（0.83–0.88，未训练时 0.06）放在当前词元之前每次
# 出现之后的那些词元上；第 1 层的头放在前一个词元上的权重是未训练时的三倍（0.30–0.33，未训练时
# 0.10），而它自己的归纳分数几乎为零（0.00–0.01）。这样的分工就是归纳电路：第 1 层把前一个
# 词元的一部分信息加到每个位置上；第 2 层由当前词元 $x_i$ 得到的查询，去匹配前一个词元 $x_j$
# 与它相同的那个位置 $j + 1$ 上的键，而这个键对应的值带着 $x_{j+1}$，也就是预测。距离 $i - j$
# 从头到尾都没有参与。
#
# 一条探测序列上的这两个头（种子 0；行：做预测的位置，列：它读取的位置；红圈标在重复段的行上：
# 该行词元之前每次出现之后的那些词元）：

# %%
model, row = runs[0][0], 0
ids = x_probe[row:row + 1]
maps = attention_maps(model, ids)
labels = [str(t) for t in ids[0]]
figure = viz.attention_heatmap(np.concatenate([w[0] for w in maps]), labels, labels,
                               title="种子 0，一条探测序列",
                               head_names=["第 1 层：紧挨着之前的词元",
                                           "第 2 层：归纳"],
                               lang=LANG)
previous = np.concatenate([[-1], ids[0, :-1]])
queries, keys = np.nonzero((previous[None, :] == ids[0][:, None])
                           & np.tril(np.ones((T, T), bool)) & in_repeat[row][:, None])
figure.axes[1].scatter(keys, queries, s=40, facecolors="none", edgecolors="red")
figure  # noqa: B018 （单元格显示它最后一个值：这幅图）

# %% [markdown]
# 第 1 层的头并不是单纯的前一词元头：它把权重分散在当前词元和它之前的几个词元上，距离越远权重
# 越小。第 2 层的头在第二遍副本里，每一行几乎把全部权重都放在一个红圈上——第一遍副本里的那个，
# 位于主对角线左边 $L - 1$ 列的一条对角线上。对那条对角线以外的红圈（该行的词元碰巧在序列更早处
# 也出现过），它几乎不放权重，可能是因为这种出现之前的词元与查询之前的词元不同，而第 1 层把不止
# 一个之前的词元混进了每个键。
#
# 第 2 层的头离不开第 1 层：位置 $j + 1$ 上的键要能和查询的词元匹配，就得带着它前一个词元的信息，
# 而只有更早的一层注意力能把这个信息放进去。对照实验：同样的数据、步数和种子，只用一个块而不是两个。

# %%
one_layer, one_curve = train_gpt(1, 0)
one_scores = head_scores(one_layer)[0]
print(f"一层，{STEPS} 步：重复段上的准确率 {one_curve[-1, 2]:.3f}（随机猜测 "
      f"{chance:.3f}，两层 {after.min():.3f}–{after.max():.3f}）；重复段上的损失 "
      f"{one_curve[-1, 1]:.2f} 奈特（log V = {np.log(V):.2f}）；它那个头的归纳分数 "
      f"{one_scores[1]:.2f}")
assert one_curve[-1, 2] < 0.25 and one_scores[1] < 0.1

# %% [markdown]
# 只有一层时，重复段上的准确率停在随机水平附近（0.10，随机猜测 0.06；两层达到 0.93–0.97），
# 它那个头的归纳分数接近零（0.02）：序列里没有任何东西
# 告诉模型重复从多远之前开始，而一层注意力无法按内容找到它。两层模型的上下文复制，靠的是两个头的
# 组合。

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
left.set(title="GPT：重复段上下一个词元的准确率", ylabel="准确率",
         ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
right.bar(positions - 0.2, cloze_before, 0.4, label="未训练")
right.bar(positions + 0.2, cloze_after, 0.4, label="预训练后（只用掩码语言模型）")
right.axhline(0.5, ls="--", c="gray", label="随机猜测 1/2")
right.set(title="BERT：完形填空提示 + 标签词映射器",
          ylim=(0, 1.3), yticks=np.linspace(0, 1, 6))
for axis in (left, right):
    axis.set_xticks(positions, [f"种子 {seed}" for seed in SEEDS])
    axis.legend(loc="upper center", ncol=3, fontsize=8)
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
# * 上下文学习是用到了只存在于上下文中的信息的预测。一个两层的 GPT 在含有距离随机的重复的随机序列上
#   训练，从随机水平走到能接着重复往下写（这里 93–97%），中间经过平台期和损失的骤降（相变）。
# * 这次骤降就是归纳头的形成：第 2 层的一个头关注当前词元上一次出现之后的那个词元，它建立在第 1 层
#   一个关注前一个词元的头之上。同样数据上的一层模型停在随机水平附近。
# * 掩码语言模型的预训练文本让空位可以预测之后，完形填空提示加标签词映射器不用任何标签训练就能分类；
#   未训练时，它只有随机水平。
#
# ## 练习
#
# 1. 把重复的长度固定（L = 10），起点也固定（位置 0），让副本总在 L 个词元之前。一层的模型现在
#    能复制吗？它的头看向哪里？再允许片段内出现重复的词元：是什么限制了两层模型的准确率？
# 2. 把模板换成预训练文本里从未出现过的样子（例如把总结字放到评论前面）。完形填空准确率变成多少？
# 3. 交换标签词映射器的两个字。你预期准确率是多少？为什么这是一个有用的检查？
# 4. 课程第 12 周（`notebooks/COURSE.zh.md`）；与本篇相关的 `scratchlm.exercises` 练习：
#    `attention_masked` （这些头计算的因果注意力）和 `mlm_masking`（BERT 学习所用的遮盖），
#    `python -m scratchlm.exercises show attention_masked`。
