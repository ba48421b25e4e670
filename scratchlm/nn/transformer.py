"""The Transformer's encoder and decoder layers, post-LN or pre-LN.

Each sub-layer (attention, feed-forward) is wrapped in a residual connection with layer
normalization, in one of two places:

    post-LN (the original Transformer, ``norm_first=False``):  x = LN(x + Dropout(Sublayer(x)))
    pre-LN  (GPT-2 and most models since, ``norm_first=True``): x = x + Dropout(Sublayer(LN(x)))

Pre-LN keeps an identity path from input to output, so deep stacks train without warm-up.
Arguments, masks and defaults follow ``torch.nn.TransformerEncoderLayer`` /
``TransformerDecoderLayer`` with ``batch_first=True`` (inputs are (B, T, d_model)).
Init: every Linear U(±1/√fan_in), every LayerNorm γ = 1, β = 0.
"""

from scratchlm.checks import (
    check_attention_sizes,
    check_bool,
    check_int,
    check_probability,
    check_real,
)
from scratchlm.nn.attention import MultiHeadAttention
from scratchlm.nn.dropout import Dropout
from scratchlm.nn.feedforward import FeedForward, activation_function
from scratchlm.nn.module import Module
from scratchlm.nn.normalization import LayerNorm


def check_layer_settings(where, d_model, nhead, dim_feedforward, dropout, activation,
                         norm_first, layer_norm_eps):
    """A Transformer layer's settings, each error naming the layer and its own argument
    (``nhead``, not the attention module's ``num_heads``)."""
    check_attention_sizes(where, "d_model", d_model, "nhead", nhead)
    check_int(where, "dim_feedforward", dim_feedforward, 1)
    check_probability(where, "dropout", dropout)
    activation_function(activation, where)
    check_bool(where, "norm_first", norm_first)
    check_real(where, "layer_norm_eps", layer_norm_eps, 0, low_open=True)


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward network, each with residual + LayerNorm.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` with masks
    as in :class:`MultiHeadAttention` (True = may not attend / is padding).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 norm_first=False, layer_norm_eps=1e-5):
        check_layer_settings("TransformerEncoderLayer", d_model, nhead, dim_feedforward, dropout,
                             activation, norm_first, layer_norm_eps)
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)
        self.feed_forward = FeedForward(d_model, dim_feedforward, activation, dropout)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        def attend(x):
            return self.dropout1(self.self_attn(x, attn_mask=src_mask, is_causal=is_causal,
                                                key_padding_mask=src_key_padding_mask))

        def feed_forward(x):
            return self.dropout2(self.feed_forward(x))

        x = src
        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + feed_forward(self.norm2(x))
        x = self.norm1(x + attend(x))
        return self.norm2(x + feed_forward(x))

    def extra_repr(self):
        return f"norm_first={self.norm_first}"


class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention over the encoder's memory, then a feed-forward
    network, each with residual + LayerNorm.

    ``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, kv_cache=None)``: pass
    ``tgt_is_causal=True`` (or a ``tgt_mask``) so a position cannot see later ones, as in
    PyTorch. ``kv_cache`` is a :class:`~scratchlm.nn.DecoderKVCache` for incremental
    decoding under ``sl.no_grad()``: ``tgt`` then holds only the new positions.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 norm_first=False, layer_norm_eps=1e-5):
        check_layer_settings("TransformerDecoderLayer", d_model, nhead, dim_feedforward, dropout,
                             activation, norm_first, layer_norm_eps)
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout)
        self.cross_attn = MultiHeadAttention(d_model, nhead, dropout=dropout,
                                             cross_attention=True)
        self.feed_forward = FeedForward(d_model, dim_feedforward, activation, dropout)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, kv_cache=None):
        self_cache = cross_cache = None
        if kv_cache is not None:
            self_cache, cross_cache = kv_cache.self_attn, kv_cache.cross_attn

        def attend_self(x):
            return self.dropout1(self.self_attn(
                x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                is_causal=tgt_is_causal, kv_cache=self_cache))

        def attend_memory(x):
            return self.dropout2(self.cross_attn(
                x, memory, attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask,
                kv_cache=cross_cache))

        def feed_forward(x):
            return self.dropout3(self.feed_forward(x))

        x = tgt
        if self.norm_first:
            x = x + attend_self(self.norm1(x))
            x = x + attend_memory(self.norm2(x))
            return x + feed_forward(self.norm3(x))
        x = self.norm1(x + attend_self(x))
        x = self.norm2(x + attend_memory(x))
        return self.norm3(x + feed_forward(x))

    def extra_repr(self):
        return f"norm_first={self.norm_first}"
