"""Every functional op: float64 gradcheck with a random cotangent over several shapes, and
forward and backward against ``torch.nn.functional`` in float32 and float64.

One table drives both tests. Each row is an op written twice — with scratchlm and with
torch (which gets the torch module first) — the shapes of its float inputs, and a map from
normals into the op's domain. Integer ids, targets and boolean masks are constants of the row.
"""

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE

import scratchlm as sl
import scratchlm.functional as F


def same(x):
    return x


def away_from_zero(x):
    """Keep ReLU's inputs off its kink, where central differences straddle two slopes."""
    return np.sign(x) * (np.abs(x) + 0.1) + (x == 0)


def probability(x):
    return 1 / (1 + np.exp(-x))


def on_device_of(x, array):
    """A constant (ids, targets, masks) as a tensor on ``x``'s device."""
    return sl.tensor(array, device=x.device)


def torch_cross_entropy(torch, logits, target, **options):
    """torch's cross-entropy with the class axis last (torch wants it second)."""
    target = torch.as_tensor(target)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), **options)
    return loss.reshape(target.shape) if options.get("reduction") == "none" else loss


def torch_attention(torch, q, k, v, mask=None, **options):
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=None if mask.dtype == bool else q.dtype)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, **options)


IDS_SMALL_TABLE = np.array([[0, 2, 2], [1, 0, 2]])  # 3 rows: the one-hot GEMM backward
IDS_LARGE_TABLE = np.array([[5, 299, 5, 0], [17, 5, 299, 42]])  # 300 rows: sort and sum
TARGETS = np.array([3, -100, 0, 1, 3])  # 5 positions over 4 classes, one ignored
TARGETS_BT = np.array([[1, 2, 0], [1, 3, 1]])  # (B, T) = (2, 3) over 4 classes
MASK = np.array([[1, 0, 1, 1, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 1]], dtype=bool)  # (Tq, Tk)
MASK_PER_BATCH = np.array([MASK, MASK[::-1]])[:, None]  # (2, 1, Tq, Tk)
ADDITIVE_MASK = np.array([[0.0, -1.0, 0.5, -2.0, 0.0], [1.0, 0.0, -0.5, 0.0, 0.3],
                          [0.0, 0.2, 0.0, -1.5, 0.0]])

# name: (scratchlm fn, torch fn (torch module first), float input shape sets,
#        domain: one map for every input, or a tuple of one per input)
OPS = {
    "linear": (F.linear, lambda torch, x, w, b: torch.nn.functional.linear(x, w, b),
               [((3, 4), (5, 4), (5,)), ((2, 3, 4), (5, 4), (5,)), ((4,), (2, 4), (2,)),
                ((2, 1, 3, 4), (1, 4), (1,))], same),
    "linear_no_bias": (F.linear, lambda torch, x, w: torch.nn.functional.linear(x, w),
                       [((3, 4), (5, 4)), ((2, 3, 4), (2, 4))], same),
    "relu": (F.relu, lambda torch, x: torch.nn.functional.relu(x),
             [((3, 4),), ((),), ((2, 1, 3),)], away_from_zero),
    "gelu_tanh": (F.gelu, lambda torch, x: torch.nn.functional.gelu(x, approximate="tanh"),
                  [((3, 4),), ((),), ((2, 3, 4),)], lambda x: 2 * x),
    "gelu_erf": (lambda x: F.gelu(x, approximate="none"),
                 lambda torch, x: torch.nn.functional.gelu(x, approximate="none"),
                 [((3, 4),), ((),), ((2, 3, 4),)], lambda x: 2 * x),
    "sigmoid": (F.sigmoid, lambda torch, x: torch.sigmoid(x),
                [((3, 4),), ((),), ((2, 1, 3),)], lambda x: 4 * x),
    "tanh": (F.tanh, lambda torch, x: torch.tanh(x), [((3, 4),), ((),)], same),
    "softmax_last": (F.softmax, lambda torch, x: torch.softmax(x, dim=-1),
                     [((3, 4),), ((2, 3, 4),), ((5,),), ((3, 1),)], same),
    "softmax_middle": (lambda x: F.softmax(x, axis=1), lambda torch, x: torch.softmax(x, dim=1),
                       [((2, 3, 4),), ((2, 1, 3),)], same),
    "log_softmax_last": (F.log_softmax, lambda torch, x: torch.log_softmax(x, dim=-1),
                         [((3, 4),), ((2, 3, 4),), ((5,),)], same),
    "log_softmax_first": (lambda x: F.log_softmax(x, axis=0),
                          lambda torch, x: torch.log_softmax(x, dim=0), [((3, 4),)], same),
    "layer_norm": (F.layer_norm,
                   lambda torch, x, w, b: torch.nn.functional.layer_norm(x, w.shape, w, b),
                   [((3, 4), (4,), (4,)), ((2, 3, 5), (5,), (5,)), ((6,), (6,), (6,))], same),
    "layer_norm_no_affine": (lambda x: F.layer_norm(x, None, None),
                             lambda torch, x: torch.nn.functional.layer_norm(x, x.shape[-1:]),
                             [((3, 4),), ((2, 1, 5),)], same),
    "layer_norm_no_bias": (lambda x, w: F.layer_norm(x, w, None, eps=1e-3),
                           lambda torch, x, w: torch.nn.functional.layer_norm(
                               x, w.shape, w, None, eps=1e-3), [((3, 4), (4,))], same),
    "embedding_small_table": (
        lambda w: F.embedding(on_device_of(w, IDS_SMALL_TABLE), w),
        lambda torch, w: torch.nn.functional.embedding(torch.as_tensor(IDS_SMALL_TABLE), w),
        [((3, 4),)], same),
    "embedding_large_table": (
        lambda w: F.embedding(on_device_of(w, IDS_LARGE_TABLE), w),
        lambda torch, w: torch.nn.functional.embedding(torch.as_tensor(IDS_LARGE_TABLE), w),
        [((300, 2),)], same),
    "embedding_1d_ids": (
        lambda w: F.embedding(on_device_of(w, np.array([2, 2, 0, 2])), w),
        lambda torch, w: torch.nn.functional.embedding(torch.tensor([2, 2, 0, 2]), w),
        [((3, 2),)], same),
    "cross_entropy_mean": (
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS)),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS), [((5, 4),)], same),
    "cross_entropy_3d_ignore_index_sum": (
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS_BT), ignore_index=1,
                                  reduction="sum"),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS_BT, ignore_index=1,
                                             reduction="sum"), [((2, 3, 4),)], same),
    "cross_entropy_3d_smoothing_mean": (
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS_BT), ignore_index=3,
                                  label_smoothing=0.2),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS_BT, ignore_index=3,
                                             label_smoothing=0.2), [((2, 3, 4),)], same),
    "cross_entropy_smoothing_none": (
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS), label_smoothing=0.1,
                                  reduction="none"),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS, label_smoothing=0.1,
                                             reduction="none"), [((5, 4),)], same),
    "cross_entropy_unbatched": (
        lambda z: F.cross_entropy(z, on_device_of(z, np.array(2))),
        lambda torch, z: torch_cross_entropy(torch, z, np.array(2)), [((4,),)], same),
    "bce_with_logits_mean": (
        F.binary_cross_entropy_with_logits,
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(x, t),
        [((3, 4), (3, 4)), ((5,), (5,))], (lambda x: 3 * x, probability)),
    "bce_with_logits_sum": (
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(
            x, t, reduction="sum"), [((2, 3, 2), (2, 3, 2))], (lambda x: 3 * x, probability)),
    "bce_with_logits_none": (
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(
            x, t, reduction="none"), [((3, 4), (3, 4))], (lambda x: 3 * x, probability)),
    "mse_loss": (F.mse_loss, lambda torch, x, y: torch.nn.functional.mse_loss(x, y),
                 [((3, 4), (3, 4)), ((5,), (5,)), ((), ())], same),
    "attention": (F.scaled_dot_product_attention, torch_attention,
                  [((2, 3, 4), (2, 3, 4), (2, 3, 5)), ((3, 4), (5, 4), (5, 2)),
                   ((2, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3))], same),
    "attention_causal": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, is_causal=True),
        [((2, 2, 3, 4),) * 3, ((1, 2, 4), (1, 5, 4), (1, 5, 3)), ((4, 2),) * 3], same),
    "attention_bool_mask": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, on_device_of(q, MASK)),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, MASK),
        [((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), ((3, 2), (5, 2), (5, 2))], same),
    "attention_bool_mask_per_batch": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                       on_device_of(q, MASK_PER_BATCH)),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, MASK_PER_BATCH),
        [((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3))], same),
    "attention_bool_mask_and_causal": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, on_device_of(q, MASK[:, :3]),
                                                       is_causal=True),
        lambda torch, q, k, v: torch_attention(  # torch refuses both with autograd on
            torch, q, k, v, MASK[:, :3] & np.tril(np.ones((3, 3), dtype=bool))),
        [((2, 3, 4),) * 3], same),
    "attention_float_mask": (
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m),
        lambda torch, q, k, v, m: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=m),
        [((2, 3, 4), (2, 5, 4), (2, 5, 3), (3, 5)), ((2, 3, 4), (2, 5, 4), (2, 5, 3), (2, 3, 1))],
        same),
}

CASES = [pytest.param(name, shapes, id=f"{name}-{'x'.join(map(str, shapes))}")
         for name, (_, _, shape_sets, _) in OPS.items() for shapes in shape_sets]


def make_inputs(name, shapes, seed=0):
    rng = np.random.default_rng(seed)
    domain = OPS[name][3]
    domains = domain if isinstance(domain, tuple) else (domain,) * len(shapes)
    return [d(rng.standard_normal(shape)) for d, shape in zip(domains, shapes)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, shapes", CASES)
def test_gradcheck(name, shapes, device):
    fn = OPS[name][0]
    inputs = [sl.tensor(x, requires_grad=True, device=device) for x in make_inputs(name, shapes)]
    assert sl.gradcheck(fn, inputs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shapes", CASES)
def test_matches_torch(name, shapes, dtype):
    torch = pytest.importorskip("torch")
    fn, torch_fn = OPS[name][:2]
    arrays = [x.astype(dtype) for x in make_inputs(name, shapes, seed=1)]
    ours = [sl.tensor(x, requires_grad=True) for x in arrays]
    theirs = [torch.tensor(x, requires_grad=True) for x in arrays]
    y, y_ref = fn(*ours), torch_fn(torch, *theirs)
    assert y.shape == tuple(y_ref.shape) and y.dtype == dtype
    tol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tol)
    cotangent = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    y_ref.backward(torch.tensor(cotangent))
    y.backward(cotangent)
    for t, t_ref in zip(ours, theirs):
        assert t.grad.dtype == dtype
        np.testing.assert_allclose(t.grad, t_ref.grad.numpy(), **tol)
    untouched = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(cotangent, untouched)  # backward never writes into g


@pytest.mark.parametrize("name, shapes", CASES)
def test_backward_twice_with_retain_graph_doubles_gradients(name, shapes):
    """Backward may run twice on a kept graph: it must not consume its saved arrays."""
    fn = OPS[name][0]
    inputs = [sl.tensor(x, requires_grad=True) for x in make_inputs(name, shapes)]
    y = fn(*inputs)
    cotangent = np.random.default_rng(3).standard_normal(y.shape)
    y.backward(cotangent, retain_graph=True)
    once = [t.grad.copy() for t in inputs]
    y.backward(cotangent)
    for t, grad in zip(inputs, once):
        np.testing.assert_allclose(t.grad, 2 * grad, rtol=1e-14, atol=1e-300)
