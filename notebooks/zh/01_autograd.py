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
# # 1 · 自动微分：从数组开始
#
# 训练语言模型，就是沿着损失 $L$ 的坡度往下走：每个参数 $\theta$ 按
# $\theta \leftarrow \theta - \eta\, \partial L/\partial\theta$ 移动。scratchlm
# 用**反向模式自动微分**
# 计算这些坡度：每个运算记住它的输入，`backward()` 从损失沿着记录下来的计算图走回参数，
# 对每个运算应用一次链式法则。
#
# 这一篇一步步建立这幅图景：张量、计算图、`backward`、广播对梯度做了什么、编写自己的运算，
# 以及用数值方法检验它。

# %%
import numpy as np

import scratchlm as sl

rng = np.random.default_rng(0)

# %% [markdown]
# ## 张量与 `backward`
#
# `Tensor` 包着一个 NumPy 数组（`.data`）。设 `requires_grad=True` 的张量是一个**叶子**，
# 我们想要它的梯度。对 $y = \sum_i x_i^2$，梯度是 $\partial y/\partial x_i = 2x_i$：

# %%
x = sl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
y = (x * x).sum()
y.backward()
print("y =", y.item())
print("x.grad =\n", x.grad)
assert np.allclose(x.grad, 2 * x.data)

# %% [markdown]
# ## 经过计算图的链式法则
#
# $z = \tanh(w x + b)$ 是三个被记录的运算：乘、加、tanh。反向传播时，每个运算把传进来的梯度
# 乘上自己的局部导数：
#
# $$\frac{\partial z}{\partial w} = (1 - z^2)\,x, \qquad \frac{\partial z}{\partial x} = (1 -
# z^2)\,w,
# \qquad \frac{\partial z}{\partial b} = 1 - z^2.$$
#
# 我们用普通浮点数手算这些公式，与引擎的结果比较。

# %%
w = sl.tensor(0.7, requires_grad=True)
x = sl.tensor(-1.3, requires_grad=True)
b = sl.tensor(0.2, requires_grad=True)
z = (w * x + b).tanh()
z.backward()

local = 1 - z.item() ** 2  # d tanh(u)/du at u = w x + b
by_hand = {"w": local * x.item(), "x": local * w.item(), "b": local}
for name, leaf in [("w", w), ("x", x), ("b", b)]:
    print(f"∂z/∂{name}: engine {leaf.grad.item(): .6f}   by hand {by_hand[name]: .6f}")
    assert np.isclose(leaf.grad.item(), by_hand[name], rtol=1e-5)

# %% [markdown]
# ### 把计算图画出来
#
# `scratchlm.viz.draw_graph` 走的正是引擎走的那份记录：方框是张量（有底色的是叶子，即参数），
# 椭圆是产生它们的运算。要在调用 `backward()` **之前**画图：反向传播会释放每个运算保存的数组，
# 记录也随之消失。

# %%
from scratchlm import viz

w, x, b = (sl.tensor(value, requires_grad=True) for value in (0.7, -1.3, 0.2))
z = (w * x + b).tanh()
nodes, edges = viz.graph_nodes(z)
ops = sorted(node.label for node in nodes if node.kind == "op")
print("ops:", ops, "|", len(nodes), "nodes,", len(edges), "edges")
assert ops == ["Add", "Mul", "Tanh"]  # w·x, then + b, then tanh
viz.draw_graph(z, names={"w": w, "x": x, "b": b}, engine="matplotlib")

# %% [markdown]
# 每个中间张量都记得产生它的运算；引擎把这些运算排好序，使每个运算都在所有用到它输出的运算
# 之后执行。一个张量被用了两次，就收到两次使用的梯度**之和**：对 $q = x \cdot x + x$，
# $\partial q/\partial x = 2x + 1$。

# %%
x = sl.tensor(3.0, requires_grad=True)
q = x * x + x
q.backward()
print("∂q/∂x =", x.grad, "(2x + 1 =", 2 * 3.0 + 1, ")")
assert x.grad == 7.0

# %% [markdown]
# 叶子的梯度在多次 `backward()` 之间**累加**（与 PyTorch 相同），所以训练循环在每一步之间要清零
# （`optimizer.zero_grad()` 做的就是这件事）。

# %%
q = x * x + x
q.backward()
print("after a second backward:", x.grad, "= 7 + 7")
assert x.grad == 14.0
x.grad = None  # clear it

# %% [markdown]
# ## 广播把梯度求和
#
# 把偏置 $b \in \mathbb{R}^{C}$ 加到 $X \in \mathbb{R}^{N \times C}$ 的每一行，每个 $b_c$
# 在每一行都被用了
# 一次，所以它的梯度是对行求和：$\partial L/\partial b_c = \sum_n \partial L/\partial Y_{nc}$。
# 引擎对每个被广播的输入都做这个求和。这里直接把一个随机的上游梯度
# $G = \partial L/\partial Y$ 交给 `backward`。

# %%
X = sl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
bias = sl.tensor(rng.standard_normal(3), requires_grad=True)
Y = X + bias
G = rng.standard_normal(Y.shape)
Y.backward(G)
print("bias.grad       =", bias.grad)
print("G summed over n =", G.sum(axis=0))
assert np.allclose(bias.grad, G.sum(axis=0))
assert np.allclose(X.grad, G)


# %% [markdown]
# ## 编写一个运算：`Function`
#
# scratchlm 的每个运算都是一个 `Function`，两个方法都作用在原始数组上：
# `forward(self, *arrays)` 计算输出，并在 `self` 上保存梯度需要的东西；
# `backward(self, g)` 接收 $g = \partial L/\partial y$，为每个输入返回 $\partial L/\partial x$。
# 对 $y = x^3$：$\partial L/\partial x = 3x^2 \cdot g$。

# %%
class Cube(sl.Function):
    """y = x³;  ∂L/∂x = 3x² · g."""

    def forward(self, x):
        self.x = x
        return x**3

    def backward(self, g):
        return 3 * self.x**2 * g


x = sl.tensor([1.0, -2.0, 0.5], requires_grad=True)
Cube()(x).sum().backward()
print("x.grad =", x.grad, " 3x² =", 3 * x.data**2)
assert np.allclose(x.grad, 3 * x.data**2)

# %% [markdown]
# ## 用数值方法检验梯度
#
# 怎么知道手写的 `backward` 是对的？与**中心差分**比较：
#
# $$\frac{\partial \varphi}{\partial x_j} \approx \frac{\varphi(x + \varepsilon e_j) - \varphi(x -
# \varepsilon e_j)}{2\varepsilon}, \qquad \text{error } O(\varepsilon^2).$$
#
# 对有多个输出的运算，我们检验标量 $\varphi(x) = \langle f(x), c\rangle$，其中 $c$ 是**随机**的
# 余切向量：它的梯度正是给 `backward` 传入 $g = c$ 时的返回值。（如果把输出简单求和，
# 即 $c = 1$，两个错误的分量可能相互抵消。）在 float64 下取 $\varepsilon = 10^{-6}$，两者约在
# $10^{-9}$ 内一致。下面在数组上把这个检验写出来：

# %%
x0 = rng.standard_normal(5)
c = rng.standard_normal(5)
eps = 1e-6


def phi(values):
    return float((values**3 * c).sum())


numerical = np.array([(phi(x0 + eps * e) - phi(x0 - eps * e)) / (2 * eps) for e in np.eye(5)])
op = Cube()
op.forward(x0)
analytic = op.backward(c)
print("analytic ", analytic)
print("numerical", numerical)
print("worst difference", np.abs(analytic - numerical).max())
assert np.allclose(analytic, numerical, atol=1e-8)

# %% [markdown]
# 库对每个输入分量都做这件事。`sl.gradcheck_op` 单独检验一个 Function 的 `backward`；
# `sl.gradcheck` 检验经过引擎的整个计算。两者都需要 float64 输入（float32 的舍入误差会淹没差分），
# 返回 `True` 或抛出 `sl.GradcheckError`。

# %%
print(sl.gradcheck_op(Cube, [rng.standard_normal((3, 4))]))
print(sl.gradcheck(lambda a, b: (Cube()(a) * b).tanh(),
                   [sl.tensor(rng.standard_normal((3, 4)), requires_grad=True),
                    sl.tensor(rng.standard_normal(4), requires_grad=True)]))


# %% [markdown]
# ## 埋一个错误，然后抓住它
#
# 一个经典的疏忽：漏掉导数的一部分。这个 `backward` 返回 $3x \cdot g$ 而不是 $3x^2 \cdot g$。
# 检验会指出是哪个输入、它的形状、有多少分量出错，并把最差的几个并排列出。

# %%
class BuggyCube(Cube):
    def backward(self, g):
        return 3 * self.x * g  # should be 3 * x**2 * g


try:
    sl.gradcheck_op(BuggyCube, [rng.standard_normal((2, 3))])
except sl.GradcheckError as error:
    print(error)
else:
    raise AssertionError("the bug was not caught")

# %% [markdown]
# `scratchlm.functional` 中的每个运算（softmax、层归一化、交叉熵、注意力……）都是像 `Cube`
# 一样的 `Function`，推导写在它的文档字符串里，测试集中有它的 float64 梯度检验。
# 第 3 篇把这些变成练习：由你来写 `backward`，评分器来检查。
