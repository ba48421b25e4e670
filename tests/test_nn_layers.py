"""Layer behaviour beyond the torch comparisons: positional encodings against their formula,
dropout in train and eval mode, zero-copy head splitting, and clear errors on bad input."""

import math

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm.nn.heads import merge_heads, split_heads

TOL = TOLERANCE[np.dtype(np.float32)]


def sinusoid_by_formula(position, feature, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    two_i = feature - feature % 2
    angle = position / 10000 ** (two_i / d_model)
    return math.sin(angle) if feature % 2 == 0 else math.cos(angle)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d_model,offset", [(6, 0), (7, 3), (16, 40)])
def test_sinusoidal_encoding_adds_the_formula(d_model, offset, device):
    encoding = nn.SinusoidalPositionalEncoding(d_model, max_len=64).to(device)
    x = np.random.default_rng(0).standard_normal((2, 5, d_model)).astype(np.float32)
    y = encoding(sl.tensor(x, device=device), offset=offset).numpy()
    expected = np.array([[sinusoid_by_formula(offset + t, j, d_model) for j in range(d_model)]
                         for t in range(5)])
    np.testing.assert_allclose(y, x + expected, **TOL)
    assert encoding.state_dict() == {} and encoding.num_parameters() == 0


def test_sinusoidal_encoding_passes_the_gradient_through_unchanged():
    x = sl.tensor(np.zeros((1, 3, 4)), requires_grad=True)
    nn.SinusoidalPositionalEncoding(4, max_len=8)(x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((1, 3, 4)))


def test_learned_positions_add_rows_from_the_offset():
    positions = nn.LearnedPositionalEmbedding(8, 4)
    x = np.ones((2, 3, 4), dtype=np.float32)
    y = positions(sl.tensor(x), offset=2)
    np.testing.assert_array_equal(y.numpy(), x + positions.weight.data[2:5])
    y.sum().backward()
    expected = np.zeros((8, 4))
    expected[2:5] = 2  # each used row gets one gradient per batch element
    np.testing.assert_array_equal(positions.weight.grad, expected)


@pytest.mark.parametrize("layer", [nn.SinusoidalPositionalEncoding(4, max_len=6),
                                   nn.LearnedPositionalEmbedding(6, 4)])
def test_positions_beyond_max_len_or_wrong_width_are_refused(layer):
    name = type(layer).__name__
    with pytest.raises(ValueError, match=f"{name}: positions 4..7 are beyond max_len=6"):
        layer(sl.tensor(np.zeros((1, 4, 4))), offset=4)
    with pytest.raises(ValueError, match=rf"{name}: input of shape \(2, 3\) should be"):
        layer(sl.tensor(np.zeros((2, 3))))


def test_dropout_zeroes_and_rescales_in_training_and_is_identity_in_eval():
    sl.manual_seed(0)
    dropout = nn.Dropout(0.25)
    x = sl.tensor(np.ones((200, 50)))
    y = dropout(x).numpy()
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    dropout.eval()
    assert dropout(x) is x


def test_model_eval_switches_every_dropout_off():
    sl.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = sl.tensor(np.random.default_rng(0).standard_normal((2, 4, 8)))
    a, b = layer(x).numpy(), layer(x).numpy()
    assert not np.allclose(a, b)  # two different dropout masks
    layer.eval()
    reference = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    reference.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(), **TOL)


def test_attention_dropout_follows_training_mode():
    sl.manual_seed(0)
    attention = nn.MultiHeadAttention(8, 2, dropout=0.5)
    x = sl.tensor(np.random.default_rng(0).standard_normal((2, 4, 8)))
    assert not np.allclose(attention(x).numpy(), attention(x).numpy())
    attention.eval()
    np.testing.assert_array_equal(attention(x).numpy(), attention(x).numpy())


def test_split_heads_gives_strided_views_of_the_fused_projection():
    qkv = sl.tensor(np.arange(2 * 3 * 12, dtype=np.float32).reshape(2, 3, 12))
    q, k, v = split_heads(qkv, 3, 2)
    reference = qkv.numpy().reshape(2, 3, 3, 2, 2).transpose(2, 0, 3, 1, 4)
    for part, expected in zip((q, k, v), reference):
        assert part.shape == (2, 2, 3, 2)
        assert np.shares_memory(part.data, qkv.data)  # a view, not a copy
        np.testing.assert_array_equal(part.numpy(), expected)
    np.testing.assert_array_equal(merge_heads(k).numpy(), qkv.numpy()[:, :, 4:8])
    with pytest.raises(ValueError, match=r"merge_heads: expected heads of shape \(batch, heads, "
                       r"time, head_dim\), got shape \(2, 3, 12\)"):
        merge_heads(qkv)


def test_split_heads_backward_fills_one_buffer_even_for_unused_parts():
    qkv = sl.tensor(np.ones((1, 2, 6)), requires_grad=True)
    q, k, v = split_heads(qkv, 3, 1)
    (k * 3).sum().backward()  # only k is used: q and v get zero gradient
    np.testing.assert_array_equal(qkv.grad, np.tile([0, 0, 3, 3, 0, 0], (1, 2, 1)))


def test_feed_forward_activations_and_unknown_name():
    ff = nn.FeedForward(3, 5, activation="relu")
    x = sl.tensor(np.random.default_rng(0).standard_normal((4, 3)))
    hidden = np.maximum(x.numpy() @ ff.c_fc.weight.data.T + ff.c_fc.bias.data, 0)
    np.testing.assert_allclose(ff(x).numpy(), hidden @ ff.c_proj.weight.data.T
                               + ff.c_proj.bias.data, **TOL)
    with pytest.raises(ValueError, match="FeedForward: unknown activation 'swish'"):
        nn.FeedForward(3, 5, activation="swish")


def test_linear_init_bound_and_embedding_init_spread():
    sl.manual_seed(0)
    linear = nn.Linear(64, 256)
    bound = 1 / math.sqrt(64)
    assert np.abs(linear.weight.data).max() <= bound and np.abs(linear.bias.data).max() <= bound
    assert np.abs(linear.weight.data).max() > 0.95 * bound  # U(−b, b) reaches near b
    weight = nn.Embedding(1000, 64).weight.data
    assert abs(weight.std() - 1) < 0.02 and abs(weight.mean()) < 0.02
    norm = nn.LayerNorm(5)
    np.testing.assert_array_equal(norm.weight.data, np.ones(5))
    np.testing.assert_array_equal(norm.bias.data, np.zeros(5))


# (make layer, call, expected error type, message pattern)
BAD_INPUTS = {
    "linear_width": (lambda: nn.Linear(4, 2), lambda m: m(sl.tensor(np.zeros((3, 5)))),
                     ValueError, r"linear: input of shape \(3, 5\) does not fit weight"),
    "layer_norm_width": (lambda: nn.LayerNorm(4), lambda m: m(sl.tensor(np.zeros((3, 5)))),
                         ValueError, r"layer_norm: weight of shape \(4,\) does not fit"),
    "embedding_id_range": (lambda: nn.Embedding(4, 2), lambda m: m(np.array([1, 4])),
                           IndexError, "embedding: id 4 is out of range"),
    "attention_embed_dim": (lambda: nn.MultiHeadAttention(8, 2),
                            lambda m: m(sl.tensor(np.zeros((2, 3, 6)))), ValueError,
                            r"MultiHeadAttention: x of shape \(2, 3, 6\) should be \(batch, "
                            r"time, embed_dim=8\)"),
    "attention_unbatched": (lambda: nn.MultiHeadAttention(8, 2),
                            lambda m: m(sl.tensor(np.zeros((3, 8)))), ValueError,
                            r"x of shape \(3, 8\) should be \(batch, time"),
    "attention_mask_shape": (lambda: nn.MultiHeadAttention(8, 2),
                             lambda m: m(sl.tensor(np.zeros((2, 3, 8))),
                                         attn_mask=np.zeros((3, 4), dtype=bool)),
                             ValueError, r"attn_mask of shape \(3, 4\) does not fit 3 queries "
                             r"and 3 keys; expected \(3, 3\), \(4, 3, 3\) or broadcastable "
                             r"to \(2, 2, 3, 3\)"),
    "attention_mask_dtype": (lambda: nn.MultiHeadAttention(8, 2),
                             lambda m: m(sl.tensor(np.zeros((2, 3, 8))),
                                         attn_mask=np.zeros((3, 3), dtype=int)),
                             ValueError, "attn_mask has dtype int64; expected bool"),
    "padding_mask_shape": (lambda: nn.MultiHeadAttention(8, 2),
                           lambda m: m(sl.tensor(np.zeros((2, 3, 8))),
                                       key_padding_mask=np.zeros((3, 2), dtype=bool)),
                           ValueError, r"key_padding_mask of shape \(3, 2\) and dtype bool "
                           r"should be boolean \(batch, keys\) = \(2, 3\)"),
    "memory_for_self_attention": (lambda: nn.MultiHeadAttention(8, 2),
                                  lambda m: m(sl.tensor(np.zeros((2, 3, 8))),
                                              sl.tensor(np.zeros((2, 3, 8)))),
                                  ValueError, "memory was given to a self-attention layer"),
    "no_memory_for_cross_attention": (lambda: nn.MultiHeadAttention(8, 2, cross_attention=True),
                                      lambda m: m(sl.tensor(np.zeros((2, 3, 8)))),
                                      ValueError, "cross-attention needs memory"),
    "memory_batch": (lambda: nn.MultiHeadAttention(8, 2, cross_attention=True),
                     lambda m: m(sl.tensor(np.zeros((2, 3, 8))), sl.tensor(np.zeros((1, 3, 8)))),
                     ValueError, "have different batch sizes"),
    "encoder_width": (lambda: nn.TransformerEncoderLayer(8, 2, 16),
                      lambda m: m(sl.tensor(np.zeros((2, 3, 4)))), ValueError,
                      r"should be \(batch, time, embed_dim=8\)"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_a_clear_error(name):
    make, call, error, pattern = BAD_INPUTS[name]
    with pytest.raises(error, match=pattern):
        call(make())


@pytest.mark.parametrize("make,pattern", [
    (lambda: nn.MultiHeadAttention(10, 3), "embed_dim=10 is not divisible by num_heads=3"),
    (lambda: nn.LayerNorm((3, 4)), r"normalized_shape must be an int or a 1-tuple, got \(3, 4\)"),
    (lambda: nn.Dropout(1.5), "Dropout: p=1.5 is not a probability"),
])
def test_bad_settings_get_a_clear_error(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_attention_repr_names_its_settings():
    assert repr(nn.MultiHeadAttention(8, 2, cross_attention=True)).startswith(
        "MultiHeadAttention(embed_dim=8, num_heads=2, dropout=0.0, cross_attention=True\n"
        "  (q_proj): Linear(in_features=8, out_features=8, bias=True)")
