"""Layers: ``Module`` and ``Parameter``, and the pieces Transformers are built from.

    import scratchlm.nn as nn
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=256)
    y = layer(x)                       # x (batch, time, 64)
    dict(layer.named_parameters())     # 'self_attn.c_attn.weight', ...
"""

from scratchlm.nn.attention import MultiHeadAttention
from scratchlm.nn.containers import ModuleDict, ModuleList, Sequential
from scratchlm.nn.dropout import Dropout
from scratchlm.nn.embedding import Embedding
from scratchlm.nn.feedforward import FeedForward
from scratchlm.nn.gradcheck import gradcheck_module
from scratchlm.nn.kv_cache import DecoderKVCache, KVCache
from scratchlm.nn.linear import Linear
from scratchlm.nn.module import Module, Parameter
from scratchlm.nn.normalization import LayerNorm
from scratchlm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from scratchlm.nn.transformer import TransformerDecoderLayer, TransformerEncoderLayer
from scratchlm.nn.transformer_init import init_transformer_weights

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear",
           "Embedding", "LayerNorm", "Dropout", "FeedForward", "SinusoidalPositionalEncoding",
           "LearnedPositionalEmbedding", "MultiHeadAttention", "KVCache", "DecoderKVCache",
           "TransformerEncoderLayer", "TransformerDecoderLayer", "gradcheck_module",
           "init_transformer_weights"]
