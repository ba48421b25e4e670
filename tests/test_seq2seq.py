"""The encoder-decoder Transformer: against torch.nn's Transformer layers with the same weights,
cached against full decoding, beam search against exhaustive search, and a tiny model that
learns to reverse sequences."""

import itertools
import math

import numpy as np
import pytest
from conftest import DEVICES

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm.metrics import bleu
from scratchlm.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, trim_at_eos
from scratchlm.text import pad_sequences
from scratchlm.train import TrainConfig, Trainer
from scratchlm.translate import train_translation

PAD, BOS, EOS = 0, 1, 2
VOCAB = 13  # the three special ids and ten symbols


def tiny_model(seed=0, **overrides):
    sl.manual_seed(seed)
    return Seq2SeqTransformer(Seq2SeqConfig.from_preset(
        "tiny", VOCAB, VOCAB + 2, **{"num_encoder_layers": 1, **overrides}))


def float64_model(seed=0, **overrides):
    """A tiny model with every parameter redrawn (gains around 1) in float64."""
    model = tiny_model(seed, **overrides)
    rng = np.random.default_rng(seed)
    model.load_state_dict({
        name: rng.normal(1.0 if "norm" in name and name.endswith("weight") else 0.0, 0.3,
                         value.shape) for name, value in model.state_dict().items()})
    return model


def padded_pair(seed=1):
    """Sources and shifted targets of different lengths, right-padded."""
    rng = np.random.default_rng(seed)
    src = pad_sequences([list(rng.integers(3, VOCAB, n)) for n in (6, 4, 2)])
    targets = [list(rng.integers(3, VOCAB + 2, n)) for n in (3, 5, 1)]
    tgt_in = pad_sequences([[BOS] + t for t in targets])
    tgt_out = pad_sequences([t + [EOS] for t in targets])
    return src, tgt_in, tgt_out


# --------------------------------------------------------------------- torch reference
#: (our name piece, torch's), applied in this order (the feed-forward's c_proj before
#: attention's). Torch fuses cross-attention's q and kv projections into one in_proj.
RENAMES = [("feed_forward.c_fc.", "linear1."), ("feed_forward.c_proj.", "linear2."),
           ("encoder_layers.", "encoder.layers."), ("decoder_layers.", "decoder.layers."),
           ("encoder_norm.", "encoder.norm."), ("decoder_norm.", "decoder.norm."),
           ("c_attn.weight", "in_proj_weight"), ("c_attn.bias", "in_proj_bias"),
           ("c_proj.", "out_proj."), ("cross_attn.", "multihead_attn.")]


def torch_reference(torch, model):
    """The same model from torch.nn.TransformerEncoder/Decoder (batch_first) with our weights."""
    c = model.config
    tnn = torch.nn

    class TorchSeq2Seq(tnn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = tnn.Embedding(c.src_vocab_size, c.d_model)
            self.tgt_embed = tnn.Embedding(c.tgt_vocab_size, c.d_model)
            layer_args = dict(d_model=c.d_model, nhead=c.n_head,
                              dim_feedforward=c.dim_feedforward, dropout=0.0,
                              activation=c.activation, batch_first=True,
                              norm_first=c.norm_first, layer_norm_eps=c.layer_norm_eps)
            final_norm = tnn.LayerNorm(c.d_model, c.layer_norm_eps) if c.norm_first else None
            self.encoder = tnn.TransformerEncoder(
                tnn.TransformerEncoderLayer(**layer_args), c.num_encoder_layers,
                norm=final_norm, enable_nested_tensor=False)
            final_norm = tnn.LayerNorm(c.d_model, c.layer_norm_eps) if c.norm_first else None
            self.decoder = tnn.TransformerDecoder(
                tnn.TransformerDecoderLayer(**layer_args), c.num_decoder_layers, norm=final_norm)
            self.output_proj = tnn.Linear(c.d_model, c.tgt_vocab_size)
            if c.tie_output:
                self.output_proj.weight = self.tgt_embed.weight
            # PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…), built here anew
            position = torch.arange(c.max_len, dtype=torch.float64)[:, None]
            frequency = 10000.0 ** (-torch.arange(0, c.d_model, 2, dtype=torch.float64)
                                    / c.d_model)
            pe = torch.zeros(c.max_len, c.d_model, dtype=torch.float64)
            pe[:, 0::2], pe[:, 1::2] = torch.sin(position * frequency), torch.cos(position
                                                                                 * frequency)
            self.pe = pe.float().double()  # ours keeps the table in float32

        def forward(self, src, tgt_in, tgt_out, label_smoothing):
            scale = math.sqrt(c.d_model)
            padding = src == c.pad_id
            memory = self.encoder(self.src_embed(src) * scale + self.pe[:src.shape[1]],
                                  src_key_padding_mask=padding)
            T = tgt_in.shape[1]
            hidden = self.decoder(self.tgt_embed(tgt_in) * scale + self.pe[:T], memory,
                                  tgt_mask=tnn.Transformer.generate_square_subsequent_mask(
                                      T, dtype=torch.float64),
                                  tgt_is_causal=True, memory_key_padding_mask=padding)
            logits = self.output_proj(hidden)
            loss = tnn.functional.cross_entropy(logits.reshape(-1, c.tgt_vocab_size),
                                                tgt_out.reshape(-1), ignore_index=c.pad_id,
                                                label_smoothing=label_smoothing)
            return logits, loss

    reference = TorchSeq2Seq().double()
    theirs = {}
    for name, array in model.state_dict().items():
        for ours, torch_piece in RENAMES:
            name = name.replace(ours, torch_piece)
        theirs[name] = torch.tensor(array)
    for key in [k for k in theirs if "multihead_attn.q_proj" in k]:  # fused (q; k, v) rows
        kind = key.rsplit(".", 1)[1]
        prefix = key[:key.index("q_proj")]
        theirs[f"{prefix}in_proj_{kind}"] = torch.cat(
            [theirs.pop(key), theirs.pop(f"{prefix}kv_proj.{kind}")])
    reference.load_state_dict(theirs, strict=True)
    return reference.train()  # train mode (dropout is 0): torch's fast path stays off


def our_name(torch_name):
    """Our parameter name for a torch reference parameter name (gradients are compared)."""
    for ours, torch_piece in RENAMES:
        torch_name = torch_name.replace(torch_piece, ours)
    return torch_name


@pytest.mark.parametrize("norm_first, tie_output", [(False, True), (False, False),
                                                    (True, True)])
def test_matches_torch_transformer_logits_loss_and_gradients(norm_first, tie_output):
    torch = pytest.importorskip("torch")
    model = float64_model(norm_first=norm_first, tie_output=tie_output)
    reference = torch_reference(torch, model)
    src, tgt_in, tgt_out = padded_pair()
    logits, loss = model(src, tgt_in, tgt_out, label_smoothing=0.1)
    ref_logits, ref_loss = reference(torch.tensor(src), torch.tensor(tgt_in),
                                     torch.tensor(tgt_out), 0.1)
    np.testing.assert_allclose(logits.numpy(), ref_logits.detach().numpy(), rtol=1e-9,
                               atol=1e-11)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-10)
    loss.backward()
    ref_loss.backward()
    ours = dict(model.named_parameters())
    checked = set()
    for torch_name, p in reference.named_parameters():
        name = our_name(torch_name)
        if "cross_attn.c_attn" in name:  # our q_proj and kv_proj, stacked
            kind = name.rsplit(".", 1)[1]
            prefix = name[:name.index("c_attn")]
            grad = np.concatenate([ours[f"{prefix}q_proj.{kind}"].grad,
                                   ours[f"{prefix}kv_proj.{kind}"].grad])
            checked |= {f"{prefix}q_proj.{kind}", f"{prefix}kv_proj.{kind}"}
        else:
            grad = ours[name].grad
            checked.add(name)
        np.testing.assert_allclose(grad, p.grad.numpy(), rtol=1e-8, atol=1e-11,
                                   err_msg=f"∂L/∂{name}")
    assert checked == set(ours)


class LossOf(nn.Module):
    """A module whose output is the seq2seq loss, for gradcheck_module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **batch):
        return self.model(**batch, label_smoothing=0.1)[1]


def test_float64_gradcheck_of_the_loss_through_both_stacks():
    model = float64_model(d_model=8, dim_feedforward=12)
    # the source embedding (reached only through the encoder and cross-attention), the tied
    # target embedding / output projection, and a cross-attention bias
    assert nn.gradcheck_module(
        LossOf(model), [], forward_kwargs=dict(zip(("src", "tgt_in", "tgt_out"), padded_pair())),
        parameters=["model.src_embed.weight", "model.tgt_embed.weight",
                    "model.output_proj.bias", "model.decoder_layers.1.cross_attn.kv_proj.bias"],
        atol=1e-7, rtol=1e-5)


def test_source_padding_is_masked_and_target_padding_ignored():
    model = float64_model()
    src, tgt_in, tgt_out = padded_pair()
    logits, loss = model(src, tgt_in, tgt_out)
    wider = np.pad(src, ((0, 0), (0, 3)), constant_values=PAD)  # more padding
    wider_logits, wider_loss = model(wider, tgt_in, tgt_out)
    np.testing.assert_allclose(wider_logits.numpy(), logits.numpy(), rtol=1e-10, atol=1e-12)
    # the third target has one real token: its loss does not depend on what the padding shows
    changed_in = tgt_in.copy()
    changed_in[2, 2:] = 7
    changed_logits, changed_loss = model(src, changed_in, tgt_out)
    assert changed_loss.item() == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(changed_logits.numpy()[2, :2], logits.numpy()[2, :2], rtol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_recomputation(device, norm_first):
    model = tiny_model(norm_first=norm_first).to(device)
    src, tgt_in, _ = padded_pair()
    with sl.no_grad():
        padding = model.source_padding(src)
        memory = model.encode(src, padding)
        full = model.decode(tgt_in, memory, padding).numpy()
        caches = model.new_kv_caches(tgt_in.shape[1])
        steps = [model.decode_step(tgt_in[:, t:t + 1], memory, caches, padding)
                 for t in range(tgt_in.shape[1])]
    stepped = np.stack([sl.backend.to_numpy(s) for s in steps], axis=1)
    np.testing.assert_allclose(stepped, full, rtol=1e-5, atol=1e-5)
    cached = model.greedy_decode(src, 8, BOS, EOS, use_cache=True)
    recomputed = model.greedy_decode(src, 8, BOS, EOS, use_cache=False)
    np.testing.assert_array_equal(sl.backend.to_numpy(cached), sl.backend.to_numpy(recomputed))
    assert model.training  # decoding put the model back in its mode


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_finds_the_exhaustive_best(length_penalty):
    """With a beam wider than every possible hypothesis nothing is pruned (or, without a
    length penalty, only what cannot win), so beam search must return the best of all."""
    model = tiny_model(seed=3, d_model=16, tie_output=False)
    vocab, max_len = VOCAB + 2, 3
    src = np.array([[5, 6, 7, 8], [9, 3, 0, 0]])
    ids, scores = model.beam_search(src, vocab ** max_len, max_len, BOS, EOS, length_penalty)
    every = np.array(list(itertools.product(range(vocab), repeat=max_len)))
    with sl.no_grad():
        for row in range(2):
            sources = np.repeat(src[row:row + 1], len(every), axis=0)
            tgt_in = np.concatenate([np.full((len(every), 1), BOS), every[:, :-1]], axis=1)
            logits, _ = model(sources, tgt_in)
            z = logits.numpy().astype(np.float64)
            z -= z.max(axis=-1, keepdims=True)
            log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            token_log_p = np.take_along_axis(log_p, every[:, :, None], axis=2)[:, :, 0]
            best = {}  # hypothesis (cut after EOS) → normalized score
            for sequence, token_scores in zip(every.tolist(), token_log_p):
                n = sequence.index(EOS) + 1 if EOS in sequence else max_len
                best[tuple(sequence[:n])] = token_scores[:n].sum() / n ** length_penalty
            winner = max(best, key=best.get)
            found = sl.backend.to_numpy(ids[row]).tolist()
            assert tuple(found[:len(winner)]) == winner
            assert all(t == PAD for t in found[len(winner):])
            assert float(scores[row]) == pytest.approx(best[winner], rel=1e-5)


# ------------------------------------------------------------- learning to reverse sequences
def reversal_batch(rng, size):
    """Random sequences of 3-8 symbols (ids 3..12) and their reversals."""
    sources = [list(rng.integers(3, VOCAB, n)) for n in rng.integers(3, 9, size)]
    targets = [s[::-1] for s in sources]
    return (pad_sequences(sources), pad_sequences([[BOS] + t for t in targets]),
            pad_sequences([t + [EOS] for t in targets]), targets)


@pytest.fixture(scope="module")
def reverser():
    """A tiny seq2seq trained for 400 steps (about 5 s) to reverse its input, by the Trainer."""
    sl.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig.from_preset("tiny", VOCAB, VOCAB))
    config = TrainConfig(max_steps=400, batch_size=64, learning_rate=3e-3, warmup_steps=50,
                         weight_decay=0.0, beta2=0.98, eps=1e-9, grad_clip=0.0, seed=0)
    trainer = Trainer(model, lambda rng, size: reversal_batch(rng, size)[:3], None, config)
    trainer.train(progress=False)
    src, _, _, targets = reversal_batch(np.random.default_rng(99), 200)  # unseen sequences
    return model, src, targets


def test_tiny_model_learns_to_reverse(reverser):
    model, src, targets = reverser
    outputs = trim_at_eos(model.greedy_decode(src, 10, BOS, EOS), EOS)
    exact = np.mean([o == t for o, t in zip(outputs, targets)])
    tokens = np.mean([a == b for o, t in zip(outputs, targets)
                      for a, b in itertools.zip_longest(o, t)])
    assert exact >= 0.97 and tokens >= 0.99, (exact, tokens)


def test_beam_width_one_is_greedy_and_wider_beams_score_no_worse(reverser):
    model, src, _ = reverser
    greedy = model.greedy_decode(src, 10, BOS, EOS)
    beam_ids, _ = model.beam_search(src, 1, 10, BOS, EOS)
    np.testing.assert_array_equal(beam_ids, greedy)
    _, greedy_scores = model.beam_search(src, 1, 10, BOS, EOS, length_penalty=0.0)
    _, wide_scores = model.beam_search(src, 4, 10, BOS, EOS, length_penalty=0.0)
    # log-probability of the best found; the model is float32 and the two searches batch
    # their rows differently, so equal paths may score apart by float32 rounding
    assert np.all(wide_scores >= greedy_scores - 1e-5)


def test_bleu_of_the_outputs(reverser):
    model, src, targets = reverser
    outputs = trim_at_eos(model.beam_search(src, 3, 10, BOS, EOS)[0], EOS)

    def words(ids):
        return " ".join(f"w{i}" for i in ids)

    hypotheses, references = [words(o) for o in outputs], [words(t) for t in targets]
    assert bleu(references, references) == pytest.approx(100.0)  # exp(log 100), as sacrebleu
    same = [i for i, (h, r) in enumerate(zip(hypotheses, references)) if h == r]
    assert len(same) >= 190
    assert bleu([hypotheses[i] for i in same], [references[i] for i in same]) == pytest.approx(100)
    assert bleu(hypotheses, references) > 95.0


def test_train_translation_runs_end_to_end():
    pairs = [("abc", "cba"), ("abd", "dba"), ("bcd", "dcb"), ("cab", "bac")] * 4
    logged = []
    run = train_translation(pairs, preset="tiny", steps=40, batch_size=16, lr=3e-3,
                            warmup_steps=5, log_every=20, log=logged.append)
    assert [step for step, _ in run.history] == [20, 40]
    assert run.history[-1][1] < run.history[0][1]
    assert len(logged) == 2 and "loss" in logged[0]
    assert run.source_vocab.vocab_size == 3 + 4
    translations = run.translate(["abc", "xyz", "dcba"], beam_width=2, max_len=6)
    assert len(translations) == 3 and all(isinstance(t, str) for t in translations)
    assert 0.0 <= run.bleu(pairs[:4]) <= 100.0


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, message", [
    (lambda m: m(np.zeros(4, dtype=np.int64), np.zeros((1, 2), dtype=np.int64)),
     "src should be integer token ids"),
    (lambda m: m(np.zeros((1, 4)), np.zeros((1, 2), dtype=np.int64)), "dtype float64"),
    (lambda m: m(np.ones((1, 65), dtype=np.int64), np.ones((1, 2), dtype=np.int64)),
     "beyond max_len=64"),
    (lambda m: m(np.ones((1, 4), dtype=np.int64), np.ones((1, 2), dtype=np.int64),
                 np.ones((1, 3), dtype=np.int64)), "cross_entropy: target of shape"),
    (lambda m: m.greedy_decode(np.ones((1, 4), dtype=np.int64), 0, BOS, EOS), "max_len=0"),
    (lambda m: m.beam_search(np.ones((1, 4), dtype=np.int64), 0, 5, BOS, EOS), "beam_width=0"),
    (lambda m: m.greedy_decode(np.ones((1, 4), dtype=np.int64), 65, BOS, EOS),
     "beyond max_len=64"),
])
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model())


def test_config_checks_and_presets():
    with pytest.raises(ValueError, match="not divisible"):
        Seq2SeqConfig(10, 10, d_model=30, n_head=4)
    with pytest.raises(ValueError, match="pad_id=12"):
        Seq2SeqConfig(10, 20, pad_id=12)
    with pytest.raises(ValueError, match="unknown seq2seq preset"):
        Seq2SeqConfig.from_preset("huge", 10, 10)
    base = Seq2SeqConfig.from_preset("transformer-base", 37000, 37000)
    assert (base.d_model, base.n_head, base.num_encoder_layers, base.dim_feedforward) == (
        512, 8, 6, 2048)
    model = tiny_model(tie_output=True)
    assert model.output_proj.weight is model.tgt_embed.weight
    assert "output_proj.weight" not in dict(model.named_parameters())
