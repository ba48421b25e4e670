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
# # 2 · Backpropagation and gradient descent
#
# Learning is minimising a cost $J(\theta)$ over the parameters $\theta$. Backpropagation gives
# $\partial J/\partial\theta$ for every parameter in one backward pass, and gradient descent
# takes a small step against it:
#
# $$\theta \leftarrow \theta - \eta\,\frac{\partial J}{\partial \theta}$$
#
# with learning rate $\eta$. We do this by hand on `.grad` first, then let `scratchlm.optim`
# do it (SGD with momentum, Adam).

# %%
import unicodedata

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim
from scratchlm import viz

LANG = "en"  # the language of the figures' text
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)
sl.manual_seed(0)

# %% [markdown]
# ## Linear regression, gradient by hand
#
# Data: $y = X w^\star + b^\star + \text{noise}$ with $w^\star = (2, -1)$, $b^\star = 0.5$. The
# model $\hat y = X w + b$ has mean squared error
#
# $$J = \frac{1}{N}\sum_n (\hat y_n - y_n)^2, \qquad \frac{\partial J}{\partial w} = \frac{2}{N}
# X^\top r, \qquad \frac{\partial J}{\partial b} = \frac{2}{N}\sum_n r_n, \qquad r = \hat y - y.$$
#
# The engine's gradients must equal these formulas:

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
# ## The update rule, written out
#
# Each step: forward, backward, then $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$
# on the
# raw arrays (no graph is recorded for that), and clear the gradients, which would otherwise
# accumulate.

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
# Gradient descent reaches the closed-form least-squares solution. Neural networks have no
# closed form, but the same loop trains them.
#
# ## A small network: $\hat y = W_2 \tanh(W_1 x + b_1) + b_2$
#
# We fit $y = \sin x$ with 32 hidden units. `nn.Module` collects the parameters of its layers;
# `nn.Linear` computes $X W^\top + b$ for a batch $X$ of rows.

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
# ### The network's backward, by hand
#
# Write the forward pass on a batch $X$ ($N \times 1$) one step a line, then walk back through
# it, each line's gradient from the one below (the chain rule; $\odot$ is the elementwise
# product, and a bias used by every row gets the sum over the rows):
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
# The same lines in NumPy, against the engine's gradients:

# %%
sl.manual_seed(3)
mlp = MLP()
F.mse_loss(mlp(sl.tensor(x_train)), sl.tensor(y_train)).backward()

W1, b1 = mlp.fc1.weight.data, mlp.fc1.bias.data
W2, b2 = mlp.fc2.weight.data, mlp.fc2.bias.data
A = x_train @ W1.T + b1  # forward, one line per step
H = np.tanh(A)
Y_hat = H @ W2.T + b2
dY_hat = 2 / len(x_train) * (Y_hat - y_train)  # backward, from the loss down
dW2, db2 = dY_hat.T @ H, dY_hat.sum(axis=0)
dH = dY_hat @ W2
dA = dH * (1 - H**2)
dW1, db1 = dA.T @ x_train, dA.sum(axis=0)
by_hand = {"fc1.weight": dW1, "fc1.bias": db1, "fc2.weight": dW2, "fc2.bias": db2}
for name, p in mlp.named_parameters():
    error = np.abs(p.grad - by_hand[name]).max()
    print(f"{name:10s} shape {str(p.shape):8s} largest |engine − by hand| = {error:.1e}")
    assert np.allclose(p.grad, by_hand[name], rtol=1e-4, atol=1e-6)

# %% [markdown]
# ### Training it: SGD with momentum, and Adam
#
# `optim.SGD(momentum=μ)` keeps a velocity $b \leftarrow \mu b + g$ and steps
# $\theta \leftarrow \theta - \eta\, b$. `optim.Adam` keeps, for each parameter, running
# averages of the gradient $g_t$ and of its square, corrects their start at zero, and divides:
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1)\,g_t,\quad v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2,
# \quad \hat m_t = \frac{m_t}{1-\beta_1^{\,t}},\quad \hat v_t = \frac{v_t}{1-\beta_2^{\,t}},
# \quad \theta_t = \theta_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon},$$
#
# with $m_0 = v_0 = 0$, $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\epsilon = 10^{-8}$. $m_t$ and
# $v_t$ start at zero, so early on they underestimate the mean and the mean square;
# dividing by $1 - \beta^t$ (the total weight of the average after $t$ steps) removes that bias
# ($\hat m$, $\hat v$: the **bias-corrected** estimates). At $t = 1$, $\hat m_1 = g_1$ and
# $\hat v_1 = g_1^2$, so the first step is $\eta\, g/|g| = \pm\eta$ for every parameter, whatever
# its gradient's size. Two steps by hand against `optim.Adam`:

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
            print(f"step 1, {name:10s}: |step| / η from {np.abs(step).min() / eta:.4f} "
                  f"to {np.abs(step).max() / eta:.4f}")
        theta[name] = theta[name] - step
    optimizer.step()
    optimizer.zero_grad()
for name, p in mlp.named_parameters():
    assert np.allclose(p.data, theta[name], atol=1e-6), name
print("after 2 steps, optim.Adam == the formulas above for", list(theta))


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
# ## Learning-rate sensitivity and minibatches
#
# The learning rate $\eta$ is the first thing to tune. Too small, and after 200 steps the loss
# is still high; too large, and each step overshoots the valley until the loss overflows
# (diverges). We train the same network from the same start at eight learning rates. Adam
# divides each step by $\sqrt{\hat v}$, a running estimate of the gradient's size, so its
# steps are about $\eta$ long whatever the gradient's scale: the count below says at how many
# of the eight rates each optimizer gets the loss under 0.01.
#
# Real training also uses **minibatches**: the gradient of a random sample of $B$ examples, an
# unbiased but noisy estimate of the full gradient (descending along it is **stochastic**
# gradient descent, SGD), $\nabla J \approx \frac{1}{B}\sum_{n \in
# \text{batch}} \nabla J_n$. Smaller batches give cheaper, noisier steps:

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


def pad(text, width):
    """``text`` and the spaces that make it ``width`` columns wide on screen: a Chinese
    character takes two columns, so the Chinese edition's tables cannot align with
    ``f"{text:20s}"``."""
    columns = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * (width - columns)


sweeps = {
    "SGD": [final_loss(lambda p, lr: optim.SGD(p, lr=lr), lr) for lr in LEARNING_RATES],
    "SGD, momentum 0.9": [final_loss(lambda p, lr: optim.SGD(p, lr=lr, momentum=0.9), lr)
                          for lr in LEARNING_RATES],
    "Adam": [final_loss(lambda p, lr: optim.Adam(p, lr=lr), lr) for lr in LEARNING_RATES],
}
for name, losses in sweeps.items():
    print(pad(name, 18), "  ".join(f"{v:8.4f}" for v in losses))
    best = int(np.nanargmin(losses))
    assert 0 < best < len(LEARNING_RATES) - 1, name  # too small and too large both lose
good = {name: sum(v < 0.01 for v in losses if np.isfinite(v)) for name, losses in sweeps.items()}
print("learning rates (of 8) that reach a loss under 0.01:", good)
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
# `optimizer.step()` is the update rule above: `optim.SGD` with `momentum=0` performs exactly
# $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$. One step by hand and one by the
# optimizer agree:

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

# %% [markdown]
# ## Summary
#
# - Backpropagation gives every $\partial J/\partial\theta$ in one backward pass; on linear
#   regression and on a one-hidden-layer network the engine's gradients equal the ones derived
#   by hand, line by line.
# - Gradient descent, $\theta \leftarrow \theta - \eta\,\partial J/\partial\theta$, reaches the
#   least-squares solution of linear regression, and fits $\sin x$ with the network.
# - Adam divides a bias-corrected average of the gradient ($\hat m$) by the root of a
#   bias-corrected average of its square ($\hat v$): its first step is $\pm\eta$ for every
#   parameter, and in the sweep above it reaches a loss under 0.01 at more learning rates
#   than SGD.
# - Too small a learning rate leaves the loss high after 200 steps (0.13 for plain SGD at
#   $\eta = 0.001$, 0.007 at $\eta = 0.1$); too large a one diverges. Smaller minibatches give
#   cheaper, noisier steps.
#
# ## Exercises
#
# 1. Add a second hidden layer to `MLP` and extend the hand-written backward to it; check it
#    against the engine as above.
# 2. Show that without bias correction Adam's first step is $\eta(1-\beta_1)/\sqrt{1-\beta_2}
#    \approx 3.2\,\eta$ in size: run the two-step cell with `m_hat, v_hat = m[name], v[name]`.
# 3. Graded exercises of week 2 of [COURSE.md](COURSE.md): **`engine_backward`** (the backward
#    pass through shared nodes), **`engine_no_grad`**, **`engine_train`** (train a perceptron
#    with your engine) and **`sgd_momentum`**; **`adam`** and **`adamw`** come in week 8
#    (`python -m scratchlm.exercises show adam`).
