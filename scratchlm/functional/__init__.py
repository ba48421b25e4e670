"""Neural-network ops, each one Function with its backward derived by hand::

    import scratchlm.functional as F
    loss = F.cross_entropy(F.linear(x, weight, bias), targets)

Names and argument orders are PyTorch's ``torch.nn.functional``'s (with the class axis of
cross-entropy last). The classes behind them (``Linear``, ``Softmax``, ``LayerNorm``, …) sit
in this package's modules, one idea per module, each with its derivation in its docstring.
"""

from scratchlm.functional.activations import gelu, relu, sigmoid, tanh
from scratchlm.functional.affine import linear
from scratchlm.functional.attention import scaled_dot_product_attention
from scratchlm.functional.embedding_lookup import embedding
from scratchlm.functional.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from scratchlm.functional.normalization import layer_norm
from scratchlm.functional.probabilities import log_softmax, softmax
from scratchlm.functional.regularization import dropout

__all__ = ["linear", "relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "layer_norm",
           "dropout", "embedding", "cross_entropy", "binary_cross_entropy_with_logits",
           "mse_loss", "scaled_dot_product_attention"]
