"""Embedding lookup: each integer id picks one row of a weight table."""

from scratchlm import backend
from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import check_operand, integer_array
from scratchlm.errors import ArgumentError


def _check_ids(ids, weight):
    if weight.ndim != 2:
        raise ArgumentError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), "
                            f"got shape {weight.shape}")
    vocab = weight.shape[0]
    if ids.size == 0:
        return
    lowest, highest = int(ids.min()), int(ids.max())
    if lowest < 0 or highest >= vocab:
        bad = lowest if lowest < 0 else highest
        raise IndexError(f"embedding: id {bad} is out of range for a table of {vocab} rows "
                         f"(weight of shape {weight.shape}); expected 0 ≤ id < {vocab}")


class Embedding(Function):
    """y[…] = W[ids[…]], a row of W (V, C) for every id.

    With O the one-hot matrix of the ids (one row per id), Y = O W, so ∂L/∂W = Oᵀ G:
    row v of ∂L/∂W sums the gradient rows of every position whose id is v (a repeated id
    accumulates: a scatter-add). The ids get no gradient.
    """

    def forward(self, ids, weight):
        xp = get_array_module(weight)
        ids = integer_array("embedding", "ids", ids, xp)
        _check_ids(ids, weight)
        self.ids, self.weight_shape = ids, weight.shape
        return xp.take(weight, ids, axis=0)

    def backward(self, g):
        features = self.weight_shape[1]
        grad = get_array_module(g).zeros(self.weight_shape, dtype=g.dtype)
        backend.scatter_add(grad, self.ids.reshape(-1), g.reshape(-1, features))
        return None, grad


def embedding(ids, weight):
    """Rows of ``weight`` (num_embeddings, embedding_dim) picked by integer ``ids`` of any
    shape (an array, a list or a Tensor): the result has shape ids.shape + (embedding_dim,)."""
    return Embedding()(ids, check_operand("embedding", "weight", weight, number=False))
