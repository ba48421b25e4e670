"""init_transformer_weights: the one init of GPT-2, BERT and the original Transformer, each
model's distributions checked on its parameters."""

import math

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm.models import GPT, GPTConfig, Seq2SeqConfig, Seq2SeqTransformer
from scratchlm.models.bert import BertConfig, BertForPreTraining


def parameters(model):
    return {name: p.numpy() for name, p in model.named_parameters()}


def assert_normal(values, std, name):
    """Mean 0 and standard deviation ``std``, within 5 standard errors."""
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n), name
    assert values.std() == pytest.approx(std, rel=5 / math.sqrt(2 * n)), name


def test_gpt2_init_scales_the_residual_projections():
    sl.manual_seed(0)
    config = GPTConfig(vocab_size=500, block_size=64, n_layer=4, n_head=4, n_embd=128)
    values = parameters(GPT(config))
    residual_std = 0.02 / math.sqrt(2 * config.n_layer)
    for name, array in values.items():
        if name.endswith("c_proj.weight"):  # attention's output and the MLP's second layer
            assert_normal(array, residual_std, name)
        elif array.ndim == 2:  # wte (= lm_head), wpe, c_attn, c_fc
            assert_normal(array, 0.02, name)
        elif ".ln_" in name or "ln_f" in name:
            np.testing.assert_array_equal(array, 1.0 if name.endswith("weight") else 0.0)
        else:
            np.testing.assert_array_equal(array, 0.0, err_msg=name)
    assert sum(name.endswith("c_proj.weight") for name in values) == 2 * config.n_layer


def test_bert_init_draws_every_matrix_from_one_normal():
    sl.manual_seed(0)
    values = parameters(BertForPreTraining(BertConfig.from_preset("tiny", n_embd=64,
                                                                  vocab_size=300)))
    for name, array in values.items():
        if array.ndim == 2:  # embeddings (positions too), every Linear weight
            assert_normal(array, 0.02, name)
        elif "norm" in name and name.endswith("weight"):
            np.testing.assert_array_equal(array, 1.0)
        else:
            np.testing.assert_array_equal(array, 0.0, err_msg=name)


def test_transformer_init_embeddings_by_width_and_xavier_matrices():
    sl.manual_seed(0)
    config = Seq2SeqConfig.from_preset("tiny", 400, 300, d_model=64, tie_output=False)
    model = Seq2SeqTransformer(config)
    values = parameters(model)
    for name, array in values.items():
        if name in ("src_embed.weight", "tgt_embed.weight"):
            assert_normal(array, config.d_model ** -0.5, name)
        elif array.ndim == 2:
            bound = math.sqrt(6 / sum(array.shape))
            assert np.abs(array).max() <= bound, name
            assert_normal(array, bound / math.sqrt(3), name)  # U(±b) has std b/√3
        elif "norm" in name and name.endswith("weight"):
            np.testing.assert_array_equal(array, 1.0)
        else:
            np.testing.assert_array_equal(array, 0.0, err_msg=name)


def test_a_tied_weight_is_drawn_once_and_the_seed_repeats_the_draw():
    sl.manual_seed(5)
    first = GPT(GPTConfig.from_preset("tiny"))
    assert first.lm_head.weight is first.transformer.wte.weight
    sl.manual_seed(5)
    again = GPT(GPTConfig.from_preset("tiny"))
    for name, value in first.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name], value, err_msg=name)


def test_init_keeps_dtype_and_leaves_other_layers_alone():
    sl.manual_seed(0)
    layer = nn.Sequential(nn.Embedding(50, 16), nn.LayerNorm(16), nn.Linear(16, 8))
    layer.load_state_dict({k: v.astype(np.float64) for k, v in layer.state_dict().items()})
    nn.init_transformer_weights(layer, std=0.1, embedding_std=1.0)
    values = parameters(layer)
    assert all(array.dtype == np.float64 for array in values.values())
    assert_normal(values["0.weight"], 1.0, "embedding")
    assert_normal(values["2.weight"], 0.1, "linear")
    np.testing.assert_array_equal(values["2.bias"], 0.0)
    np.testing.assert_array_equal(values["1.weight"], 1.0)
