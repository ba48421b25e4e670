"""Task heads against Hugging Face's for the same weights (float64): BertForSequenceClassification,
BertForTokenClassification and GPT2ForSequenceClassification logits and losses, with padding;
pre-trained bodies load and heads start as Hugging Face's."""

import numpy as np
import pytest
from test_bert import hf_names

import scratchlm as sl
from scratchlm.models import (
    GPT,
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPTConfig,
    GPTForSequenceClassification,
)

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


def bert_inputs():
    ids = np.array([[2, 10, 11, 12, 3, 0, 0], [2, 20, 21, 3, 22, 23, 3], [2, 5, 3, 0, 0, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    types = np.array([[0] * 7, [0, 0, 0, 0, 1, 1, 1], [0] * 7])
    return ids, mask, types


def hf_bert(cls, ours, num_labels):
    c = ours.config
    config = transformers.BertConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, intermediate_size=c.dim_feedforward, hidden_act="gelu",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=c.max_position, type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps, num_labels=num_labels, attn_implementation="eager")
    reference = cls(config).double().eval()
    state = ours.state_dict()
    theirs = {}
    for our_name, hf_parts in hf_names(c):
        if our_name.startswith("bert."):
            for hf_name, part in zip(hf_parts, np.split(state[our_name], len(hf_parts))):
                theirs[hf_name] = torch.tensor(part)
    theirs["classifier.weight"] = torch.tensor(state["classifier.weight"])
    theirs["classifier.bias"] = torch.tensor(state["classifier.bias"])
    expected = set(reference.state_dict())  # the token classifier has no pooler
    reference.load_state_dict({k: v for k, v in theirs.items() if k in expected}, strict=True)
    return reference


def float64(model):
    return model.load_state_dict({k: v.astype(np.float64) for k, v in
                                  model.state_dict().items()}) and model


@pytest.mark.parametrize("token_level", [False, True])
def test_bert_heads_equal_hugging_face(token_level):
    sl.manual_seed(0)
    config = BertConfig.from_preset("tiny")
    cls = BertForTokenClassification if token_level else BertForSequenceClassification
    ours = cls(config, num_labels=3).eval()
    ours.load_state_dict({k: v.astype(np.float64) for k, v in ours.state_dict().items()})
    hf_cls = (transformers.BertForTokenClassification if token_level
              else transformers.BertForSequenceClassification)
    reference = hf_bert(hf_cls, ours, 3)
    ids, mask, types = bert_inputs()
    labels = (np.array([[0, 1, 2, 1, 0, -100, -100], [1, 1, 0, 2, 2, 1, 0],
                        [2, 0, 1, -100, -100, -100, -100]]) if token_level
              else np.array([2, 0, 1]))
    out = ours(ids, attention_mask=mask, token_type_ids=types, labels=labels)
    with torch.no_grad():
        theirs = reference(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                           token_type_ids=torch.tensor(types), labels=torch.tensor(labels))
    logits = out.logits.numpy()
    expected = theirs.logits.numpy()
    if token_level:  # padding positions are not compared (both compute garbage there)
        logits, expected = logits[mask == 1], expected[mask == 1]
    np.testing.assert_allclose(logits, expected, rtol=1e-9, atol=1e-10)
    if not token_level:
        np.testing.assert_allclose(out.loss.item(), theirs.loss.item(), rtol=1e-9)


def test_gpt_head_equals_hugging_face_last_non_padding_token():
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=128, n_layer=2,
                                     n_head=2, pad_token_id=0, bos_token_id=1, eos_token_id=1,
                                     num_labels=3, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0,
                                     attn_implementation="eager")
    torch.manual_seed(0)
    reference = transformers.GPT2ForSequenceClassification(config).double().eval()
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    body = {k: v for k, v in state.items() if k.startswith("transformer.")}
    ours = GPTForSequenceClassification(
        GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=128),
        num_labels=3, pad_token_id=0)
    gpt = GPT.from_hf_gpt2(body)  # Hugging Face's names and Conv1D layout (head size 64)
    ours.load_pretrained_body({k: v.astype(np.float64) for k, v in gpt.state_dict().items()})
    ours.score.weight.data = state["score.weight"].astype(np.float64)
    ids = np.array([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12], [13, 0, 0, 0, 0]])
    labels = np.array([1, 2, 0])
    out = ours(ids, labels=labels)
    with torch.no_grad():
        theirs = reference(input_ids=torch.tensor(ids), labels=torch.tensor(labels))
    np.testing.assert_allclose(out.logits.numpy(), theirs.logits.numpy(), rtol=1e-9,
                               atol=1e-10)
    np.testing.assert_allclose(out.loss.item(), theirs.loss.item(), rtol=1e-9)
    np.testing.assert_array_equal(ours.last_token_positions(ids), [2, 4, 0])


def test_pretrained_body_loads_and_head_starts_as_hugging_face():
    sl.manual_seed(0)
    config = BertConfig.from_preset("tiny")
    pretrained = BertForPreTraining(config)
    sl.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(pretrained.state_dict(),
                                                          config.to_dict())
    for name, value in pretrained.state_dict().items():
        if name.startswith("bert."):
            np.testing.assert_array_equal(model.state_dict()[name], value)
    assert np.all(model.classifier.bias.data == 0)
    assert 0.01 < model.classifier.weight.data.std() < 0.03  # N(0, 0.02²)
    with pytest.raises(ValueError, match="no entry starts with 'bert.'"):
        model.load_pretrained_body({"transformer.wte.weight": np.zeros((3, 3))})
    gpt = GPT(GPTConfig.from_preset("tiny"))
    classifier = GPTForSequenceClassification.from_pretrained(gpt.state_dict(),
                                                              gpt.config.to_dict())
    np.testing.assert_array_equal(classifier.gpt.transformer.wte.weight.data,
                                  gpt.transformer.wte.weight.data)
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) should be \(2,\)"):
        classifier(np.array([[1, 2], [3, 4]]), labels=np.array([0, 1, 1]))
