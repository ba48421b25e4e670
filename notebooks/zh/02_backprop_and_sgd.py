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
# # 2 · 反向传播与梯度下降
#
# 学习就是对参数 $\theta$ 最小化代价 $J(\theta)$。反向传播在一次反向过程中给出每个参数的
# $\partial J/\partial\theta$，梯度下降则逆着它走一小步：
#
# $$\theta \leftarrow \theta - \eta\,\frac{\partial J}{\partial \theta}$$
#
# 其中 $\eta$ 是学习率。我们先在 `.grad` 上手工完成，再交给 `scratchlm.optim`
# （带动量的 SGD、Adam）。

# %%
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim

rng = np.random.default_rng(0)
sl.manual_seed(0)

# %% [markdown]
# ## 线性回归：手算梯度
#
# 数据：$y = X w^\star + b^\star + \text{noise}$，其中 $w^\star = (2, -1)$，$b^\star = 0.5$。
# 模型 $\hat y = X w + b$ 的均方误差为
#
# $$J = \frac{1}{N}\sum_n (\hat y_n - y_n)^2, \qquad \frac{\partial J}{\partial w} = \frac{2}{N}
# X^\top r, \qquad \frac{\partial J}{\partial b} = \frac{2}{N}\sum_n r_n, \qquad r = \hat y - y.$$
#
# 引擎算出的梯度必须等于这些公式：

# %%
N = 64
X = rng.uniform(-2, 2, size=(N, 2))
y = X @ np.array([2.0, -1.0]) + 0.5 + 0.1 * rng.standard_normal(N)

w = sl.tensor(np.zeros(2), requires_grad=True)  # float64 data stays float64
b = sl.tensor(np.zeros(()), requires_grad=True)
loss = F.mse_loss(X @ w + b, y)
loss.backward()

residual = X @ w.data + b.data - y
print("engine   ∂J/∂w =", w.grad, " ∂J/∂b =", b.grad)
print("formula  ∂J/∂w =", 2 / N * X.T @ residual, " ∂J/∂b =", 2 / N * residual.sum())
assert np.allclose(w.grad, 2 / N * X.T @ residual)
assert np.allclose(b.grad, 2 / N * residual.sum())

# %% [markdown]
# ## 把更新规则写出来
#
# 每一步：前向、反向，然后在原始数组上做
# $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$
# （这一步不记录计算图），再把梯度清零，否则它们会累加。

# %%
eta = 0.1
w.grad = b.grad = None
for step in range(100):
    loss = F.mse_loss(X @ w + b, y)
    loss.backward()
    w.data -= eta * w.grad
    b.data -= eta * b.grad
    w.grad = b.grad = None
    if step % 25 == 0:
        print(f"step {step:3d}: J = {loss.item():.5f}")

least_squares = np.linalg.lstsq(np.c_[X, np.ones(N)], y, rcond=None)[0]
print(f"gradient descent: w = {w.data}, b = {b.data:.4f}")
print(f"least squares:    w = {least_squares[:2]}, b = {least_squares[2]:.4f}")
assert np.allclose(np.r_[w.data, b.data], least_squares, atol=1e-3)


# %% [markdown]
# 梯度下降到达了最小二乘的闭式解。神经网络没有闭式解，但同样的循环可以训练它们。
#
# ## 一个小网络：$\hat y = W_2 \tanh(W_1 x + b_1) + b_2$
#
# 我们用 32 个隐藏单元拟合 $y = \sin x$。`nn.Module` 收集各层的参数；`optim.SGD` 和
# `optim.Adam` 执行更新（Adam 用梯度均值和方差的滑动估计来缩放每个参数的步长）。

# %%
class MLP(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.fc2(F.tanh(self.fc1(x)))


x_train = np.linspace(-np.pi, np.pi, 128, dtype=np.float32)[:, None]
y_train = np.sin(x_train)


def train(model, optimizer, steps=300):
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


sl.manual_seed(1)
sgd_model = MLP()
sgd_losses = train(sgd_model, optim.SGD(sgd_model.parameters(), lr=0.05, momentum=0.9))
sl.manual_seed(1)
adam_model = MLP()
adam_losses = train(adam_model, optim.Adam(adam_model.parameters(), lr=0.01))
print(f"final loss: SGD+momentum {sgd_losses[-1]:.4f}, Adam {adam_losses[-1]:.4f}")
assert adam_losses[-1] < 0.1 * adam_losses[0] and sgd_losses[-1] < 0.1 * sgd_losses[0]

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.semilogy(sgd_losses, label="SGD, momentum 0.9")
left.semilogy(adam_losses, label="Adam")
left.set(xlabel="step", ylabel="mean squared error", title="training loss")
left.legend()
with sl.no_grad():
    right.plot(x_train, y_train, "k", label="sin x")
    right.plot(x_train, sgd_model(sl.tensor(x_train)).numpy(), "--", label="SGD fit")
    right.plot(x_train, adam_model(sl.tensor(x_train)).numpy(), ":", label="Adam fit")
right.set(xlabel="x", title="the fitted functions")
right.legend()
plt.show()

# %% [markdown]
# ## 学习率敏感性与小批量
#
# 学习率 $\eta$ 是第一个要调的超参数。太小，200
# 步也走不了多远；太大，每一步都冲过谷底，直到损失溢出
# （发散）。我们从同一个起点、用八个学习率训练同一个网络。Adam 把每一步除以梯度大小的滑动估计，
# $\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$，所以无论梯度尺度如何，
# 它的步长都约为 $\eta$：能用的范围宽得多。
#
# 实际训练还使用**小批量**（minibatch）：用 $B$
# 个随机样本的梯度，作为完整梯度的无偏但有噪声的估计，
# $\nabla J \approx \frac{1}{B}\sum_{n \in \text{batch}} \nabla J_n$。批量越小，每一步越便宜、噪声
# 越大：

# %%
LEARNING_RATES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def final_loss(make_optimizer, lr, steps=200):
    sl.manual_seed(1)
    model = MLP()
    optimizer = make_optimizer(model.parameters(), lr)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run overflows: expected
        for _ in range(steps):
            loss = F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        with sl.no_grad():
            value = F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train)).item()
    return value if np.isfinite(value) else np.nan


sweeps = {
    "SGD": [final_loss(lambda p, lr: optim.SGD(p, lr=lr), lr) for lr in LEARNING_RATES],
    "SGD, momentum 0.9": [final_loss(lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), lr)
                          for lr in LEARNING_RATES],
    "Adam": [final_loss(lambda p, lr: optim.Adam(p, lr=lr), lr) for lr in LEARNING_RATES],
}
for name, losses in sweeps.items():
    print(f"{name:18s}", "  ".join(f"{v:8.4f}" for v in losses))
    best = int(np.nanargmin(losses))
    assert 0 < best < len(LEARNING_RATES) - 1, name  # too small and too large both lose
good = {name: sum(v < 0.01 for v in losses if np.isfinite(v)) for name, losses in sweeps.items()}
assert good["Adam"] > good["SGD"]


def minibatch_losses(batch_size, steps=200, lr=0.1):
    sl.manual_seed(1)
    model = MLP()
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    batches = np.random.default_rng(0)
    full = []
    for _ in range(steps):
        rows = batches.choice(len(x_train), batch_size, replace=False)
        F.mse_loss(model(sl.tensor(x_train[rows])), sl.tensor(y_train[rows])).backward()
        optimizer.step()
        optimizer.zero_grad()
        with sl.no_grad():  # the loss on all 128 points, to compare like with like
            full.append(F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train)).item())
    return full


fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, losses in sweeps.items():
    left.loglog(LEARNING_RATES, losses, "o-", label=name)
left.set(xlabel="learning rate η", ylabel="loss after 200 steps (missing: diverged)",
         title="learning-rate sensitivity")
left.legend()
for batch_size in (8, 32, 128):
    right.semilogy(minibatch_losses(batch_size), label=f"batch of {batch_size}")
right.set(xlabel="step", ylabel="loss on all 128 points", title="SGD + momentum, η = 0.1")
right.legend()
plt.show()

# %% [markdown]
# `optimizer.step()` 就是上面的更新规则：`momentum=0` 的 `optim.SGD` 恰好执行
# $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$。手算的一步与优化器的一步一致：

# %%
sl.manual_seed(2)
model = MLP()
before = {name: p.data.copy() for name, p in model.named_parameters()}
F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train)).backward()
expected = {name: before[name] - 0.1 * p.grad for name, p in model.named_parameters()}
optim.SGD(model.parameters(), lr=0.1).step()
for name, p in model.named_parameters():
    assert np.allclose(p.data, expected[name]), name
print("optim.SGD(lr=0.1).step() == θ − 0.1 ∂J/∂θ for", list(expected))
