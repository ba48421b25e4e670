"""Right answers to every backward exercise (track 2), written as a student would, in NumPy
with what each skeleton's forward saves: the files the grading tests submit."""

HEADER = """\
import numpy as np
import scratchlm as sl
from scratchlm import backend
from scratchlm.exercises import skeletons
"""

#: skeleton name -> the body of its backward(self, g)
BACKWARDS = {
    "Mul": "return g * self.b, g * self.a",
    "Tanh": "return g * (1 - self.y ** 2)",
    "Sigmoid": "return g * self.y * (1 - self.y)",
    "GELUTanh": """
        x, h = self.x, self.h
        du = np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x ** 2)
        return g * (h + x * 2 * h * (1 - h) * du)""",
    "MatMul": "return g @ self.b.swapaxes(-1, -2), self.a.swapaxes(-1, -2) @ g",
    "Embedding": """
        grad = np.zeros(self.weight_shape)
        backend.scatter_add(grad, self.ids.reshape(-1), g.reshape(-1, self.weight_shape[1]))
        return None, grad""",
    "Softmax": "return self.y * (g - (g * self.y).sum(axis=self.axis, keepdims=True))",
    "LogSoftmax": "return g - np.exp(self.y) * g.sum(axis=self.axis, keepdims=True)",
    "CrossEntropy": """
        n, c = self.probs.shape
        smooth = self.smoothing
        onehot = np.zeros((n, c))
        onehot[self.rows, self.targets] = 1.0
        target = (1 - smooth) * onehot + smooth / c
        if self.reduction == "none":
            weight = g.reshape(-1)[:, None]
        elif self.reduction == "sum":
            weight = g
        else:
            weight = g / self.count
        grad = (self.probs - target) * weight * self.valid[:, None]
        return grad.reshape(self.logits_shape), None""",
    "LayerNorm": """
        dn = g * self.weight
        dx = self.rstd * (dn - dn.mean(-1, keepdims=True)
                          - self.norm * (dn * self.norm).mean(-1, keepdims=True))
        rows = g.reshape(-1, g.shape[-1])
        return dx, (rows * self.norm.reshape(rows.shape)).sum(0), rows.sum(0)""",
    "ScaledDotProductAttention": """
        p = self.weights
        dv = p.swapaxes(-1, -2) @ g
        dp = g @ self.v.swapaxes(-1, -2)
        ds = p * (dp - (dp * p).sum(-1, keepdims=True))
        return ds @ self.k * self.scale, ds.swapaxes(-1, -2) @ self.q * self.scale, dv, None""",
    "Linear": """
        rows = g.reshape(-1, g.shape[-1])
        dx = (rows @ self.weight).reshape(self.x_shape)
        return dx, rows.T @ self.x_rows, rows.sum(0) if self.has_bias else None""",
}


def backward_file(skeleton, body=None, before=""):
    """A file defining ``class SKELETON(skeletons.SKELETON)`` whose backward is ``body``
    (default: the right one), with ``before`` (module-level code) ahead of it."""
    import textwrap
    body = textwrap.dedent(BACKWARDS[skeleton] if body is None else body).strip()
    return (HEADER + textwrap.dedent(before) + f"\n\nclass {skeleton}(skeletons.{skeleton}):\n"
            "    def backward(self, g):\n" + textwrap.indent(body, " " * 8) + "\n")
