"""A sweep of bad arguments across the public API (DESIGN.md's contract: tensors, ops,
layers, optimizers, models, tokenizers, generation, metrics, save/load, peft).

Each case is (call, where): the call must raise a library error — a
:class:`~scratchlm.errors.ScratchlmError` — whose message names ``where`` (the op, class
or function) and says what is expected, raised by scratchlm's own code (the innermost
frame of its traceback is in the package, never inside NumPy). None may pass silently.
tests/test_bad_arguments.py holds the configurations' and generation's table, message by
message; this sweep covers the rest of the surface, one line a case.
"""

import math
import os
import traceback

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.nn as nn
import scratchlm.optim as optim
from scratchlm import generation, metrics
from scratchlm.errors import ScratchlmError
from scratchlm.models import GPT, GPTConfig
from scratchlm.peft import PromptTuning, apply_lora
from scratchlm.sampling_filters import top_k_filter, top_p_filter
from scratchlm.text import BPETokenizer, CharTokenizer, mask_tokens

NAN, INF = math.nan, math.inf
PACKAGE = os.path.dirname(os.path.abspath(sl.__file__))


def t(*shape, grad=False):
    """A float64 tensor of ``shape`` (values 0.1, 0.2, ...)."""
    size = int(np.prod(shape)) if shape else 1
    return sl.tensor(np.arange(1, size + 1, dtype=np.float64).reshape(shape) / 10,
                     requires_grad=grad)


def tiny_gpt():
    sl.manual_seed(0)
    return GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))


def linear_params():
    return nn.Linear(3, 2).parameters()


def backward_of(loss, grad):
    return lambda: loss().backward(grad)


IDS = np.array([[1, 2, 3]])
CASES = {
    # ----------------------------------------------------------------- tensors
    "tensor_of_strings": (lambda: sl.tensor(["a", "b"]), "tensor"),
    "tensor_of_objects": (lambda: sl.tensor([object()]), "tensor"),
    "tensor_ragged": (lambda: sl.tensor([[1.0], [1.0, 2.0]]), "tensor"),
    "tensor_bad_dtype": (lambda: sl.tensor([1.0], dtype="float17"), "tensor"),
    "tensor_bad_device": (lambda: sl.tensor([1.0], device="tpu"), "tensor"),
    "tensor_int_requires_grad": (lambda: sl.tensor([1, 2], requires_grad=True), "tensor"),
    "tensor_requires_grad_str": (lambda: sl.tensor([1.0], requires_grad="yes"), "tensor"),
    "tensor_of_none": (lambda: sl.tensor(None), "tensor"),
    "tensor_complex": (lambda: sl.tensor([1j]), "tensor"),
    "tensor_dtype_str": (lambda: sl.tensor([1.0], dtype=str), "tensor"),
    "requires_grad_method_str": (lambda: t(2).requires_grad_("yes"), "requires_grad_"),
    "requires_grad_method_int": (lambda: sl.tensor([1, 2]).requires_grad_(), "requires_grad_"),
    "add_shapes": (lambda: t(2, 3) + t(4, 5), "add"),
    "sub_shapes": (lambda: t(2, 3) - t(3, 2), "sub"),
    "mul_shapes": (lambda: t(2, 3) * t(4), "mul"),
    "div_shapes": (lambda: t(2, 3) / t(2, 2), "div"),
    "add_string": (lambda: t(2) + "x", "add"),
    "add_ragged_list": (lambda: t(2, 2) + [[1.0], [1.0, 2.0]], "add"),
    "mul_none": (lambda: t(2) * None, "mul"),
    "sub_string_array": (lambda: t(2) - np.array(["a", "b"]), "sub"),
    "matmul_inner": (lambda: t(2, 3) @ t(4, 5), "matmul"),
    "matmul_scalar": (lambda: t(2, 3) @ t(), "matmul"),
    "matmul_string": (lambda: t(2, 3) @ "x", "matmul"),
    "matmul_number": (lambda: t(2, 3) @ 2, "matmul"),
    "pow_tensor_string": (lambda: t(2) ** "x", "pow"),
    "reshape_size": (lambda: t(2, 3).reshape(4, 2), "reshape"),
    "reshape_two_unknown": (lambda: t(2, 3).reshape(-1, -1), "reshape"),
    "reshape_float": (lambda: t(2, 3).reshape(2.5, 2), "reshape"),
    "transpose_axes_count": (lambda: t(2, 3).transpose(0, 1, 2), "transpose"),
    "transpose_repeated": (lambda: t(2, 3).transpose(0, 0), "transpose"),
    "transpose_out_of_range": (lambda: t(2, 3).transpose(0, 5), "transpose"),
    "transpose_float": (lambda: t(2, 3).transpose(0, 1.0), "transpose"),
    "sum_axis_range": (lambda: t(2, 3).sum(axis=2), "sum"),
    "sum_axis_float": (lambda: t(2, 3).sum(axis=1.0), "sum"),
    "sum_keepdims_str": (lambda: t(2, 3).sum(axis=0, keepdims="no"), "sum"),
    "mean_axis_range": (lambda: t(2, 3).mean(axis=-3), "mean"),
    "mean_axis_tuple_float": (lambda: t(2, 3).mean(axis=(0, 1.0)), "mean"),
    "max_axis_range": (lambda: t(2, 3).max(axis=4), "max"),
    "max_empty": (lambda: t(0, 3).max(), "max"),
    "index_out_of_range": (lambda: t(2, 3)[5], "getitem"),
    "index_float": (lambda: t(2, 3)[1.5], "getitem"),
    "index_too_many": (lambda: t(2, 3)[0, 0, 0], "getitem"),
    "index_array_out_of_range": (lambda: t(4)[np.array([0, 9])], "getitem"),
    "item_of_many": (lambda: t(2, 3).item(), "item"),
    "to_bad_device": (lambda: t(2).to("tpu"), "to"),
    "to_device_int": (lambda: t(2).to(0), "to"),
    "backward_non_scalar": (lambda: t(2, 3, grad=True).exp().backward(), "backward"),
    "backward_grad_shape": (backward_of(lambda: t(2, 3, grad=True).exp(),
                                        np.ones((3, 2))), "backward"),
    "backward_grad_string": (backward_of(lambda: t(2, grad=True).exp(), "x"), "backward"),
    "backward_no_grad": (lambda: t(2).sum().backward(), "backward"),
    "backward_retain_graph_str": (lambda: t(2, grad=True).sum().backward(retain_graph="yes"),
                                  "backward"),
    "concat_empty": (lambda: sl.concat([]), "concat"),
    "concat_shapes": (lambda: sl.concat([t(2, 3), t(2, 4)], axis=0), "concat"),
    "concat_axis": (lambda: sl.concat([t(2, 3), t(2, 3)], axis=3), "concat"),
    "concat_not_tensors": (lambda: sl.concat([t(2), "x"]), "concat"),
    "concat_not_a_list": (lambda: sl.concat(t(2, 3)), "concat"),
    "concat_axis_float": (lambda: sl.concat([t(2), t(2)], axis=0.0), "concat"),
    "stack_shapes": (lambda: sl.stack([t(2, 3), t(3, 2)]), "stack"),
    "stack_empty": (lambda: sl.stack([]), "stack"),
    "stack_axis": (lambda: sl.stack([t(2), t(2)], axis=5), "stack"),
    "stack_not_tensors": (lambda: sl.stack([t(2), None]), "stack"),
    "where_shapes": (lambda: sl.where(np.array([True, False, True]), t(2), t(2)), "where"),
    "where_condition_float": (lambda: sl.where(np.array([0.5, 0.2]), t(2), t(2)), "where"),
    "where_branch_string": (lambda: sl.where(np.array([True, False]), t(2), "x"), "where"),
    "where_condition_ragged": (lambda: sl.where([[True], [True, False]], t(2), t(2)), "where"),
    "manual_seed_negative": (lambda: sl.manual_seed(-1), "manual_seed"),
    "manual_seed_float": (lambda: sl.manual_seed(1.5), "manual_seed"),
    "manual_seed_str": (lambda: sl.manual_seed("1"), "manual_seed"),
    "gradcheck_float32": (lambda: sl.gradcheck(lambda x: x.sum(), [sl.tensor(
        np.ones(2, np.float32), requires_grad=True)]), "gradcheck"),
    "gradcheck_eps_zero": (lambda: sl.gradcheck(lambda x: x.sum(), [t(2, grad=True)],
                                                eps=0), "gradcheck"),
    "gradcheck_not_tensor": (lambda: sl.gradcheck(lambda x: x, [np.ones(2)]), "gradcheck"),
    "gradcheck_fn_not_callable": (lambda: sl.gradcheck("x", [t(2, grad=True)]), "gradcheck"),
    "gradcheck_atol_negative": (lambda: sl.gradcheck(lambda x: x.sum(), [t(2, grad=True)],
                                                     atol=-1), "gradcheck"),
    # ----------------------------------------------------------------- functional ops
    "linear_weight_shape": (lambda: F.linear(t(2, 3), t(4, 5)), "linear"),
    "linear_bias_shape": (lambda: F.linear(t(2, 3), t(4, 3), t(5)), "linear"),
    "linear_scalar_input": (lambda: F.linear(t(), t(4, 3)), "linear"),
    "linear_input_string": (lambda: F.linear("x", t(2, 3)), "linear"),
    "linear_bias_string": (lambda: F.linear(t(2, 3), t(4, 3), "b"), "linear"),
    "relu_string": (lambda: F.relu("x"), "relu"),
    "gelu_string": (lambda: F.gelu("x"), "gelu"),
    "sigmoid_string": (lambda: F.sigmoid("x"), "sigmoid"),
    "softmax_list": (lambda: F.softmax([1.0, 2.0]), "softmax"),
    "gelu_approximate": (lambda: F.gelu(t(3), approximate="fast"), "gelu"),
    "softmax_axis": (lambda: F.softmax(t(2, 3), axis=2), "softmax"),
    "softmax_axis_float": (lambda: F.softmax(t(2, 3), axis=0.5), "softmax"),
    "log_softmax_axis": (lambda: F.log_softmax(t(2, 3), axis=-3), "log_softmax"),
    "layer_norm_weight_shape": (lambda: F.layer_norm(t(2, 3), t(4), t(3)), "layer_norm"),
    "layer_norm_bias_shape": (lambda: F.layer_norm(t(2, 3), t(3), t(2)), "layer_norm"),
    "layer_norm_eps_negative": (lambda: F.layer_norm(t(2, 3), t(3), t(3), eps=-1),
                                "layer_norm"),
    "layer_norm_eps_nan": (lambda: F.layer_norm(t(2, 3), t(3), t(3), eps=NAN), "layer_norm"),
    "layer_norm_input_string": (lambda: F.layer_norm("x", t(3), t(3)), "layer_norm"),
    "dropout_p_above_one": (lambda: F.dropout(t(3), 1.5), "dropout"),
    "dropout_p_nan": (lambda: F.dropout(t(3), NAN), "dropout"),
    "dropout_training_str": (lambda: F.dropout(t(3), 0.1, training="yes"), "dropout"),
    "embedding_id_range": (lambda: F.embedding(np.array([0, 7]), t(5, 2)), "embedding"),
    "embedding_negative_id": (lambda: F.embedding(np.array([-1]), t(5, 2)), "embedding"),
    "embedding_float_ids": (lambda: F.embedding(np.array([0.5]), t(5, 2)), "embedding"),
    "embedding_weight_1d": (lambda: F.embedding(np.array([0]), t(5)), "embedding"),
    "embedding_weight_string": (lambda: F.embedding(np.array([0]), "w"), "embedding"),
    "cross_entropy_target_shape": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1, 2])),
                                   "cross_entropy"),
    "cross_entropy_target_range": (lambda: F.cross_entropy(t(2, 3), np.array([0, 3])),
                                   "cross_entropy"),
    "cross_entropy_float_target": (lambda: F.cross_entropy(t(2, 3), np.array([0.0, 1.0])),
                                   "cross_entropy"),
    "cross_entropy_smoothing": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1]),
                                                        label_smoothing=1.5), "cross_entropy"),
    "cross_entropy_reduction": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1]),
                                                        reduction="avg"), "cross_entropy"),
    "cross_entropy_logits_1d": (lambda: F.cross_entropy(t(3), np.array([0])), "cross_entropy"),
    "cross_entropy_smoothing_str": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1]),
                                                            label_smoothing="0.1"),
                                    "cross_entropy"),
    "cross_entropy_ignore_index_float": (lambda: F.cross_entropy(t(2, 3), np.array([0, 1]),
                                                                 ignore_index=0.5),
                                         "cross_entropy"),
    "bce_shapes": (lambda: F.binary_cross_entropy_with_logits(t(2, 3), t(3, 2)),
                   "binary_cross_entropy_with_logits"),
    "bce_reduction": (lambda: F.binary_cross_entropy_with_logits(t(2), t(2), reduction="x"),
                      "binary_cross_entropy_with_logits"),
    "cross_entropy_target_ragged": (lambda: F.cross_entropy(t(2, 3), [[0], [1, 2]]),
                                    "cross_entropy"),
    "layer_norm_weight_string": (lambda: F.layer_norm(t(2, 3), "w", None), "layer_norm"),
    "bce_reduction_array": (lambda: F.binary_cross_entropy_with_logits(
        t(2), t(2), reduction=np.array(["mean", "sum"])), "binary_cross_entropy_with_logits"),
    "mse_shapes": (lambda: F.mse_loss(t(2, 3), t(4)), "mse_loss"),
    "mse_string": (lambda: F.mse_loss(t(2), "x"), "mse_loss"),
    "sdpa_dims": (lambda: F.scaled_dot_product_attention(t(2, 4, 3), t(2, 4, 5),
                                                         t(2, 4, 5)),
                  "scaled_dot_product_attention"),
    "sdpa_value_length": (lambda: F.scaled_dot_product_attention(t(2, 4, 3), t(2, 4, 3),
                                                                 t(2, 5, 3)),
                          "scaled_dot_product_attention"),
    "sdpa_mask_shape": (lambda: F.scaled_dot_product_attention(
        t(2, 4, 3), t(2, 4, 3), t(2, 4, 3), attn_mask=np.ones((3, 3), bool)),
        "scaled_dot_product_attention"),
    "sdpa_mask_float": (lambda: F.scaled_dot_product_attention(
        t(2, 4, 3), t(2, 4, 3), t(2, 4, 3), attn_mask=np.ones((4, 4))),
        "scaled_dot_product_attention"),
    "sdpa_dropout": (lambda: F.scaled_dot_product_attention(t(2, 4, 3), t(2, 4, 3),
                                                            t(2, 4, 3), dropout_p=2.0),
                     "scaled_dot_product_attention"),
    "sdpa_is_causal_str": (lambda: F.scaled_dot_product_attention(
        t(2, 4, 3), t(2, 4, 3), t(2, 4, 3), is_causal="yes"), "scaled_dot_product_attention"),
    "sdpa_query_string": (lambda: F.scaled_dot_product_attention("q", t(2, 4, 3), t(2, 4, 3)),
                          "scaled_dot_product_attention"),
    # ----------------------------------------------------------------- layers
    "linear_zero_features": (lambda: nn.Linear(0, 3), "Linear"),
    "linear_float_features": (lambda: nn.Linear(3.5, 2), "Linear"),
    "linear_bias_str": (lambda: nn.Linear(3, 2, bias="no"), "Linear"),
    "linear_call_shape": (lambda: nn.Linear(3, 2)(t(4, 5)), "linear"),
    "embedding_zero_rows": (lambda: nn.Embedding(0, 4), "Embedding"),
    "embedding_negative_dim": (lambda: nn.Embedding(5, -4), "Embedding"),
    "embedding_call_range": (lambda: nn.Embedding(5, 2)(np.array([9])), "embedding"),
    "layernorm_zero": (lambda: nn.LayerNorm(0), "LayerNorm"),
    "layernorm_eps_nan": (lambda: nn.LayerNorm(4, eps=NAN), "LayerNorm"),
    "layernorm_call_width": (lambda: nn.LayerNorm(4)(t(2, 3)), "layer_norm"),
    "dropout_module_p": (lambda: nn.Dropout(-0.5), "Dropout"),
    "mha_not_divisible": (lambda: nn.MultiHeadAttention(10, 3), "MultiHeadAttention"),
    "mha_heads_zero": (lambda: nn.MultiHeadAttention(8, 0), "MultiHeadAttention"),
    "encoder_layer_ff_zero": (lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=0),
                              "TransformerEncoderLayer"),
    "decoder_layer_dropout": (lambda: nn.TransformerDecoderLayer(8, 2, dropout=2.0),
                              "TransformerDecoderLayer"),
    "sinusoidal_max_len": (lambda: nn.SinusoidalPositionalEncoding(8, max_len=0),
                           "SinusoidalPositionalEncoding"),
    "load_state_dict_list": (lambda: nn.Linear(3, 2).load_state_dict([1, 2]),
                             "load_state_dict"),
    "load_state_dict_shape": (lambda: nn.Linear(3, 2).load_state_dict(
        {"weight": np.zeros((3, 3)), "bias": np.zeros(2)}), "load_state_dict"),
    "load_state_dict_int": (lambda: nn.Linear(3, 2).load_state_dict(
        {"weight": np.zeros((2, 3), np.int32), "bias": np.zeros(2)}), "load_state_dict"),
    "load_state_dict_strict_str": (lambda: nn.Linear(3, 2).load_state_dict(
        nn.Linear(3, 2).state_dict(), strict="no"), "load_state_dict"),
    "load_state_dict_everything_missing": (lambda: tiny_gpt().load_state_dict({}),
                                           "load_state_dict"),
    "module_to_device": (lambda: nn.Linear(3, 2).to("tpu"), "to"),
    "module_train_str": (lambda: nn.Linear(3, 2).train("no"), "train"),
    "sequential_not_module": (lambda: nn.Sequential(nn.Linear(2, 2), "relu"), "Sequential"),
    "modulelist_not_module": (lambda: nn.ModuleList([3]), "ModuleList"),
    "modulelist_append_not_module": (lambda: nn.ModuleList().append("x"), "ModuleList"),
    # ----------------------------------------------------------------- optimizers
    "sgd_lr_negative": (lambda: optim.SGD(linear_params(), lr=-0.1), "SGD"),
    "sgd_lr_nan": (lambda: optim.SGD(linear_params(), lr=NAN), "SGD"),
    "sgd_momentum_negative": (lambda: optim.SGD(linear_params(), lr=0.1, momentum=-1), "SGD"),
    "sgd_nesterov_no_momentum": (lambda: optim.SGD(linear_params(), lr=0.1, nesterov=True),
                                 "SGD"),
    "sgd_no_params": (lambda: optim.SGD([], lr=0.1), "SGD"),
    "sgd_params_arrays": (lambda: optim.SGD([np.zeros(3)], lr=0.1), "SGD"),
    "sgd_weight_decay_inf": (lambda: optim.SGD(linear_params(), lr=0.1, weight_decay=INF),
                             "SGD"),
    "adam_beta_above_one": (lambda: optim.Adam(linear_params(), betas=(1.5, 0.9)), "Adam"),
    "adam_betas_one_value": (lambda: optim.Adam(linear_params(), betas=(0.9,)), "Adam"),
    "adam_eps_zero": (lambda: optim.Adam(linear_params(), eps=0), "Adam"),
    "adam_lr_str": (lambda: optim.Adam(linear_params(), lr="0.1"), "Adam"),
    "adamw_weight_decay_negative": (lambda: optim.AdamW(linear_params(), weight_decay=-1),
                                    "AdamW"),
    "adamw_group_without_params": (lambda: optim.AdamW([{"lr": 0.1}]), "AdamW"),
    "optimizer_load_state_list": (lambda: optim.SGD(linear_params(), lr=0.1)
                                  .load_state_dict([1]), "load_state_dict"),
    "clip_max_norm_nan": (lambda: optim.clip_grad_norm_(linear_params(), NAN),
                          "clip_grad_norm_"),
    "clip_max_norm_negative": (lambda: optim.clip_grad_norm_(linear_params(), -1.0),
                               "clip_grad_norm_"),
    # ----------------------------------------------------------------- models
    "gpt_config_not_config": (lambda: GPT({"vocab_size": 11}), "GPT"),
    "gpt_ids_float": (lambda: tiny_gpt()(np.array([[0.5, 1.5]])), "GPT"),
    "gpt_ids_range": (lambda: tiny_gpt()(np.array([[1, 99]])), "GPT"),
    "gpt_ids_too_long": (lambda: tiny_gpt()(np.zeros((1, 9), np.int64)), "GPT"),
    "gpt_targets_shape": (lambda: tiny_gpt()(IDS, np.array([[1, 2]])), "GPT"),
    "gpt_generate_negative": (lambda: tiny_gpt().generate(IDS, -1), "generate"),
    "gpt_generate_top_p": (lambda: tiny_gpt().generate(IDS, 2, top_p=0.0), "generate"),
    "gpt_from_hf_not_path": (lambda: GPT.from_hf_gpt2(42), "from_hf_gpt2"),
    "gpt_from_hf_missing": (lambda: GPT.from_hf_gpt2("/nonexistent/model.safetensors"),
                            "load_safetensors"),
    # ----------------------------------------------------------------- tokenizers
    "char_train_empty": (lambda: CharTokenizer().train(""), "CharTokenizer.train"),
    "char_train_bytes": (lambda: CharTokenizer().train(b"abc"), "CharTokenizer.train"),
    "char_encode_unknown": (lambda: CharTokenizer().train("ab").encode("abc"),
                            "CharTokenizer.encode"),
    "char_decode_range": (lambda: CharTokenizer().train("ab").decode([5]),
                          "CharTokenizer.decode"),
    "char_decode_floats": (lambda: CharTokenizer().train("ab").decode([0.5]),
                           "CharTokenizer.decode"),
    "char_load_missing": (lambda: CharTokenizer.load("/nonexistent.json"), "CharTokenizer.load"),
    "bpe_vocab_huge": (lambda: BPETokenizer().train("abc", 4611686018427387904),
                       "BPETokenizer.train"),
    "bpe_vocab_small": (lambda: BPETokenizer().train("abc", 100), "BPETokenizer.train"),
    "bpe_vocab_float": (lambda: BPETokenizer().train("abc", 300.0), "BPETokenizer.train"),
    "bpe_special_str": (lambda: BPETokenizer().train("abc", 300, special_tokens="<s>"),
                        "BPETokenizer.train"),
    "bpe_encode_bytes": (lambda: BPETokenizer().encode(b"abc"), "BPETokenizer.encode"),
    "bpe_decode_range": (lambda: BPETokenizer().decode([300]), "BPETokenizer.decode"),
    "bpe_from_gpt2_missing": (lambda: BPETokenizer.from_gpt2("/none/e.json", "/none/v.bpe"),
                              "BPETokenizer.from_gpt2"),
    "mask_tokens_prob": (lambda: mask_tokens(np.array([1, 2, 3]), 4, 10, mask_prob=1.5),
                         "mask_tokens"),
    "mask_tokens_float_ids": (lambda: mask_tokens(np.array([1.5, 2.0]), 4, 10), "mask_tokens"),
    # ----------------------------------------------------------------- generation
    "sample_next_all_nan": (lambda: generation.sample_next(np.full((2, 5), NAN)),
                            "sample_next"),
    "sample_next_some_nan": (lambda: generation.sample_next(
        np.array([[0.0, NAN, 1.0]]), do_sample=False), "sample_next"),
    "sample_next_all_neg_inf": (lambda: generation.sample_next(np.full((1, 4), -INF)),
                                "sample_next"),
    "sample_next_1d": (lambda: generation.sample_next(np.zeros(5)), "sample_next"),
    "sample_next_temperature_nan": (lambda: generation.sample_next(np.zeros((1, 5)),
                                                                   temperature=NAN),
                                    "sample_next"),
    "top_k_zero": (lambda: top_k_filter(np.zeros((1, 5)), 0), "top_k_filter"),
    "top_k_nan_logits": (lambda: top_k_filter(np.full((1, 5), NAN), 2), "top_k_filter"),
    "top_p_above_one": (lambda: top_p_filter(np.zeros((1, 5)), 1.5), "top_p_filter"),
    "top_p_nan_logits": (lambda: top_p_filter(np.full((1, 5), NAN), 0.9), "top_p_filter"),
    "top_p_int_logits": (lambda: top_p_filter(np.zeros((1, 5), np.int64), 0.9),
                         "top_p_filter"),
    "beam_width_zero": (lambda: generation.beam_search(tiny_gpt(), IDS, 2, beam_width=0),
                        "beam_search"),
    # ----------------------------------------------------------------- metrics
    "perplexity_array": (lambda: metrics.perplexity(np.ones(3)), "perplexity"),
    "perplexity_negative": (lambda: metrics.perplexity(-1.0), "perplexity"),
    "perplexity_str": (lambda: metrics.perplexity("2.0"), "perplexity"),
    "bleu_lengths": (lambda: metrics.bleu(["a b", "c d"], ["a b"]), "bleu"),
    "bleu_tokenize": (lambda: metrics.bleu(["a"], ["a"], tokenize="spacy"), "bleu"),
    "bleu_not_strings": (lambda: metrics.bleu([1, 2], ["a", "b"]), "bleu"),
    "rouge_not_string": (lambda: metrics.rouge(["a"], "a"), "rouge"),
    "classification_scores_lengths": (lambda: metrics.classification_scores(
        np.array([0, 1]), [0, 1, 1]), "classification_scores"),
    # ----------------------------------------------------------------- save / load
    "save_object": (lambda: sl.save({"x": object()}, "/tmp/never.npz"), "save"),
    "save_tensor": (lambda: sl.save({"x": t(2)}, "/tmp/never.npz"), "save"),
    "save_object_array": (lambda: sl.save({"x": np.array([None])}, "/tmp/never.npz"), "save"),
    "save_key_tuple": (lambda: sl.save({(1, 2): 1}, "/tmp/never.npz"), "save"),
    "save_into_missing_folder": (lambda: sl.save({"x": 1}, "/nonexistent/dir/c.npz"), "save"),
    "load_missing": (lambda: sl.load("/nonexistent/c.npz"), "load"),
    "load_directory": (lambda: sl.load("/tmp"), "load"),
    "load_device_file": (lambda: sl.load("/dev/zero"), "load"),
    # ----------------------------------------------------------------- peft
    "lora_r_zero": (lambda: apply_lora(tiny_gpt(), ["c_attn"], r=0), "apply_lora"),
    "lora_alpha_nan": (lambda: apply_lora(tiny_gpt(), ["c_attn"], alpha=NAN), "apply_lora"),
    "lora_dropout": (lambda: apply_lora(tiny_gpt(), ["c_attn"], dropout=1.5), "apply_lora"),
    "lora_no_match": (lambda: apply_lora(tiny_gpt(), ["nothing_here"]), "apply_lora"),
    "lora_targets_str": (lambda: apply_lora(tiny_gpt(), 42), "apply_lora"),
    "prompt_tuning_zero": (lambda: PromptTuning(tiny_gpt(), 0), "PromptTuning"),
    "prompt_tuning_init": (lambda: PromptTuning(tiny_gpt(), 2, init="zeros?"), "PromptTuning"),
    "prompt_tuning_not_model": (lambda: PromptTuning("gpt", 2), "PromptTuning"),
}


#: The built-in errors scratchlm raises with its own one-line message (the command line shows
#: them as one line, as it shows a ScratchlmError): allowed where callers catch the built-in
#: class (IndexError for an index or id out of range, RuntimeError from backward and
#: Module.load_state_dict, as PyTorch raises them) or the code is not an argument check's
#: yet; every area listed in LIBRARY_CLASS_AREAS must raise a ScratchlmError.
OWN_BUILTIN_ERRORS = (ValueError, TypeError, IndexError, RuntimeError)
LIBRARY_CLASS_AREAS = (
    "CharTokenizer", "BPETokenizer", "mask_tokens", "sample_next", "top_k_filter",
    "top_p_filter", "save", "load", "load_safetensors", "from_hf_gpt2", "perplexity",
    "manual_seed", "apply_lora", "PromptTuning", "GPT", "generate", "beam_search",
    # tensors, the primitive ops and the functional ops
    "tensor", "requires_grad_", "to", "add", "sub", "mul", "div", "pow", "matmul", "reshape",
    "transpose", "sum", "mean", "max", "concat", "stack", "where", "gradcheck", "linear",
    "relu", "gelu", "sigmoid", "softmax", "log_softmax", "layer_norm", "dropout", "mse_loss",
    "binary_cross_entropy_with_logits", "scaled_dot_product_attention",
    # layers and Adam
    "Linear", "Embedding", "LayerNorm", "Dropout", "MultiHeadAttention", "Sequential",
    "ModuleList", "SinusoidalPositionalEncoding", "train", "Adam")


def innermost_file(error):
    frames = traceback.extract_tb(error.__traceback__)
    return os.path.abspath(frames[-1].filename) if frames else ""


def outcome(name):
    """'' for a clear refusal, else what is wrong with it."""
    call, where = CASES[name]
    try:
        call()
    except Exception as error:  # noqa: BLE001 - the point is to name what escaped
        message, origin = str(error), innermost_file(error)
        if not origin.startswith(PACKAGE + os.sep):
            return f"{type(error).__name__} from {origin}: {message[:120]}"
        library = isinstance(error, ScratchlmError)
        if not library and not isinstance(error, OWN_BUILTIN_ERRORS):
            return f"{type(error).__name__} (cryptic): {message[:120]}"
        if not library and where.split(".")[0] in LIBRARY_CLASS_AREAS:
            return f"{type(error).__name__}, not a ScratchlmError: {message[:120]}"
        head = message.split(":")[0]
        if where.split(".")[-1] not in head or len(head) > 60:
            return f"the message does not start by naming {where}: {message[:120]}"
        if "\n" in message.strip() or len(message) > 600:
            return f"not one line: {message[:120]}"
        return ""
    return "accepted silently"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_argument_is_refused_in_one_clear_line(name):
    problem = outcome(name)
    assert not problem, f"{name}: {problem}"


def test_the_sweep_is_wide():
    assert len(CASES) >= 120
    areas = {"tensor", "linear", "Linear", "SGD", "GPT", "CharTokenizer.train", "sample_next",
             "bleu", "save", "load", "apply_lora"}
    assert areas <= {where for _, where in CASES.values()}
