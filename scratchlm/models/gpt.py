"""GPT: a decoder-only Transformer language model, with nanoGPT's layout and names.

    h₀ = E[idx] + P[0..T)                      token embedding + learned positions
    hₗ = hₗ₋₁ + Attn(LN₁(hₗ₋₁))                 pre-LayerNorm, causal multi-head attention
    hₗ = hₗ + MLP(LN₂(hₗ)),  MLP(x) = W₂ GELU(W₁ x)   (width 4·n_embd, tanh GELU)
    logits = LN_f(h_L) Eᵀ                       the head is tied to the token embedding

Training minimises the cross-entropy of each next token. Parameter names and shapes are
nanoGPT's, so its (and, converted, Hugging Face's GPT-2) weights load directly.
"""

from dataclasses import asdict, dataclass

from scratchlm import backend, generation, nn
from scratchlm import functional as F
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import (
    check_attention_sizes,
    check_bool,
    check_int,
    check_probability,
    check_token_ids,
    show,
)
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.models.hf_gpt2 import read_hf_gpt2

SIZE_HINTS = {
    "vocab_size": "(the number of token ids)",
    "block_size": "(the longest context, in tokens)",
    "n_layer": "(the number of Transformer blocks)",
    "n_head": "(the number of attention heads)",
    "n_embd": "(the width of the residual stream)",
}


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

    def __post_init__(self):
        """Refuse a size that is not a positive int (a bool, a float, a string), a dropout
        that is not a probability (NaN included), a non-bool ``bias``, and an ``n_embd``
        that does not split into ``n_head`` heads: :class:`~scratchlm.errors.ArgumentError`
        (a ValueError; its :class:`~scratchlm.errors.ArgumentTypeError` also a TypeError)."""
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            setattr(self, name, check_int("GPTConfig", name, getattr(self, name), 1,
                                          hint=SIZE_HINTS[name]))
        check_probability("GPTConfig", "dropout", self.dropout)
        self.bias = check_bool("GPTConfig", "bias", self.bias)
        check_attention_sizes("GPTConfig", "n_embd", self.n_embd, "n_head", self.n_head)

    @classmethod
    def from_preset(cls, name, **overrides):
        """A named configuration (see ``PRESETS``), with any field overridden."""
        if not isinstance(name, str) or name not in PRESETS:
            raise ArgumentError(f"GPTConfig.from_preset: unknown GPT preset {show(name)}; "
                                f"expected name to be one of {sorted(PRESETS)}",
                                where="GPTConfig.from_preset", name="name", value=name)
        return cls(**{**PRESETS[name], **overrides})

    def to_dict(self):
        return asdict(self)


PRESETS = {
    # A few thousand parameters: for tests and gradient checks.
    "tiny": dict(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32),
    # Character-level Shakespeare in minutes on two CPU cores.
    "shakespeare-char": dict(vocab_size=65, block_size=128, n_layer=4, n_head=4, n_embd=128,
                             dropout=0.0),
    # nanoGPT's "baby GPT" for character-level Shakespeare on a GPU.
    "baby-gpt": dict(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384,
                     dropout=0.2),
    # OpenAI's GPT-2 family (sizes of the released checkpoints).
    "gpt2": dict(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
    "gpt2-medium": dict(vocab_size=50257, block_size=1024, n_layer=24, n_head=16, n_embd=1024),
    "gpt2-large": dict(vocab_size=50257, block_size=1024, n_layer=36, n_head=20, n_embd=1280),
}


class MLP(nn.Module):
    """Position-wise feed-forward: c_proj(GELU_tanh(c_fc(x))), width 4·n_embd."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """x + Attn(LN(x)), then x + MLP(LN(x)): the pre-LN residual block of GPT-2."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = nn.MultiHeadAttention(config.n_embd, config.n_head, dropout=config.dropout,
                                          bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.resid_dropout(self.attn(self.ln_1(x), is_causal=True, kv_cache=kv_cache))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """The decoder-only language model of the module docstring, built from a :class:`GPTConfig`.

    ``forward(idx, targets=None, kv_caches=None)`` → (logits (B, T, vocab), loss or None).
    Init: GPT-2's (:func:`scratchlm.nn.init_transformer_weights`): matrices and embeddings
    N(0, 0.02²), the projections into the residual stream N(0, (0.02/√(2·n_layer))²) so the
    sum of 2·n_layer residual branches keeps its scale, biases 0.
    """

    def __init__(self, config):
        super().__init__()
        self.config = check_config("GPT", config, GPTConfig)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying
        if not config.bias:
            for module in self.modules():
                if isinstance(module, nn.LayerNorm):
                    module.bias = None
        nn.init_transformer_weights(self, std=0.02, n_residual_layers=config.n_layer)

    @property
    def block_size(self):
        return self.config.block_size

    def forward(self, idx, targets=None, kv_caches=None):
        """Logits (B, T, vocab) for token ids ``idx`` (B, T), and the mean next-token
        cross-entropy against ``targets`` (B, T) when given (else None).

        With ``kv_caches`` (one :class:`~scratchlm.nn.KVCache` per layer, under no_grad) only
        the new tokens are fed and their positions continue after the cached ones.
        """
        logits = self.lm_head(self.hidden_states(idx, kv_caches))
        loss = None
        if targets is not None:
            target_ids = backend.to_device(targets.data if isinstance(targets, Tensor)
                                           else targets, logits.device)
            check_token_ids("GPT", "targets", target_ids, self.config.vocab_size,
                            shape=logits.shape[:2], ignore_index=-100)
            loss = F.cross_entropy(logits, target_ids)
        return logits, loss

    def hidden_states(self, idx, kv_caches=None):
        """The final LayerNorm's output (B, T, n_embd) for token ids ``idx`` (B, T): what the
        head reads (a classifier reads it too)."""
        ids = idx.data if isinstance(idx, Tensor) else idx
        if getattr(ids, "ndim", 0) != 2:
            raise ArgumentError(f"GPT: idx should be token ids of shape (batch, time), got "
                                f"shape {getattr(ids, 'shape', None)}", where="GPT", name="idx",
                                value=idx)
        check_token_ids("GPT", "idx", ids, self.config.vocab_size)
        start = 0 if kv_caches is None else kv_caches[0].length
        T = ids.shape[1]
        if start + T > self.config.block_size:
            cached = f" after {start} cached" if start else ""
            raise ArgumentError(f"GPT: a sequence of {start + T} positions is longer than "
                                f"block_size={self.config.block_size} (idx of shape "
                                f"{tuple(ids.shape)}{cached}); crop the input to the last "
                                f"{self.config.block_size} tokens (generate() does this itself)",
                                where="GPT", name="idx", value=idx)
        xp = backend.get_array_module(self.transformer.wpe.weight.data)
        positions = xp.arange(start, start + T)
        x = self.transformer.wte(ids) + self.transformer.wpe(positions)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, kv_cache=None if kv_caches is None else kv_caches[i])
        return self.transformer.ln_f(x)

    def new_kv_caches(self):
        """Empty key/value caches for incremental decoding, one per layer."""
        return [nn.KVCache(self.config.block_size) for _ in self.transformer.h]

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 do_sample=True, use_cache=True):
        """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens; see :mod:`scratchlm.generation`."""
        return generation.generate(self, idx, max_new_tokens, temperature=temperature,
                                   top_k=top_k, top_p=top_p, do_sample=do_sample,
                                   use_cache=use_cache)

    @classmethod
    def from_hf_gpt2(cls, path_or_state_dict):
        """GPT-2 with Hugging Face's weights (a local ``model.safetensors`` or its arrays)."""
        config_fields, state = read_hf_gpt2(path_or_state_dict)
        model = cls(GPTConfig(**config_fields))
        model.load_state_dict(state)
        return model

    def extra_repr(self):
        return f"{self.num_parameters():,} parameters"


def check_config(where, config, config_class):
    """``config`` if it is a ``config_class``; a dict gets a hint to build one from it."""
    if isinstance(config, config_class):
        return config
    hint = f" (build one with {config_class.__name__}(**d))" if isinstance(config, dict) else ""
    given = "None" if config is None else f"a {type(config).__name__}"
    raise ArgumentTypeError(f"{where}: config is {given}{hint}; expected a "
                            f"{config_class.__name__}", where=where, name="config", value=config)
