"""GPT end to end: against a PyTorch GPT with the same weights, against Hugging Face's GPT-2,
and its generation, limits and errors."""

import json

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.optim as optim
from scratchlm.generation import beam_search, generate
from scratchlm.models import GPT, GPTConfig


def tiny_model(seed=0, **overrides):
    sl.manual_seed(seed)
    return GPT(GPTConfig.from_preset("tiny", **overrides))


def random_ids(shape, vocab=65, seed=1):
    return np.random.default_rng(seed).integers(0, vocab, shape)


def test_parameter_names_are_nanogpts():
    names = [name for name, _ in tiny_model().named_parameters()]
    layer = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
             "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
             "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"]
    expected = (["transformer.wte.weight", "transformer.wpe.weight"]
                + [f"transformer.h.{i}.{n}" for i in range(2) for n in layer]
                + ["transformer.ln_f.weight", "transformer.ln_f.bias"])
    assert names == expected  # lm_head.weight is wte.weight, listed once
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" in model.state_dict()


@pytest.mark.parametrize("bias", [True, False])
def test_float32_logits_loss_and_gradients_match_pytorch(bias):
    torch = pytest.importorskip("torch")
    from torch_gpt import TorchGPT

    model = tiny_model(bias=bias)
    reference = TorchGPT(**model.config.to_dict())
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    idx, targets = random_ids((3, 20)), random_ids((3, 20), seed=2)
    logits, loss = model(idx, targets)
    ref_logits, ref_loss = reference(torch.tensor(idx), torch.tensor(targets))
    np.testing.assert_allclose(logits.numpy(), ref_logits.detach().numpy(), rtol=1e-4, atol=2e-5)
    assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-5)
    loss.backward()
    ref_loss.backward()
    reference_params = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, reference_params[name].grad.numpy(), rtol=1e-3,
                                   atol=1e-6, err_msg=f"∂L/∂{name}")


def test_matches_pytorch_logits_loss_gradients_and_adamw_steps():
    torch = pytest.importorskip("torch")
    from torch_gpt import TorchGPT

    # float64: the key bias of c_attn has an exactly zero gradient (a constant added to every
    # score of a row leaves softmax unchanged), and Adam would blow float32 rounding noise in
    # it up to full-size steps that differ between the frameworks.
    model = tiny_model()
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    reference = TorchGPT(**model.config.to_dict()).double()
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    idx, targets = random_ids((3, 20)), random_ids((3, 20), seed=2)
    ours = optim.AdamW(optim.weight_decay_groups(model.named_parameters(), 0.1), lr=1e-2)
    theirs = torch.optim.AdamW(
        [{"params": [p for p in reference.parameters() if p.ndim >= 2], "weight_decay": 0.1},
         {"params": [p for p in reference.parameters() if p.ndim < 2], "weight_decay": 0.0}],
        lr=1e-2)
    reference_params = dict(reference.named_parameters())
    for step in range(5):
        logits, loss = model(idx, targets)
        ref_logits, ref_loss = reference(torch.tensor(idx), torch.tensor(targets))
        np.testing.assert_allclose(logits.numpy(), ref_logits.detach().numpy(), rtol=1e-9,
                                   atol=1e-10, err_msg=f"logits at step {step}")
        assert loss.item() == pytest.approx(ref_loss.item(), rel=1e-12)
        ours.zero_grad()
        theirs.zero_grad()
        loss.backward()
        ref_loss.backward()
        for name, p in model.named_parameters():
            np.testing.assert_allclose(p.grad, reference_params[name].grad.numpy(), rtol=1e-7,
                                       atol=1e-12, err_msg=f"∂L/∂{name} at step {step}")
        ours.step()
        theirs.step()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.numpy(), reference_params[name].detach().numpy(),
                                   rtol=1e-6, atol=1e-9, err_msg=f"{name} after 5 steps")


def test_float64_model_gradchecks():
    model = tiny_model(n_layer=1, block_size=8, n_embd=16)
    model.load_state_dict({k: v.astype(np.float64) for k, v in model.state_dict().items()})
    idx, targets = random_ids((2, 6)), random_ids((2, 6), seed=3)
    wpe = model.transformer.wpe.weight
    c_fc = model.transformer.h[0].mlp.c_fc.weight
    assert wpe.dtype == np.float64
    # Each parameter's gradient against a central difference along a random direction.
    _, loss = model(idx, targets)
    loss.backward()
    analytic = [wpe.grad.copy(), c_fc.grad.copy()]
    rng = np.random.default_rng(0)
    for param, grad in zip((wpe, c_fc), analytic):
        direction = rng.standard_normal(param.shape)
        original = param.data.copy()
        eps = 1e-6
        param.data = original + eps * direction
        plus = model(idx, targets)[1].item()
        param.data = original - eps * direction
        minus = model(idx, targets)[1].item()
        param.data = original
        numerical = (plus - minus) / (2 * eps)
        assert float((grad * direction).sum()) == pytest.approx(numerical, rel=1e-6, abs=1e-9)


def test_longer_than_block_size_raises_but_generate_crops():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"33 positions is longer than block_size=32"):
        model(random_ids((1, 33)))
    out = model.generate(random_ids((1, 30)), max_new_tokens=10, do_sample=False)
    assert out.shape == (1, 40)
    # Past block_size the next token depends only on the last block_size tokens.
    logits, _ = model(out[:, -33:-1])
    assert out[0, -1] == logits.data[0, -1].argmax()


def test_kv_cache_generation_equals_full_recomputation():
    model = tiny_model()
    prompt = random_ids((2, 5))
    cached = model.generate(prompt, 20, do_sample=False, use_cache=True)
    full = model.generate(prompt, 20, do_sample=False, use_cache=False)
    np.testing.assert_array_equal(cached, full)
    sl.manual_seed(7)
    sampled_cached = model.generate(prompt, 20, top_k=10, use_cache=True)
    sl.manual_seed(7)
    sampled_full = model.generate(prompt, 20, top_k=10, use_cache=False)
    np.testing.assert_array_equal(sampled_cached, sampled_full)


def test_cached_logits_equal_full_logits():
    model = tiny_model()
    ids = random_ids((2, 12))
    with sl.no_grad():
        full, _ = model(ids)
        caches = model.new_kv_caches()
        first, _ = model(ids[:, :7], kv_caches=caches)
        rest = [model(ids[:, t:t + 1], kv_caches=caches)[0] for t in range(7, 12)]
    stepwise = np.concatenate([first.numpy()] + [r.numpy() for r in rest], axis=1)
    np.testing.assert_allclose(stepwise, full.numpy(), rtol=1e-5, atol=1e-6)


def test_greedy_matches_pytorch_reference_generation():
    torch = pytest.importorskip("torch")
    from torch_gpt import TorchGPT

    model = tiny_model()
    reference = TorchGPT(**model.config.to_dict())
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    prompt = random_ids((2, 4))
    ours = model.generate(prompt, 15, do_sample=False)
    theirs = reference.generate(torch.tensor(prompt), 15).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_sampling_follows_the_model_distribution():
    """Sampled first tokens from a fixed prompt match softmax(logits) (chi-square-ish)."""
    model = tiny_model()
    prompt = np.zeros((4000, 1), dtype=np.int64)
    sl.manual_seed(3)
    tokens = model.generate(prompt, 1, temperature=1.0)[:, -1]
    with sl.no_grad():
        logits = model(prompt[:1])[0].numpy()[0, -1].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    counts = np.bincount(tokens, minlength=65) / len(tokens)
    assert np.abs(counts - probs).max() < 0.03


def test_generate_returns_the_type_it_was_given():
    model = tiny_model()
    prompt = random_ids((1, 3))
    assert isinstance(model.generate(prompt, 2), np.ndarray)
    out = model.generate(sl.tensor(prompt), 2)
    assert isinstance(out, sl.Tensor) and out.shape == (1, 5)


def test_top_k_one_is_greedy():
    model = tiny_model()
    prompt = random_ids((2, 3))
    np.testing.assert_array_equal(model.generate(prompt, 8, top_k=1),
                                  model.generate(prompt, 8, do_sample=False))


def log_probs_of(model, ids):
    with sl.no_grad():
        logits = model(ids)[0].numpy().astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_beam_search_width_one_is_greedy():
    model = tiny_model()
    prompt = random_ids((1, 4))
    beam, _ = beam_search(model, prompt, 6, beam_width=1)
    np.testing.assert_array_equal(beam, generate(model, prompt, 6, do_sample=False))


def test_full_width_beam_search_finds_the_best_two_token_continuation():
    """With beam_width = vocabulary size, two steps of beam search are exhaustive."""
    model = tiny_model(vocab_size=11)
    prompt = random_ids((1, 3), vocab=11)
    beam, score = beam_search(model, prompt, 2, beam_width=11)
    first = log_probs_of(model, prompt)[0, -1]                        # (V,)
    candidates = np.concatenate([np.repeat(prompt, 11, 0), np.arange(11)[:, None]], 1)
    second = log_probs_of(model, candidates)[:, -1]                   # (V, V)
    total = first[:, None] + second
    a, b = np.unravel_index(total.argmax(), total.shape)
    np.testing.assert_array_equal(beam[0, 3:], [a, b])
    assert score == pytest.approx(total.max(), rel=1e-5)


def test_beam_search_score_is_the_sequence_log_probability():
    model = tiny_model()
    prompt = random_ids((1, 3))
    beam, score = beam_search(model, prompt, 5, beam_width=3)
    log_probs = log_probs_of(model, beam[:, :-1])[0]
    assert score == pytest.approx(log_probs[np.arange(2, 7), beam[0, 3:]].sum(), rel=1e-5)


def test_empty_prompt_and_unknown_preset_errors():
    with pytest.raises(ValueError, match="prompt is empty"):
        tiny_model().generate(np.zeros((1, 0), dtype=np.int64), 3)
    with pytest.raises(ValueError, match=r"unknown GPT preset 'gpt5'"):
        GPTConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(n_embd=10, n_head=3)


def test_hf_gpt2_safetensors_logits_equal_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=128, n_layer=2,
                                     n_head=4, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.save_pretrained(tmp_path)
    model = GPT.from_hf_gpt2(tmp_path / "model.safetensors")
    assert model.config.n_head == 4  # from config.json, not the 64-wide default
    ids = random_ids((2, 10), vocab=100)
    with torch.no_grad():
        expected = hf(torch.tensor(ids)).logits.numpy()
    logits, _ = model(ids)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=1e-5)
    # Without config.json the head count falls back to GPT-2's head size of 64.
    (tmp_path / "config.json").unlink()
    assert GPT.from_hf_gpt2(tmp_path / "model.safetensors").config.n_head == 128 // 64


def test_hf_loader_rejects_a_non_gpt2_file(tmp_path):
    from scratchlm.safetensors import save_safetensors

    path = tmp_path / "model.safetensors"
    save_safetensors({"encoder.weight": np.zeros((2, 2), np.float32)}, path)
    with pytest.raises(ValueError, match="wte.weight"):
        GPT.from_hf_gpt2(path)


def test_hf_loader_rejects_a_config_that_contradicts_the_weights(tmp_path):
    from scratchlm.safetensors import save_safetensors

    model = tiny_model()
    arrays = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()
              if k != "lm_head.weight"}
    save_safetensors(arrays, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"n_layer": 5, "n_embd": 32, "n_head": 2}))
    with pytest.raises(ValueError, match="n_layer=5"):
        GPT.from_hf_gpt2(tmp_path / "model.safetensors")
