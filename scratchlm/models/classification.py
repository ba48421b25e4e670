"""Task heads on pre-trained bodies: text classification and token classification.

    BERT, a text:    logits = W_c dropout(pooled) + b_c,  pooled = tanh(W_p h_L[CLS] + b_p)
    GPT, a text:     logits = W_s h_L[t*],  t* = the last position that is not padding
    BERT, a token:   logits_t = W_c dropout(h_L[t]) + b_c, for every position t
    loss = mean cross-entropy over the labels (positions labelled -100 are skipped)

These are Hugging Face's ``BertForSequenceClassification``, ``GPT2ForSequenceClassification``
and ``BertForTokenClassification``: the same formulas, so the same weights give the same
logits (the tests check it). GPT reads left to right, so only its last real token has seen
the whole text; with right padding that is the rightmost token that is not ``pad_token_id``
(without a ``pad_token_id``, the last position). The head starts as Hugging Face's does,
N(0, 0.02²) weights and zero bias; the body comes from a pre-trained checkpoint with
:meth:`load_pretrained_body`.
"""

from typing import NamedTuple

from scratchlm import backend, nn
from scratchlm import functional as F
from scratchlm.autograd.tensor import Tensor
from scratchlm.models.bert import BertConfig, BertModel
from scratchlm.models.gpt import GPT, GPTConfig


class ClassifierOutput(NamedTuple):
    logits: Tensor  # (B, num_labels), or (B, T, num_labels) for token classification
    loss: Tensor | None  # mean cross-entropy when labels were given


def _array(value):
    return value.data if isinstance(value, Tensor) else value


def _load_body(body, state_dict, prefix, owner):
    """Load the entries of ``state_dict`` under ``prefix`` into ``body`` (all of its
    parameters must be there); entries of other heads (MLM, NSP, lm_head) are ignored."""
    sub = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not sub:
        raise ValueError(f"{owner}.load_pretrained_body: no entry starts with {prefix!r}; "
                         f"the state dict holds e.g. {list(state_dict)[:4]} — is it a "
                         "checkpoint of the right model?")
    expected = {k for k, *_ in body._state_entries()}
    missing = sorted(expected - set(sub))
    if missing:
        raise ValueError(f"{owner}.load_pretrained_body: the pre-trained state lacks "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    body.load_state_dict({k: v for k, v in sub.items() if k in expected})


def _labels_loss(logits, labels, owner):
    if labels is None:
        return None
    labels = backend.to_device(_array(labels), logits.device)
    if labels.shape != logits.shape[:-1]:
        unit = "text" if logits.ndim == 2 else "token"
        raise ValueError(f"{owner}: labels of shape {labels.shape} should be "
                         f"{logits.shape[:-1]} (one label per {unit})")
    return F.cross_entropy(logits, labels)


class BertForSequenceClassification(nn.Module):
    """``forward(input_ids, attention_mask=None, token_type_ids=None, labels=None)`` →
    :class:`ClassifierOutput` (logits (B, num_labels), loss)."""

    def __init__(self, config, num_labels=2, classifier_dropout=None):
        super().__init__()
        self.config, self.num_labels = config, num_labels
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout if classifier_dropout is None
                                  else classifier_dropout)
        self.classifier = nn.Linear(config.n_embd, num_labels)
        nn.init_transformer_weights(self.classifier, std=0.02)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        pooled = self.bert(input_ids, token_type_ids, attention_mask).pooler_output
        logits = self.classifier(self.dropout(pooled))
        return ClassifierOutput(logits, _labels_loss(logits, labels, type(self).__name__))

    def load_pretrained_body(self, state_dict):
        """The ``bert.*`` weights of a pre-training state dict (BertForPreTraining's); the
        classifier stays as initialized. Returns self."""
        _load_body(self.bert, state_dict, "bert.", type(self).__name__)
        return self

    @classmethod
    def from_pretrained(cls, state_dict, config, num_labels=2, **kwargs):
        if isinstance(config, dict):
            config = BertConfig(**config)
        return cls(config, num_labels, **kwargs).load_pretrained_body(state_dict)


class BertForTokenClassification(BertForSequenceClassification):
    """One label per token: ``forward(input_ids, attention_mask=None, token_type_ids=None,
    labels=None)`` → logits (B, T, num_labels); labels (B, T), -100 where none."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        hidden = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state
        logits = self.classifier(self.dropout(hidden))
        return ClassifierOutput(logits, _labels_loss(logits, labels, type(self).__name__))


class GPTForSequenceClassification(nn.Module):
    """``forward(input_ids, attention_mask=None, labels=None)`` → :class:`ClassifierOutput`.

    ``attention_mask`` is accepted for a common calling convention and not needed: with
    right padding, causal attention never lets a real token see the padding after it.
    """

    def __init__(self, config, num_labels=2, pad_token_id=None):
        super().__init__()
        self.config, self.num_labels, self.pad_token_id = config, num_labels, pad_token_id
        self.gpt = GPT(config)
        self.score = nn.Linear(config.n_embd, num_labels, bias=False)
        nn.init_transformer_weights(self.score, std=0.02)

    def last_token_positions(self, ids):
        """Index of each row's last token that is not ``pad_token_id`` (as Hugging Face:
        the largest position index times "not padding"; 0 for a row of padding only)."""
        xp = backend.get_array_module(ids)
        if self.pad_token_id is None:
            return xp.full(ids.shape[0], ids.shape[1] - 1)
        positions = xp.arange(ids.shape[1])[None, :] * (ids != self.pad_token_id)
        return positions.argmax(axis=1)

    def forward(self, input_ids, attention_mask=None, labels=None):
        ids = _array(input_ids)
        hidden = self.gpt.hidden_states(ids)
        xp = backend.get_array_module(hidden.data)
        ids_on_device = backend.to_device(ids, hidden.device)
        last = self.last_token_positions(ids_on_device)
        pooled = hidden[xp.arange(ids.shape[0]), last]
        logits = self.score(pooled)
        return ClassifierOutput(logits, _labels_loss(logits, labels, type(self).__name__))

    def load_pretrained_body(self, state_dict):
        """The weights of a GPT language model's state dict (``transformer.*``,
        ``lm_head.weight``); the score head stays as initialized. Returns self."""
        keys = {k: v for k, v in state_dict.items()
                if k.startswith(("transformer.", "lm_head."))}
        _load_body(self.gpt, {"gpt." + k: v for k, v in keys.items()}, "gpt.",
                   type(self).__name__)
        return self

    @classmethod
    def from_pretrained(cls, state_dict, config, num_labels=2, **kwargs):
        if isinstance(config, dict):
            config = GPTConfig(**config)
        return cls(config, num_labels, **kwargs).load_pretrained_body(state_dict)
