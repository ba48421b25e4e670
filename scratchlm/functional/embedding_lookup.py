"""Embedding lookup: each integer id picks one row of a weight table."""

import numpy as np

from scratchlm import backend
from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.functional.checks import integer_array

#: Up to this many rows the one-hot GEMM is the fastest backward on the CPU (measured on
#: 2 cores: it costs ids·vocab·C flops, the sort-and-sum about ids·C + ids log ids).
ONE_HOT_MAX_ROWS = 128


def _check_ids(ids, weight):
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"shape {weight.shape}")
    vocab = weight.shape[0]
    if ids.size == 0:
        return
    lowest, highest = int(ids.min()), int(ids.max())
    if lowest < 0 or highest >= vocab:
        bad = lowest if lowest < 0 else highest
        raise IndexError(f"embedding: id {bad} is out of range for a table of {vocab} rows "
                         f"(weight of shape {weight.shape}); expected 0 ≤ id < {vocab}")


def _sum_rows_by_id(ids, g_rows, vocab):
    """Row v of the result = Σ of the rows of ``g_rows`` whose id is v (NumPy, sort-based)."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    run_starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
    grad = np.zeros((vocab, g_rows.shape[1]), dtype=g_rows.dtype)
    grad[sorted_ids[run_starts]] = np.add.reduceat(g_rows[order], run_starts, axis=0)
    return grad


class Embedding(Function):
    """y[…] = W[ids[…]], a row of W (V, C) for every id.

    With O the one-hot matrix of the ids (one row per id), Y = O W, so ∂L/∂W = Oᵀ G:
    row v of ∂L/∂W sums the gradient rows of every position whose id is v (a repeated id
    accumulates). The ids get no gradient. On the CPU ∂L/∂W is that one-hot GEMM for a small
    table, else the rows sorted by id and each run of equal ids summed (``np.add.reduceat``);
    on the GPU a scatter-add.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def forward(self, ids, weight):
        xp = get_array_module(weight)
        ids = integer_array("embedding", "ids", ids, xp)
        _check_ids(ids, weight)
        self.ids, self.weight_shape = ids, weight.shape
        return xp.take(weight, ids, axis=0)

    def backward(self, g):
        vocab, features = self.weight_shape
        ids, g_rows = self.ids.reshape(-1), g.reshape(-1, features)
        if backend.is_gpu_array(g):
            grad = get_array_module(g).zeros(self.weight_shape, dtype=g.dtype)
            backend.scatter_add(grad, ids, g_rows)
        elif vocab <= ONE_HOT_MAX_ROWS:
            one_hot = np.zeros((ids.size, vocab), dtype=g.dtype)
            one_hot[np.arange(ids.size), ids] = 1
            grad = one_hot.T @ g_rows
        else:
            grad = _sum_rows_by_id(ids, g_rows, vocab)
        return None, grad


def embedding(ids, weight):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by integer ``ids`` of any
    shape (an array, a list or a Tensor): the result has shape ids.shape + (embedding_dim,)."""
    return Embedding()(ids, weight)
