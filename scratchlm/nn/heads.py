"""Splitting a projection into attention heads, and merging the heads back.

A fused projection gives, per position, P parts (3 for q, k, v; 2 for k, v; 1 for q) of H
heads of hd features: an array (B, T, P·H·hd). Seen as (B, T, P, H, hd), part p of it,
transposed to (B, H, T, hd), is exactly the head layout attention wants — a strided view of
the same memory, with no copy.
"""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.errors import ArgumentError


class SplitHeads(Function):
    """(B, T, P·H·hd) → P views (B, H, T, hd):  part p, head h = x[b, t, (p·H + h)·hd + j].

    Forward only re-strides. Each output element is one input element, so the backward puts
    the P head-gradients back where they came from: one (B, T, P, H, hd) buffer with
    buffer[:, :, p] = ∂L/∂part_p transposed back to (B, T, H, hd).
    """

    def __init__(self, num_parts, num_heads):
        self.num_parts, self.num_heads = num_parts, num_heads

    def forward(self, x):
        B, T, width = x.shape
        self.head_dim = width // (self.num_parts * self.num_heads)
        self.parts_shape = (B, T, self.num_parts, self.num_heads, self.head_dim)
        parts = x.reshape(self.parts_shape).transpose(2, 0, 3, 1, 4)  # (P, B, H, T, hd)
        return tuple(parts) if self.num_parts > 1 else parts[0]

    def backward(self, *grad_parts):
        grad = get_array_module(grad_parts[0]).empty(self.parts_shape, grad_parts[0].dtype)
        for p, grad_part in enumerate(grad_parts):  # P ≤ 3 parts, not batch or time
            grad[:, :, p] = grad_part.transpose(0, 2, 1, 3)
        return grad.reshape(self.parts_shape[:2] + (-1,))


def split_heads(x, num_parts, num_heads):
    """The ``num_parts`` (B, H, T, hd) views of a fused projection x (B, T, P·H·hd)."""
    return SplitHeads(num_parts, num_heads)(x)


class MergeHeads(Function):
    """(B, H, T, hd) → (B, T, H·hd):  y[b, t, h·hd + j] = x[b, h, t, j], the heads side by
    side again (one copy). Each output element is one input element, so ∂L/∂x is ∂L/∂y
    seen as (B, T, H, hd) and transposed back to (B, H, T, hd), a view.
    """

    def forward(self, x):
        if x.ndim != 4:
            raise ArgumentError(f"merge_heads: expected heads of shape (batch, heads, time, "
                                f"head_dim), got shape {x.shape}")
        B, H, T, self.head_dim = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, T, H * self.head_dim)

    def backward(self, g):
        B, T, _ = g.shape
        return g.reshape(B, T, -1, self.head_dim).transpose(0, 2, 1, 3)


def merge_heads(x):
    """(B, H, T, hd) → (B, T, H·hd): the heads side by side again."""
    return MergeHeads()(x)
