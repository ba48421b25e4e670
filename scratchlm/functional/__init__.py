"""Neural-network ops, each one Function with its backward derived by hand::

    import scratchlm.functional as F
    loss = F.cross_entropy(F.linear(x, weight, bias), targets)

Names and argument orders are PyTorch's ``torch.nn.functional``'s (with the class axis of
cross-entropy last). The classes behind them (``Linear``, ``Softmax``, ``LayerNorm``, …) sit
in this package's modules, one idea per module, each with its derivation in its docstring.
They are the reference: each is its formula on arrays. Faster versions of some of them (for
the CPU's caches and threads, or fused CUDA kernels) live apart, in :mod:`scratchlm.fast`,
and are tested equal to these.
"""

from scratchlm.functional.activations import gelu, relu, sigmoid, tanh
from scratchlm.functional.attention import scaled_dot_product_attention
from scratchlm.functional.cross_entropy import cross_entropy
from scratchlm.functional.dropout import dropout
from scratchlm.functional.embedding import embedding
from scratchlm.functional.layer_norm import layer_norm
from scratchlm.functional.linear import linear
from scratchlm.functional.losses import binary_cross_entropy_with_logits, mse_loss
from scratchlm.functional.softmax import log_softmax, softmax

__all__ = ["linear", "relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "layer_norm",
           "dropout", "embedding", "cross_entropy", "binary_cross_entropy_with_logits",
           "mse_loss", "scaled_dot_product_attention"]
