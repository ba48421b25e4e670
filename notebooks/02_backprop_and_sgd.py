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
import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim

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
# `optim.SGD` and `optim.Adam` apply the update (Adam scales each parameter's step by running
# estimates of its gradient's mean and variance).

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
# ## Learning-rate sensitivity and minibatches
#
# The learning rate $\eta$ is the first thing to tune. Too small, and 200 steps get nowhere; too
# large, and each step overshoots the valley until the loss overflows (diverges). We train the
# same network from the same start at eight learning rates. Adam divides each step by a running
# estimate of the gradient's size,
# $\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)$,
# so its steps are about $\eta$ long whatever the gradient's scale: it works over a much wider
# range.
#
# Real training also uses **minibatches**: the gradient of a random sample of $B$ examples, an
# unbiased but noisy estimate of the full gradient, $\nabla J \approx \frac{1}{B}\sum_{n \in
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
