"""The initial weights of a whole Transformer, written once for GPT, BERT and the original.

Each layer draws its own defaults when built (:mod:`scratchlm.nn.init`: Linear U(±1/√fan_in),
Embedding N(0, 1)). The published models instead start every weight from one scheme of the
whole network, which :func:`init_transformer_weights` redraws in one pass:

    embedding tables      N(0, embedding_std²)         GPT-2, BERT: 0.02; the Transformer: 1/√d
    other weight matrices N(0, std²)                   GPT-2, BERT: std = 0.02
                          or Xavier-uniform U(±√(6 / (fan_in + fan_out)))   the Transformer
    residual projections  N(0, (std / √(2·n_layer))²)  GPT-2: the residual stream sums 2·n_layer
                                                       branches, each scaled down to keep its size
    biases                0
    LayerNorm gains       1 (left as built)

Small weights keep the first logits near uniform (loss ≈ log V at the start); Xavier keeps the
variance of activations and gradients the same through every layer.
"""

import math

from scratchlm import backend
from scratchlm.checks import bad_argument, check_bool, check_int, check_real
from scratchlm.errors import ArgumentTypeError
from scratchlm.nn import init
from scratchlm.nn.embedding import Embedding
from scratchlm.nn.linear import Linear
from scratchlm.nn.positional import LearnedPositionalEmbedding

#: nanoGPT's (and scratchlm.nn's) name of the layers that project back into the residual
#: stream: attention's output projection and the feed-forward network's second layer.
RESIDUAL_PROJECTION = "c_proj"


def init_transformer_weights(module, std=0.02, *, embedding_std=None, xavier=False,
                             n_residual_layers=None):
    """Redraw every parameter of ``module`` (see the module docstring), in the order of
    ``named_parameters()``, from scratchlm's seeded generator.

    ``embedding_std`` defaults to ``std``; ``xavier=True`` draws the non-embedding matrices
    Xavier-uniform instead of N(0, std²); ``n_residual_layers`` (GPT-2's ``n_layer``) scales
    the residual projections (``Linear`` layers named ``c_proj``) to std / √(2·n_residual_layers).
    A tied weight is drawn once, as the parameter ``named_parameters()`` lists.
    """
    where = "init_transformer_weights"
    if not hasattr(module, "named_parameters") or not hasattr(module, "modules"):
        raise bad_argument(where, "module", module, "an nn.Module", error=ArgumentTypeError)
    check_real(where, "std", std, 0)
    check_real(where, "embedding_std", embedding_std, 0, optional=True)
    check_bool(where, "xavier", xavier)
    check_int(where, "n_residual_layers", n_residual_layers, 1, optional=True,
              hint="(GPT-2's n_layer)")
    embedding_std = std if embedding_std is None else embedding_std
    embedding_tables = {id(layer.weight) for layer in module.modules()
                        if isinstance(layer, (Embedding, LearnedPositionalEmbedding))}
    residual_projections, residual_std = set(), None
    if n_residual_layers is not None:
        residual_std = std / math.sqrt(2 * n_residual_layers)
        residual_projections = {id(layer.weight) for name, layer in module.named_modules()
                                if isinstance(layer, Linear)
                                and name.rsplit(".", 1)[-1] == RESIDUAL_PROJECTION}
    for name, p in module.named_parameters():
        if id(p) in residual_projections:
            values = init.normal(p.shape, residual_std)
        elif id(p) in embedding_tables:
            values = init.normal(p.shape, embedding_std)
        elif p.ndim == 2 and xavier:
            values = init.uniform(p.shape, math.sqrt(6.0 / sum(p.shape)))
        elif p.ndim == 2:
            values = init.normal(p.shape, std)
        elif name.endswith("bias"):
            values = init.zeros(p.shape)
        else:
            continue  # LayerNorm gains stay 1
        p.data = backend.to_device(values.astype(p.dtype), p.device)
