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
# # 7 · 梯度检验练习
#
# scratchlm 的每个运算都是一个 `Function`，它的 `backward`
# 是有人手工推导的。在这些练习里由你来推导：
# 每道题给出一个运算的前向公式和一个骨架——库中该运算自己的 `Function`，只是拿掉了 `backward`
# （`skeletons.Softmax` 就是去掉反向传播的 `scratchlm.functional.softmax.Softmax`）——要求你写出
# `backward`。评分器在多种输入形状上（长度为 1 的轴、广播的批次轴、重复的编号、被忽略的目标、
# 因果掩码）用两种方式检验你的梯度：
#
# 1. 与 float64 下的**中心差分**比较，使用随机余切向量 $c$：
#    $\nabla_x \langle f(x), c\rangle \approx$
#    $\big(\langle f(x + \varepsilon e_j), c\rangle$
#    $- \langle f(x - \varepsilon e_j), c\rangle\big) / 2\varepsilon$
#    （`sl.gradcheck_op`；输入中有整数编号、目标或被排除的输入时用 `sl.gradcheck`）；
# 2. 与库自己的运算比较，精确到 float64 精度。
#
# 它还检查每个 backward 都遵守的规则：每个输入一个梯度（整数输入为 `None`），形状与输入相同
# （或与广播后的形状相同——引擎会把它求和回去），并且传入的梯度 `g` 从不被原地修改。

# %%
import numpy as np

from scratchlm.exercises import EXERCISES, grade, skeletons
from scratchlm.exercises.__main__ import listing, statement

print(listing())

# %% [markdown]
# ## 读一道练习
#
# `python -m scratchlm.exercises show softmax > my_softmax.py` 把下面的内容写进文件：公式、要推导
# 什么、要补全的类。它的文档字符串包含从参考类读出的库的前向实现，以及该前向在 `self` 上为反向
# 保存了什么。

# %%
print(statement("softmax"))

# %% [markdown]
# 在写出 backward 之前，骨架不会通过——评分器对每个用例都会这样说：

# %%
print(grade("softmax", skeletons.Softmax))


# %% [markdown]
# ## 第一次尝试
#
# 对 $y = \operatorname{softmax}(x)$，很容易把每个输出当作只依赖自己的输入，
# $\partial y_i/\partial x_i = y_i(1 - y_i)$，就像 sigmoid 那样。继承骨架可以保留它的 `forward`
# （库的实现）：

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return g * self.y * (1 - self.y)  # only the diagonal of the Jacobian


report = grade("softmax", Softmax)
print(report)
assert not report.passed


# %% [markdown]
# 报告指出失败的输入形状、有多少梯度分量不对，并把最差的几个与数值结果并排列出。缺的是雅可比矩阵
# 的非对角部分：通过归一化的求和，每个 $y_j$ 都依赖每个 $x_i$，
#
# $$\frac{\partial y_j}{\partial x_i} = y_j(\delta_{ij} - y_i) \quad\Rightarrow\quad \frac{\partial
# L}{\partial x_i} = \sum_j g_j\, y_j (\delta_{ij} - y_i) = y_i\Big(g_i - \sum_j g_j y_j\Big).$$
#
# 求和沿 softmax 的轴进行，从不构造 $n \times n$ 的雅可比矩阵：

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))


report = grade("softmax", Softmax)
print(report)
assert report.passed


# %% [markdown]
# ## 一个更隐蔽的错误：重复的编号
#
# 词嵌入查表 $y = W[\text{ids}]$ 复制行。用 `grad[ids] += g` 把梯度行写回去看起来没问题，编号互不
# 相同时也能通过——但 NumPy 带缓冲的花式索引赋值对重复的编号只保留一行，而真正的梯度是用到这一行的
# 所有位置之**和**。评分器的第二个用例就有重复编号：

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g
        return None, grad


print(grade("embedding", Embedding))


# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape, dtype=g.dtype)
        np.add.at(grad, self.ids.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        return None, grad


report = grade("embedding", Embedding)
print(report)
assert report.passed

# %% [markdown]
# ## 在命令行评分
#
# 学生也可以在文件里做题并评分；只有所有用例都通过时退出状态才为
# 0，所以课程可以把它放进自己的检查：
#
# ```
# python -m scratchlm.exercises                        # 上面的列表
# python -m scratchlm.exercises show layer_norm > my_layer_norm.py
# # ... 在 my_layer_norm.py 中写出 LayerNorm.backward ...
# python -m scratchlm.exercises grade layer_norm my_layer_norm.py
# ```
#
# 答案就是库本身：每个骨架的父类（softmax 对应 `scratchlm.functional.softmax.Softmax`），推导写在
# 它的文档字符串里。先做题，再去读答案。在你的实现里调用库的 backward 不算数——评分你的类时，
# 该运算的库实现（及其快速版本）的 backward 会拒绝运行：

# %%
from scratchlm.functional.softmax import Softmax as LibrarySoftmax


class Softmax(skeletons.Softmax):
    def backward(self, g):
        return LibrarySoftmax.backward(self, g)


report = grade("softmax", Softmax)
print(report.cases[0].failure)
assert not report.passed and "delegates to the library's implementation" in str(report)
assert grade("softmax", LibrarySoftmax).passed  # the answer key passes

# %% [markdown]
# 其余的练习：

# %%
for name, exercise in EXERCISES.items():
    if name not in ("softmax", "embedding"):
        print(f"{name:14s} {exercise.task}")
