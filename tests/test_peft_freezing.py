"""Freezing: requires_grad_ as in PyTorch, freeze by name or by depth, frozen parameters
untouched by optimizer steps and absent from optimizer state; prompt tuning's gradients
reach the virtual tokens only."""

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn
import scratchlm.optim as optim
from scratchlm.models import (
    GPT,
    BertConfig,
    BertForSequenceClassification,
    GPTConfig,
    GPTForSequenceClassification,
)
from scratchlm.peft import (
    PromptTuning,
    block_names,
    count_parameters,
    describe_parameters,
    freeze,
    set_trainable,
)


def test_requires_grad_returns_the_module_and_sets_every_parameter():
    layer = nn.Linear(3, 2)
    assert layer.requires_grad_(False) is layer
    assert not any(p.requires_grad for p in layer.parameters())
    layer.requires_grad_()
    assert all(p.requires_grad for p in layer.parameters())


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1),
    lambda ps: optim.AdamW(ps, lr=0.1, weight_decay=0.5),
])
def test_frozen_parameters_untouched_and_stateless(make):
    sl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    frozen = {n: p.data.copy() for n, p in model.named_parameters() if n.startswith("0.")}
    optimizer = make(model.named_parameters())  # every parameter handed over, as Trainer does
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    for _ in range(3):
        model(x).sum().backward()
        model[0].weight.grad = np.ones_like(model[0].weight.data)  # a stale gradient too
        optimizer.step()
        optimizer.zero_grad()
    for name, value in frozen.items():
        np.testing.assert_array_equal(dict(model.named_parameters())[name].data, value)
    assert sorted(optimizer.state) == ["1.bias", "1.weight"]
    assert sorted(optimizer.state_dict()["state"]) == ["1.bias", "1.weight"]


def gpt_classifier():
    sl.manual_seed(0)
    return GPTForSequenceClassification(GPTConfig.from_preset("tiny", n_layer=3), pad_token_id=0)


def test_freeze_top_k_blocks_and_head():
    model = freeze(gpt_classifier(), train_top_k=1, train=["score"])
    trainable = {n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"gpt.transformer.h.2.ln_1", "gpt.transformer.h.2.attn.c_attn",
                         "gpt.transformer.h.2.attn.c_proj", "gpt.transformer.h.2.ln_2",
                         "gpt.transformer.h.2.mlp.c_fc", "gpt.transformer.h.2.mlp.c_proj",
                         "gpt.transformer.ln_f", "score"}
    assert block_names(model) == [f"gpt.transformer.h.{i}" for i in range(3)]
    head_only = freeze(gpt_classifier(), train_top_k=0, train=["score"])
    assert count_parameters(head_only) == (2 * 32, head_only.num_parameters())
    assert describe_parameters(head_only).startswith("trainable 64 / total ")
    bert = freeze(BertForSequenceClassification(BertConfig.from_preset("tiny")), train_top_k=1)
    assert {n.split(".")[2] for n, p in bert.named_parameters()
            if p.requires_grad and n.startswith("bert.")} == {"1"}


def test_freeze_by_pattern_and_errors():
    model = freeze(gpt_classifier(), patterns=["*.ln_*", "gpt.transformer.wpe"])
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert "gpt.transformer.wpe.weight" in frozen and "gpt.transformer.h.0.ln_1.bias" in frozen
    assert "gpt.transformer.h.0.attn.c_attn.weight" not in frozen
    with pytest.raises(ValueError, match="no parameter .* matches"):
        set_trainable(model, ["nothing_like_this"])
    with pytest.raises(ValueError, match="train_top_k=5 but the model has 3 blocks"):
        freeze(gpt_classifier(), train_top_k=5)


def test_frozen_body_backward_leaves_no_gradients():
    model = freeze(gpt_classifier(), train_top_k=1, train=["score"])
    ids = np.array([[5, 6, 7, 0], [8, 9, 10, 11]])
    model(ids, labels=np.array([0, 1])).loss.backward()
    for name, parameter in model.named_parameters():
        assert (parameter.grad is not None) == parameter.requires_grad, name


# ------------------------------------------------------------------- prompt tuning
def test_prompt_tuning_gradients_reach_only_the_virtual_tokens():
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny"))
    prompted = PromptTuning(model, num_virtual_tokens=5)
    assert [n for n, p in prompted.named_parameters() if p.requires_grad] == ["prompt"]
    assert prompted.prompt.shape == (5, 32)
    assert np.abs(prompted.prompt.data).max() <= 0.5  # U(-0.5, 0.5), as Lester et al.
    ids = np.random.default_rng(0).integers(0, 65, (3, 8))
    logits, loss = prompted(ids, ids)
    assert logits.shape == (3, 8, 65)  # the virtual positions are dropped from the output
    loss.backward()
    assert prompted.prompt.grad is not None and np.abs(prompted.prompt.grad).sum() > 0
    assert all(p.grad is None for p in model.parameters())
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    optimizer = optim.AdamW(prompted.named_parameters(), lr=0.1)
    optimizer.step()
    assert list(optimizer.state) == ["prompt"]
    for name, parameter in model.named_parameters():
        np.testing.assert_array_equal(parameter.data, before[name])
    assert model.transformer.wte.__class__.__name__ == "Embedding"  # put back after the call


def test_prompt_from_token_embeddings_equals_those_tokens_in_front():
    """Initialized from real tokens' embeddings, the prompt is exactly those tokens."""
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny"))
    ids = np.random.default_rng(1).integers(0, 65, (2, 6))
    start = [7, 3, 11]
    prompted = PromptTuning(model, 3, init=start)
    np.testing.assert_array_equal(prompted.prompt.data, model.transformer.wte.weight.data[start])
    full, _ = model(np.concatenate([np.tile(start, (2, 1)), ids], axis=1))
    np.testing.assert_allclose(prompted(ids)[0].numpy(), full.numpy()[:, 3:], atol=1e-6)
    vocab = PromptTuning(GPT(GPTConfig.from_preset("tiny")), 4, init="vocab")
    table = vocab.model.transformer.wte.weight.data
    assert all(any(np.array_equal(row, t) for t in table) for row in vocab.prompt.data)
    with pytest.raises(ValueError, match="init must be"):
        PromptTuning(GPT(GPTConfig.from_preset("tiny")), 2, init="zeros")


def test_prompt_tuning_a_bert_classifier_pads_masks_and_trains_its_head():
    sl.manual_seed(0)
    model = BertForSequenceClassification(BertConfig.from_preset("tiny"))
    prompted = PromptTuning(model, 4, train=["classifier"])
    ids = np.array([[2, 10, 11, 3, 0], [2, 12, 13, 14, 3]])
    out = prompted(ids, attention_mask=ids != 0, labels=np.array([1, 0]))
    assert out.logits.shape == (2, 2)
    out.loss.backward()
    assert sorted(n for n, p in prompted.named_parameters() if p.grad is not None) == [
        "model.classifier.bias", "model.classifier.weight", "prompt"]
    # padding stays masked: changing a padded position's id changes nothing
    other = ids.copy()
    other[0, 4] = 50
    with sl.no_grad():
        np.testing.assert_allclose(prompted(other, attention_mask=ids != 0).logits.numpy(),
                                   prompted(ids, attention_mask=ids != 0).logits.numpy(),
                                   atol=1e-6)
