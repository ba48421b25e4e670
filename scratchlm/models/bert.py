"""BERT: a bidirectional Transformer encoder pre-trained with MLM and NSP (Devlin et al., 2018).

    h₀ = LN(E_tok[ids] + E_pos[0..T) + E_seg[segments])      three learned embeddings summed
    hₗ = post-LN encoder layer(hₗ₋₁)                          GELU (erf) feed-forward, 4·C wide
    pooled = tanh(W_p h_L[CLS] + b_p)                         the [CLS] vector, for NSP

Pre-training heads and loss:

    MLM:  logits = LN(GELU(W_t h_L + b_t)) E_tokᵀ + b      decoder tied to the token embedding
          L_MLM  = mean over the chosen positions (label ≠ -100) of −log softmax(logits)[label]
    NSP:  L_NSP  = −log softmax(W_n pooled + b_n)[is_next]
          L      = L_MLM + λ L_NSP

Padding is marked by ``attention_mask`` (1 = real token, 0 = padding, as Hugging Face): no
query attends a padding key. Dropout sits where torch.nn's encoder layer puts it (also
inside the feed-forward, where the original BERT has none); it is off in ``eval()``.
"""

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from scratchlm import backend, nn
from scratchlm import functional as F
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import (
    check_attention_sizes,
    check_int,
    check_probability,
    check_real,
    check_token_ids,
    show,
)
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.models.gpt import check_config
from scratchlm.text import mask_tokens
from scratchlm.text.next_sentence import make_nsp_pairs, pack_bert_pairs


@dataclass
class BertConfig:
    vocab_size: int = 30522
    max_position: int = 512
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dim_feedforward: int | None = None  # None: 4·n_embd
    dropout: float = 0.1
    type_vocab_size: int = 2
    nsp_weight: float = 1.0  # λ in L = L_MLM + λ L_NSP
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        """Refuse a size that is not a positive int (a bool, a float, a string), a dropout
        that is not a probability (NaN included), a negative or non-finite ``nsp_weight``,
        an ``layer_norm_eps`` that is not a positive finite number, and an ``n_embd`` that
        does not split into ``n_head`` heads (:class:`~scratchlm.errors.ArgumentError`)."""
        for name in ("vocab_size", "max_position", "n_layer", "n_head", "n_embd",
                     "type_vocab_size"):
            setattr(self, name, check_int("BertConfig", name, getattr(self, name), 1))
        if self.dim_feedforward is None:
            self.dim_feedforward = 4 * self.n_embd
        self.dim_feedforward = check_int("BertConfig", "dim_feedforward", self.dim_feedforward,
                                         1, hint="(None for 4·n_embd)")
        check_attention_sizes("BertConfig", "n_embd", self.n_embd, "n_head", self.n_head)
        check_probability("BertConfig", "dropout", self.dropout)
        check_real("BertConfig", "nsp_weight", self.nsp_weight, 0, hint="(λ in L_MLM + λ L_NSP)")
        check_real("BertConfig", "layer_norm_eps", self.layer_norm_eps, 0, low_open=True)

    @classmethod
    def from_preset(cls, name, **overrides):
        """A named configuration (see ``BERT_PRESETS``), with any field overridden."""
        if not isinstance(name, str) or name not in BERT_PRESETS:
            raise ArgumentError(f"BertConfig.from_preset: unknown BERT preset {show(name)}; "
                                f"expected name to be one of {sorted(BERT_PRESETS)}",
                                where="BertConfig.from_preset", name="name", value=name)
        return cls(**{**BERT_PRESETS[name], **overrides})

    def to_dict(self):
        return asdict(self)


BERT_PRESETS = {
    # A few tens of thousands of parameters: tests, gradient checks, CPU demos.
    "tiny": dict(vocab_size=100, max_position=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0),
    # The shapes of Google's released checkpoints.
    "bert-base": dict(vocab_size=30522, max_position=512, n_layer=12, n_head=12, n_embd=768),
    "bert-base-chinese": dict(vocab_size=21128, max_position=512, n_layer=12, n_head=12,
                              n_embd=768),
}


def _ids(name, values, shape=None, device="cpu", kinds="iu"):
    """Integer ids (or another dtype ``kinds``) as a backend array on ``device``, with a clear
    error when they do not fit."""
    values = backend.to_device(values.data if isinstance(values, Tensor) else values, device)
    expected = "(batch, time)" if shape is None else f"input_ids' shape {shape}"
    if values.ndim != 2 or (shape is not None and values.shape != shape):
        raise ArgumentError(f"BertModel: {name} of shape {values.shape} should be {expected}",
                            where="BertModel", name=name, value=values)
    if values.dtype.kind not in kinds:
        raise ArgumentTypeError(f"BertModel: {name} should hold integers, got dtype "
                                f"{values.dtype}", where="BertModel", name=name, value=values)
    if values.size == 0:
        raise ArgumentError(f"BertModel: {name} of shape {values.shape} holds no tokens; "
                            "expected at least one token ([CLS]) in each row",
                            where="BertModel", name=name, value=values)
    return values


class BertEmbeddings(nn.Module):
    """LN(token + position + segment embeddings), then dropout."""

    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embeddings = nn.LearnedPositionalEmbedding(config.max_position,
                                                                 config.n_embd)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.n_embd)
        self.norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids, token_type_ids):
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.norm(self.position_embeddings(x)))


class BertOutput(NamedTuple):
    last_hidden_state: Tensor  # (B, T, C)
    pooler_output: Tensor  # (B, C): tanh(W_p h[CLS] + b_p)


class BertModel(nn.Module):
    """The BERT encoder: ``forward(input_ids, token_type_ids=None, attention_mask=None)`` →
    :class:`BertOutput` (hidden states (B, T, C), pooled [CLS] (B, C)).

    ``token_type_ids`` default to 0 (one segment), ``attention_mask`` to all ones.
    Init: BERT's (:func:`scratchlm.nn.init_transformer_weights`): every matrix, embeddings
    included, N(0, 0.02²), biases 0, LayerNorm gains 1."""

    def __init__(self, config):
        super().__init__()
        self.config = check_config("BertModel", config, BertConfig)
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList([
            nn.TransformerEncoderLayer(config.n_embd, config.n_head, config.dim_feedforward,
                                       dropout=config.dropout, activation="gelu",
                                       norm_first=False, layer_norm_eps=config.layer_norm_eps)
            for _ in range(config.n_layer)])
        self.pooler = nn.Linear(config.n_embd, config.n_embd)
        nn.init_transformer_weights(self, std=0.02)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        device = self.pooler.weight.device
        ids = _ids("input_ids", input_ids, device=device)
        check_token_ids("BertModel", "input_ids", ids, self.config.vocab_size)
        if ids.shape[1] > self.config.max_position:
            raise ValueError(f"BertModel: a sequence of {ids.shape[1]} tokens is longer than "
                             f"max_position={self.config.max_position}")
        xp = backend.get_array_module(ids)
        segments = (xp.zeros_like(ids) if token_type_ids is None
                    else _ids("token_type_ids", token_type_ids, ids.shape, device))
        if segments.size and (int(segments.max()) >= self.config.type_vocab_size
                              or int(segments.min()) < 0):
            bad = int(segments.min()) if int(segments.min()) < 0 else int(segments.max())
            raise ArgumentError(f"BertModel: token_type_ids hold segment id {bad}, but "
                                f"type_vocab_size={self.config.type_vocab_size}; expected "
                                f"0 ≤ token_type_ids < {self.config.type_vocab_size}",
                                where="BertModel", name="token_type_ids", value=segments)
        padding = None  # key_padding_mask: True at padding
        if attention_mask is not None:
            padding = _ids("attention_mask", attention_mask, ids.shape, device, "iub") == 0
            if not padding.any():
                padding = None  # no padding: skip building a mask
        h = self.embeddings(ids, segments)
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=padding)
        pooled = self.pooler(h[:, 0]).tanh()
        return BertOutput(h, pooled)


class MaskedLMHead(nn.Module):
    """logits = LN(GELU(W_t h + b_t)) Eᵀ + b, with ``decoder.weight`` the token embedding E
    (tied by :class:`BertForPreTraining`)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.n_embd, config.n_embd)
        self.norm = nn.LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size)

    def forward(self, h):
        return self.decoder(self.norm(F.gelu(self.dense(h), approximate="none")))


class BertPreTrainingOutput(NamedTuple):
    mlm_logits: Tensor  # (B, T, vocab)
    # (B, 2): index 1 = "B follows A", as make_nsp_pairs' is_next (Google's and Hugging
    # Face's checkpoints use index 0 for it: swap the rows of nsp_head to load theirs)
    nsp_logits: Tensor
    loss: Tensor | None  # mlm_loss + λ nsp_loss (the terms whose labels were given)
    mlm_loss: Tensor | None
    nsp_loss: Tensor | None


class BertForPreTraining(nn.Module):
    """BERT with its two pre-training heads.

    ``forward(input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None,
    nsp_labels=None)`` → :class:`BertPreTrainingOutput`. ``mlm_labels`` (B, T) hold the
    original id at the chosen positions and -100 elsewhere (as ``mask_tokens`` makes them);
    ``nsp_labels`` (B,) are 1 when segment B follows A, 0 when it is random.
    """

    def __init__(self, config):
        super().__init__()
        self.config = check_config("BertForPreTraining", config, BertConfig)
        self.bert = BertModel(config)
        self.mlm_head = MaskedLMHead(config)
        self.nsp_head = nn.Linear(config.n_embd, 2)
        nn.init_transformer_weights(self.mlm_head, std=0.02)
        nn.init_transformer_weights(self.nsp_head, std=0.02)
        self.mlm_head.decoder.weight = self.bert.embeddings.word_embeddings.weight  # tied

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, mlm_labels=None,
                nsp_labels=None):
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        mlm_logits = self.mlm_head(hidden)
        nsp_logits = self.nsp_head(pooled)
        mlm_loss = nsp_loss = loss = None
        if mlm_labels is not None:
            labels = self._labels(mlm_labels, hidden, 2)
            check_token_ids("BertForPreTraining", "mlm_labels", labels, self.config.vocab_size,
                            shape=labels.shape, ignore_index=-100)
            mlm_loss = loss = F.cross_entropy(mlm_logits, labels)
        if nsp_labels is not None:
            labels = self._labels(nsp_labels, hidden, 1)
            check_token_ids("BertForPreTraining", "nsp_labels", labels, 2, shape=labels.shape)
            nsp_loss = F.cross_entropy(nsp_logits, labels)
            weighted = self.config.nsp_weight * nsp_loss
            loss = weighted if loss is None else loss + weighted
        return BertPreTrainingOutput(mlm_logits, nsp_logits, loss, mlm_loss, nsp_loss)

    @staticmethod
    def _labels(labels, hidden, ndim):
        labels = backend.to_device(labels.data if isinstance(labels, Tensor) else labels,
                                   hidden.device)
        expected = hidden.shape[:ndim]
        if labels.shape != expected:
            name = "mlm_labels" if ndim == 2 else "nsp_labels"
            raise ArgumentError(f"BertForPreTraining: {name} of shape {labels.shape} should "
                                f"be {expected}", where="BertForPreTraining", name=name,
                                value=labels)
        return labels

    def extra_repr(self):
        return f"{self.num_parameters():,} parameters"


class PreTrainingBatch(NamedTuple):
    """Arrays for ``BertForPreTraining(**batch._asdict())``."""

    input_ids: np.ndarray  # (N, L) [CLS] A [SEP] B [SEP] [PAD]…, corrupted for MLM
    token_type_ids: np.ndarray  # (N, L) 0 for [CLS] A [SEP] and padding, 1 for B [SEP]
    attention_mask: np.ndarray  # (N, L) True on real tokens
    mlm_labels: np.ndarray  # (N, L) original ids at the chosen positions, -100 elsewhere
    nsp_labels: np.ndarray  # (N,) 1 if B follows A, else 0


def make_pretraining_batch(documents, vocab_size, cls_id, sep_id, pad_id, mask_id, max_length,
                           rng, batch_size=None, mask_prob=0.15):
    """A BERT pre-training batch from ``documents`` (lists of sentences, each a list of
    token ids): NSP pairs (half real next sentences, half random ones from another document,
    ``make_nsp_pairs``), packed as [CLS] A [SEP] B [SEP] and padded to ``max_length``
    (``pack_bert_pairs``), then 15% of the ordinary tokens chosen for MLM with 80/10/10
    corruption (``mask_tokens``; [CLS], [SEP], [PAD] and [MASK] are never chosen).

    ``batch_size`` draws that many of the pairs at random (all of them when None). ``rng``
    (a ``np.random.Generator``) makes the pairs and the masking reproducible; calling again
    with the same generator gives new pairs and a new masking (dynamic masking).
    """
    where = "make_pretraining_batch"
    vocab_size = check_int(where, "vocab_size", vocab_size, 1)
    for name, value in (("cls_id", cls_id), ("sep_id", sep_id), ("pad_id", pad_id),
                        ("mask_id", mask_id)):
        check_int(where, name, value, 0, vocab_size, hint=f"(vocab_size={vocab_size})")
    check_int(where, "max_length", max_length, 5, hint="(room for [CLS] A [SEP] B [SEP])")
    batch_size = check_int(where, "batch_size", batch_size, 1, optional=True)
    check_probability(where, "mask_prob", mask_prob)
    pairs = make_nsp_pairs(documents, rng)
    if batch_size is not None:
        chosen = rng.choice(len(pairs), size=batch_size, replace=batch_size > len(pairs))
        pairs = [pairs[i] for i in chosen]
    packed, is_next = pack_bert_pairs(pairs, cls_id, sep_id, pad_id, max_length)
    inputs, labels = mask_tokens(packed.input_ids, mask_id, vocab_size,
                                 special_ids=(cls_id, sep_id, pad_id, mask_id),
                                 mask_prob=mask_prob, rng=rng)
    return PreTrainingBatch(inputs, packed.token_type_ids, packed.attention_mask, labels,
                            is_next)
