"""Semantics of the functional ops beyond their gradients: hand-computed values, the edge
cases (huge logits, ignored targets, fully masked queries, repeated ids), dropout's
randomness, strided attention inputs, causal attention in query blocks at GPT-2's size, and
each Function's backward checked alone. The special values run with fast mode on and off.

Each op's gradcheck, its fast implementations against the reference (row blocks, threads,
query blocks, both embedding backwards, the emulated CUDA kernels) and its comparison with
PyTorch are in the one table of ``tests/test_op_table.py``."""

import math

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE

import scratchlm as sl
import scratchlm.functional as F
from scratchlm import backend
from scratchlm.fast import cpu
from scratchlm.functional.activations import GELUErf, GELUTanh, ReLU, Sigmoid
from scratchlm.functional.attention import ScaledDotProductAttention
from scratchlm.functional.layer_norm import LayerNorm
from scratchlm.functional.linear import Linear
from scratchlm.functional.losses import BinaryCrossEntropyWithLogits, MSELoss
from scratchlm.functional.softmax import LogSoftmax, Softmax

CONTRACT = {"linear", "relu", "gelu", "sigmoid", "tanh", "softmax", "log_softmax", "layer_norm",
            "dropout", "embedding", "cross_entropy", "binary_cross_entropy_with_logits",
            "mse_loss", "scaled_dot_product_attention"}


def test_exports_exactly_the_contract_names():
    assert set(F.__all__) == CONTRACT and len(F.__all__) == len(CONTRACT)
    assert all(callable(getattr(F, name)) for name in CONTRACT)


@pytest.fixture(params=[True, False], ids=["fast", "reference"])
def fast(request):
    """Fast mode on (the registered fast ops run) or off (the reference ops)."""
    with sl.use_fast(request.param):
        yield request.param


# ---------------------------------------------------------------------- hand-computed values
def test_gelu_values_by_hand(fast):
    x = sl.tensor(np.array([-1.0, 0.0, 1.0]))
    erf_form = [-0.15865525393145707, 0.0, 0.8413447460685429]  # x Φ(x)
    tanh_form = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
                 for v in (-1.0, 0.0, 1.0)]
    np.testing.assert_allclose(F.gelu(x, approximate="none").numpy(), erf_form, rtol=1e-14)
    np.testing.assert_allclose(F.gelu(x).numpy(), tanh_form, rtol=1e-14)


def test_layer_norm_values_by_hand(fast):
    x = sl.tensor(np.array([[1.0, 2.0, 3.0]]))
    y = F.layer_norm(x, sl.tensor(np.array([1.0, 2.0, 1.0])), sl.tensor(np.array([0.0, 0.0, 5.0])),
                     eps=0.0)
    s = math.sqrt(1.5)  # (x − 2)/√(2/3)
    np.testing.assert_allclose(y.numpy(), [[-s, 0.0, 5 + s]], rtol=1e-14)


def test_cross_entropy_mean_is_over_the_targets_not_ignored(fast):
    logits = sl.tensor(np.zeros((3, 4)), requires_grad=True)
    targets = np.array([0, -100, 2])
    loss = F.cross_entropy(logits, targets)
    assert loss.shape == () and loss.ndim == 0
    np.testing.assert_allclose(loss.item(), math.log(4), rtol=1e-14)  # not (2/3) log 4
    np.testing.assert_allclose(F.cross_entropy(logits, targets, reduction="sum").item(),
                               2 * math.log(4), rtol=1e-14)
    loss.backward()
    expected = np.full((3, 4), 0.25 / 2)  # (softmax − onehot) / 2 valid rows
    expected[0, 0] -= 1 / 2
    expected[2, 2] -= 1 / 2
    expected[1] = 0
    np.testing.assert_allclose(logits.grad, expected, rtol=1e-14)


@pytest.mark.parametrize("make_targets", [np.array, list, sl.tensor],
                         ids=["ndarray", "list", "tensor"])
def test_integer_ids_and_targets_may_be_arrays_lists_or_tensors(make_targets):
    logits = np.random.default_rng(0).standard_normal((3, 4))
    reference = F.cross_entropy(sl.tensor(logits), np.array([1, 0, 3])).item()
    assert F.cross_entropy(sl.tensor(logits), make_targets([1, 0, 3])).item() == reference
    weight = sl.tensor(logits)
    np.testing.assert_array_equal(F.embedding(make_targets([2, 0]), weight).numpy(),
                                  logits[[2, 0]])


# --------------------------------------------------------------------------- edge cases
def test_log_softmax_softmax_and_cross_entropy_stay_finite_for_logits_of_1e4(fast):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=np.float32)
    x = sl.tensor(logits, requires_grad=True)
    log_probs = F.log_softmax(x)
    np.testing.assert_allclose(log_probs.numpy(), [[0, -2e4, -1e4], [-math.log(3)] * 3],
                               rtol=1e-6)
    np.testing.assert_allclose(F.softmax(x).numpy(), [[1, 0, 0], [1 / 3] * 3], rtol=1e-6)
    loss = F.cross_entropy(x, np.array([1, 0]), reduction="sum")
    np.testing.assert_allclose(loss.item(), 2e4 + math.log(3), rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(x.grad, [[1, -1, 0], [1 / 3 - 1, 1 / 3, 1 / 3]], atol=1e-6)
    assert log_probs.dtype == np.float32


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("device", DEVICES)
def test_cross_entropy_with_every_target_ignored_is_zero_with_zero_gradient(reduction, device,
                                                                          fast):
    logits = sl.tensor(np.random.default_rng(0).standard_normal((2, 3, 5)), requires_grad=True,
                       device=device)
    targets = sl.tensor(np.full((2, 3), 7), device=device)
    loss = F.cross_entropy(logits, targets, ignore_index=7, reduction=reduction,
                           label_smoothing=0.1)
    loss.backward(np.ones(loss.shape))
    assert np.all(loss.numpy() == 0)
    assert np.all(backend.to_numpy(logits.grad) == 0)


def test_sigmoid_and_binary_cross_entropy_are_stable_for_huge_logits(fast):
    x = sl.tensor(np.array([100.0, -100.0], dtype=np.float32), requires_grad=True)
    np.testing.assert_allclose(F.sigmoid(x).numpy(), [1.0, 0.0], atol=1e-40)  # e^100 overflows
    tail = F.sigmoid(sl.tensor(np.array([-30.0], dtype=np.float32))).item()
    np.testing.assert_allclose(tail, math.exp(-30) / (1 + math.exp(-30)), rtol=1e-6)
    loss = F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0], dtype=np.float32),
                                              reduction="sum")
    np.testing.assert_allclose(loss.item(), 200.0, rtol=1e-6)  # −log σ(−100) each
    loss.backward()
    np.testing.assert_allclose(x.grad, [1.0, -1.0], rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_attention_query_with_no_key_to_attend_gets_zeros_and_zero_gradient(device, fast):
    rng = np.random.default_rng(0)
    q, k, v = (sl.tensor(rng.standard_normal(s), requires_grad=True, device=device)
               for s in [(2, 3, 4), (2, 5, 4), (2, 5, 3)])
    mask = np.ones((3, 5), dtype=bool)
    mask[1] = False  # query 1 may attend nothing
    y = F.scaled_dot_product_attention(q, k, v, sl.tensor(mask, device=device))
    cotangent = rng.standard_normal(y.shape)
    y.backward(cotangent)
    out = y.numpy()
    assert np.all(out[:, 1] == 0) and np.all(np.isfinite(out))
    assert np.all(backend.to_numpy(q.grad)[:, 1] == 0)
    for t in (q, k, v):
        assert np.all(np.isfinite(backend.to_numpy(t.grad)))
    # the other queries see plain softmax attention over every key
    qn, kn, vn = (t.numpy() for t in (q, k, v))
    scores = qn @ kn.transpose(0, 2, 1) / 2.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(out[:, [0, 2]], (weights @ vn)[:, [0, 2]], rtol=1e-12)


def test_attention_takes_strided_views_of_a_fused_qkv_projection_without_copying(fast):
    torch = pytest.importorskip("torch")
    batch, steps, heads, head_size = 2, 3, 2, 4
    width = heads * head_size
    qkv_array = np.random.default_rng(0).standard_normal((batch, steps, 3 * width))
    qkv = sl.tensor(qkv_array, requires_grad=True)
    q, k, v = (qkv[:, :, i * width:(i + 1) * width].reshape(batch, steps, heads, head_size)
               .transpose(0, 2, 1, 3) for i in range(3))
    assert not q.data.flags.c_contiguous and np.shares_memory(q.data, qkv.data)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    saved = y._ctx
    assert all(np.shares_memory(a, qkv.data) for a in (saved.q, saved.k, saved.v))
    cotangent = np.random.default_rng(1).standard_normal(y.shape)
    y.backward(cotangent)

    qkv_ref = torch.tensor(qkv_array, requires_grad=True)
    q_ref, k_ref, v_ref = (t.reshape(batch, steps, heads, head_size).transpose(1, 2)
                           for t in qkv_ref.split(width, dim=2))
    y_ref = torch.nn.functional.scaled_dot_product_attention(q_ref, k_ref, v_ref, is_causal=True)
    y_ref.backward(torch.tensor(cotangent))
    tol = TOLERANCE[np.dtype(np.float64)]
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tol)
    np.testing.assert_allclose(qkv.grad, qkv_ref.grad.numpy(), **tol)


def test_causal_attention_in_query_blocks_matches_torch_at_gpt_size():
    torch = pytest.importorskip("torch")
    shape = (1, 2, 512, 16)  # 512 positions: 4 blocks of 128 queries by default
    assert len(cpu.query_blocks(512, 512, True)) == 4
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    cotangent = rng.standard_normal(shape).astype(np.float32)
    ours = [sl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    with sl.use_fast(True):
        y = F.scaled_dot_product_attention(*ours, is_causal=True)
    assert type(y._ctx) is cpu.AttentionBlocks and len(y._ctx.blocks) == 4
    y_ref = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=True)
    y.backward(cotangent)
    y_ref.backward(torch.tensor(cotangent))
    tol = TOLERANCE[np.dtype(np.float32)]
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tol)
    for t, t_ref in zip(ours, theirs):
        np.testing.assert_allclose(t.grad, t_ref.grad.numpy(), **tol)


@pytest.mark.parametrize("vocab", [4, 300], ids=["one_hot_backward", "sorted_backward"])
@pytest.mark.parametrize("device", DEVICES)
def test_embedding_repeated_ids_accumulate(vocab, device, fast):
    weight = sl.tensor(np.zeros((vocab, 2)), requires_grad=True, device=device)
    ids = sl.tensor(np.array([[1, 1], [3, 1]]), device=device)
    out = F.embedding(ids, weight)
    assert out.shape == (2, 2, 2)
    out.backward(np.ones(out.shape))
    expected = np.zeros((vocab, 2))
    expected[1], expected[3] = 3, 1
    np.testing.assert_array_equal(backend.to_numpy(weight.grad), expected)


@pytest.mark.parametrize("ids_shape", [(), (5,), (2, 3, 4)])
def test_embedding_takes_ids_of_any_shape(ids_shape):
    weight = np.random.default_rng(0).standard_normal((7, 3))
    ids = np.random.default_rng(1).integers(0, 7, size=ids_shape)
    out = F.embedding(ids, sl.tensor(weight))
    assert out.shape == ids_shape + (3,)
    np.testing.assert_array_equal(out.numpy(), weight[ids])


# ------------------------------------------------------------------------------ dropout
def test_dropout_is_the_identity_when_not_training_or_p_is_zero():
    x = sl.tensor(np.ones((3, 4)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_keeps_the_mean_and_scales_survivors(p):
    sl.manual_seed(0)
    x = sl.tensor(np.ones(200_000, dtype=np.float32), requires_grad=True)
    y = F.dropout(x, p)
    out = y.numpy()
    assert y.dtype == np.float32
    assert abs(out.mean() - 1) < 0.01  # E[y] = x; the standard error here is below 0.003
    assert abs((out == 0).mean() - p) < 0.01
    np.testing.assert_allclose(out[out != 0], np.float32(1 / (1 - p)), rtol=1e-6)
    cotangent = np.random.default_rng(0).standard_normal(out.shape).astype(np.float32)
    y.backward(cotangent)
    np.testing.assert_allclose(x.grad, cotangent * out, rtol=1e-6)  # g ⊙ mask / (1 − p)


def test_dropout_mask_is_reproducible_under_manual_seed():
    x = sl.tensor(np.ones((20, 30)))
    sl.manual_seed(123)
    first = F.dropout(x, 0.5).numpy()
    second = F.dropout(x, 0.5).numpy()
    sl.manual_seed(123)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), first)
    assert not np.array_equal(first, second)


def test_dropout_with_p_one_drops_everything(fast):
    x = sl.tensor(np.ones((3, 4)), requires_grad=True)
    y = F.dropout(x, 1.0)
    y.backward(np.ones((3, 4)))
    assert np.all(y.numpy() == 0) and np.all(x.grad == 0)


# ------------------------------------------------- each Function's backward, checked alone
FUNCTIONS = {
    "Linear": (Linear, [(3, 4), (5, 4), (5,)]),
    "Linear_no_bias": (Linear, [(2, 3, 4), (5, 4)]),
    "ReLU": (ReLU, [(3, 4)]),
    "GELUTanh": (GELUTanh, [(3, 4)]),
    "GELUErf": (GELUErf, [(3, 4)]),
    "Sigmoid": (Sigmoid, [(3, 4)]),
    "Softmax": (lambda: Softmax(axis=0), [(3, 4)]),
    "LogSoftmax": (LogSoftmax, [(2, 3, 4)]),
    "LayerNorm": (LayerNorm, [(2, 3, 4), (4,), (4,)]),
    "BinaryCrossEntropyWithLogits": (lambda: BinaryCrossEntropyWithLogits("sum"),
                                     [(3, 4), (3, 4)]),
    "MSELoss": (MSELoss, [(3, 4), (3, 4)]),
    "ScaledDotProductAttention": (lambda: ScaledDotProductAttention(is_causal=True),
                                  [(2, 3, 4), (2, 3, 4), (2, 3, 2), (3, 3)]),
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_backward_alone(name):
    make_function, shapes = FUNCTIONS[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape) for shape in shapes]
    if name == "ReLU":
        arrays[0] += np.sign(arrays[0]) * 0.1  # off the kink
    assert sl.gradcheck_op(make_function, arrays)
