"""BERT: against Hugging Face's BertForPreTraining with the same weights, gradient checks,
the MLM loss by hand, the pre-training batch helper, and a short pre-training run."""

import re

import numpy as np
import pytest
from conftest import DEVICES

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm.models.bert import (
    BertConfig,
    BertForPreTraining,
    BertModel,
    make_pretraining_batch,
)
from scratchlm.train import TrainConfig, Trainer

PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3
SPECIAL_IDS = (PAD_ID, CLS_ID, SEP_ID, MASK_ID)


def tiny_config(**overrides):
    return BertConfig.from_preset("tiny", **{"vocab_size": 40, "max_position": 16, **overrides})


def is_layer_norm_gain(name):
    return re.search(r"norm\d?\.weight$", name) is not None


def random_state(model, seed=0):
    """The model's state dict redrawn at random in float64 (gains around 1), so that no zero
    bias or unit gain hides a mistake."""
    rng = np.random.default_rng(seed)
    return {name: rng.normal(1.0 if is_layer_norm_gain(name) else 0.0, 0.3, value.shape)
            for name, value in model.state_dict().items()}


def float64_model(config, seed=0):
    sl.manual_seed(seed)
    model = BertForPreTraining(config)
    model.load_state_dict(random_state(model, seed))
    return model


def padded_batch(config, B=3, T=10, seed=1):
    """Ids, segments and a mask whose second and third rows end in padding; labels with some
    chosen positions (never at padding) and both NSP classes."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, config.vocab_size, (B, T))
    ids[:, 0] = CLS_ID
    attention_mask = np.ones((B, T), dtype=np.int64)
    attention_mask[1, 7:] = 0
    attention_mask[2, 4:] = 0
    ids[attention_mask == 0] = PAD_ID
    token_type_ids = np.zeros((B, T), dtype=np.int64)
    token_type_ids[:, 5:] = 1
    token_type_ids[attention_mask == 0] = 0
    mlm_labels = np.full((B, T), -100)
    chosen = (rng.random((B, T)) < 0.4) & (attention_mask == 1)
    chosen[0, 2] = True
    mlm_labels[chosen] = rng.integers(0, config.vocab_size, chosen.sum())
    nsp_labels = np.array([1, 0, 1])[:B]
    return dict(input_ids=ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                mlm_labels=mlm_labels, nsp_labels=nsp_labels)


# ------------------------------------------------------------------ Hugging Face's BERT
def hf_names(config):
    """(our name, Hugging Face names): ours is their arrays stacked along axis 0 (our fused
    c_attn is their query, key and value). Their decoder weight is tied to the embedding."""
    table = [
        ("bert.embeddings.word_embeddings.weight", ["bert.embeddings.word_embeddings.weight"]),
        ("bert.embeddings.position_embeddings.weight",
         ["bert.embeddings.position_embeddings.weight"]),
        ("bert.embeddings.token_type_embeddings.weight",
         ["bert.embeddings.token_type_embeddings.weight"]),
    ]
    for kind in ("weight", "bias"):
        table.append((f"bert.embeddings.norm.{kind}", [f"bert.embeddings.LayerNorm.{kind}"]))
        for i in range(config.n_layer):
            ours, theirs = f"bert.layers.{i}.", f"bert.encoder.layer.{i}."
            table += [
                (ours + f"self_attn.c_attn.{kind}",
                 [theirs + f"attention.self.{part}.{kind}" for part in ("query", "key", "value")]),
                (ours + f"self_attn.c_proj.{kind}", [theirs + f"attention.output.dense.{kind}"]),
                (ours + f"norm1.{kind}", [theirs + f"attention.output.LayerNorm.{kind}"]),
                (ours + f"feed_forward.c_fc.{kind}", [theirs + f"intermediate.dense.{kind}"]),
                (ours + f"feed_forward.c_proj.{kind}", [theirs + f"output.dense.{kind}"]),
                (ours + f"norm2.{kind}", [theirs + f"output.LayerNorm.{kind}"]),
            ]
        table += [
            (f"bert.pooler.{kind}", [f"bert.pooler.dense.{kind}"]),
            (f"mlm_head.dense.{kind}", [f"cls.predictions.transform.dense.{kind}"]),
            (f"mlm_head.norm.{kind}", [f"cls.predictions.transform.LayerNorm.{kind}"]),
            (f"nsp_head.{kind}", [f"cls.seq_relationship.{kind}"]),
        ]
    table.append(("mlm_head.decoder.bias", ["cls.predictions.bias"]))
    return table


def hf_model(torch, model):
    """transformers.BertForPreTraining built offline with our config and our weights."""
    transformers = pytest.importorskip("transformers")
    c = model.config
    hf_config = transformers.BertConfig(
        vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head, intermediate_size=c.dim_feedforward, hidden_act="gelu",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        max_position_embeddings=c.max_position, type_vocab_size=c.type_vocab_size,
        layer_norm_eps=c.layer_norm_eps, attn_implementation="eager")
    reference = transformers.BertForPreTraining(hf_config).double().eval()
    ours = model.state_dict()
    theirs = {}
    for our_name, hf_parts in hf_names(c):
        for hf_name, part in zip(hf_parts, np.split(ours[our_name], len(hf_parts))):
            theirs[hf_name] = torch.tensor(part)
    missing, _ = reference.load_state_dict(theirs, strict=False)
    assert set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    tied = reference.cls.predictions.decoder.weight
    assert tied is reference.bert.embeddings.word_embeddings.weight
    return reference


def test_parameter_names_and_tied_decoder():
    model = BertForPreTraining(tiny_config())
    named = dict(model.named_parameters())
    assert set(named) == {name for name, _ in hf_names(model.config)}
    assert model.mlm_head.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert "mlm_head.decoder.weight" in model.state_dict()  # saved under both names


def test_matches_hugging_face_hidden_states_logits_losses_and_gradients():
    torch = pytest.importorskip("torch")
    model = float64_model(tiny_config())
    reference = hf_model(torch, model)
    batch = padded_batch(model.config)
    out = model(**batch)
    hidden, pooled = model.bert(batch["input_ids"], batch["token_type_ids"],
                                batch["attention_mask"])
    ref = reference(**{k: torch.tensor(batch[k]) for k in ("input_ids", "token_type_ids",
                                                           "attention_mask")},
                    labels=torch.tensor(batch["mlm_labels"]),
                    next_sentence_label=torch.tensor(batch["nsp_labels"]),
                    output_hidden_states=True)
    ref_bert = reference.bert(**{k: torch.tensor(batch[k]) for k in (
        "input_ids", "token_type_ids", "attention_mask")})
    close = dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(hidden.numpy(), ref.hidden_states[-1].detach().numpy(), **close)
    np.testing.assert_allclose(pooled.numpy(), ref_bert.pooler_output.detach().numpy(), **close)
    np.testing.assert_allclose(out.mlm_logits.numpy(), ref.prediction_logits.detach().numpy(),
                               **close)
    np.testing.assert_allclose(out.nsp_logits.numpy(),
                               ref.seq_relationship_logits.detach().numpy(), **close)
    ref_mlm = torch.nn.functional.cross_entropy(
        ref.prediction_logits.reshape(-1, model.config.vocab_size),
        torch.tensor(batch["mlm_labels"]).reshape(-1))
    ref_nsp = torch.nn.functional.cross_entropy(ref.seq_relationship_logits,
                                                torch.tensor(batch["nsp_labels"]))
    assert out.mlm_loss.item() == pytest.approx(ref_mlm.item(), rel=1e-10)
    assert out.nsp_loss.item() == pytest.approx(ref_nsp.item(), rel=1e-10)
    assert out.loss.item() == pytest.approx(ref.loss.item(), rel=1e-10)

    out.loss.backward()
    ref.loss.backward()
    hf_params = dict(reference.named_parameters())
    named = dict(model.named_parameters())
    for our_name, hf_parts in hf_names(model.config):
        expected = np.concatenate([hf_params[n].grad.numpy() for n in hf_parts])
        np.testing.assert_allclose(named[our_name].grad, expected, rtol=1e-8, atol=1e-11,
                                   err_msg=f"∂L/∂{our_name}")


@pytest.mark.parametrize("nsp_weight", [1.0, 0.25])
def test_loss_is_mlm_plus_weighted_nsp_and_each_term_alone(nsp_weight):
    model = float64_model(tiny_config(nsp_weight=nsp_weight))
    batch = padded_batch(model.config)
    out = model(**batch)
    assert out.loss.item() == pytest.approx(out.mlm_loss.item() + nsp_weight * out.nsp_loss.item(),
                                            rel=1e-12)
    only_mlm = model(**{**batch, "nsp_labels": None})
    assert only_mlm.nsp_loss is None
    assert only_mlm.loss.item() == pytest.approx(out.mlm_loss.item(), rel=1e-12)
    only_nsp = model(**{**batch, "mlm_labels": None})
    assert only_nsp.loss.item() == pytest.approx(nsp_weight * out.nsp_loss.item(), rel=1e-12)
    assert model(batch["input_ids"]).loss is None


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_mlm_loss_counts_only_the_chosen_positions():
    model = float64_model(tiny_config())
    batch = padded_batch(model.config)
    out = model(**{**batch, "nsp_labels": None})
    logits, labels = out.mlm_logits.numpy(), batch["mlm_labels"]
    rows, cols = np.nonzero(labels != -100)
    expected = -log_softmax(logits[rows, cols])[np.arange(rows.size), labels[rows, cols]].mean()
    assert out.mlm_loss.item() == pytest.approx(expected, rel=1e-12)

    # Changing the input at a chosen position changes the loss; the logits of the positions
    # that were not chosen get no gradient.
    logits_leaf = sl.tensor(logits, requires_grad=True)
    sl.functional.cross_entropy(logits_leaf, labels).backward()
    assert np.all(logits_leaf.grad[labels == -100] == 0)
    assert np.all(np.abs(logits_leaf.grad[labels != -100]).sum(axis=-1) > 0)


class LossOf(nn.Module):
    """A module whose output is the pre-training loss, for gradcheck_module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **batch):
        return self.model(**batch).loss


def test_float64_gradcheck_of_the_pretraining_loss():
    config = tiny_config(vocab_size=12, max_position=8, n_layer=1, n_embd=8, n_head=2,
                         dim_feedforward=12)
    model = float64_model(config)
    rng = np.random.default_rng(3)
    ids = rng.integers(4, 12, (2, 6))
    batch = dict(input_ids=ids, token_type_ids=np.array([[0, 0, 0, 1, 1, 1]] * 2),
                 attention_mask=np.array([[1] * 6, [1] * 4 + [0] * 2]),
                 mlm_labels=np.where(rng.random((2, 6)) < 0.5, ids, -100),
                 nsp_labels=np.array([1, 0]))
    # the tied token embedding (used at the input and by the MLM decoder), a LayerNorm gain
    # inside the encoder, and the pooler feeding NSP
    assert nn.gradcheck_module(
        LossOf(model), [], forward_kwargs=batch,
        parameters=["model.bert.embeddings.word_embeddings.weight",
                    "model.bert.layers.0.norm1.weight", "model.bert.pooler.weight",
                    "model.mlm_head.decoder.bias"],
        atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_forward_on_device_matches_the_cpu_float64_model(device):
    model = float64_model(tiny_config())
    batch = padded_batch(model.config)
    expected = model(**batch)
    model.load_state_dict({k: v.astype(np.float32) for k, v in model.state_dict().items()})
    out = model.to(device)(**batch)
    assert out.mlm_logits.device == device
    np.testing.assert_allclose(out.mlm_logits.numpy(), expected.mlm_logits.numpy(), rtol=1e-4,
                               atol=1e-4)
    assert out.loss.item() == pytest.approx(expected.loss.item(), rel=1e-5)


def test_padding_does_not_change_the_real_positions():
    model = float64_model(tiny_config())
    batch = padded_batch(model.config)
    hidden, pooled = model.bert(batch["input_ids"], batch["token_type_ids"],
                                batch["attention_mask"])
    short = model.bert(batch["input_ids"][2:, :4], batch["token_type_ids"][2:, :4])
    np.testing.assert_allclose(hidden.numpy()[2, :4], short.last_hidden_state.numpy()[0],
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pooled.numpy()[2], short.pooler_output.numpy()[0], rtol=1e-10,
                               atol=1e-12)


def test_init_is_berts():
    sl.manual_seed(0)
    model = BertForPreTraining(BertConfig.from_preset("tiny", vocab_size=1000))
    for name, p in model.named_parameters():
        if p.ndim == 2:
            assert abs(p.data.std() - 0.02) < 0.002, name
        elif is_layer_norm_gain(name):
            assert np.all(p.data == 1), name
        else:
            assert np.all(p.data == 0), name


@pytest.mark.parametrize("change, message", [
    (dict(input_ids=np.zeros(5, dtype=np.int64)), "input_ids of shape"),
    (dict(token_type_ids=np.zeros((3, 4), dtype=np.int64)), "token_type_ids of shape"),
    (dict(token_type_ids=np.full((3, 10), 2)), "type_vocab_size=2"),
    (dict(attention_mask=np.ones((2, 10))), "attention_mask of shape"),
    (dict(input_ids=np.zeros((3, 10))), "should hold integers"),
    (dict(mlm_labels=np.zeros((3, 9), dtype=np.int64)), "mlm_labels of shape"),
    (dict(nsp_labels=np.zeros((3, 1), dtype=np.int64)), "nsp_labels of shape"),
])
def test_bad_inputs_raise_clear_errors(change, message):
    model = BertForPreTraining(tiny_config())
    with pytest.raises((ValueError, TypeError), match=message):
        model(**{**padded_batch(model.config), **change})


def test_too_long_input_and_bad_config_raise():
    model = BertModel(tiny_config(max_position=8))
    with pytest.raises(ValueError, match="longer than max_position=8"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="not divisible"):
        BertConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="unknown BERT preset"):
        BertConfig.from_preset("bert-huge")
    assert BertConfig.from_preset("bert-base").dim_feedforward == 3072


# ------------------------------------------------------------------------- pre-training
def topic_documents(num_documents, rng, topics=9, topic_size=4, first_token=4):
    """Documents of three sentences, each document on one topic (a block of ``topic_size``
    ids) and counting through it cyclically: a masked token is its left neighbour + 1 within
    the topic, and a random next sentence is most often on another topic."""
    documents = []
    for _ in range(num_documents):
        topic, start, sentences = rng.integers(topics), rng.integers(topic_size), []
        for _ in range(3):
            length = int(rng.integers(3, 6))
            sentences.append([first_token + topic * topic_size + (start + k) % topic_size
                              for k in range(length)])
            start += length
        documents.append(sentences)
    return documents


def test_pretraining_batch_pairs_packs_and_masks():
    rng = np.random.default_rng(0)
    documents = topic_documents(50, rng)
    batch = make_pretraining_batch(documents, 40, CLS_ID, SEP_ID, PAD_ID, MASK_ID,
                                   max_length=16, rng=rng)
    N = 50 * 2  # two consecutive pairs per document
    assert batch.input_ids.shape == batch.mlm_labels.shape == (N, 16)
    assert batch.nsp_labels.tolist().count(1) == N // 2
    assert np.all(batch.input_ids[:, 0] == CLS_ID)
    chosen = batch.mlm_labels != -100
    assert not chosen[~batch.attention_mask.astype(bool)].any()  # never padding
    assert not np.isin(batch.mlm_labels[chosen], SPECIAL_IDS).any()  # never [CLS]/[SEP]
    assert 0.05 < chosen.sum() / np.isin(batch.input_ids, range(4, 40)).sum() < 0.3
    for row in range(N):  # a real next sentence continues the count of the first one
        ids = np.where(chosen[row], batch.mlm_labels[row], batch.input_ids[row])
        sep = np.flatnonzero(ids == SEP_ID)
        last_a, first_b = ids[sep[0] - 1] - 4, ids[sep[0] + 1] - 4
        continues = first_b == last_a // 4 * 4 + (last_a + 1) % 4
        assert continues or not batch.nsp_labels[row]
    fixed = make_pretraining_batch(documents, 40, CLS_ID, SEP_ID, PAD_ID, MASK_ID, 16,
                                   np.random.default_rng(7), batch_size=8)
    again = make_pretraining_batch(documents, 40, CLS_ID, SEP_ID, PAD_ID, MASK_ID, 16,
                                   np.random.default_rng(7), batch_size=8)
    assert fixed.input_ids.shape == (8, 16)
    for a, b in zip(fixed, again):
        np.testing.assert_array_equal(a, b)


def test_tiny_bert_pretraining_lowers_mlm_and_nsp_losses():
    sl.manual_seed(0)
    model = BertForPreTraining(tiny_config(n_embd=64, n_head=4, max_position=16))
    rng = np.random.default_rng(0)
    documents = topic_documents(400, rng)
    history = []

    def draw(_, batch_size):  # from the generator that drew the documents, not the trainer's
        return make_pretraining_batch(documents, 40, CLS_ID, SEP_ID, PAD_ID, MASK_ID, 16, rng,
                                      batch_size=batch_size)

    def pretraining_loss(model, batch):
        out = model(**batch._asdict())
        history.append((out.mlm_loss.item(), out.nsp_loss.item()))
        return out.loss

    config = TrainConfig(max_steps=150, batch_size=32, learning_rate=5e-3, warmup_steps=30,
                         weight_decay=0.01, beta2=0.999, grad_clip=0.0)
    Trainer(model, draw, None, config, loss_fn=pretraining_loss).train(progress=False)
    assert len(history) == 150
    first, last = np.mean(history[:5], axis=0), np.mean(history[-10:], axis=0)
    assert first == pytest.approx([np.log(40), np.log(2)], rel=0.05)  # chance at the start
    assert last[0] < 0.6 * first[0], (first, last)
    assert last[1] < 0.6 * first[1], (first, last)
