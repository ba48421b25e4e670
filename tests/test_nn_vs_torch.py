"""Every layer against its torch.nn counterpart: forward, input gradients, parameter gradients.

One table drives it. Each row builds the torch layer (its parameters redrawn at random, so
no zero bias hides a mistake), copies its weights into ours through the table's renames,
runs both on the same inputs and pulls the same random cotangent back through both.
Torch's fused ``in_proj_weight`` (3d, d) is our ``c_attn.weight``; for cross-attention its
first d rows are our ``q_proj`` and the other 2d our ``kv_proj``.
"""

from collections import namedtuple

import numpy as np
import pytest
from conftest import TOLERANCE

import scratchlm as sl
import scratchlm.nn as nn

B, T, S, D, H, FF = 2, 5, 4, 8, 2, 16

#: ours: build our layer; theirs: build torch's from the torch module; inputs: rng → dict of
#: arrays (float arrays not named "*mask" get gradients); call_*: run a layer on them;
#: renames: (torch name piece, our name piece); cross: our prefixes of cross-attention.
Case = namedtuple("Case", "ours theirs inputs call_ours call_theirs renames cross")

ATTENTION_RENAMES = [("in_proj_weight", "c_attn.weight"), ("in_proj_bias", "c_attn.bias"),
                     ("out_proj.", "c_proj.")]
TRANSFORMER_RENAMES = ATTENTION_RENAMES + [("multihead_attn.", "cross_attn."),
                                           ("linear1.", "feed_forward.c_fc."),
                                           ("linear2.", "feed_forward.c_proj.")]


def sequence(rng, length=T):
    return rng.standard_normal((B, length, D))


def causal_blocked(n):
    """torch.nn's boolean causal mask: True above the diagonal (may NOT attend)."""
    return np.triu(np.ones((n, n), dtype=bool), k=1)


def padding(length, pad):
    """(B, length) True at the last ``pad`` positions of the second sequence."""
    mask = np.zeros((B, length), dtype=bool)
    mask[1, length - pad:] = True
    return mask


def call_module(torch, m, **inputs):
    return m(*inputs.values())


def torch_mha(torch):
    return torch.nn.MultiheadAttention(D, H, batch_first=True)


def call_torch_self_attention(torch, m, x, **masks):
    return m(x, x, x, need_weights=False, **masks)[0]


def call_torch_cross_attention(torch, m, x, memory, **masks):
    return m(x, memory, memory, need_weights=False, **masks)[0]


def call_torch_causal_self_attention(torch, m, x):
    return call_torch_self_attention(torch, m, x, attn_mask=torch.tensor(causal_blocked(T)))


def encoder_case(norm_first, activation, masks):
    return Case(
        ours=lambda: nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, activation=activation,
                                                norm_first=norm_first),
        theirs=lambda torch: torch.nn.TransformerEncoderLayer(
            D, H, FF, dropout=0.0, activation=activation, norm_first=norm_first,
            batch_first=True),
        inputs=lambda rng: {"src": sequence(rng), **masks},
        call_ours=lambda m, src, **k: m(src, **k),
        call_theirs=lambda torch, m, src, **k: m(src, **k),
        renames=TRANSFORMER_RENAMES, cross=())


def decoder_case(norm_first, activation, masks):
    return Case(
        ours=lambda: nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation,
                                                norm_first=norm_first),
        theirs=lambda torch: torch.nn.TransformerDecoderLayer(
            D, H, FF, dropout=0.0, activation=activation, norm_first=norm_first,
            batch_first=True),
        inputs=lambda rng: {"tgt": sequence(rng), "memory": sequence(rng, S), **masks},
        call_ours=lambda m, tgt, memory, **k: m(tgt, memory, **k),
        call_theirs=lambda torch, m, tgt, memory, **k: m(tgt, memory, **k),
        renames=TRANSFORMER_RENAMES, cross=("cross_attn.",))


def self_attention_case(**masks):
    return Case(lambda: nn.MultiHeadAttention(D, H), torch_mha,
                lambda rng: {"x": sequence(rng), **masks},
                lambda m, x, **k: m(x, **k), call_torch_self_attention, ATTENTION_RENAMES, ())


float_mask = np.where(causal_blocked(T), -np.inf, np.linspace(-1, 1, T * T).reshape(T, T))

CASES = {
    "linear": Case(lambda: nn.Linear(D, 3), lambda torch: torch.nn.Linear(D, 3),
                   lambda rng: {"x": sequence(rng)}, lambda m, x: m(x), call_module,
                   [], ()),
    "linear_no_bias_2d": Case(lambda: nn.Linear(D, 3, bias=False),
                              lambda torch: torch.nn.Linear(D, 3, bias=False),
                              lambda rng: {"x": rng.standard_normal((4, D))},
                              lambda m, x: m(x), call_module, [], ()),
    "embedding": Case(lambda: nn.Embedding(7, D), lambda torch: torch.nn.Embedding(7, D),
                      lambda rng: {"ids": np.array([[0, 3, 3], [6, 1, 3]])},
                      lambda m, ids: m(ids), call_module, [], ()),
    "layer_norm": Case(lambda: nn.LayerNorm(D), lambda torch: torch.nn.LayerNorm(D),
                       lambda rng: {"x": sequence(rng)}, lambda m, x: m(x), call_module,
                       [], ()),
    "feed_forward_relu": Case(
        lambda: nn.FeedForward(D, FF, activation="relu"),
        lambda torch: torch.nn.Sequential(torch.nn.Linear(D, FF), torch.nn.ReLU(),
                                          torch.nn.Linear(FF, D)),
        lambda rng: {"x": sequence(rng)}, lambda m, x: m(x), call_module,
        [("0.", "c_fc."), ("2.", "c_proj.")], ()),
    "feed_forward_gelu_tanh": Case(
        lambda: nn.FeedForward(D, FF, activation="gelu_tanh"),
        lambda torch: torch.nn.Sequential(torch.nn.Linear(D, FF),
                                          torch.nn.GELU(approximate="tanh"),
                                          torch.nn.Linear(FF, D)),
        lambda rng: {"x": sequence(rng)}, lambda m, x: m(x), call_module,
        [("0.", "c_fc."), ("2.", "c_proj.")], ()),
    "self_attention": self_attention_case(),
    "self_attention_causal": Case(
        lambda: nn.MultiHeadAttention(D, H), torch_mha, lambda rng: {"x": sequence(rng)},
        lambda m, x: m(x, is_causal=True), call_torch_causal_self_attention,
        ATTENTION_RENAMES, ()),
    "self_attention_padding": self_attention_case(key_padding_mask=padding(T, 2)),
    "self_attention_bool_mask_and_padding": self_attention_case(
        attn_mask=causal_blocked(T), key_padding_mask=padding(T, 1)),
    "self_attention_float_mask": self_attention_case(attn_mask=float_mask),
    "self_attention_per_head_mask": self_attention_case(
        attn_mask=(np.random.default_rng(1).random((B * H, T, T)) < 0.4) & ~np.eye(T, dtype=bool)),
    "cross_attention": Case(
        lambda: nn.MultiHeadAttention(D, H, cross_attention=True), torch_mha,
        lambda rng: {"x": sequence(rng), "memory": sequence(rng, S),
                     "key_padding_mask": padding(S, 1)},
        lambda m, x, memory, **k: m(x, memory, **k), call_torch_cross_attention,
        ATTENTION_RENAMES, ("",)),
    **{f"encoder_{'pre' if norm_first else 'post'}_ln_{activation}": encoder_case(
        norm_first, activation, {"src_key_padding_mask": padding(T, 2)})
       for norm_first in (False, True) for activation in ("relu", "gelu")},
    "encoder_causal_mask": encoder_case(False, "relu", {"src_mask": causal_blocked(T)}),
    **{f"decoder_{'pre' if norm_first else 'post'}_ln_{activation}": decoder_case(
        norm_first, activation, {"tgt_mask": causal_blocked(T),
                                 "memory_key_padding_mask": padding(S, 1),
                                 "tgt_key_padding_mask": padding(T, 1)})
       for norm_first in (False, True) for activation in ("relu", "gelu")},
    "decoder_memory_mask": decoder_case(True, "relu", {
        "tgt_mask": causal_blocked(T), "memory_mask": np.arange(S) > np.arange(T)[:, None]}),
}


def torch_to_ours(named_arrays, case):
    """Torch parameter names → ours (``in_proj`` split for cross-attention)."""
    ours = {}
    for name, array in named_arrays.items():
        for old, new in case.renames:
            name = name.replace(old, new)
        prefix = next((p for p in case.cross if name.startswith(p + "c_attn.")), None)
        if prefix is None:
            ours[name] = array
            continue
        kind = name.rsplit(".", 1)[1]
        ours[f"{prefix}q_proj.{kind}"], ours[f"{prefix}kv_proj.{kind}"] = array[:D], array[D:]
    return ours


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CASES))
def test_layer_matches_torch(name, dtype):
    torch = pytest.importorskip("torch")
    case = CASES[name]
    torch.manual_seed(0)
    theirs = case.theirs(torch).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, dtype=p.dtype) * 0.5)
    ours = case.ours()
    ours.load_state_dict(torch_to_ours(
        {k: v.detach().numpy() for k, v in theirs.state_dict().items()}, case))
    assert all(p.dtype == dtype for p in ours.parameters())

    arrays = case.inputs(np.random.default_rng(0))
    differentiable = {k for k, a in arrays.items()
                      if a.dtype.kind == "f" and not k.endswith("mask")}
    arrays = {k: a.astype(dtype) if a.dtype.kind == "f" else a for k, a in arrays.items()}
    our_inputs = {k: sl.tensor(a, requires_grad=True) if k in differentiable else a
                  for k, a in arrays.items()}
    their_inputs = {k: torch.tensor(a, requires_grad=k in differentiable)
                    for k, a in arrays.items()}
    y = case.call_ours(ours, **our_inputs)
    y_ref = case.call_theirs(torch, theirs, **their_inputs)
    tolerance = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tolerance)

    cotangent = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    y.backward(cotangent)
    y_ref.backward(torch.tensor(cotangent))
    for k in differentiable:
        np.testing.assert_allclose(our_inputs[k].grad, their_inputs[k].grad.numpy(),
                                   err_msg=f"∂L/∂{k}", **tolerance)
    their_grads = torch_to_ours({k: p.grad.numpy() for k, p in theirs.named_parameters()},
                                case)
    our_grads = {k: p.grad for k, p in ours.named_parameters()}
    assert our_grads.keys() == their_grads.keys()
    for k in our_grads:
        np.testing.assert_allclose(our_grads[k], their_grads[k], err_msg=f"∂L/∂{k}",
                                   **tolerance)
