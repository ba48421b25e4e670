"""Language models built from :mod:`scratchlm.nn`: GPT (decoder-only), BERT, seq2seq."""

from scratchlm.models.bert import (
    BERT_PRESETS,
    BertConfig,
    BertForPreTraining,
    BertModel,
    BertOutput,
    BertPreTrainingOutput,
    PreTrainingBatch,
    make_pretraining_batch,
)
from scratchlm.models.classification import (
    BertForSequenceClassification,
    BertForTokenClassification,
    ClassifierOutput,
    GPTForSequenceClassification,
)
from scratchlm.models.gpt import GPT, PRESETS, GPTConfig
from scratchlm.models.seq2seq import SEQ2SEQ_PRESETS, Seq2SeqConfig, Seq2SeqTransformer, trim_at_eos

__all__ = [
    "BERT_PRESETS", "BertConfig", "BertForPreTraining", "BertModel", "BertOutput",
    "BertPreTrainingOutput", "PreTrainingBatch", "make_pretraining_batch",
    "GPT", "GPTConfig", "PRESETS",
    "BertForSequenceClassification", "BertForTokenClassification", "ClassifierOutput",
    "GPTForSequenceClassification",
    "SEQ2SEQ_PRESETS", "Seq2SeqConfig", "Seq2SeqTransformer", "trim_at_eos",
]
