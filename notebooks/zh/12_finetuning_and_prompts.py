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
# # 12 · 微调与提示学习
#
# 把预训练好的模型适配到新的任务或领域。这里比较的几种方式，训练的参数从多到少：
#
# * **全量微调**：所有权重都在新数据上训练，学习率取预训练时的学习率，或者小十倍；
# * **冻结底层**：词嵌入和较低的块保持预训练的权重，只训练最上面的块（以及最后的层规范化），
#   用小学习率 ——这是文章里教的做法，因为较低的层保存的是最通用的特征；
# * **LoRA**（低秩适配，Hu 等 2021）：每个选中的权重矩阵保持冻结，只学习一个低秩更新，
#   $$y = W x + b + \tfrac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; \text{初始时 } B = 0;$$
# * **提示微调**（prompt tuning，Lester 等 2021）：整个模型冻结，只训练放在输入嵌入前面的 $n$ 个 “虚
#   拟词元”向量 $P \in \mathbb{R}^{n \times d}$。
#
# 我们先在莎士比亚上预训练一个字符级 GPT，再用每种方式把它适配到现代英语（HSK 句对的英文部分），
# 测量各自的代价、在新文本上的收益（损失和下一个字符的准确率），以及对旧文本遗忘了多少。

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

LANG = "zh"  # 图中文字的语言
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
    print(f"预训练 {trainer.step} 步：莎士比亚验证损失 {loss:.3f}")


Trainer(base, old_train, old_val, TrainConfig(
    max_steps=300, batch_size=16, learning_rate=PRETRAINING_RATE, warmup_steps=20,
    eval_interval=300, eval_batches=5, checkpoint_interval=10_000)).train(
    progress=False, on_validate=show_validation)

# %% [markdown]
# ## 六个适配后的副本
#
# 每种方法都从预训练权重的一个副本开始。`freeze(model, train_top_k=1)` 把除最上面的块和 `ln_f` 以外
# 的参数都设为 `requires_grad=False`（两个块时，下面的块和词嵌入保持不变；输出层与词嵌入共享权重，
# 所以也不变）。`apply_lora` 把注意力和 MLP 的投影（`c_attn`、`c_proj`、`c_fc`）换成秩 $r = 4$ 的
# `LoRALinear` 层，并冻结其余一切；`PromptTuning` 把冻结的模型包在 8 个可训练的虚拟词元后面（窗口是
# 48 个字符，8 + 48 放得进 64 个位置）。同一个训练循环 `Trainer` 在新文本的随机窗口上把每个都训练
# 150 步。

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
    """每个模型都在同样的 8 个批次上的平均损失和下一个字符的准确率。"""
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
methods = {  # 名称：（模型，学习率）
    "全量，预训练学习率": (copy_of_base(), PRETRAINING_RATE),
    "全量，小学习率": (copy_of_base(), SMALL_RATE),
    "冻结底层，小学习率": (freeze(copy_of_base(), train_top_k=1), SMALL_RATE),
    "低秩适配，r = 4": (lora_model, PRETRAINING_RATE),
    "提示微调，8 个词元": (prompt_model, 3e-2),
}

probe = get_batch(new_val, 2, WINDOW, np.random.default_rng(5))[0]
with sl.no_grad():  # B = 0：LoRA 一开始与基础模型完全相同
    assert np.allclose(lora_model(probe)[0].numpy(), base(probe)[0].numpy(), atol=1e-6)

def pad(text, width):
    """在 ``text`` 后面补空格，使它在屏幕上占 ``width`` 列：一个汉字占两列，所以中文版的
    表格不能用 ``f"{text:20s}"`` 对齐。"""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


results = {"只预训练": (0, *validation(base, new_val), validation(base, old_val)[0])}
for name, (model, rate) in methods.items():
    config = TrainConfig(max_steps=150, batch_size=16, weight_decay=0.0, warmup_steps=10,
                         learning_rate=rate)
    Trainer(model, lambda rng, size: get_batch(new_train, size, WINDOW, rng), None, config,
            loss_fn=window_loss).train(progress=False)
    trainable, total = count_parameters(model)
    results[name] = (trainable, *validation(model, new_val), validation(model, old_val)[0])
    print(f"{pad(name, 26)} 学习率 {rate:.0e}，训练 {total:,} 个参数中的 {trainable:6,} 个")
print()
for name, (_, new, accuracy, old) in results.items():
    print(f"{pad(name, 26)} 现代英语：损失 {new:.3f}，准确率 {accuracy:.1%}；"
          f"莎士比亚损失 {old:.3f}")

# %% [markdown]
# ## 检验：什么训练了，什么没有
#
# 冻结底层、LoRA 和提示微调都必须让被冻结的权重一位不差地保持原样。训练好的 LoRA 层还可以合并，
# $W \leftarrow W + \tfrac{\alpha}{r} BA$，成为一个普通权重，输出不变，推理时没有额外开销：

# %%
base_weights = base.state_dict()
frozen_model = methods["冻结底层，小学习率"][0]
for name, model in [("冻结底层", frozen_model), ("低秩适配", lora_model),
                    ("提示微调", prompt_model.model)]:
    state = model.state_dict()
    fixed = [k for k, p in model.named_parameters() if not p.requires_grad and k in base_weights]
    assert all(np.array_equal(state[k], base_weights[k]) for k in fixed)
    print(f"{name}：全部 {len(fixed)} 个被冻结的预训练数组都没有变")
assert not any(k.startswith("transformer.h.0.") for k, p in frozen_model.named_parameters()
               if p.requires_grad)

with sl.no_grad():
    before_merge = lora_model(probe)[0].numpy()
    merge_lora(lora_model)
    after_merge = lora_model(probe)[0].numpy()
print("max |合并后 - 合并前| =", np.abs(after_merge - before_merge).max())
assert np.allclose(after_merge, before_merge, atol=1e-4)

# %% [markdown]
# ## 代价、收益与遗忘
#
# 各条形都从零开始；“只预训练”什么也不训练，所以左图里没有它的条形。

# %%
names = list(results)
new_loss = {n: results[n][1] for n in names}
old_loss = {n: results[n][3] for n in names}
fig, (cost, loss, accuracy) = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
rows = np.arange(len(names))
cost.barh(rows, [max(results[n][0], 1e-9) for n in names], color="C2")
cost.set(xscale="log", xlim=(1e2, 2e5), xlabel="可训练参数（对数刻度）")
cost.text(1.3e2, 0, "0：什么也不训练", va="center", fontsize=8)
cost.set_yticks(rows, names)
cost.invert_yaxis()
loss.barh(rows - 0.2, [new_loss[n] for n in names], 0.4, label="现代英语（新）")
loss.barh(rows + 0.2, [old_loss[n] for n in names], 0.4, label="莎士比亚（旧）")
loss.set(xlabel="验证损失（奈特/字符）", xlim=(0, None))
loss.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8)
accuracy.barh(rows, [results[n][2] for n in names], color="C4")
accuracy.set(xlabel="现代英语上下一个字符的准确率", xlim=(0, None))
for axis in (cost, loss, accuracy):
    axis.grid(axis="x", alpha=0.3)
fig.tight_layout()
plt.show()

# %% [markdown]
# 上面的数字在这次运行中显示：
#
# * 用预训练学习率做全量微调，适配得最多（新文本上的损失最低），遗忘得也最多（莎士比亚上的损失升得最
#   高：灾难性遗忘）。学习率小十倍时，权重移动得少：收益更少，遗忘也更少。
# * 在小学习率下冻结下面的块和词嵌入，训练大约一半的参数，是三种全模型变体中遗忘最少的，收益也最少。
# * LoRA 用预训练学习率，训练 7% 的参数；在这里它的收益比小学习率的全量微调略少，遗忘略多。
# * 提示微调的收益最少；它的“遗忘”在下面解释。

# %%
shakespeare_base = old_loss["只预训练"]
forgetting = {n: old_loss[n] - shakespeare_base for n in names}
gain = {n: new_loss["只预训练"] - new_loss[n] for n in names}
for n in names:
    print(f"{pad(n, 26)} 新文本上的收益 {gain[n]:+.3f}，遗忘 {forgetting[n]:+.3f} 奈特/字符")
assert new_loss["全量，预训练学习率"] < new_loss["全量，小学习率"] < new_loss[
    "只预训练"]
assert forgetting["全量，预训练学习率"] > forgetting["全量，小学习率"]
assert forgetting["冻结底层，小学习率"] < forgetting["全量，小学习率"]
assert all(new_loss[n] < new_loss["只预训练"] for n in methods)
assert gain["低秩适配，r = 4"] < gain["全量，小学习率"]
assert forgetting["低秩适配，r = 4"] > forgetting["全量，小学习率"]
assert min(methods, key=gain.get) == "提示微调，8 个词元"

# %% [markdown]
# ## 为什么模型没变，提示微调却“遗忘”了
#
# 上面提示微调在莎士比亚上的损失比预训练模型高，可模型的权重一个也没有变。原因在于这个损失是*通过包
# 装器*测量的：每个莎士比亚窗口都是跟在 8 个虚拟词元后面读的，而这些虚拟词元被训练成告诉模型“后面是
# 现代英语”。去掉提示，模型本身就是原来的预训练模型；唯一改变的是提示，拿掉提示，“遗忘”也就没了：

# %%
with_prompt = validation(prompt_model, old_val)[0]
without_prompt = validation(prompt_model.model, old_val)[0]
print(f"莎士比亚损失：带学到的提示 {with_prompt:.3f}，同一模型去掉提示 "
      f"{without_prompt:.3f}，预训练模型 {shakespeare_base:.3f}")
assert without_prompt == shakespeare_base and with_prompt > shakespeare_base

# %% [markdown]
# ## 不训练的提示学习
#
# 文章所说的提示学习更进一步：根本不训练任何参数，而是把任务改写成预训练任务本身。给 BERT 的完形填空
# 模板 `"[X]总之很[MASK]。"` 把情感分类变成填空，*标签词映射器*（verbalizer）把空位上的词映射到标签
# （`好` → 正面，`差` → 负面）；GPT 则在问题前面先看几个解好的例子（上下文学习）。第 13 篇在当场训练
# 的小模型上演示这两者确实有效，以及它们从何而来。`scratchlm.prompting` 在真实文本上实现了它们
# （`label_scores`、`predict`、上下文校准）：`python -m scratchlm prompt --from RUN --shots 8` 在中
# 文评论上评估一个预训练好的运行目录里的模型，
# `python -m scratchlm finetune --from RUN --method lora` 则把它微调成分类器。两者都需要比笔记本里训
# 练得更久的预训练模型；实测结果见 `bench/README.md`。
#
# ## 小结
#
# * 用预训练学习率做全量微调，在新文本上收益最多，遗忘也最多；更小的学习率和冻结底层用一部分收益换来
#   更少的遗忘。
# * LoRA 和提示微调让每个预训练权重保持原样；LoRA 的更新可以合并进权重，而提示微调的“遗忘”来自提示，
#   不来自模型。
#
# ## 练习
#
# 1. 用预训练学习率训练冻结底层的变体，再用介于两者之间的学习率做全量微调：它们落在收益/遗忘图的什么
#    位置？
# 2. 在微调批次中混入 10% 的莎士比亚窗口（复习）：它消除了多少遗忘，在新文本上付出多少代价？
# 3. 课程第 12 周（`notebooks/COURSE.zh.md`）：它的项目把第 7–9 周的一个 `scratchlm.exercises` 练习
#    （`rmsnorm`、`rope`、`swiglu`）放进模型；在这里微调那个模型并比较。
