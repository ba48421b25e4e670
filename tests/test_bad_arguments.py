"""Every public entry point refuses a bad argument at once, with an error that names the
function or class, the argument, the value given and what is expected — never silently
(a beam width of 0, a NaN temperature) and never with a ZeroDivisionError, IndexError or
KeyError from deep inside NumPy.

``BAD_ARGUMENTS`` maps a name to (call, error type, regex of the message, the argument the
message must name). The errors are :class:`scratchlm.errors.ArgumentError` (a ValueError)
or :class:`scratchlm.errors.ArgumentTypeError` (a TypeError and a ValueError), so code and
tests that caught ValueError or TypeError before still do.
"""

import functools
import math

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm import generation
from scratchlm.metrics import bleu, classification_scores, rouge
from scratchlm.models import (
    GPT,
    BertConfig,
    BertForPreTraining,
    BertModel,
    GPTConfig,
    Seq2SeqConfig,
    Seq2SeqTransformer,
    make_pretraining_batch,
    trim_at_eos,
)
from scratchlm.nn.transformer_init import init_transformer_weights
from scratchlm.sampling_filters import top_k_filter, top_p_filter
from scratchlm.text import (
    BPETokenizer,
    CharTokenizer,
    CharVocabulary,
    LMBatcher,
    get_batch,
    load_zh_en_pairs,
    make_nsp_pairs,
    mask_tokens,
    pack_bert_pair,
    pack_bert_pairs,
    pad_sequences,
    prepare_corpus,
    split_words,
    train_val_split,
)
from scratchlm.text.sentiment import (
    LabelledTexts,
    balanced_sample,
    encode_for_classifier,
    load_sentiment,
)
from scratchlm.text.special_chars import SpecialCharTokenizer
from scratchlm.translate import TranslationRun, train_translation

NAN, INF = math.nan, math.inf
V = 11  # the tiny models' vocabulary


# ------------------------------------------------------------------ small things to call
@functools.cache
def gpt():
    sl.manual_seed(0)
    return GPT(GPTConfig(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8))


@functools.cache
def bert():
    sl.manual_seed(0)
    return BertForPreTraining(BertConfig(vocab_size=V, max_position=8, n_layer=1, n_head=2,
                                         n_embd=8, dropout=0.0))


@functools.cache
def seq2seq():
    sl.manual_seed(0)
    return Seq2SeqTransformer(Seq2SeqConfig(V, V + 1, d_model=8, n_head=2,
                                            num_encoder_layers=1, num_decoder_layers=1,
                                            dim_feedforward=16, dropout=0.0, max_len=8))


@functools.cache
def translation_run():
    return TranslationRun(seq2seq(), CharVocabulary(["abc"]), CharVocabulary(["abcd"]))


def ids(*rows):
    return np.array(rows, dtype=np.int64)


PROMPT = ids([1, 2, 3])
LOGITS = np.zeros((2, V))
RNG = np.random.default_rng(0)
DOCS = [[[5, 6], [7, 8]], [[9], [5, 7]]]
LABELLED = LabelledTexts(["好", "差", "好书"], np.array([1, 0, 1]))


def gpt_config(**change):
    return GPTConfig(**{**dict(vocab_size=V, block_size=8, n_layer=1, n_head=2, n_embd=8),
                        **change})


def bert_config(**change):
    return BertConfig(**{**dict(vocab_size=V, max_position=8, n_layer=1, n_head=2, n_embd=8),
                         **change})


def seq2seq_config(**change):
    return Seq2SeqConfig(**{**dict(src_vocab_size=V, tgt_vocab_size=V, d_model=8, n_head=2),
                            **change})


def bert_call(**change):
    batch = dict(input_ids=ids([2, 5, 6, 3], [2, 7, 3, 0]), token_type_ids=None,
                 attention_mask=None, mlm_labels=None, nsp_labels=None)
    return bert()(**{**batch, **change})


def pretraining_batch(**change):
    args = dict(documents=DOCS, vocab_size=V, cls_id=1, sep_id=2, pad_id=0, mask_id=3,
                max_length=8, rng=np.random.default_rng(0))
    return make_pretraining_batch(**{**args, **change})


def s2s(call):
    return lambda: call(seq2seq())


SRC, TGT = ids([4, 5, 6]), ids([1, 4, 5])

I, T = ValueError, TypeError  # what each call must raise (ArgumentError is a ValueError)

BAD_ARGUMENTS = {
    # --------------------------------------------------------------------- GPTConfig
    "gpt_n_head_zero": (lambda: gpt_config(n_head=0), I,
                        r"GPTConfig: n_head=0; expected an integer ≥ 1", "n_head"),
    "gpt_n_head_negative": (lambda: gpt_config(n_head=-2), I,
                            r"GPTConfig: n_head=-2; expected an integer ≥ 1", "n_head"),
    "gpt_n_head_bool": (lambda: gpt_config(n_head=True), T,
                        r"GPTConfig: n_head=True \(a bool\); expected an integer", "n_head"),
    "gpt_n_embd_zero": (lambda: gpt_config(n_embd=0), I, r"GPTConfig: n_embd=0;", "n_embd"),
    "gpt_n_embd_not_divisible": (lambda: gpt_config(n_embd=10, n_head=3), I,
                                 r"GPTConfig: n_embd=10 is not divisible by n_head=3; expected "
                                 r"n_embd a multiple of n_head \(for example 9 or 12\), or "
                                 r"a n_head that divides 10", "n_head"),
    "gpt_vocab_size_zero": (lambda: gpt_config(vocab_size=0), I,
                            r"GPTConfig: vocab_size=0; expected an integer ≥ 1", "vocab_size"),
    "gpt_vocab_size_str": (lambda: gpt_config(vocab_size="65"), T,
                           r"GPTConfig: vocab_size='65' \(a str\)", "vocab_size"),
    "gpt_block_size_negative": (lambda: gpt_config(block_size=-1), I,
                                r"GPTConfig: block_size=-1;", "block_size"),
    "gpt_block_size_float": (lambda: gpt_config(block_size=8.5), T,
                             r"GPTConfig: block_size=8.5 \(a float\)", "block_size"),
    "gpt_n_layer_zero": (lambda: gpt_config(n_layer=0), I, r"GPTConfig: n_layer=0;", "n_layer"),
    "gpt_n_layer_float": (lambda: gpt_config(n_layer=2.0), T,
                          r"GPTConfig: n_layer=2.0 \(a float\); expected an integer ≥ 1",
                          "n_layer"),
    "gpt_dropout_nan": (lambda: gpt_config(dropout=NAN), I,
                        r"GPTConfig: dropout=nan \(not a finite number\); expected a finite "
                        r"number in \[0, 1\]", "dropout"),
    "gpt_dropout_above_one": (lambda: gpt_config(dropout=1.5), I,
                              r"GPTConfig: dropout=1.5; expected a finite number in \[0, 1\]",
                              "dropout"),
    "gpt_dropout_negative": (lambda: gpt_config(dropout=-0.1), I, r"GPTConfig: dropout=-0.1;",
                             "dropout"),
    "gpt_dropout_str": (lambda: gpt_config(dropout="0.1"), T,
                        r"GPTConfig: dropout='0.1' \(a str\)", "dropout"),
    "gpt_bias_str": (lambda: gpt_config(bias="yes"), T,
                     r"GPTConfig: bias='yes' \(a str\); expected True or False", "bias"),
    "gpt_unknown_preset": (lambda: GPTConfig.from_preset("gpt5"), I,
                           r"GPTConfig.from_preset: unknown GPT preset 'gpt5'; expected name to be "
                           r"one of \['baby-gpt'", "name"),
    "gpt_preset_unhashable": (lambda: GPTConfig.from_preset(["tiny"]), I,
                              r"unknown GPT preset \['tiny'\]", "name"),
    "gpt_preset_override": (lambda: GPTConfig.from_preset("tiny", n_head=0), I,
                            r"GPTConfig: n_head=0;", "n_head"),
    # --------------------------------------------------------------------- BertConfig
    "bert_n_head_zero": (lambda: bert_config(n_head=0), I, r"BertConfig: n_head=0;", "n_head"),
    "bert_not_divisible": (lambda: bert_config(n_embd=30, n_head=4), I,
                           r"BertConfig: n_embd=30 is not divisible by n_head=4", "n_embd"),
    "bert_dim_feedforward_zero": (lambda: bert_config(dim_feedforward=0), I,
                                  r"BertConfig: dim_feedforward=0; expected an integer ≥ 1 "
                                  r"\(None for 4·n_embd\)", "dim_feedforward"),
    "bert_dropout_nan": (lambda: bert_config(dropout=NAN), I, r"BertConfig: dropout=nan",
                         "dropout"),
    "bert_layer_norm_eps_zero": (lambda: bert_config(layer_norm_eps=0), I,
                                 r"BertConfig: layer_norm_eps=0; expected a finite number > 0",
                                 "layer_norm_eps"),
    "bert_layer_norm_eps_nan": (lambda: bert_config(layer_norm_eps=NAN), I,
                                r"BertConfig: layer_norm_eps=nan", "layer_norm_eps"),
    "bert_type_vocab_size_zero": (lambda: bert_config(type_vocab_size=0), I,
                                  r"BertConfig: type_vocab_size=0;", "type_vocab_size"),
    "bert_max_position_bool": (lambda: bert_config(max_position=True), T,
                               r"BertConfig: max_position=True \(a bool\)", "max_position"),
    "bert_nsp_weight_nan": (lambda: bert_config(nsp_weight=NAN), I,
                            r"BertConfig: nsp_weight=nan", "nsp_weight"),
    "bert_nsp_weight_negative": (lambda: bert_config(nsp_weight=-1.0), I,
                                 r"BertConfig: nsp_weight=-1.0; expected a finite number ≥ 0",
                                 "nsp_weight"),
    "bert_vocab_size_float": (lambda: bert_config(vocab_size=100.0), T,
                              r"BertConfig: vocab_size=100.0 \(a float\)", "vocab_size"),
    "bert_unknown_preset": (lambda: BertConfig.from_preset("bert-huge"), I,
                            r"BertConfig.from_preset: unknown BERT preset 'bert-huge'; "
                            r"expected name", "name"),
    # ------------------------------------------------------------------ Seq2SeqConfig
    "s2s_n_head_zero": (lambda: seq2seq_config(n_head=0), I, r"Seq2SeqConfig: n_head=0;",
                        "n_head"),
    "s2s_not_divisible": (lambda: seq2seq_config(d_model=30, n_head=4), I,
                          r"Seq2SeqConfig: d_model=30 is not divisible by n_head=4", "d_model"),
    "s2s_src_vocab_zero": (lambda: seq2seq_config(src_vocab_size=0), I,
                           r"Seq2SeqConfig: src_vocab_size=0;", "src_vocab_size"),
    "s2s_tgt_vocab_float": (lambda: seq2seq_config(tgt_vocab_size=2.5), T,
                            r"Seq2SeqConfig: tgt_vocab_size=2.5 \(a float\)", "tgt_vocab_size"),
    "s2s_dropout_nan": (lambda: seq2seq_config(dropout=NAN), I, r"Seq2SeqConfig: dropout=nan",
                        "dropout"),
    "s2s_activation": (lambda: seq2seq_config(activation="swish"), I,
                       r"Seq2SeqConfig: activation='swish'; expected one of 'gelu', "
                       r"'gelu_tanh', 'relu'", "activation"),
    "s2s_pad_id_outside": (lambda: seq2seq_config(pad_id=12), I,
                           r"Seq2SeqConfig: pad_id=12 \(outside the vocabularies\); expected an "
                           r"integer in \[0, 11\)", "pad_id"),
    "s2s_pad_id_negative": (lambda: seq2seq_config(pad_id=-1), I, r"Seq2SeqConfig: pad_id=-1",
                            "pad_id"),
    "s2s_pad_id_float": (lambda: seq2seq_config(pad_id=1.0), T, r"Seq2SeqConfig: pad_id=1.0",
                         "pad_id"),
    "s2s_norm_first_str": (lambda: seq2seq_config(norm_first="no"), T,
                           r"Seq2SeqConfig: norm_first='no' \(a str\); expected True or False",
                           "norm_first"),
    "s2s_layer_norm_eps_negative": (lambda: seq2seq_config(layer_norm_eps=-1e-5), I,
                                    r"Seq2SeqConfig: layer_norm_eps=-1e-05; expected a finite "
                                    r"number > 0", "layer_norm_eps"),
    "s2s_max_len_zero": (lambda: seq2seq_config(max_len=0), I, r"Seq2SeqConfig: max_len=0;",
                         "max_len"),
    "s2s_layers_negative": (lambda: seq2seq_config(num_encoder_layers=-1), I,
                            r"Seq2SeqConfig: num_encoder_layers=-1;", "num_encoder_layers"),
    "s2s_unknown_preset": (lambda: Seq2SeqConfig.from_preset("huge", 10, 10), I,
                           r"Seq2SeqConfig.from_preset: unknown seq2seq preset 'huge'; expected "
                           r"name to be one of", "name"),
    # -------------------------------------------------------------------------- GPT
    "gpt_config_dict": (lambda: GPT(dict(vocab_size=V)), T,
                        r"GPT: config is a dict \(build one with GPTConfig\(\*\*d\)\); expected a "
                        r"GPTConfig", "config"),
    "gpt_idx_1d": (lambda: gpt()(ids(1, 2)), I,
                   r"GPT: idx should be token ids of shape \(batch, time\), got shape \(2,\)",
                   "idx"),
    "gpt_idx_float": (lambda: gpt()(np.zeros((1, 3))), T,
                      r"GPT: idx has dtype float64; expected integer token ids", "idx"),
    "gpt_idx_out_of_vocab": (lambda: gpt()(ids([1, 11])), I,
                             r"GPT: idx holds id 11, outside the vocabulary of 11 tokens; "
                             r"expected 0 ≤ id < 11", "idx"),
    "gpt_idx_negative": (lambda: gpt()(ids([-1, 2])), I, r"GPT: idx holds id -1", "idx"),
    "gpt_idx_empty": (lambda: gpt()(np.zeros((1, 0), dtype=np.int64)), I,
                      r"GPT: idx of shape \(1, 0\) holds no tokens", "idx"),
    "gpt_idx_too_long": (lambda: gpt()(np.zeros((1, 9), dtype=np.int64)), I,
                         r"GPT: a sequence of 9 positions is longer than block_size=8 \(idx of "
                         r"shape \(1, 9\)\); crop the input to the last 8 tokens", "idx"),
    "gpt_targets_shape": (lambda: gpt()(PROMPT, ids([1, 2])), I,
                          r"GPT: targets has shape \(1, 2\); expected token ids of shape "
                          r"\(1, 3\)", "targets"),
    "gpt_targets_float": (lambda: gpt()(PROMPT, np.zeros((1, 3))), T,
                          r"GPT: targets has dtype float64", "targets"),
    "gpt_targets_out_of_vocab": (lambda: gpt()(PROMPT, ids([1, 2, 11])), I,
                                 r"GPT: targets holds id 11, outside the vocabulary of 11 tokens;"
                                 r" expected 0 ≤ id < 11 or -100 \(ignored\)", "targets"),
    # ---------------------------------------------------------------------- generate
    "generate_max_new_tokens_negative": (lambda: gpt().generate(PROMPT, -1), I,
                                         r"generate: max_new_tokens=-1; expected an integer ≥ 0",
                                         "max_new_tokens"),
    "generate_max_new_tokens_float": (lambda: gpt().generate(PROMPT, 2.5), T,
                                      r"generate: max_new_tokens=2.5 \(a float\)",
                                      "max_new_tokens"),
    "generate_max_new_tokens_bool": (lambda: gpt().generate(PROMPT, True), T,
                                     r"generate: max_new_tokens=True \(a bool\)",
                                     "max_new_tokens"),
    "generate_temperature_nan": (lambda: gpt().generate(PROMPT, 2, temperature=NAN), I,
                                 r"generate: temperature=nan \(not a finite number\); expected a "
                                 r"finite number ≥ 0 \(0 means greedy decoding\)", "temperature"),
    "generate_temperature_negative": (lambda: gpt().generate(PROMPT, 2, temperature=-1.0), I,
                                      r"generate: temperature=-1.0; expected a finite number ≥ 0",
                                      "temperature"),
    "generate_temperature_inf": (lambda: gpt().generate(PROMPT, 2, temperature=INF), I,
                                 r"generate: temperature=inf \(not a finite number\)",
                                 "temperature"),
    "generate_temperature_str": (lambda: gpt().generate(PROMPT, 2, temperature="1"), T,
                                 r"generate: temperature='1' \(a str\)", "temperature"),
    "generate_temperature_nan_greedy": (
        lambda: gpt().generate(PROMPT, 2, temperature=NAN, do_sample=False), I,
        r"generate: temperature=nan", "temperature"),
    "generate_top_k_zero": (lambda: gpt().generate(PROMPT, 2, top_k=0), I,
                            r"generate: top_k=0; expected an integer ≥ 1 or None", "top_k"),
    "generate_top_k_negative": (lambda: gpt().generate(PROMPT, 2, top_k=-1), I,
                                r"generate: top_k=-1;", "top_k"),
    "generate_top_k_float": (lambda: gpt().generate(PROMPT, 2, top_k=2.5), T,
                             r"generate: top_k=2.5 \(a float\)", "top_k"),
    "generate_top_p_zero": (lambda: gpt().generate(PROMPT, 2, top_p=0.0), I,
                            r"generate: top_p=0.0; expected a finite number in \(0, 1\] or None",
                            "top_p"),
    "generate_top_p_above_one": (lambda: gpt().generate(PROMPT, 2, top_p=1.5), I,
                                 r"generate: top_p=1.5;", "top_p"),
    "generate_top_p_nan": (lambda: gpt().generate(PROMPT, 2, top_p=NAN), I,
                           r"generate: top_p=nan", "top_p"),
    "generate_do_sample_str": (lambda: gpt().generate(PROMPT, 2, do_sample="no"), T,
                               r"generate: do_sample='no' \(a str\); expected True or False",
                               "do_sample"),
    "generate_use_cache_int": (lambda: generation.generate(gpt(), PROMPT, 2, use_cache=2), T,
                               r"generate: use_cache=2 \(an int\); expected True or False",
                               "use_cache"),
    "generate_rng_int": (lambda: generation.generate(gpt(), PROMPT, 2, rng=7), T,
                         r"generate: rng=7; expected None or a random generator", "rng"),
    "generate_empty_prompt": (lambda: gpt().generate(np.zeros((1, 0), dtype=np.int64), 3), I,
                              r"generate: the prompt is empty \(idx of shape \(1, 0\)\)", "idx"),
    "generate_float_prompt": (lambda: gpt().generate(np.zeros((1, 2)), 3), T,
                              r"generate: idx should be integer token ids .* dtype float64",
                              "idx"),
    "generate_prompt_out_of_vocab": (lambda: gpt().generate(ids([3, 12]), 3), I,
                                     r"generate: idx holds id 12, outside the vocabulary of 11",
                                     "idx"),
    "sample_next_temperature_nan": (lambda: generation.sample_next(LOGITS, temperature=NAN), I,
                                    r"sample_next: temperature=nan", "temperature"),
    "sample_next_logits_1d": (lambda: generation.sample_next(np.zeros(V)), I,
                              r"sample_next: logits=.*shape \(11,\).*; expected a float array "
                              r"\(batch, vocab\)", "logits"),
    "sample_next_top_p_str": (lambda: generation.sample_next(LOGITS, top_p="0.9"), T,
                              r"sample_next: top_p='0.9' \(a str\)", "top_p"),
    # ------------------------------------------------------------------- beam search
    "beam_width_zero": (lambda: generation.beam_search(gpt(), PROMPT, 3, beam_width=0), I,
                        r"beam_search: beam_width=0; expected an integer ≥ 1 \(1 is greedy "
                        r"decoding\)", "beam_width"),
    "beam_width_negative": (lambda: generation.beam_search(gpt(), PROMPT, 3, beam_width=-1), I,
                            r"beam_search: beam_width=-1;", "beam_width"),
    "beam_width_float": (lambda: generation.beam_search(gpt(), PROMPT, 3, beam_width=2.0), T,
                         r"beam_search: beam_width=2.0 \(a float\)", "beam_width"),
    "beam_max_new_tokens_negative": (lambda: generation.beam_search(gpt(), PROMPT, -1), I,
                                     r"beam_search: max_new_tokens=-1; expected an integer ≥ 0",
                                     "max_new_tokens"),
    "beam_eos_out_of_vocab": (lambda: generation.beam_search(gpt(), PROMPT, 3, eos_id=11), I,
                              r"beam_search: eos_id=11; expected an integer in \[0, 11\)",
                              "eos_id"),
    "beam_eos_negative": (lambda: generation.beam_search(gpt(), PROMPT, 3, eos_id=-1), I,
                          r"beam_search: eos_id=-1;", "eos_id"),
    "beam_length_penalty_nan": (
        lambda: generation.beam_search(gpt(), PROMPT, 3, length_penalty=NAN), I,
        r"beam_search: length_penalty=nan \(not a finite number\); expected a finite number",
        "length_penalty"),
    "beam_length_penalty_str": (
        lambda: generation.beam_search(gpt(), PROMPT, 3, length_penalty="1"), T,
        r"beam_search: length_penalty='1' \(a str\)", "length_penalty"),
    "beam_prompt_out_of_vocab": (lambda: generation.beam_search(gpt(), ids([20]), 3), I,
                                 r"beam_search: idx holds id 20", "idx"),
    # ------------------------------------------------------------------------ BERT
    "bert_config_wrong_class": (lambda: BertModel(gpt_config()), T,
                                r"BertModel: config is a GPTConfig; expected a BertConfig",
                                "config"),
    "bert_input_ids_out_of_vocab": (lambda: bert_call(input_ids=ids([2, 11, 3])), I,
                                    r"BertModel: input_ids holds id 11, outside the vocabulary "
                                    r"of 11 tokens", "input_ids"),
    "bert_input_ids_float": (lambda: bert_call(input_ids=np.zeros((1, 3))), T,
                             r"BertModel: input_ids should hold integers, got dtype float64",
                             "input_ids"),
    "bert_input_ids_empty": (lambda: bert_call(input_ids=np.zeros((1, 0), dtype=np.int64)), I,
                             r"BertModel: input_ids of shape \(1, 0\) holds no tokens",
                             "input_ids"),
    "bert_token_type_negative": (lambda: bert_call(token_type_ids=ids([0, 0, -1, 0],
                                                                      [0, 0, 0, 0])), I,
                                 r"BertModel: token_type_ids hold segment id -1, but "
                                 r"type_vocab_size=2; expected 0 ≤ token_type_ids < 2",
                                 "token_type_ids"),
    "bert_mlm_labels_float": (lambda: bert_call(mlm_labels=np.zeros((2, 4))), T,
                              r"BertForPreTraining: mlm_labels has dtype float64", "mlm_labels"),
    "bert_mlm_labels_out_of_vocab": (lambda: bert_call(mlm_labels=np.full((2, 4), 11)), I,
                                     r"BertForPreTraining: mlm_labels holds id 11, outside the "
                                     r"vocabulary of 11 tokens; expected 0 ≤ id < 11 or -100",
                                     "mlm_labels"),
    "bert_nsp_labels_out_of_range": (lambda: bert_call(nsp_labels=ids(1, 2)), I,
                                     r"BertForPreTraining: nsp_labels holds id 2, outside the "
                                     r"vocabulary of 2 tokens", "nsp_labels"),
    "bert_nsp_labels_shape": (lambda: bert_call(nsp_labels=ids([1], [0])), I,
                              r"BertForPreTraining: nsp_labels of shape \(2, 1\) should be "
                              r"\(2,\)", "nsp_labels"),
    "pretraining_batch_size_negative": (lambda: pretraining_batch(batch_size=-1), I,
                                        r"make_pretraining_batch: batch_size=-1; expected an "
                                        r"integer ≥ 1 or None", "batch_size"),
    "pretraining_cls_outside": (lambda: pretraining_batch(cls_id=11), I,
                                r"make_pretraining_batch: cls_id=11; expected an integer in "
                                r"\[0, 11\) \(vocab_size=11\)", "cls_id"),
    "pretraining_max_length_float": (lambda: pretraining_batch(max_length=8.5), T,
                                     r"make_pretraining_batch: max_length=8.5 \(a float\)",
                                     "max_length"),
    "pretraining_mask_prob_nan": (lambda: pretraining_batch(mask_prob=NAN), I,
                                  r"make_pretraining_batch: mask_prob=nan", "mask_prob"),
    # --------------------------------------------------------------------- seq2seq
    "s2s_config_none": (lambda: Seq2SeqTransformer(None), T,
                        r"Seq2SeqTransformer: config is None; expected a Seq2SeqConfig", "config"),
    "s2s_src_1d": (s2s(lambda m: m(ids(1, 2), TGT)), I,
                   r"Seq2SeqTransformer: src should be integer token ids of shape \(batch, "
                   r"time\), got shape \(2,\)", "src"),
    "s2s_src_float": (s2s(lambda m: m(np.zeros((1, 3)), TGT)), T,
                      r"Seq2SeqTransformer: src should be integer token ids .* dtype float64",
                      "src"),
    "s2s_src_out_of_vocab": (s2s(lambda m: m(ids([4, 11]), TGT)), I,
                             r"Seq2SeqTransformer: src holds id 11, outside the vocabulary of 11 "
                             r"tokens", "src"),
    "s2s_tgt_in_out_of_vocab": (s2s(lambda m: m(SRC, ids([1, 12]))), I,
                                r"Seq2SeqTransformer: tgt_in holds id 12, outside the vocabulary "
                                r"of 12 tokens", "tgt_in"),
    "s2s_tgt_out_negative": (s2s(lambda m: m(SRC, TGT, ids([4, -3, 2]))), I,
                             r"Seq2SeqTransformer: tgt_out holds id -3", "tgt_out"),
    "s2s_src_empty": (s2s(lambda m: m(np.zeros((1, 0), dtype=np.int64), TGT)), I,
                      r"Seq2SeqTransformer: src of shape \(1, 0\) holds no tokens", "src"),
    "s2s_label_smoothing_nan": (s2s(lambda m: m(SRC, TGT, TGT, label_smoothing=NAN)), I,
                                r"Seq2SeqTransformer: label_smoothing=nan", "label_smoothing"),
    "s2s_greedy_max_len_zero": (s2s(lambda m: m.greedy_decode(SRC, 0, 1, 2)), I,
                                r"Seq2SeqTransformer.greedy_decode: max_len=0; expected an "
                                r"integer ≥ 1", "max_len"),
    "s2s_greedy_max_len_float": (s2s(lambda m: m.greedy_decode(SRC, 2.5, 1, 2)), T,
                                 r"greedy_decode: max_len=2.5 \(a float\)", "max_len"),
    "s2s_greedy_bos_outside": (s2s(lambda m: m.greedy_decode(SRC, 3, 99, 2)), I,
                               r"Seq2SeqTransformer.greedy_decode: bos_id=99; expected an "
                               r"integer in \[0, 12\) \(an id of the target vocabulary\)",
                               "bos_id"),
    "s2s_greedy_eos_negative": (s2s(lambda m: m.greedy_decode(SRC, 3, 1, -1)), I,
                                r"greedy_decode: eos_id=-1;", "eos_id"),
    "s2s_greedy_past_max_len": (s2s(lambda m: m.greedy_decode(SRC, 9, 1, 2)), I,
                                r"Seq2SeqTransformer: decoding reaches position 8, beyond "
                                r"max_len=8", "max_len"),
    "s2s_beam_width_zero": (s2s(lambda m: m.beam_search(SRC, 0, 3, 1, 2)), I,
                            r"Seq2SeqTransformer.beam_search: beam_width=0;", "beam_width"),
    "s2s_beam_length_penalty_inf": (
        s2s(lambda m: m.beam_search(SRC, 2, 3, 1, 2, length_penalty=INF)), I,
        r"Seq2SeqTransformer.beam_search: length_penalty=inf", "length_penalty"),
    "s2s_beam_eos_str": (s2s(lambda m: m.beam_search(SRC, 2, 3, 1, "2")), T,
                         r"Seq2SeqTransformer.beam_search: eos_id='2' \(a str\)", "eos_id"),
    "translate_batch_size_zero": (lambda: translation_run().translate(["ab"], batch_size=0), I,
                                  r"TranslationRun.translate: batch_size=0; expected an "
                                  r"integer ≥ 1", "batch_size"),
    "translate_beam_width_zero": (lambda: translation_run().translate(["ab"], beam_width=0), I,
                                  r"TranslationRun.translate: beam_width=0", "beam_width"),
    "translate_max_len_zero": (lambda: translation_run().translate(["ab"], max_len=0), I,
                               r"TranslationRun.translate: max_len=0; expected an integer in "
                               r"\[1, 9\)", "max_len"),
    "translate_one_string": (lambda: translation_run().translate("abc"), T,
                             r"TranslationRun.translate: sentences='abc'; expected a list of "
                             r"strings", "sentences"),
    "train_translation_log_every_zero": (
        lambda: train_translation([("ab", "ba")], preset="tiny", steps=1, log_every=0), I,
        r"train_translation: log_every=0; expected an integer ≥ 1", "log_every"),
    "train_translation_no_pairs": (lambda: train_translation([]), I,
                                   r"train_translation: pairs=\[\] \(no sentence pairs to train "
                                   r"on\)", "pairs"),
    "trim_at_eos_eos_str": (lambda: trim_at_eos(ids([4, 2]), "2"), T,
                            r"trim_at_eos: eos_id='2' \(a str\)", "eos_id"),
    # ---------------------------------------------------------------------- layers
    "linear_in_zero": (lambda: nn.Linear(0, 4), I, r"Linear: in_features=0; expected an integer "
                       r"≥ 1", "in_features"),
    "linear_out_zero": (lambda: nn.Linear(4, 0), I, r"Linear: out_features=0;", "out_features"),
    "linear_in_negative": (lambda: nn.Linear(-1, 2), I, r"Linear: in_features=-1;",
                           "in_features"),
    "linear_in_float": (lambda: nn.Linear(4.0, 2), T, r"Linear: in_features=4.0 \(a float\)",
                        "in_features"),
    "linear_bias_str": (lambda: nn.Linear(4, 2, bias="no"), T,
                        r"Linear: bias='no' \(a str\); expected True or False", "bias"),
    "embedding_rows_zero": (lambda: nn.Embedding(0, 4), I,
                            r"Embedding: num_embeddings=0; expected an integer ≥ 1",
                            "num_embeddings"),
    "embedding_dim_negative": (lambda: nn.Embedding(10, -1), I, r"Embedding: embedding_dim=-1;",
                               "embedding_dim"),
    "embedding_rows_float": (lambda: nn.Embedding(10.5, 4), T,
                             r"Embedding: num_embeddings=10.5 \(a float\)", "num_embeddings"),
    "layer_norm_zero": (lambda: nn.LayerNorm(0), I, r"LayerNorm: normalized_shape=0;",
                        "normalized_shape"),
    "layer_norm_two_axes": (lambda: nn.LayerNorm((3, 4)), I,
                            r"LayerNorm: .* normalized_shape must be an int or a 1-tuple, got "
                            r"\(3, 4\)", "normalized_shape"),
    "layer_norm_str": (lambda: nn.LayerNorm("4"), T, r"LayerNorm: normalized_shape='4' \(a str\)",
                       "normalized_shape"),
    "layer_norm_eps_zero": (lambda: nn.LayerNorm(4, eps=0), I,
                            r"LayerNorm: eps=0; expected a finite number > 0", "eps"),
    "layer_norm_eps_negative": (lambda: nn.LayerNorm(4, eps=-1e-5), I, r"LayerNorm: eps=-1e-05",
                                "eps"),
    "layer_norm_eps_nan": (lambda: nn.LayerNorm(4, eps=NAN), I, r"LayerNorm: eps=nan", "eps"),
    "dropout_above_one": (lambda: nn.Dropout(1.5), I,
                          r"Dropout: p=1.5 is not a probability; expected 0 ≤ p ≤ 1", "p"),
    "dropout_nan": (lambda: nn.Dropout(NAN), I, r"Dropout: p=nan \(not a finite number\)", "p"),
    "dropout_str": (lambda: nn.Dropout("0.1"), T, r"Dropout: p='0.1' \(a str\)", "p"),
    "dropout_bool": (lambda: nn.Dropout(True), T, r"Dropout: p=True \(a bool\)", "p"),
    "attention_not_divisible": (lambda: nn.MultiHeadAttention(10, 3), I,
                                r"MultiHeadAttention: embed_dim=10 is not divisible by "
                                r"num_heads=3; expected embed_dim a multiple of num_heads",
                                "num_heads"),
    "attention_heads_zero": (lambda: nn.MultiHeadAttention(8, 0), I,
                             r"MultiHeadAttention: num_heads=0; expected an integer ≥ 1",
                             "num_heads"),
    "attention_heads_negative": (lambda: nn.MultiHeadAttention(8, -2), I,
                                 r"MultiHeadAttention: num_heads=-2;", "num_heads"),
    "attention_width_zero": (lambda: nn.MultiHeadAttention(0, 2), I,
                             r"MultiHeadAttention: embed_dim=0;", "embed_dim"),
    "attention_dropout": (lambda: nn.MultiHeadAttention(8, 2, dropout=2.0), I,
                          r"MultiHeadAttention: dropout=2.0; expected a finite number in "
                          r"\[0, 1\]", "dropout"),
    "attention_cross_str": (lambda: nn.MultiHeadAttention(8, 2, cross_attention="yes"), T,
                            r"MultiHeadAttention: cross_attention='yes'", "cross_attention"),
    "encoder_layer_nhead": (lambda: nn.TransformerEncoderLayer(8, 3), I,
                            r"TransformerEncoderLayer: d_model=8 is not divisible by nhead=3",
                            "nhead"),
    "encoder_layer_ff_zero": (lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=0), I,
                              r"TransformerEncoderLayer: dim_feedforward=0;", "dim_feedforward"),
    "encoder_layer_eps_zero": (lambda: nn.TransformerEncoderLayer(8, 2, 16, layer_norm_eps=0), I,
                               r"TransformerEncoderLayer: layer_norm_eps=0;", "layer_norm_eps"),
    "decoder_layer_activation": (lambda: nn.TransformerDecoderLayer(8, 2, activation="swish"), I,
                                 r"TransformerDecoderLayer: unknown activation 'swish' \(the "
                                 r"argument activation\); expected one of", "activation"),
    "decoder_layer_dropout_nan": (lambda: nn.TransformerDecoderLayer(8, 2, dropout=NAN), I,
                                  r"TransformerDecoderLayer: dropout=nan", "dropout"),
    "feed_forward_width_zero": (lambda: nn.FeedForward(8, 0), I, r"FeedForward: d_ff=0;", "d_ff"),
    "feed_forward_dropout": (lambda: nn.FeedForward(8, 16, dropout=-1), I,
                             r"FeedForward: dropout=-1;", "dropout"),
    "sinusoidal_width_zero": (lambda: nn.SinusoidalPositionalEncoding(0), I,
                              r"SinusoidalPositionalEncoding: d_model=0;", "d_model"),
    "sinusoidal_max_len_negative": (lambda: nn.SinusoidalPositionalEncoding(8, max_len=-1), I,
                                    r"SinusoidalPositionalEncoding: max_len=-1;", "max_len"),
    "sinusoidal_offset_float": (
        lambda: nn.SinusoidalPositionalEncoding(8, 16)(sl.tensor(np.zeros((1, 2, 8))), 1.5), T,
        r"SinusoidalPositionalEncoding: offset=1.5 \(a float\); expected an integer ≥ 0",
        "offset"),
    "learned_positions_zero": (lambda: nn.LearnedPositionalEmbedding(0, 8), I,
                               r"LearnedPositionalEmbedding: max_len=0;", "max_len"),
    "kv_cache_max_len_zero": (lambda: nn.KVCache(0), I,
                              r"KVCache: max_len=0; expected an integer ≥ 1 or None", "max_len"),
    "init_n_residual_layers_zero": (lambda: init_transformer_weights(gpt(), n_residual_layers=0),
                                    I, r"init_transformer_weights: n_residual_layers=0;",
                                    "n_residual_layers"),
    "init_std_nan": (lambda: init_transformer_weights(gpt(), std=NAN), I,
                     r"init_transformer_weights: std=nan", "std"),
    "init_not_a_module": (lambda: init_transformer_weights("model"), T,
                          r"init_transformer_weights: module='model'; expected an nn.Module",
                          "module"),
    # --------------------------------------------------------------- sampling filters
    "top_k_filter_zero": (lambda: top_k_filter(LOGITS, 0), I,
                          r"top_k_filter: k must be an integer ≥ 1, got 0", "k"),
    "top_k_filter_float": (lambda: top_k_filter(LOGITS, 2.0), T,
                           r"top_k_filter: k must be an integer ≥ 1, got float 2.0", "k"),
    "top_p_filter_nan": (lambda: top_p_filter(LOGITS, NAN), I,
                         r"top_p_filter: p must be in \(0, 1\], got nan", "p"),
    "top_p_filter_str": (lambda: top_p_filter(LOGITS, "0.9"), T,
                         r"top_p_filter: p must be a number in \(0, 1\], got str '0.9'", "p"),
    # ------------------------------------------------------------------- tokenizers
    "char_train_vocab_size_str": (lambda: CharTokenizer().train("abc", vocab_size="3"), T,
                                  r"CharTokenizer.train: vocab_size='3' \(a str\)", "vocab_size"),
    "char_train_vocab_size_small": (lambda: CharTokenizer().train("abc", vocab_size=2), I,
                                    r"CharTokenizer.train: the text has 3 distinct characters, "
                                    r"more than vocab_size=2", "vocab_size"),
    "char_encode_not_str": (lambda: CharTokenizer().train("abc").encode(5), T,
                            r"CharTokenizer.encode: text=5 \(an int\); expected a string",
                            "text"),
    "char_decode_float": (lambda: CharTokenizer().train("abc").decode([1.7]), T,
                          r"CharTokenizer.decode: ids\[0\]=1.7 \(a float\); expected an "
                          r"integer token id", "ids"),
    "char_decode_str": (lambda: CharTokenizer().train("abc").decode("ab"), T,
                        r"CharTokenizer.decode: ids='ab' \(a str\)", "ids"),
    "char_decode_bool": (lambda: CharTokenizer().train("abc").decode([True]), T,
                         r"CharTokenizer.decode: ids\[0\]=True \(a bool\)", "ids"),
    "char_decode_out_of_vocab": (lambda: CharTokenizer().train("abc").decode([3]), I,
                                 r"CharTokenizer.decode: id 3 is outside the vocabulary of 3 "
                                 r"characters; expected ids in \[0, 3\)", "ids"),
    "bpe_train_vocab_size_float": (lambda: BPETokenizer().train("abc", vocab_size=300.5), T,
                                   r"BPETokenizer.train: vocab_size=300.5 \(a float\)",
                                   "vocab_size"),
    "bpe_train_vocab_size_small": (lambda: BPETokenizer().train("abc", vocab_size=200), I,
                                   r"BPETokenizer.train: vocab_size=200 is smaller than the 256 "
                                   r"byte tokens .*; expected vocab_size ≥ 256", "vocab_size"),
    "bpe_decode_float": (lambda: BPETokenizer().decode([97.5]), T,
                         r"BPETokenizer.decode: ids\[0\]=97.5 \(a float\)", "ids"),
    "bpe_decode_out_of_vocab": (lambda: BPETokenizer().decode([256]), I,
                                r"BPETokenizer.decode: id 256 is outside the vocabulary of 256 "
                                r"ids", "ids"),
    "bpe_token_bytes_str": (lambda: BPETokenizer().token_bytes("a"), T,
                            r"BPETokenizer.token_bytes: token_id='a' \(a str\)", "token_id"),
    "bpe_allowed_special_str": (lambda: BPETokenizer().encode("a", allowed_special="none"), I,
                                r"BPETokenizer.encode: allowed_special='none'; expected 'all' or "
                                r"a list of special tokens", "allowed_special"),
    "split_words_bytes": (lambda: split_words(b"hello"), T,
                          r"split_words: text=b'hello' \(a bytes\); expected a string", "text"),
    "special_decode_negative": (lambda: SpecialCharTokenizer().train(["好差"]).decode([-1]), I,
                                r"SpecialCharTokenizer.decode: id -1 is outside the vocabulary "
                                r"of 7 tokens", "ids"),
    "special_decode_too_large": (lambda: SpecialCharTokenizer().train(["好差"]).decode([99]), I,
                                 r"SpecialCharTokenizer.decode: id 99 is outside", "ids"),
    "special_train_max_size_zero": (lambda: SpecialCharTokenizer().train(["好"], max_size=0), I,
                                    r"SpecialCharTokenizer.train: max_size=0; expected an "
                                    r"integer ≥ 1 or None", "max_size"),
    "special_encode_not_str": (lambda: SpecialCharTokenizer().encode(["好"]), T,
                               r"SpecialCharTokenizer.encode: text=\['好'\] \(a list\)", "text"),
    "char_vocabulary_not_iterable": (lambda: CharVocabulary(5), T,
                                     r"CharVocabulary: texts=5; expected an iterable of strings",
                                     "texts"),
    "char_vocabulary_encode_list": (lambda: CharVocabulary(["ab"]).encode(["a"]), T,
                                    r"CharVocabulary.encode: text=\['a'\]", "text"),
    "char_vocabulary_decode_float": (lambda: CharVocabulary(["ab"]).decode([3.5]), T,
                                     r"CharVocabulary.decode: ids\[0\]=3.5 \(a float\)", "ids"),
    # --------------------------------------------------------------------- batching
    "mask_tokens_float_mask_id": (lambda: mask_tokens(ids(1, 2), 1.5, V), T,
                                  r"mask_tokens: mask_token_id=1.5 \(a float\)", "mask_token_id"),
    "mask_tokens_mask_id_outside": (lambda: mask_tokens(ids(1, 2), 1000, V), I,
                                    r"mask_tokens: mask_token_id=1000 is outside the vocabulary "
                                    r"\[0, 11\)", "mask_token_id"),
    "mask_tokens_special_ids_int": (lambda: mask_tokens(ids(1, 2), 3, V, special_ids=3), T,
                                    r"mask_tokens: special_ids=3 \(an int\); expected a sequence"
                                    r" of integer token ids", "special_ids"),
    "mask_tokens_mask_prob_nan": (lambda: mask_tokens(ids(1, 2), 3, V, mask_prob=NAN), I,
                                  r"mask_tokens: mask_prob=nan", "mask_prob"),
    "mask_tokens_ids_negative": (lambda: mask_tokens(ids(-1, 2), 3, V), I,
                                 r"mask_tokens: ids hold -1, outside the vocabulary \[0, 11\)",
                                 "ids"),
    "mask_tokens_ids_too_large": (lambda: mask_tokens(ids(12, 2), 3, V), I,
                                  r"mask_tokens: ids hold 12", "ids"),
    "mask_tokens_float_ids": (lambda: mask_tokens(np.zeros(3), 3, V), T,
                              r"mask_tokens: expected integer token ids, got dtype float64", "ids"),
    "mask_tokens_vocab_size_bool": (lambda: mask_tokens(ids(0, 0), 0, True), T,
                                    r"mask_tokens: vocab_size=True \(a bool\)", "vocab_size"),
    "pad_sequences_float_pad": (lambda: pad_sequences([[1, 2], [3]], pad_id=0.5), T,
                                r"pad_sequences: pad_id=0.5 \(a float\); expected an integer",
                                "pad_id"),
    "pad_sequences_str": (lambda: pad_sequences("abc"), T,
                          r"pad_sequences: sequences='abc'; expected a list of token id lists",
                          "sequences"),
    "pad_sequences_float_ids": (lambda: pad_sequences([[1.5, 2]]), T,
                                r"pad_sequences: sequences\[0\]\[0\]=1.5 \(a float\)",
                                "sequences"),
    "pad_sequences_empty": (lambda: pad_sequences([]), I,
                            r"pad_sequences: no sequences to pad; expected at least one",
                            "sequences"),
    "get_batch_batch_size_float": (lambda: get_batch(np.arange(20), 2.5, 4), T,
                                   r"get_batch: batch_size=2.5 \(a float\)", "batch_size"),
    "get_batch_batch_size_bool": (lambda: get_batch(np.arange(20), True, 4), T,
                                  r"get_batch: batch_size=True \(a bool\)", "batch_size"),
    "get_batch_block_size_zero": (lambda: get_batch(np.arange(20), 2, 0), I,
                                  r"get_batch: batch_size and block_size must be positive, got "
                                  r"batch_size=2 and block_size=0", "block_size"),
    "get_batch_block_too_long": (lambda: get_batch(np.arange(10), 2, 10), I,
                                 r"get_batch: block_size=10 needs more than 10 tokens",
                                 "block_size"),
    "lm_batcher_batch_size_zero": (lambda: LMBatcher(np.arange(20), 0, 4), I,
                                   r"LMBatcher: batch_size and block_size must be positive",
                                   "batch_size"),
    "train_val_split_str": (lambda: train_val_split(np.arange(20), "0.1"), T,
                            r"train_val_split: val_fraction='0.1' \(a str\)", "val_fraction"),
    "train_val_split_one": (lambda: train_val_split(np.arange(20), 1.0), I,
                            r"train_val_split: val_fraction must be between 0 and 1, got 1.0",
                            "val_fraction"),
    "pack_pair_max_length_float": (lambda: pack_bert_pair([5], [6], 1, 2, 0, 10.5), T,
                                   r"pack_bert_pair: max_length=10.5 \(a float\)", "max_length"),
    "pack_pair_max_length_small": (lambda: pack_bert_pair([5], [6], 1, 2, 0, 4), I,
                                   r"pack_bert_pair: max_length=4 leaves no room", "max_length"),
    "pack_pair_cls_negative": (lambda: pack_bert_pair([5], [6], -1, 2, 0, 8), I,
                               r"pack_bert_pair: cls_id=-1; expected an integer ≥ 0", "cls_id"),
    "pack_pair_float_ids": (lambda: pack_bert_pair([5.5], [6], 1, 2, 0, 8), T,
                            r"pack_bert_pair: ids_a\[0\]=5.5 \(a float\)", "ids_a"),
    "pack_pairs_empty": (lambda: pack_bert_pairs([], 1, 2, 0, 8), I,
                         r"pack_bert_pairs: pairs is empty; expected at least one", "pairs"),
    "pack_pairs_not_triples": (lambda: pack_bert_pairs([([5], [6])], 1, 2, 0, 8), T,
                               r"pack_bert_pairs: pairs\[0\]=\(\[5\], \[6\]\); expected an "
                               r"\(ids_a, ids_b, is_next\) triple", "pairs"),
    "nsp_pairs_string_documents": (lambda: make_nsp_pairs(["ab. cd.", "ef."], RNG), T,
                                   r"make_nsp_pairs: sentences_by_document\[0\]='ab. cd.'; "
                                   r"expected a document as a list of sentences",
                                   "sentences_by_document"),
    "nsp_pairs_rng": (lambda: make_nsp_pairs(DOCS, rng=0), T,
                      r"make_nsp_pairs: rng must be a numpy.random.Generator", "rng"),
    # ------------------------------------------------------------------------- data
    "zh_en_max_level_float": (lambda: load_zh_en_pairs(max_level=2.0), T,
                              r"load_zh_en_pairs: max_level=2.0 \(a float\)", "max_level"),
    "zh_en_max_level_bool": (lambda: load_zh_en_pairs(max_level=True), T,
                             r"load_zh_en_pairs: max_level=True \(a bool\)", "max_level"),
    "zh_en_max_level_seven": (lambda: load_zh_en_pairs(max_level=7), I,
                              r"load_zh_en_pairs: max_level must be 1..6 or None, got 7",
                              "max_level"),
    "prepare_corpus_bpe_vocab_small": (
        lambda: prepare_corpus("shakespeare", "bpe", data_dir="/nonexistent", vocab_size=100), I,
        r"prepare_corpus: vocab_size=100; expected an integer ≥ 256", "vocab_size"),
    "sentiment_test_fraction_nan": (lambda: load_sentiment(test_fraction=NAN), I,
                                    r"load_sentiment: test_fraction=nan", "test_fraction"),
    "balanced_sample_k_negative": (lambda: balanced_sample(LABELLED, -1, RNG), I,
                                   r"balanced_sample: k=-1; expected an integer in \[0, 4\)",
                                   "k"),
    "balanced_sample_k_too_many": (lambda: balanced_sample(LABELLED, 5, RNG), I,
                                   r"balanced_sample: k=5; .*\(at most the 3 examples\)", "k"),
    "encode_for_classifier_kind": (
        lambda: encode_for_classifier(SpecialCharTokenizer().train(["好"]), ["好"], 8, "xlnet"),
        I, r"encode_for_classifier: kind='xlnet'; expected one of 'bert', 'gpt'", "kind"),
    "encode_for_classifier_max_length": (
        lambda: encode_for_classifier(SpecialCharTokenizer().train(["好"]), ["好"], 2), I,
        r"encode_for_classifier: max_length=2; expected an integer ≥ 3", "max_length"),
    # ---------------------------------------------------------------------- metrics
    "classification_num_labels_zero": (lambda: classification_scores([0, 1], [0, 1], 0), I,
                                       r"classification_scores: num_labels=0;", "num_labels"),
    "classification_num_labels_small": (lambda: classification_scores([0, 2], [0, 1], 2), I,
                                        r"classification_scores: num_labels=2 but the labels or "
                                        r"predictions hold class 2; expected num_labels > 2",
                                        "num_labels"),
    "classification_float_labels": (lambda: classification_scores([0.5, 1.0], [0, 1]), T,
                                    r"classification_scores: labels have dtype float64; "
                                    r"expected integer class indices", "labels"),
    "classification_negative_labels": (lambda: classification_scores([-1, 1], [0, 1]), I,
                                       r"classification_scores: labels hold -1; expected class "
                                       r"indices ≥ 0", "labels"),
    "bleu_tokenize": (lambda: bleu(["a"], ["a"], tokenize="intl"), I,
                      r"bleu: unknown tokenize='intl'", "tokenize"),
    "bleu_hypotheses_str": (lambda: bleu("a b c", ["a b c"]), T,
                            r"bleu: hypotheses must be a list of strings", "hypotheses"),
    "rouge_not_str": (lambda: rouge(5, "a"), T, r"rouge: expected a string, got int", "rouge"),
}


@pytest.mark.parametrize("name", BAD_ARGUMENTS)
def test_bad_argument_gives_a_clear_error(name):
    call, error, pattern, argument = BAD_ARGUMENTS[name]
    with pytest.raises(error, match=pattern) as info:
        call()
    assert not isinstance(info.value, (ZeroDivisionError, IndexError, KeyError))
    assert argument in str(info.value), f"the message does not name {argument!r}"


@pytest.mark.parametrize("name", [n for n in BAD_ARGUMENTS if not n.startswith(("bleu", "rouge"))])
def test_bad_argument_errors_are_argument_errors(name):
    """Everything in the table but BLEU/ROUGE's (metrics kept as they were) raises one of
    the two argument error classes, so the CLI shows it as one line."""
    from scratchlm.errors import ArgumentError, ScratchlmError
    call, error, _, argument = BAD_ARGUMENTS[name]
    with pytest.raises(ArgumentError) as info:
        call()
    assert isinstance(info.value, ScratchlmError)
    if info.value.name is not None:  # the argument it names, for code that reacts to it
        assert argument in info.value.name or info.value.name in str(info.value)


def test_the_table_covers_at_least_a_hundred_bad_arguments():
    assert len(BAD_ARGUMENTS) >= 100
    where = {pattern.split(":")[0].split(".")[0] for _, _, pattern, _ in BAD_ARGUMENTS.values()}
    assert len(where) >= 40  # spread over many entry points, not one function tried 100 ways


# ------------------------------------------------------------------ what stays allowed
def test_type_errors_are_value_errors_too():
    from scratchlm.errors import ArgumentError, ArgumentTypeError
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ValueError)
    assert issubclass(ArgumentError, ValueError) and not issubclass(ArgumentError, TypeError)
    with pytest.raises(ValueError, match="n_head=2.0"):
        gpt_config(n_head=2.0)


def test_numpy_integers_are_sizes_and_are_stored_as_ints():
    config = gpt_config(n_head=np.int64(2), n_embd=np.int32(8), bias=np.bool_(False))
    assert type(config.n_head) is int and type(config.n_embd) is int
    assert config.bias is False
    assert GPTConfig(**config.to_dict()) == config


def test_temperature_zero_is_greedy_decoding():
    greedy = gpt().generate(PROMPT, 4, do_sample=False)
    assert np.array_equal(gpt().generate(PROMPT, 4, temperature=0.0), greedy)
    assert np.array_equal(gpt().generate(PROMPT, 4, temperature=0), greedy)


def test_zero_new_tokens_returns_the_prompt():
    assert np.array_equal(gpt().generate(PROMPT, 0), PROMPT)
    beams, log_probs = generation.beam_search(gpt(), PROMPT, 0)
    assert np.array_equal(beams, PROMPT) and log_probs.tolist() == [0.0]


def test_good_arguments_still_work():
    generation.beam_search(gpt(), PROMPT, 2, beam_width=np.int64(2), eos_id=np.int64(3),
                           length_penalty=0)
    gpt().generate(PROMPT, 2, temperature=0.7, top_k=np.int64(3), top_p=1, do_sample=True)
    gpt()(PROMPT, ids([1, -100, 2]))  # -100 is ignored by the loss
    assert nn.LayerNorm([4]).normalized_shape == 4
    assert nn.Dropout(0).p == 0 and nn.Dropout(1).p == 1
    assert CharTokenizer().train("abc").decode(np.array([2, 0])) == "ca"
    assert pad_sequences([np.array([1, 2]), (3,)]).tolist() == [[1, 2], [3, 0]]
    assert classification_scores(np.array([0, 1]), [0, 1], num_labels=3)["accuracy"] == 1.0
    assert translation_run().translate(["ab"], max_len=None)[0] is not None
