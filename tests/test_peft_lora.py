"""LoRA: the op against a plain-NumPy formula, gradient checks and PyTorch (forward and every
gradient, float64), peft's initialization, apply_lora's swapping and freezing, merge /
unmerge, adapter-only checkpoints."""

import math

import numpy as np
import pytest

import scratchlm as sl
import scratchlm.nn as nn
from scratchlm.functional.lora import LoRALinear as LoRAFunction
from scratchlm.functional.lora import lora_linear
from scratchlm.models import GPT, GPTConfig, GPTForSequenceClassification
from scratchlm.peft import (
    LoRALinear,
    apply_lora,
    count_parameters,
    load_lora,
    merge_lora,
    save_lora,
    unmerge_lora,
)
from scratchlm.peft.lora import kaiming_uniform_bound


def arrays(rng, batch=(2, 3), n_in=5, n_out=4, r=2):
    return dict(x=rng.standard_normal((*batch, n_in)), w=rng.standard_normal((n_out, n_in)),
                a=rng.standard_normal((r, n_in)), b=rng.standard_normal((n_out, r)),
                bias=rng.standard_normal(n_out))


def by_hand(x, w, a, b, bias, scaling, keep=None, p=0.0):
    """y = x Wᵀ + b + s·(d(x) Aᵀ) Bᵀ in plain NumPy."""
    dropped = x if keep is None else x * keep / (1 - p)
    return x @ w.T + bias + scaling * (dropped @ a.T) @ b.T


@pytest.mark.parametrize("with_dropout", [False, True])
def test_forward_is_the_formula(rng, with_dropout):
    v = arrays(rng)
    keep = rng.random(v["x"].shape) > 0.3 if with_dropout else None
    p = 0.3 if with_dropout else 0.0
    y = LoRAFunction(2.5, p, keep)(v["x"], v["w"], v["a"], v["b"], v["bias"])
    np.testing.assert_allclose(y.numpy(), by_hand(**v, scaling=2.5, keep=keep, p=p),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("with_dropout", [False, True])
def test_backward_gradcheck(rng, with_bias, with_dropout):
    v = arrays(rng)
    keep = rng.random(v["x"].shape) > 0.4 if with_dropout else None
    inputs = [v["x"], v["w"], v["a"], v["b"]] + ([v["bias"]] if with_bias else [])
    assert sl.gradcheck_op(lambda: LoRAFunction(0.7, 0.4 if with_dropout else 0.0, keep),
                           inputs)
    tensors = [sl.tensor(a, requires_grad=True) for a in inputs]
    assert sl.gradcheck(lambda *t: LoRAFunction(0.7, 0.4 if with_dropout else 0.0, keep)(*t),
                        tensors)


def test_every_gradient_equals_pytorch(rng):
    torch = pytest.importorskip("torch")
    v = arrays(rng, batch=(3, 4), n_in=6, n_out=5, r=3)
    keep = rng.random(v["x"].shape) > 0.25
    scaling, p = 16 / 3, 0.25
    ours = {k: sl.tensor(a, requires_grad=True) for k, a in v.items()}
    y = LoRAFunction(scaling, p, keep)(ours["x"], ours["w"], ours["a"], ours["b"], ours["bias"])
    cotangent = rng.standard_normal(y.shape)
    (y * sl.tensor(cotangent)).sum().backward()

    theirs = {k: torch.tensor(a, requires_grad=True) for k, a in v.items()}
    mask = torch.tensor(keep, dtype=torch.float64) / (1 - p)  # the same dropout mask
    lora = torch.nn.functional.linear(
        torch.nn.functional.linear(theirs["x"] * mask, theirs["a"]), theirs["b"])
    reference = torch.nn.functional.linear(theirs["x"], theirs["w"], theirs["bias"]) \
        + scaling * lora
    (reference * torch.tensor(cotangent)).sum().backward()
    np.testing.assert_allclose(y.numpy(), reference.detach().numpy(), rtol=1e-12, atol=1e-12)
    for name in v:
        np.testing.assert_allclose(ours[name].grad, theirs[name].grad.numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def test_frozen_weight_gets_no_gradient_and_no_gemm(rng):
    v = arrays(rng)
    x = sl.tensor(v["x"], requires_grad=True)
    w, bias = sl.tensor(v["w"]), sl.tensor(v["bias"])
    a, b = sl.tensor(v["a"], requires_grad=True), sl.tensor(v["b"], requires_grad=True)
    lora_linear(x, w, a, b, bias, scaling=2.0).sum().backward()
    assert w.grad is None and bias.grad is None
    assert a.grad.shape == a.shape and b.grad.shape == b.shape and x.grad is not None


def test_shape_errors_name_the_op(rng):
    v = arrays(rng)
    with pytest.raises(ValueError, match=r"lora_linear: lora_B of shape \(4, 3\)"):
        LoRAFunction(1.0)(v["x"], v["w"], v["a"], rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match="lora_linear: input of shape"):
        LoRAFunction(1.0)(rng.standard_normal((2, 7)), v["w"], v["a"], v["b"])


# ----------------------------------------------------------------------- the layer
def test_layer_starts_equal_to_the_base_with_peft_init():
    torch = pytest.importorskip("torch")
    sl.manual_seed(0)
    base = nn.Linear(64, 32)
    x = np.random.default_rng(1).standard_normal((3, 64)).astype(np.float32)
    before = base(x).numpy()
    layer = LoRALinear(base, r=8, alpha=16)
    assert layer.weight is base.weight and not layer.weight.requires_grad
    assert np.all(layer.lora_B.data == 0) and layer.scaling == 2.0
    np.testing.assert_array_equal(layer(x).numpy(), before)
    # peft: kaiming_uniform_(A, a=√5) — the same bound as torch's
    bound = kaiming_uniform_bound(64)
    assert math.isclose(bound, 1 / math.sqrt(64))
    reference = torch.empty(8, 64)
    torch.nn.init.kaiming_uniform_(reference, a=math.sqrt(5))
    assert np.abs(layer.lora_A.data).max() <= bound
    assert abs(np.abs(layer.lora_A.data).max() - reference.abs().max().item()) < 0.02


def tiny_classifier(seed=0):
    sl.manual_seed(seed)
    return GPTForSequenceClassification(GPTConfig.from_preset("tiny"), pad_token_id=0)


def test_apply_lora_swaps_matching_layers_and_freezes_the_rest():
    model = tiny_classifier()
    total_before = model.num_parameters()
    apply_lora(model, ["c_attn"], r=4, alpha=8, modules_to_save=["score"])
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["gpt.transformer.h.0.attn.c_attn.lora_A",
                         "gpt.transformer.h.0.attn.c_attn.lora_B",
                         "gpt.transformer.h.1.attn.c_attn.lora_A",
                         "gpt.transformer.h.1.attn.c_attn.lora_B", "score.weight"]
    c = model.config
    added = c.n_layer * 4 * (c.n_embd + 3 * c.n_embd)
    assert count_parameters(model) == (added + 2 * c.n_embd, total_before + added)
    assert isinstance(model.gpt.transformer.h[0].attn.c_attn, LoRALinear)
    assert not isinstance(model.gpt.transformer.h[0].attn.c_proj, LoRALinear)
    # the base's state dict names are unchanged: a pre-trained state dict still loads
    assert "gpt.transformer.h.0.attn.c_attn.weight" in model.state_dict()


def test_apply_lora_errors():
    with pytest.raises(ValueError, match=r"no Linear layer .* matches .*'query'.*c_attn"):
        apply_lora(tiny_classifier(), ["query"])
    with pytest.raises(ValueError, match="tied"):
        apply_lora(GPT(GPTConfig.from_preset("tiny")), ["lm_head"])
    regex = apply_lora(tiny_classifier(), r"gpt\.transformer\.h\.1\.mlp\.c_fc")
    assert [n for n, p in regex.named_parameters() if p.requires_grad] == [
        "gpt.transformer.h.1.mlp.c_fc.lora_A", "gpt.transformer.h.1.mlp.c_fc.lora_B"]


def trained_adapter(steps=3):
    model = apply_lora(tiny_classifier(), ["c_attn", "c_fc"], r=4, alpha=16, dropout=0.1,
                       modules_to_save=["score"])
    optimizer = sl.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    ids = np.random.default_rng(0).integers(1, 65, (4, 10))
    labels = np.array([0, 1, 1, 0])
    for _ in range(steps):
        model(ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval(), ids, labels


def test_only_a_and_b_change_and_merge_unmerge():
    sl.manual_seed(0)
    reference = tiny_classifier()
    model, ids, _ = trained_adapter()
    base = reference.state_dict()
    for name, value in model.state_dict().items():
        if name in base and not name.startswith("score"):
            np.testing.assert_array_equal(value, base[name], err_msg=name)  # frozen: untouched
    assert np.abs(model.gpt.transformer.h[0].attn.c_attn.lora_B.data).max() > 0
    weights = {n: p.data.copy() for n, p in model.named_parameters()}
    adapted = model(ids).logits.numpy()
    merge_lora(model)
    assert all(layer.merged for layer in model.modules() if isinstance(layer, LoRALinear))
    np.testing.assert_allclose(model(ids).logits.numpy(), adapted, atol=1e-6, rtol=0)
    # merged: one plain Linear each, W + (α/r)·BA
    layer = model.gpt.transformer.h[1].mlp.c_fc
    np.testing.assert_allclose(layer.weight.data,
                               weights["gpt.transformer.h.1.mlp.c_fc.weight"]
                               + layer.scaling * layer.lora_B.data @ layer.lora_A.data,
                               rtol=1e-6, atol=1e-7)
    unmerge_lora(model)
    for name, parameter in model.named_parameters():
        np.testing.assert_array_equal(parameter.data, weights[name], err_msg=name)
    np.testing.assert_array_equal(model(ids).logits.numpy(), adapted)


def test_adapter_checkpoint_holds_only_the_adapter(tmp_path):
    model, ids, _ = trained_adapter()
    path = tmp_path / "adapter.npz"
    save_lora(model, path, base="runs/gpt-zh-small")
    state = sl.load(path)
    assert state["base"] == "runs/gpt-zh-small"
    assert state["lora_config"]["r"] == 4 and state["lora_config"]["target_modules"] == [
        "c_attn", "c_fc"]
    assert all(n.endswith((".lora_A", ".lora_B")) or n == "score.weight"
               for n in state["adapter"])
    assert len(state["adapter"]) == 2 * 2 * 2 + 1  # 2 layers × 2 targets × (A, B) + head
    fresh = apply_lora(tiny_classifier(), ["c_attn", "c_fc"], r=4, alpha=16, dropout=0.1,
                       modules_to_save=["score"]).eval()
    assert load_lora(fresh, path) == "runs/gpt-zh-small"
    np.testing.assert_array_equal(fresh(ids).logits.numpy(), model(ids).logits.numpy())
