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
# # 1 · 自动微分：从数组开始
#
# 训练语言模型，就是沿着损失 $L$ 的坡度往下走：每个参数 $\theta$ 按
# $\theta \leftarrow \theta - \eta\, \partial L/\partial\theta$ 更新。scratchlm 用
# **反向模式自动微分**计算这些坡度：每个运算记下自己的输入，`backward()` 沿着记录下来的计算图
# 从损失走回参数，每经过一个运算就用一次链式法则。
#
# 我们先在这里亲手写一个这样的引擎：只处理单个数，约四十行（仿照 micrograd）——一个 `Value`
# 类、加法、乘法、tanh、拓扑排序和 `backward`。然后在同一个表达式上把它和 scratchlm 的
# `Tensor` 对照，再迈向数组：广播、编写运算、用数值方法检验。

# %%
import math

import matplotlib.pyplot as plt
import numpy as np

import scratchlm as sl
from scratchlm import viz

LANG = "zh"  # 图中文字的语言
plt.rcParams.update(viz.font_settings(LANG))
rng = np.random.default_rng(0)

# %% [markdown]
# ## 四十行的标量引擎
#
# 一个 `Value` 保存一个数（`data`）、它的梯度（`grad` $= \partial L/\partial$ 这个值，反向传播
# 之前为 0）、计算出它的那些值（`parents`），以及一个函数 `_backward`：按链式法则把自己的梯度
# 传给父节点。对 $c = a + b$，两个局部导数都是 1；对 $c = a\,b$，分别是 $b$ 和 $a$；对
# $c = \tanh a$，是 $1 - c^2$。每条规则都把结果**加**（`+=`）到父节点的梯度上：一个值被用了
# 两次，两份贡献都会收到。

# %%
class Value:
    def __init__(self, data, parents=(), op=""):
        self.data, self.grad = float(data), 0.0
        self.parents, self.op = parents, op
        self._backward = lambda: None  # 叶子节点不再往前传

    def __add__(self, other):
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # ∂out/∂self = ∂out/∂other = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        out = Value(self.data * other.data, (self, other), "×")

        def _backward():  # ∂out/∂self = other，∂out/∂other = self
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # ∂tanh(a)/∂a = 1 − tanh(a)²
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def backward(self):
        self.grad = 1.0  # ∂L/∂L
        for node in reversed(topological_order(self)):
            node._backward()

    def __repr__(self):
        return f"Value({self.data:.4f}, 梯度={self.grad:.4f})"


def topological_order(root):
    """root 背后的所有值，每个值都排在计算出它的那些值之后。"""
    order, seen = [], set()

    def visit(node):
        if id(node) not in seen:
            seen.add(id(node))
            for parent in node.parents:
                visit(parent)
            order.append(node)

    visit(root)
    return order

# %% [markdown]
# `backward` 只能在一个节点的梯度完整之后调用它的 `_backward`，也就是在所有用到它的节点之后。
# **拓扑排序**让每个值排在它的父节点之后；倒过来，每个值就排在所有由它算出的值之后。
# 以 $z = \tanh(wx + b)$ 为例：

# %%
w, x, b = Value(0.7), Value(-1.3), Value(0.2)
wx = w * x
u = wx + b
z = u.tanh()
names = {id(w): "w", id(x): "x", id(b): "b", id(wx): "wx", id(u): "u", id(z): "z"}
print("拓扑顺序：", [names[id(node)] for node in topological_order(z)])
z.backward()
for name, node in [("w", w), ("x", x), ("b", b), ("wx", wx), ("u", u), ("z", z)]:
    print(f"{name:>2}: {node}")

# %% [markdown]
# 反向传播时，每个运算把传进来的梯度乘上自己的局部导数：
#
# $$\frac{\partial z}{\partial u} = 1 - z^2,\qquad \frac{\partial z}{\partial w} = (1 - z^2)\,x,
# \qquad \frac{\partial z}{\partial x} = (1 - z^2)\,w, \qquad \frac{\partial z}{\partial b} =
# 1 - z^2.$$
#
# 引擎算出的梯度与用普通浮点数代入这些公式的结果相等：

# %%
local = 1 - z.data**2  # u = w x + b 处的 ∂tanh(u)/∂u
by_hand = {"w": local * x.data, "x": local * w.data, "b": local, "u": local}
for name, node in [("w", w), ("x", x), ("b", b), ("u", u)]:
    print(f"∂z/∂{name}：Value {node.grad: .6f}   手算 {by_hand[name]: .6f}")
    assert math.isclose(node.grad, by_hand[name], rel_tol=1e-12)

# %% [markdown]
# 一个值被用了两次，就收到两次使用的梯度之**和**：对 $q = a \cdot a + a$，
# $\partial q/\partial a = 2a + 1$。这就是每个 `_backward` 都用 `+=` 累加、而不是直接赋值的原因。

# %%
a = Value(3.0)
q = a * a + a
q.backward()
print("∂q/∂a =", a.grad, "（2a + 1 =", 2 * 3.0 + 1, "）")
assert a.grad == 7.0

# %% [markdown]
# ## 同一个表达式，交给 scratchlm
#
# scratchlm 的 `Tensor` 记录同样的计算图：每个结果都记得产生它的运算（一个 `Function`），
# `backward()` 按逆拓扑顺序访问这些运算。用 `requires_grad=True` 创建的张量是**叶子节点**
# （它不是由别的张量算出来的）：引擎把它的梯度存在 `.grad` 里，而且只保存叶子节点的梯度。
# `viz.graph_gradients` 在记录下来的计算图上再做一遍链式法则，返回每个节点（包括中间节点）的
# $\partial z/\partial(\text{节点})$。我们用同样的数构造 $\tanh(wx + b)$，逐个节点与我们的
# `Value` 比较。（`retain_graph=True` 让计算图在反向传播之后保留下来，以便画出；普通的
# `backward()` 会释放它。）

# %%
ours = {"w": w, "x": x, "b": b, "wx": wx, "u": u, "z": z}  # 上面那个单元格里的 Value

w, x, b = (sl.tensor(value, requires_grad=True) for value in (0.7, -1.3, 0.2))
wx = w * x
u = wx + b
z = u.tanh()
z.backward(retain_graph=True)
drawn = viz.graph_gradients(z)  # id(张量) -> ∂z/∂张量
print("节点      值：Value   scratchlm      梯度：Value   scratchlm")
for name, tensor in [("w", w), ("x", x), ("b", b), ("wx", wx), ("u", u), ("z", z)]:
    grad = tensor.grad if tensor.is_leaf else drawn[id(tensor)]  # .grad 只有叶子节点才有
    print(f"{name:>4}  {ours[name].data: 14.6f} {tensor.item(): 10.6f}"
          f"  {ours[name].grad: 16.6f} {float(grad): 10.6f}")
    assert math.isclose(ours[name].data, tensor.item(), rel_tol=1e-6)  # 张量是 float32
    assert math.isclose(ours[name].grad, float(grad), rel_tol=1e-5)

# %% [markdown]
# ### 把计算图画出来
#
# `scratchlm.viz.draw_graph` 走的正是引擎走的那份记录：方框是张量（有底色的是叶子节点），
# 椭圆是产生它们的运算，每个箭头从一个输入指向使用它的运算。每个方框里写着这个张量的值和它的
# 梯度 $\partial z/\partial(\text{节点})$，就是上表中的数。

# %%
nodes, edges = viz.graph_nodes(z)
ops = sorted(node.label for node in nodes if node.kind == "op")
print("运算：", ops, "|", len(nodes), "个节点，", len(edges), "条边")
assert ops == ["Add", "Mul", "Tanh"]  # 先 w·x，再 + b，最后 tanh
viz.draw_graph(z, names={"w": w, "x": x, "b": b, "wx": wx, "u": u, "z": z}, lang=LANG)

# %% [markdown]
# ## 从标量到数组
#
# 我们的 `Value` 只装一个数，一个有一百万参数的模型就要一百万个 Python 对象。scratchlm 的
# `Tensor` 包着整个 NumPy 数组（`.data`），每个运算的反向传播一次处理整个数组：对
# $y = \sum_i x_i^2$，一次反向传播就给出所有的 $\partial y/\partial x_i = 2x_i$。

# %%
x = sl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
y = (x * x).sum()
y.backward()
print("y =", y.item())
print("x.grad =\n", x.grad)
assert np.allclose(x.grad, 2 * x.data)

# %% [markdown]
# 和我们的 `Value` 一样，叶子节点的梯度会**累加**，在多次 `backward()` 之间也是如此（与
# PyTorch 相同），所以训练循环每一步之间都要把梯度清零（`optimizer.zero_grad()` 做的就是这件事）。

# %%
y = (x * x).sum()
y.backward()
print("第二次反向传播之后：\n", x.grad, "\n= 2 · 2x")
assert np.allclose(x.grad, 4 * x.data)
x.grad = None  # 清零

# %% [markdown]
# ## 广播把梯度求和
#
# 把偏置 $b \in \mathbb{R}^{C}$ 加到 $X \in \mathbb{R}^{N \times C}$ 的每一行，每个 $b_c$
# 在每一行都用了一次，所以它的梯度是对各行求和：
# $\partial L/\partial b_c = \sum_n \partial L/\partial Y_{nc}$。引擎对每个被广播的输入都做这个
# 求和。这里直接把一个随机的上游梯度 $G = \partial L/\partial Y$ 交给 `backward`。

# %%
X = sl.tensor(rng.standard_normal((4, 3)), requires_grad=True)
bias = sl.tensor(rng.standard_normal(3), requires_grad=True)
Y = X + bias
G = rng.standard_normal(Y.shape)
Y.backward(G)
print("bias.grad    =", bias.grad)
print("G 按行求和   =", G.sum(axis=0))
assert np.allclose(bias.grad, G.sum(axis=0))
assert np.allclose(X.grad, G)


# %% [markdown]
# ## 编写一个运算：`Function`
#
# scratchlm 的每个运算都是一个 `Function`，它的两个方法都直接作用在数组上：
# `forward(self, *arrays)` 计算输出，并把求梯度要用的东西存在 `self` 上；
# `backward(self, g)` 接收 $g = \partial L/\partial y$，为每个输入返回 $\partial L/\partial x$。
# 对 $y = x^3$：$\partial L/\partial x = 3x^2 \cdot g$。

# %%
class Cube(sl.Function):
    """y = x³；∂L/∂x = 3x² · g。"""

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
# \varepsilon e_j)}{2\varepsilon}, \qquad \text{误差为 } O(\varepsilon^2).$$
#
# 对有多个输出的运算，我们检验标量 $\varphi(x) = \langle f(x), c\rangle$，其中 $c$ 是一个
# **随机**的余切向量：它的梯度正是把 $g = c$ 交给 `backward` 时的返回值。（若把输出直接求和，
# 即 $c = 1$，两个错误的分量可能相互抵消。）在 float64 下取 $\varepsilon = 10^{-6}$，两者大约
# 在 $10^{-9}$ 以内一致。下面在数组上把这个检验写出来：

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
print("解析梯度", analytic)
print("数值梯度", numerical)
print("最大差异", np.abs(analytic - numerical).max())
assert np.allclose(analytic, numerical, atol=1e-8)

# %% [markdown]
# 库对每个输入分量都做这件事。`sl.gradcheck_op` 单独检验一个 `Function` 的 `backward`；
# `sl.gradcheck` 检验经过引擎的整个计算。两者都需要 float64 输入（float32 的舍入误差会淹没
# 差分），通过时返回 `True`，否则抛出 `sl.GradcheckError`。

# %%
print(sl.gradcheck_op(Cube, [rng.standard_normal((3, 4))]))
print(sl.gradcheck(lambda a, b: (Cube()(a) * b).tanh(),
                   [sl.tensor(rng.standard_normal((3, 4)), requires_grad=True),
                    sl.tensor(rng.standard_normal(4), requires_grad=True)]))


# %% [markdown]
# ## 故意埋一个错误，看检验能否发现
#
# 一个常见的疏忽是漏掉导数的一部分。下面这个 `backward` 返回 $3x \cdot g$，而不是
# $3x^2 \cdot g$。检验报告会指出是哪个输入、它的形状、有多少个分量出错，并把误差最大的几个
# 并排列出。

# %%
class BuggyCube(Cube):
    def backward(self, g):
        return 3 * self.x * g  # 应当是 3 * x**2 * g


try:
    sl.gradcheck_op(BuggyCube, [rng.standard_normal((2, 3))])
except sl.GradcheckError as error:
    print(error)
else:
    raise AssertionError("没有发现这个错误")

# %% [markdown]
# `scratchlm.functional` 中的每个运算（softmax、层规范化、交叉熵、注意力……）都是像 `Cube`
# 这样的 `Function`：推导写在文档字符串里，测试集中有它的 float64 梯度检验。第 3 篇把这些变成
# 练习：由你来写 `backward`，由评分器来检查。
#
# ## 小结
#
# - 反向模式自动微分在计算时记下每个运算和它的输入，再按逆拓扑顺序访问这些运算：每个运算把
#   到达其输出的梯度乘上自己的局部导数，再累加到输入上。
# - 四十行代码就能写出一个可用的标量引擎（`Value`）；在 $\tanh(wx + b)$ 上，它的梯度与手算
#   公式相等，与 scratchlm 的结果在 float32 精度内一致。
# - 一个值被用了两次，或者沿各行广播，它收到的是各份梯度之**和**；叶子节点的梯度在多次
#   `backward()` 之间累加，直到清零。
# - scratchlm 在数组上做同样的事：每个运算都是一个 `Function`，它的 `backward` 就是推导出的
#   公式，并用中心差分检验（`sl.gradcheck_op`、`sl.gradcheck`）。
#
# ## 练习
#
# 1. 给 `Value` 加上 `__pow__`（指数为普通的数）和 `exp`，并用中心差分检验
#    $\partial/\partial x\,(x^3 e^{x})$。
# 2. 上面的 `topological_order` 是递归的：10,000 个加法连成的链会超过 Python 的递归深度上限。
#    计分练习 **`engine_topo`** 要求不用递归求出这个顺序；**`engine_unbroadcast`** 要求实现
#    上面展示的对广播轴求和（`python -m scratchlm.exercises show engine_topo`）。两者都是
#    [COURSE.zh.md](../COURSE.zh.md) 第 1 周的内容。
# 3. 在 `q.backward(retain_graph=True)` 之后用 `viz.draw_graph` 画出 $q = a \cdot a + a$
#    的计算图：哪个节点收到两个箭头？它显示的梯度是多少？
