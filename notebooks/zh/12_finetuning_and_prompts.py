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
# # 12 · 微调与提示学习
#
# 把预训练好的模型适配到新的任务或领域。三种方式，训练的参数从多到少：
#
# * **全量微调**：所有权重都在新数据上训练；
# * **LoRA**（低秩适配，Hu 等 2021）：每个选中的权重矩阵保持冻结，只学习一个低秩更新，
#   $$y = W x + b + \tfrac{\alpha}{r} B A x, \qquad A \in \mathbb{R}^{r \times d_\text{in}},\;
#   B \in \mathbb{R}^{d_\text{out} \times r},\; B = 0 \text{ at the start};$$
# * **提示微调**（prompt tuning，Lester 等 2021）：整个模型冻结，只训练放在输入嵌入前面的 $n$ 个
#   "虚拟词元"向量 $P \in \mathbb{R}^{n \times d}$。
#
# 我们先在莎士比亚上预训练一个字符级 GPT，再用每种方式把它适配到现代英语（HSK 句对的英文部分），
# 测量各自的代价、收益——以及遗忘了什么。

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
# ## 三个适配后的副本
#
# 每种方法都从预训练权重的一个副本开始。`apply_lora` 把注意力和 MLP 的投影（`c_attn`、`c_proj`、
# `c_fc`）换成秩 $r = 4$ 的 `LoRALinear` 层，并冻结其余一切；`PromptTuning` 把冻结的模型包在 8 个
# 可训练的虚拟词元后面（窗口是 48 个字符，8 + 48 放得进 64 个位置）。同一个训练循环 `Trainer`
# 在新文本的随机窗口上把每个都训练 150 步。

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
# ## 检验：什么训练了，什么没有
#
# LoRA 和提示微调必须让预训练权重一位不差地保持原样。训练好的 LoRA 层还可以合并，
# $W \leftarrow W + \tfrac{\alpha}{r} BA$，成为一个普通权重，输出不变，推理时没有额外开销：

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
# ## 代价、收益与遗忘
#
# 每种方法都降低了新文本上的损失；训练的参数越多，降得越低，对莎士比亚遗忘得也越多（灾难性遗忘）。
# 提示微调只训练约两百分之一的参数，遗忘最少：模型本身一点没变。

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
# ## 不训练的提示学习
#
# 源文章所说的提示学习更进一步：根本不训练任何参数，而是把任务改写成预训练任务本身。给 BERT 的完形
# 填空模板 `"[X]总之很[MASK]。"` 把情感分类变成填空，**标签词映射**（verbalizer）把空位上的词映射到
# 标签（`好` → 正面，`差` → 负面）；GPT 则在问题前面先看几个做好的例子（上下文学习）。
# `scratchlm.prompting` 实现了两者（`label_scores`、`predict`、上下文校准），
# `python -m scratchlm prompt --from RUN --shots 8` 在中文评论上给一个预训练好的运行打分；
# `python -m scratchlm finetune --from RUN --method lora`
# 则为分类任务微调它。两者都需要一个比笔记本里训练得
# 更久的预训练模型；实测结果见 `bench/README.md`。
