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
# # 2 · 反向传播与梯度下降
#
# 学习就是对参数 $\theta$ 最小化代价 $J(\theta)$。反向传播在一次反向过程中给出每个参数的
# $\partial J/\partial\theta$，梯度下降则逆着它走一小步：
#
# $$\theta \leftarrow \theta - \eta\,\frac{\partial J}{\partial \theta}$$
#
# 其中 $\eta$ 是学习率。我们先在 `.grad` 上手工完成更新，再交给 `scratchlm.optim`
# （带动量的随机梯度下降 SGD、Adam）。

# %%
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim
from scratchlm import viz

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)
sl.manual_seed(0)

# %% [markdown]
# ## 线性回归：手算梯度
#
# 数据：$y = X w^\star + b^\star + \text{噪声}$，其中 $w^\star = (2, -1)$，$b^\star = 0.5$。
# 模型 $\hat y = X w + b$ 的均方误差为
#
# $$J = \frac{1}{N}\sum_n (\hat y_n - y_n)^2, \qquad \frac{\partial J}{\partial w} = \frac{2}{N}
# X^\top r, \qquad \frac{\partial J}{\partial b} = \frac{2}{N}\sum_n r_n, \qquad r = \hat y - y.$$
#
# 引擎算出的梯度应当等于这些公式：

# %%
N = 64
X = rng.uniform(-2, 2, size=(N, 2))
y = X @ np.array([2.0, -1.0]) + 0.5 + 0.1 * rng.standard_normal(N)

w = sl.tensor(np.zeros(2), requires_grad=True)  # float64 数据保持 float64
b = sl.tensor(np.zeros(()), requires_grad=True)
loss = F.mse_loss(X @ w + b, y)
loss.backward()

residual = X @ w.data + b.data - y
print("引擎  ∂J/∂w =", w.grad, " ∂J/∂b =", b.grad)
print("公式  ∂J/∂w =", 2 / N * X.T @ residual, " ∂J/∂b =", 2 / N * residual.sum())
assert np.allclose(w.grad, 2 / N * X.T @ residual)
assert np.allclose(b.grad, 2 / N * residual.sum())

# %% [markdown]
# ## 把更新规则写出来
#
# 每一步：前向、反向，然后直接在数组上做
# $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$（这一步不记录计算图），再把梯度
# 清零，否则梯度会累加。

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
        print(f"第 {step:3d} 步：J = {loss.item():.5f}")

least_squares = np.linalg.lstsq(np.c_[X, np.ones(N)], y, rcond=None)[0]
print(f"梯度下降：  w = {w.data}, b = {b.data:.4f}")
print(f"最小二乘：  w = {least_squares[:2]}, b = {least_squares[2]:.4f}")
assert np.allclose(np.r_[w.data, b.data], least_squares, atol=1e-3)


# %% [markdown]
# 梯度下降到达了最小二乘的闭式解。神经网络没有闭式解，但同样的循环可以训练它们。
#
# ## 一个小网络：$\hat y = W_2 \tanh(W_1 x + b_1) + b_2$
#
# 我们用 32 个隐藏单元拟合 $y = \sin x$。`nn.Module` 收集各层的参数；`nn.Linear` 对一批行向量
# $X$ 计算 $X W^\top + b$。

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

# %% [markdown]
# ### 手推这个网络的反向传播
#
# 把批量 $X$（$N \times 1$）上的前向计算一步写一行，再倒着走回去，每一行的梯度由下一行得到
# （链式法则；$\odot$ 是逐元素乘积，被每一行都用到的偏置得到各行梯度之和）：
#
# $$\begin{aligned}
# A &= X W_1^\top + b_1, & H &= \tanh A, & \hat Y &= H W_2^\top + b_2, &
# J &= \tfrac{1}{N}\textstyle\sum_n (\hat Y_n - Y_n)^2,\\
# \frac{\partial J}{\partial \hat Y} &= \tfrac{2}{N}(\hat Y - Y), &
# \frac{\partial J}{\partial W_2} &= \Big(\frac{\partial J}{\partial \hat Y}\Big)^{\!\top} H, &
# \frac{\partial J}{\partial b_2} &= \textstyle\sum_n \frac{\partial J}{\partial \hat Y_n}, &
# \frac{\partial J}{\partial H} &= \frac{\partial J}{\partial \hat Y}\, W_2,\\
# \frac{\partial J}{\partial A} &= \frac{\partial J}{\partial H} \odot (1 - H^2), &
# \frac{\partial J}{\partial W_1} &= \Big(\frac{\partial J}{\partial A}\Big)^{\!\top} X, &
# \frac{\partial J}{\partial b_1} &= \textstyle\sum_n \frac{\partial J}{\partial A_n}. &&
# \end{aligned}$$
#
# 用 NumPy 把这几行写出来，与引擎的梯度比较：

# %%
sl.manual_seed(3)
mlp = MLP()
F.mse_loss(mlp(sl.tensor(x_train)), sl.tensor(y_train)).backward()

W1, b1 = mlp.fc1.weight.data, mlp.fc1.bias.data
W2, b2 = mlp.fc2.weight.data, mlp.fc2.bias.data
A = x_train @ W1.T + b1  # 前向，一步一行
H = np.tanh(A)
Y_hat = H @ W2.T + b2
dY_hat = 2 / len(x_train) * (Y_hat - y_train)  # 反向，从损失往回
dW2, db2 = dY_hat.T @ H, dY_hat.sum(axis=0)
dH = dY_hat @ W2
dA = dH * (1 - H**2)
dW1, db1 = dA.T @ x_train, dA.sum(axis=0)
by_hand = {"fc1.weight": dW1, "fc1.bias": db1, "fc2.weight": dW2, "fc2.bias": db2}
for name, p in mlp.named_parameters():
    error = np.abs(p.grad - by_hand[name]).max()
    print(f"{name:10s} 形状 {str(p.shape):8s} 最大 |引擎 − 手算| = {error:.1e}")
    assert np.allclose(p.grad, by_hand[name], rtol=1e-4, atol=1e-6)

# %% [markdown]
# ### 训练它：带动量的 SGD 与 Adam
#
# `optim.SGD(momentum=μ)` 维护一个速度 $b \leftarrow \mu b + g$，并按 $\theta \leftarrow \theta -
# \eta\, b$ 更新。`optim.Adam` 为每个参数维护梯度 $g_t$ 及其平方的滑动平均，修正它们从零开始
# 带来的偏差，再相除：
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1)\,g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2,
# \quad \hat m_t = \frac{m_t}{1-\beta_1^{\,t}},\quad \hat v_t = \frac{v_t}{1-\beta_2^{\,t}},
# \quad \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},$$
#
# 其中 $m_0 = v_0 = 0$，$\beta_1 = 0.9$，$\beta_2 = 0.999$，$\epsilon = 10^{-8}$。$m_t$ 和 $v_t$
# 从零开始，所以起初会低估梯度的均值和均方；除以 $1 - \beta^t$（$t$ 步之后滑动平均的总权重）
# 就消除了这个偏差（$\hat m$、$\hat v$：**偏差修正**后的估计）。$t = 1$ 时，$\hat m_1 = g_1$，
# $\hat v_1 = g_1^2$，所以第一步对每个参数都是 $\eta\, g/|g| = \pm\eta$，与梯度的大小无关。
# 下面手算两步，与 `optim.Adam` 比较：

# %%
sl.manual_seed(3)
mlp = MLP()
optimizer = optim.Adam(mlp.parameters(), lr=0.01)
theta = {name: p.data.astype(np.float64) for name, p in mlp.named_parameters()}
m = {name: np.zeros_like(v) for name, v in theta.items()}
v = {name: np.zeros_like(value) for name, value in theta.items()}
beta1, beta2, eps, eta = 0.9, 0.999, 1e-8, 0.01
for t in (1, 2):
    F.mse_loss(mlp(sl.tensor(x_train)), sl.tensor(y_train)).backward()
    for name, p in mlp.named_parameters():
        g = p.grad.astype(np.float64)
        m[name] = beta1 * m[name] + (1 - beta1) * g
        v[name] = beta2 * v[name] + (1 - beta2) * g**2
        m_hat, v_hat = m[name] / (1 - beta1**t), v[name] / (1 - beta2**t)
        step = eta * m_hat / (np.sqrt(v_hat) + eps)
        if t == 1:
            print(f"第 1 步，{name:10s}：|步长| / η 从 {np.abs(step).min() / eta:.4f} "
                  f"到 {np.abs(step).max() / eta:.4f}")
        theta[name] = theta[name] - step
    optimizer.step()
    optimizer.zero_grad()
for name, p in mlp.named_parameters():
    assert np.allclose(p.data, theta[name], atol=1e-6), name
print("两步之后，optim.Adam 与上面的公式一致：", list(theta))


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
print(f"最终损失：SGD+动量 {sgd_losses[-1]:.4f}，Adam {adam_losses[-1]:.4f}")
assert adam_losses[-1] < 0.1 * adam_losses[0] and sgd_losses[-1] < 0.1 * sgd_losses[0]

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
left.semilogy(sgd_losses, label="SGD，动量 0.9")
left.semilogy(adam_losses, label="Adam")
left.set(xlabel="步", ylabel="均方误差", title="训练损失")
left.legend()
with sl.no_grad():
    right.plot(x_train, y_train, "k", label="sin x")
    right.plot(x_train, sgd_model(sl.tensor(x_train)).numpy(), "--", label="SGD 拟合")
    right.plot(x_train, adam_model(sl.tensor(x_train)).numpy(), ":", label="Adam 拟合")
right.set(xlabel="x", title="拟合出的函数")
right.legend()
plt.show()

# %% [markdown]
# ## 学习率敏感性与小批量
#
# 学习率 $\eta$ 是第一个要调的超参数。太小，200 步之后损失仍然很高；太大，每一步都冲过谷底，
# 直到损失溢出（发散）。我们从同一个起点、用八个学习率训练同一个网络。Adam 把每一步除以
# $\sqrt{\hat v}$（梯度大小的滑动估计），所以无论梯度的尺度如何，步长都约为 $\eta$：下面的计数
# 给出每个优化器在八个学习率中的几个上把损失降到 0.01 以下。
#
# 实际训练还使用**小批量**：用 $B$ 个随机样本的梯度作为完整梯度的估计，它无偏但有噪声（用它
# 做梯度下降就是**随机梯度下降**，SGD），
# $\nabla J \approx \frac{1}{B}\sum_{n \in \text{批量}} \nabla J_n$。批量越小，每一步越便宜，
# 噪声也越大：

# %%
LEARNING_RATES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]


def final_loss(make_optimizer, lr, steps=200):
    sl.manual_seed(1)
    model = MLP()
    optimizer = make_optimizer(model.parameters(), lr)
    with np.errstate(over="ignore", invalid="ignore"):  # 发散的运行会溢出：这在意料之中
        for _ in range(steps):
            loss = F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        with sl.no_grad():
            value = F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train)).item()
    return value if np.isfinite(value) else np.nan


def pad(text, width):
    """在 ``text`` 后面补空格，使它在屏幕上占 ``width`` 列：一个汉字占两列，所以中文版的
    表格不能用 ``f"{text:20s}"`` 对齐。"""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


sweeps = {
    "SGD": [final_loss(lambda p, lr: optim.SGD(p, lr=lr), lr) for lr in LEARNING_RATES],
    "SGD，动量 0.9": [final_loss(lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), lr)
                          for lr in LEARNING_RATES],
    "Adam": [final_loss(lambda p, lr: optim.Adam(p, lr=lr), lr) for lr in LEARNING_RATES],
}
for name, losses in sweeps.items():
    print(pad(name, 18), "  ".join(f"{v:8.4f}" for v in losses))
    best = int(np.nanargmin(losses))
    assert 0 < best < len(LEARNING_RATES) - 1, name  # 太小和太大都更差
good = {name: sum(v < 0.01 for v in losses if np.isfinite(v)) for name, losses in sweeps.items()}
print("（8 个中）把损失降到 0.01 以下的学习率个数：", good)
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
        with sl.no_grad():  # 在全部 128 个点上的损失，以便同等比较
            full.append(F.mse_loss(model(sl.tensor(x_train)), sl.tensor(y_train)).item())
    return full


fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name, losses in sweeps.items():
    left.loglog(LEARNING_RATES, losses, "o-", label=name)
left.set(xlabel="学习率 η", ylabel="200 步后的损失（缺失：发散）",
         title="学习率敏感性")
left.legend()
for batch_size in (8, 32, 128):
    right.semilogy(minibatch_losses(batch_size), label=f"批量大小 {batch_size}")
right.set(xlabel="步", ylabel="全部 128 个点上的损失", title="SGD + 动量，η = 0.1")
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
print("optim.SGD(lr=0.1).step() == θ − 0.1 ∂J/∂θ，对于", list(expected))

# %% [markdown]
# ## 小结
#
# - 反向传播一次反向过程就给出每个 $\partial J/\partial\theta$；在线性回归和单隐藏层网络上，
#   引擎的梯度与逐行手推的梯度相等。
# - 梯度下降 $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$ 到达了线性回归的最小二乘
#   解，也让网络拟合了 $\sin x$。
# - Adam 用梯度经偏差修正的平均（$\hat m$）除以梯度平方经偏差修正的平均（$\hat v$）的平方根：
#   它的第一步对每个参数都是 $\pm\eta$；在上面的扫描中，它在更多的学习率上把损失降到 0.01 以下。
# - 学习率太小，200 步之后损失仍然很高（普通 SGD 在 $\eta = 0.001$ 时为 0.13，$\eta = 0.1$ 时
#   为 0.007）；太大则发散。批量越小，每一步越便宜、噪声越大。
#
# ## 练习
#
# 1. 给 `MLP` 加第二个隐藏层，把手写的反向传播推广到它，并像上面那样与引擎比较。
# 2. 说明不做偏差修正时，Adam 第一步的大小是 $\eta(1-\beta_1)/\sqrt{1-\beta_2} \approx 3.2\,\eta$：
#    在手算两步的单元格里改用 `m_hat, v_hat = m[name], v[name]` 运行。
# 3. [COURSE.zh.md](../COURSE.zh.md) 第 2 周的计分练习：**`engine_backward`**（经过共享节点的
#    反向传播）、**`engine_no_grad`**、**`engine_train`**（用你的引擎训练一个感知机）和
#    **`sgd_momentum`**；**`adam`** 和 **`adamw`** 在第 8 周
#    （`python -m scratchlm.exercises show adam`）。
