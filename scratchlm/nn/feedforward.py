"""``FeedForward``: the position-wise two-layer network of every Transformer block."""

from scratchlm import functional as F
from scratchlm.checks import check_int, check_probability, show
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.nn.dropout import Dropout
from scratchlm.nn.linear import Linear
from scratchlm.nn.module import Module

#: activation name → function; "gelu" is the exact (erf) GELU of torch.nn's Transformer
#: layers, "gelu_tanh" the tanh approximation of GPT-2.
ACTIVATIONS = {
    "relu": F.relu,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


def activation_function(name, layer):
    """The activation called ``name``, or a clear error naming ``layer``."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        error = ArgumentError if isinstance(name, str) else ArgumentTypeError
        raise error(f"{layer}: unknown activation {show(name)} (the argument activation); "
                    f"expected one of {sorted(ACTIVATIONS)}", where=layer, name="activation",
                    value=name)
    return ACTIVATIONS[name]


class FeedForward(Module):
    """FFN(x) = c_proj(dropout(act(c_fc(x)))) applied to every position alone:
    ``c_fc`` Linear(d_model, d_ff), ``c_proj`` Linear(d_ff, d_model) (nanoGPT's names),
    ``act`` ReLU, GELU (erf) or GELU (tanh). Init: the two Linears' (U(±1/√fan_in))."""

    def __init__(self, d_model, d_ff, activation="gelu", dropout=0.0):
        super().__init__()
        d_model = check_int("FeedForward", "d_model", d_model, 1)
        d_ff = check_int("FeedForward", "d_ff", d_ff, 1)
        check_probability("FeedForward", "dropout", dropout)
        self.activation_name = activation
        self.activation = activation_function(activation, "FeedForward")
        self.c_fc = Linear(d_model, d_ff)
        self.dropout = Dropout(dropout)
        self.c_proj = Linear(d_ff, d_model)

    def forward(self, x):
        return self.c_proj(self.dropout(self.activation(self.c_fc(x))))

    def extra_repr(self):
        return f"activation={self.activation_name!r}"
