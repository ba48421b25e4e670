"""Whole layers in float64 against central differences, w.r.t. inputs AND parameters.

Each row builds a layer, makes it float64 through ``load_state_dict`` (the way a user
prepares a gradient check), and runs ``nn.gradcheck_module`` on small inputs of several
shapes with a random cotangent. The split-heads op is also checked alone.
"""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn

D, H, FF = 4, 2, 6


def causal_blocked(n):
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def padding(batch, length):
    mask = np.zeros((batch, length), dtype=bool)
    mask[-1, -1] = True
    return mask


def as_float64(module):
    module.load_state_dict({k: v.astype(np.float64) for k, v in module.state_dict().items()})
    return module


# name: (make layer, input shapes — None marks integer ids —, forward kwargs)
LAYERS = {
    "linear": (lambda: nn.Linear(3, 2), [[(3,)], [(4, 3)], [(2, 1, 3)]], {}),
    "linear_no_bias": (lambda: nn.Linear(3, 2, bias=False), [[(2, 3)]], {}),
    "layer_norm": (lambda: nn.LayerNorm(5), [[(5,)], [(3, 5)], [(2, 1, 5)]], {}),
    "embedding": (lambda: nn.Embedding(4, 3), [[None]], {}),
    "feed_forward_gelu": (lambda: nn.FeedForward(D, FF), [[(2, 3, D)]], {}),
    "feed_forward_relu": (lambda: nn.FeedForward(D, FF, "relu"), [[(1, 2, D)]], {}),
    "learned_positions": (lambda: nn.LearnedPositionalEmbedding(5, D),
                          [[(2, 3, D)], [(1, 5, D)]], {}),
    "sinusoidal_positions": (lambda: nn.SinusoidalPositionalEncoding(D, 6), [[(2, 3, D)]],
                             {"offset": 2}),
    "self_attention": (lambda: nn.MultiHeadAttention(D, H), [[(2, 3, D)], [(1, 1, D)]], {}),
    "self_attention_masks": (lambda: nn.MultiHeadAttention(D, H), [[(2, 3, D)]],
                             {"is_causal": True, "key_padding_mask": padding(2, 3)}),
    "cross_attention": (lambda: nn.MultiHeadAttention(D, H, cross_attention=True),
                        [[(2, 3, D), (2, 2, D)]], {"key_padding_mask": padding(2, 2)}),
    **{f"encoder_norm_first_{norm_first}": (
        lambda norm_first=norm_first: nn.TransformerEncoderLayer(
            D, H, FF, dropout=0.0, norm_first=norm_first),
        [[(2, 3, D)]], {"src_mask": causal_blocked(3)}) for norm_first in (False, True)},
    **{f"decoder_norm_first_{norm_first}": (
        lambda norm_first=norm_first: nn.TransformerDecoderLayer(
            D, H, FF, dropout=0.0, activation="gelu", norm_first=norm_first),
        [[(2, 3, D), (2, 2, D)]],
        {"tgt_is_causal": True, "memory_key_padding_mask": padding(2, 2)})
       for norm_first in (False, True)},
}


@pytest.mark.parametrize("name,shapes", [
    pytest.param(name, shapes, id=f"{name}-{i}") for name, (_, cases, _) in LAYERS.items()
    for i, shapes in enumerate(cases)])
def test_layer_gradients_match_central_differences(name, shapes):
    make, _, forward_kwargs = LAYERS[name]
    sl.manual_seed(0)
    layer = as_float64(make())
    rng = np.random.default_rng(0)
    inputs = [sl.tensor(rng.integers(0, 4, size=(2, 3))) if shape is None
              else sl.tensor(rng.standard_normal(shape), requires_grad=True)
              for shape in shapes]
    assert nn.gradcheck_module(layer, inputs, forward_kwargs=forward_kwargs)


def test_gradcheck_module_catches_a_wrong_parameter_gradient():
    class Doubled(nn.Module):  # the forward uses 2·W but claims nothing about it
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(np.ones(3))

        def forward(self, x):
            y = x * self.weight
            y.data *= 2  # changes the value behind the engine's back: gradient now wrong
            return y

    with pytest.raises(sl.GradcheckError, match="input 1"):
        nn.gradcheck_module(Doubled(), [sl.tensor(np.ones(3))])


def test_gradcheck_module_checks_only_the_named_parameters_and_restores_them():
    layer = as_float64(nn.Linear(3, 2))
    weight = layer.weight
    x = sl.tensor(np.ones((2, 3)))
    assert nn.gradcheck_module(layer, [x], parameters=["bias"])
    assert layer.weight is weight and layer._parameters["weight"] is weight
    with pytest.raises(KeyError, match=r"has no parameters \['scale'\]"):
        nn.gradcheck_module(layer, [x], parameters=["scale"])

