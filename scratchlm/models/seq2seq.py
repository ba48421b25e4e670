"""The original Transformer (Vaswani et al., 2017): an encoder-decoder for sequence to sequence.

    encoder:  e₀ = √d · E_src[src] + PE,   eₗ = EncoderLayer(eₗ₋₁)           memory m = e_N
    decoder:  h₀ = √d · E_tgt[y<t] + PE,   hₗ = DecoderLayer(hₗ₋₁, m)        causal self-attention,
                                                                            cross-attention to m
    p(yₜ | y<t, x) = softmax(h_N Wᵀ + b),   W = E_tgt when the output is tied (as the paper)

PE is the fixed sinusoidal table; √d brings the embeddings (init N(0, 1/d)) to the scale of
PE. Layers are post-LN as in the paper, or pre-LN (``norm_first``, then with a final
LayerNorm after each stack). Source padding (``pad_id``) is masked out of every attention
over the source; target padding must come last (right padding): causal attention then keeps
it away from every real position, and the loss ignores it.

Training feeds the target shifted right (``tgt_in`` = [BOS] y, ``tgt_out`` = y [EOS]) and
minimises the cross-entropy of every position at once. Decoding generates one token at a
time with a key/value cache (:class:`scratchlm.nn.DecoderKVCache`): greedy (argmax) or beam
search, batched over the sentences. :func:`scratchlm.translate.train_translation` trains one
on sentence pairs.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

from scratchlm import backend, generation, nn
from scratchlm import functional as F
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import (
    bad_argument,
    check_attention_sizes,
    check_bool,
    check_choice,
    check_int,
    check_probability,
    check_real,
    check_token_ids,
    is_integer,
    show,
)
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.models.gpt import check_config
from scratchlm.nn.feedforward import ACTIVATIONS

__all__ = ["Seq2SeqConfig", "SEQ2SEQ_PRESETS", "Seq2SeqTransformer", "trim_at_eos"]


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_head: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    max_len: int = 256  # positions of the sinusoidal table (source and target)
    activation: str = "relu"
    norm_first: bool = False
    tie_output: bool = True  # the output projection shares the target embedding
    pad_id: int = 0
    layer_norm_eps: float = 1e-5

    def __post_init__(self):
        """Refuse a size that is not a positive int (a bool, a float, a string), a dropout
        that is not a probability (NaN included), an unknown activation, non-bool switches,
        a ``pad_id`` outside either vocabulary, a ``layer_norm_eps`` that is not a positive
        finite number, and a ``d_model`` that does not split into ``n_head`` heads
        (:class:`~scratchlm.errors.ArgumentError`)."""
        where = "Seq2SeqConfig"
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "n_head",
                     "num_encoder_layers", "num_decoder_layers", "dim_feedforward", "max_len"):
            setattr(self, name, check_int(where, name, getattr(self, name), 1))
        check_attention_sizes(where, "d_model", self.d_model, "n_head", self.n_head)
        check_probability(where, "dropout", self.dropout)
        check_choice(where, "activation", self.activation, sorted(ACTIVATIONS))
        self.norm_first = check_bool(where, "norm_first", self.norm_first)
        self.tie_output = check_bool(where, "tie_output", self.tie_output)
        if not is_integer(self.pad_id) or \
                not 0 <= self.pad_id < min(self.src_vocab_size, self.tgt_vocab_size):
            raise bad_argument(where, "pad_id", self.pad_id,
                               f"an integer in [0, {min(self.src_vocab_size, self.tgt_vocab_size)})"
                               f" (an id of both vocabularies)", "outside the vocabularies",
                               ArgumentError if is_integer(self.pad_id) else ArgumentTypeError)
        self.pad_id = int(self.pad_id)
        check_real(where, "layer_norm_eps", self.layer_norm_eps, 0, low_open=True)

    @classmethod
    def from_preset(cls, name, src_vocab_size, tgt_vocab_size, **overrides):
        """A named configuration (see ``SEQ2SEQ_PRESETS``) for the given vocabularies."""
        if not isinstance(name, str) or name not in SEQ2SEQ_PRESETS:
            raise ArgumentError(f"Seq2SeqConfig.from_preset: unknown seq2seq preset "
                                f"{show(name)}; expected name to be one of "
                                f"{sorted(SEQ2SEQ_PRESETS)}",
                                where="Seq2SeqConfig.from_preset", name="name", value=name)
        return cls(src_vocab_size, tgt_vocab_size, **{**SEQ2SEQ_PRESETS[name], **overrides})

    def to_dict(self):
        return asdict(self)


SEQ2SEQ_PRESETS = {
    # For tests and toy tasks (copying, reversing) on a CPU.
    "tiny": dict(d_model=32, n_head=2, num_encoder_layers=2, num_decoder_layers=2,
                 dim_feedforward=64, dropout=0.0, max_len=64),
    # Short sentence pairs (e.g. load_zh_en_pairs) in minutes on a CPU.
    "small": dict(d_model=128, n_head=4, num_encoder_layers=3, num_decoder_layers=3,
                  dim_feedforward=512, dropout=0.1, max_len=128),
    # The paper's base and big models.
    "transformer-base": dict(d_model=512, n_head=8, num_encoder_layers=6, num_decoder_layers=6,
                             dim_feedforward=2048, dropout=0.1),
    "transformer-big": dict(d_model=1024, n_head=16, num_encoder_layers=6,
                            num_decoder_layers=6, dim_feedforward=4096, dropout=0.3),
}


class Seq2SeqTransformer(nn.Module):
    """Encoder-decoder Transformer; ``forward(src, tgt_in, tgt_out=None,
    src_key_padding_mask=None, label_smoothing=0.0)`` → (logits (B, T, tgt_vocab), loss).

    ``src`` (B, S) and ``tgt_in`` (B, T) are token ids; the source padding mask defaults to
    ``src == pad_id``. The loss (given ``tgt_out``) is the mean cross-entropy over the target
    positions that are not ``pad_id``.

    Init (:func:`scratchlm.nn.init_transformer_weights`): embeddings N(0, 1/d_model), every
    other matrix Xavier-uniform, biases 0.
    """

    def __init__(self, config):
        super().__init__()
        self.config = check_config("Seq2SeqTransformer", config, Seq2SeqConfig)
        d = config.d_model
        self.embed_scale = math.sqrt(d)
        self.src_embed = nn.Embedding(config.src_vocab_size, d)
        self.tgt_embed = nn.Embedding(config.tgt_vocab_size, d)
        self.positions = nn.SinusoidalPositionalEncoding(d, config.max_len)
        self.dropout = nn.Dropout(config.dropout)
        layer_args = (d, config.n_head, config.dim_feedforward, config.dropout,
                      config.activation, config.norm_first, config.layer_norm_eps)
        self.encoder_layers = nn.ModuleList([nn.TransformerEncoderLayer(*layer_args)
                                             for _ in range(config.num_encoder_layers)])
        self.decoder_layers = nn.ModuleList([nn.TransformerDecoderLayer(*layer_args)
                                             for _ in range(config.num_decoder_layers)])
        # post-LN ends each stack in a LayerNorm already; pre-LN needs one after the stack
        self.encoder_norm = nn.LayerNorm(d, config.layer_norm_eps) if config.norm_first else None
        self.decoder_norm = nn.LayerNorm(d, config.layer_norm_eps) if config.norm_first else None
        self.output_proj = nn.Linear(d, config.tgt_vocab_size)
        nn.init_transformer_weights(self, embedding_std=d ** -0.5, xavier=True)
        if config.tie_output:
            self.output_proj.weight = self.tgt_embed.weight

    # ------------------------------------------------------------------------ inputs
    @property
    def device(self):
        return self.src_embed.weight.device

    def _ids(self, name, ids):
        """``ids`` on the model's device, checked: (batch, time), integer, not empty, every
        id in its vocabulary (the source's for ``src``; the target's, or ``pad_id``, else)."""
        ids = backend.to_device(ids.data if isinstance(ids, Tensor) else ids, self.device)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            error = ArgumentError if ids.dtype.kind in "iu" else ArgumentTypeError
            raise error(f"Seq2SeqTransformer: {name} should be integer token ids of shape "
                        f"(batch, time), got shape {ids.shape} and dtype {ids.dtype}",
                        where="Seq2SeqTransformer", name=name, value=ids)
        vocab = self.config.src_vocab_size if name == "src" else self.config.tgt_vocab_size
        return check_token_ids("Seq2SeqTransformer", name, ids, vocab)

    def _check_length(self, name, length):
        if length > self.config.max_len:
            raise ArgumentError(f"Seq2SeqTransformer: {name} reaches position {length - 1}, "
                                f"beyond max_len={self.config.max_len}",
                                where="Seq2SeqTransformer", name=name, value=length)

    def _check_decoding(self, where, max_len, bos_id, eos_id):
        """The decoding arguments every search takes: a length ≥ 1 within the position table,
        and BOS/EOS ids of the target vocabulary."""
        vocab = self.config.tgt_vocab_size
        check_int(where, "max_len", max_len, 1, hint="(new tokens to decode at most)")
        check_int(where, "bos_id", bos_id, 0, vocab, hint="(an id of the target vocabulary)")
        check_int(where, "eos_id", eos_id, 0, vocab, hint="(an id of the target vocabulary)")

    def source_padding(self, src):
        """The key padding mask of ``src``: True at ``pad_id`` (None when there is none)."""
        padding = self._ids("src", src) == self.config.pad_id
        return padding if padding.any() else None

    # ----------------------------------------------------------------------- the model
    def encode(self, src, src_key_padding_mask=None):
        """The memory (B, S, d_model) the decoder attends to. Pass the source's padding mask
        (:meth:`source_padding`) to keep padding out of self-attention."""
        ids = self._ids("src", src)
        self._check_length("src", ids.shape[1])
        x = self.dropout(self.positions(self.src_embed(ids) * self.embed_scale))
        for layer in self.encoder_layers:
            x = layer(x, src_key_padding_mask=src_key_padding_mask)
        return x if self.encoder_norm is None else self.encoder_norm(x)

    def decode(self, tgt_in, memory, memory_key_padding_mask=None, kv_caches=None):
        """Logits (B, T, tgt_vocab) for the target prefix ``tgt_in`` (B, T).

        With ``kv_caches`` (:meth:`new_kv_caches`, under ``sl.no_grad()``) ``tgt_in`` holds only
        the new tokens; their positions follow the cached ones.
        """
        ids = self._ids("tgt_in", tgt_in)
        offset = 0 if kv_caches is None else kv_caches[0].self_attn.length
        self._check_length("tgt_in", offset + ids.shape[1])
        x = self.tgt_embed(ids) * self.embed_scale
        x = self.dropout(self.positions(x, offset))
        for i, layer in enumerate(self.decoder_layers):
            x = layer(x, memory, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=True, kv_cache=None if kv_caches is None else kv_caches[i])
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return self.output_proj(x)

    def forward(self, src, tgt_in, tgt_out=None, src_key_padding_mask=None, label_smoothing=0.0):
        check_real("Seq2SeqTransformer", "label_smoothing", label_smoothing, 0, 1)
        if src_key_padding_mask is None:
            src_key_padding_mask = self.source_padding(src)
        memory = self.encode(src, src_key_padding_mask)
        logits = self.decode(tgt_in, memory, src_key_padding_mask)
        loss = None
        if tgt_out is not None:
            loss = F.cross_entropy(logits, self._ids("tgt_out", tgt_out),
                                   ignore_index=self.config.pad_id,
                                   label_smoothing=label_smoothing)
        return logits, loss

    # -------------------------------------------------------------------------- decoding
    def new_kv_caches(self, max_len):
        """Empty caches for decoding up to ``max_len`` target positions, one per layer."""
        return [nn.DecoderKVCache(max_len) for _ in self.decoder_layers]

    def decode_step(self, new_ids, memory, kv_caches, memory_key_padding_mask=None):
        """Logits (B, tgt_vocab) of the token after ``new_ids`` (B, t), fed after everything
        ``kv_caches`` holds; equal to :meth:`decode` of the whole prefix at its last position."""
        logits = self.decode(new_ids, memory, memory_key_padding_mask, kv_caches)
        return logits.data[:, -1]

    def _start_decoding(self, src, max_len):
        """Memory (B, S, d_model), source padding mask and empty caches for decoding up to
        ``max_len`` tokens after [BOS]."""
        check_int("Seq2SeqTransformer", "max_len", max_len, 1, hint="(new tokens)")
        self._check_length("decoding", max_len)
        padding = self.source_padding(src)
        return self.encode(src, padding), padding, self.new_kv_caches(max_len)

    def greedy_decode(self, src, max_len, bos_id, eos_id, use_cache=True):
        """The argmax token at every step, for every source sentence at once.

        Returns ids (B, n), n ≤ ``max_len``, without the leading BOS: a row that has emitted
        ``eos_id`` holds ``pad_id`` after it, and decoding stops once every row has.
        ``use_cache=False`` recomputes the whole prefix at each step (same result, slower).
        """
        self._check_decoding("Seq2SeqTransformer.greedy_decode", max_len, bos_id, eos_id)
        check_bool("Seq2SeqTransformer.greedy_decode", "use_cache", use_cache)
        xp = backend.xp_for(self.device)
        with generation.decoding_mode(self):
            memory, padding, caches = self._start_decoding(src, max_len)
            tokens = xp.full((memory.shape[0], 1), bos_id, dtype=np.int64)
            finished = xp.zeros(memory.shape[0], dtype=bool)
            for _ in range(max_len):
                if use_cache:
                    logits = self.decode_step(tokens[:, -1:], memory, caches, padding)
                else:
                    logits = self.decode(tokens, memory, padding).data[:, -1]
                next_ids = xp.where(finished, self.config.pad_id, logits.argmax(axis=-1))
                tokens = xp.concatenate([tokens, next_ids[:, None]], axis=1)
                finished |= next_ids == eos_id
                if finished.all():
                    break
        return tokens[:, 1:]

    def beam_search(self, src, beam_width, max_len, bos_id, eos_id, length_penalty=1.0):
        """Beam search for every source sentence at once; returns (ids (B, n), scores (B,)).

        Each sentence keeps ``beam_width`` hypotheses, each one row of the decoder's caches
        (:func:`scratchlm.generation.batched_beam_search`). At every step all extensions of
        a sentence's hypotheses are scored by their summed log-probability and the best
        ``beam_width`` kept. A hypothesis that emitted ``eos_id`` is finished: it keeps its
        place and score, extended only by ``pad_id`` at no cost. At the end each sentence's
        best hypothesis by score / length^length_penalty (length counted up to and including
        EOS) is returned with that normalized score, its ids as ``greedy_decode`` returns
        them; beam_width=1 is greedy decoding.
        """
        where = "Seq2SeqTransformer.beam_search"
        generation.check_beam_width(where, beam_width)
        self._check_decoding(where, max_len, bos_id, eos_id)
        check_real(where, "length_penalty", length_penalty)
        with generation.decoding_mode(self):
            best = generation.batched_beam_search(
                _TranslationBeams(self, src, max_len, bos_id), beam_width, max_len,
                eos_id=eos_id, fill_id=self.config.pad_id, length_penalty=length_penalty)
        return best.ids, best.scores

    def extra_repr(self):
        return f"{self.num_parameters():,} parameters"


class _TranslationBeams:
    """The encoder-decoder's side of :func:`scratchlm.generation.batched_beam_search`: the
    encoded sources, their padding mask and the decoder's caches, one row per hypothesis."""

    def __init__(self, model, src, max_len, bos_id):
        self.model, self.src, self.max_len, self.bos_id = model, src, max_len, bos_id

    def start(self):
        model = self.model
        self.memory, self.padding, self.caches = model._start_decoding(self.src, self.max_len)
        xp = backend.get_array_module(self.memory.data)
        bos = xp.full((self.memory.shape[0], 1), self.bos_id, dtype=np.int64)
        return model.decode_step(bos, self.memory, self.caches, self.padding)

    def advance(self, rows, new_ids):
        for cache in self.caches:
            cache.self_attn.select_rows(rows)
        if len(rows) != self.memory.shape[0]:
            # The memory's keys and values and the padding mask depend only on the sentence,
            # and rows never leave their sentence: they need gathering only when the number
            # of hypotheses per sentence changes (from one at the start to beam_width).
            for cache in self.caches:
                cache.cross_attn.select_rows(rows)
            self.memory = Tensor._wrap(self.memory.data[rows])
            self.padding = None if self.padding is None else self.padding[rows]
        return self.model.decode_step(new_ids[:, None], self.memory, self.caches, self.padding)


def trim_at_eos(ids, eos_id):
    """Rows of decoded ids as lists, each cut before its first ``eos_id``."""
    check_int("trim_at_eos", "eos_id", eos_id, 0)
    rows = backend.to_numpy(ids)
    if rows.ndim != 2:
        raise bad_argument("trim_at_eos", "ids", ids, "decoded ids of shape (batch, time)")
    trimmed = []
    for row in rows.tolist():
        trimmed.append(row[:row.index(eos_id)] if eos_id in row else row)
    return trimmed
