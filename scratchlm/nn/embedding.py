"""``Embedding``: a learned vector per token id."""

from scratchlm import functional as F
from scratchlm.checks import check_int
from scratchlm.nn import init
from scratchlm.nn.module import Module, Parameter


class Embedding(Module):
    """y[..., :] = W[ids[...], :] — row ``i`` of ``weight`` (num_embeddings, embedding_dim)
    is the vector of token ``i``; ``ids`` is an integer array or Tensor of any shape.

    Init, as PyTorch's: W from N(0, 1).
    """

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        num_embeddings = check_int("Embedding", "num_embeddings", num_embeddings, 1,
                                   hint="(rows of the table: the vocabulary size)")
        embedding_dim = check_int("Embedding", "embedding_dim", embedding_dim, 1)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.normal((num_embeddings, embedding_dim)))

    def forward(self, ids):
        return F.embedding(ids, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"
