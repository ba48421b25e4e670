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
# # 3 · 梯度检验练习：做题流程
#
# scratchlm 的每个运算都是一个 `Function`，它的 `backward` 是有人手工推导出来的（第 1 篇写过一个
# `Cube`，并检验了它）。在课程作业里由你来推导，而且不止于此：五个方向共四十道练习，从引擎本身
# （拓扑排序、反向传播），到运算与网络层、库里没有的现代运算、优化器，再到数据、解码与评估。
# 本篇用第 2 方向的运算演示做题流程，答案留给你自己写。
#
# 每道运算题给出一个前向公式和一个骨架——库中该运算自己的 `Function`，只是拿掉了 `backward`
# （`skeletons.Softmax` 就是去掉反向传播的 `scratchlm.functional.softmax.Softmax`）——要求你写出
# `backward`。评分器在多种输入形状上（长度为 1 的轴、广播的批量轴、重复的编号、被忽略的目标、
# 因果掩码）用两种方式检验你的梯度：
#
# 1. 与 float64 下的**中心差分**比较，使用随机余切向量 $c$：
#    $\nabla_x \langle f(x), c\rangle \approx$
#    $\big(\langle f(x + \varepsilon e_j), c\rangle$
#    $- \langle f(x - \varepsilon e_j), c\rangle\big) / 2\varepsilon$
#    （用 `sl.gradcheck_op`；输入中有整数编号、目标或被排除的输入时用 `sl.gradcheck`）；
# 2. 与库自己的运算比较，精确到 float64 精度。
#
# 它还检查每个 backward 都要遵守的规则：每个输入一个梯度（整数输入为 `None`），形状与输入相同
# （或与广播后的形状相同——引擎会把它求和回去），并且不原地修改传入的梯度 `g`。
#
# 各方向的练习及其分数：

# %%
import tempfile
from pathlib import Path

import numpy as np

from scratchlm.exercises import EXERCISES, grade, skeletons
from scratchlm.exercises.__main__ import hints, listing, main, statement

print(listing())
print(f"共 {len(EXERCISES)} 道练习，{sum(e.points for e in EXERCISES.values())} 分")

# %% [markdown]
# ## 读一道练习
#
# `python -m scratchlm.exercises show softmax > my_softmax.py` 把下面的内容写进文件：公式、要推导
# 什么、要补全的类。类的文档字符串里有从参考类读出的库的前向实现，以及这个前向在 `self` 上为
# 反向传播保存了什么。

# %%
print(statement("softmax"))

# %% [markdown]
# 在写出 backward 之前，骨架不会通过——评分器对每个用例都这样报告：

# %%
print(grade("softmax", skeletons.Softmax))


# %% [markdown]
# ## 一个看似合理的初次尝试
#
# 对 $y = \operatorname{softmax}(x)$，很容易把每个输出当作只依赖自己的输入，
# $\partial y_i/\partial x_i = y_i(1 - y_i)$，就像 sigmoid 那样。继承骨架可以保留它的 `forward`
# （即库的实现）：

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        return g * self.y * (1 - self.y)  # 只有雅可比矩阵的对角部分


report = grade("softmax", Softmax)
print(report)
assert not report.passed


# %% [markdown]
# 读一读报告：每个用例都在与中心差分比较时失败，所以结构是对的（一个梯度、形状正确），公式不对。
# 并排列出的分量处处都有偏差，而不只是少数几个位置：每个分量都缺了一项。缺的是雅可比矩阵的
# 非对角部分——通过归一化的求和 $\sum_k e^{x_k}$，每个 $y_j$ 都依赖每个 $x_i$。把 $i \ne j$ 时的
# $\partial y_j/\partial x_i$ 也推导出来，再沿 softmax 的轴把整个雅可比矩阵与 $g$ 缩并，但不真正
# 构造它（每行一个 $n \times n$ 矩阵，规模一大就放不下）。
#
# **轮到你了。** 在下面写出 backward，反复运行这个单元格，直到报告显示 PASSED。它现在就能运行
# （评分器会报告 "not written yet"）。

# %%
class Softmax(skeletons.Softmax):
    def backward(self, g):
        # 由 g 和前向保存的东西（self.y、self.axis）算出 ∂L/∂x；keepdims=True 会有帮助
        raise NotImplementedError("你的 softmax backward")


print(grade("softmax", Softmax))


# %% [markdown]
# ## 一个更隐蔽的错误：重复的编号
#
# 嵌入查表 $y = W[\text{ids}]$ 复制行。用 `grad[ids] += g` 把梯度行写回去看起来没问题，编号互不
# 相同时也能通过——但 NumPy 带缓冲的花式索引赋值对重复的编号只保留一行，而真正的梯度是用到这一行
# 的所有位置之**和**。评分器的第二和第三个用例都有重复编号：

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        grad = np.zeros(self.weight_shape)
        grad[self.ids] += g
        return None, grad


report = grade("embedding", Embedding)
print(report)
assert not report.passed


# %% [markdown]
# **轮到你了。** 把 `g` 的每一行累加到它所来自的 `W` 的那一行，包括重复的编号（需要不带缓冲的
# 加法：看看 `show embedding` 打印的导入语句）。

# %%
class Embedding(skeletons.Embedding):
    def backward(self, g):
        # 由 g、self.ids 和 self.weight_shape 算出 (None, ∂L/∂weight)
        raise NotImplementedError("你的 embedding backward")


print(grade("embedding", Embedding))

# %% [markdown]
# ## 调用库不算数
#
# 答案就是库本身：每个骨架的父类（softmax 对应 `scratchlm.functional.softmax.Softmax`），推导写在
# 它的文档字符串里。先自己做，再去读答案。在你的实现里调用库的 backward 不算数——评分你的类时，
# 库中这个运算（及其快速版本）的 backward 会拒绝运行：

# %%
from scratchlm.functional.softmax import Softmax as LibrarySoftmax


class Softmax(skeletons.Softmax):
    def backward(self, g):
        return LibrarySoftmax.backward(self, g)


report = grade("softmax", Softmax)
print(report.cases[0].failure)
assert not report.passed and "delegates to the library's implementation" in str(report)

# %% [markdown]
# ## 在命令行评分，以及逐条解锁的提示
#
# 大多数练习是文件：`show 名称 > 文件` 写出一个，你把它补全，`grade 名称 文件` 在单独的进程里、
# 在时间和内存限制下为它评分（死循环、退出或篡改 NumPy 的文件会失败，并说明原因）。只有所有用例
# 都通过时退出状态才为 0，所以课程可以把它放进自己的检查：
#
# ```
# python -m scratchlm.exercises                        # 上面的列表
# python -m scratchlm.exercises show layer_norm > my_layer_norm.py
# # ... 在 my_layer_norm.py 中写出 LayerNorm.backward ...
# python -m scratchlm.exercises grade layer_norm my_layer_norm.py
# python -m scratchlm.exercises show layer_norm --hint 1   # 随时查看第 1 到第 K 条提示
# ```
#
# `grade` 未通过时会显示一条提示：如果练习为这类失败（形状不匹配、递归过深）准备了专门的提示，
# 就显示它；否则显示下一条尚未解锁的提示——每失败一次多解锁一条，进度保存在你的文件旁边的
# `.scratchlm_hints.json` 中。一个漏了平方的 tanh，评分两次：

# %%
folder = Path(tempfile.mkdtemp())
attempt = folder / "my_tanh.py"
attempt.write_text("""\
from scratchlm.exercises import skeletons


class Tanh(skeletons.Tanh):
    def backward(self, g):
        return g * (1 - self.y)  # 看似合理，其实是错的
""", encoding="utf-8")
for _ in range(2):
    status = main(["grade", "tanh", str(attempt)])
    print(f"退出状态 {status}\n")
print((folder / ".scratchlm_hints.json").read_text(encoding="utf-8"))

# %% [markdown]
# `show 名称 --hint K` 随时打印前 K 条提示；在 Python 里用 `hints(name, K)`：

# %%
print(hints("layer_norm", 1))

# %% [markdown]
# 教师发下来的是 `python -m scratchlm.exercises release 输出目录` 的结果：所有题目、学生版笔记本，
# 以及 `输出目录/expected/`——隐藏的参考实现在评分器的输入上给出的结果。这份副本不含任何答案，
# 它对照这些保存的结果为每道练习评分（`grade` 会在你的文件上方的目录里找到它们，也可以用
# `--expected 目录` 指定）；算数的成绩是教师运行的 `grade-all`。
#
# 本方向除 softmax 和 embedding 之外的练习，以及各自的要求：

# %%
for name, exercise in EXERCISES.items():
    if exercise.track == 2 and name not in ("softmax", "embedding"):
        print(f"{name:24s} {exercise.points} 分  {exercise.task}")

# %% [markdown]
# ## 小结
#
# - 运算题给出前向公式和一个骨架（去掉了 backward 的库中 `Function`）；评分器在多种形状上把你的
#   backward 与中心差分和库比较，并检查每个 backward 都要遵守的规则。
# - 报告中每个分量都出错，说明缺了一项（softmax 的非对角部分）；只在编号重复时出错，说明没有
#   累加（`grad[ids] += g` 对重复的编号只保留一行）。
# - 调用库的 backward 会被拒绝；`grade 名称 文件` 在单独的进程中为文件评分，每失败一次多解锁一条
#   提示。
#
# ## 练习
#
# 1. 完成上面两个“轮到你了”的单元格，直到报告显示 PASSED。
# 2. [COURSE.zh.md](../COURSE.zh.md) 第 3 周：**`mul`**、**`tanh`**、**`sigmoid`**、
#    **`gelu_tanh`**、**`matmul`** 和 **`linear`**；第 4 周：**`softmax`**、**`log_softmax`**、
#    **`cross_entropy`**、**`cross_entropy_smoothing`** 和 **`layer_norm`**；**`embedding`** 在
#    第 5 周。每道题从 `python -m scratchlm.exercises show 名称 > my_名称.py` 开始。
# 3. 在写 `layer_norm` 的 backward 之前，先预测：一个忽略了均值对 $x$ 的依赖的 backward 会在哪些
#    用例上失败？然后写出这个错误版本，读它的报告。
