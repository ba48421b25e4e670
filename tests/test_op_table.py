"""Every op and optimizer in one table, and the tests every entry gets.

An op's entry (:class:`Op`) writes it twice, with scratchlm and with torch, and names the
shapes of its float inputs (integer ids, targets and boolean masks are constants of the
entry), the reference class whose output it returns, and the fast classes registered for it
(``scratchlm.fast``). Each entry, over each of its shape sets, gets:

* ``test_gradcheck_reference``: float64 central differences with a random cotangent
  (``sl.gradcheck``) of the reference (``sl.use_fast(False)``), on the CPU and on a GPU;
* ``test_fast_equals_reference``: the fast implementation's outputs and every input
  gradient equal the reference's in float64 to a relative 1e-12, run
  ``plain`` (the CPU's fast classes as they come), ``blocks`` (rows in blocks of about 80
  bytes shared out among two threads: the test asserts that several blocks ran, on both
  threads where the op shares them out), ``emulated-cuda`` (NumPy inputs given the CUDA
  classes, their kernels compiled for the CPU by ``tests/cuda_emulator.py``; the kernels
  launched are asserted) and ``cuda`` (CuPy on a GPU); each asserts which class ran, with
  fast mode on and off;
* ``test_matches_torch``: forward and gradients against PyTorch in float32 and float64;
* ``test_backward_twice_with_retain_graph_doubles_gradients``, fast mode on and off.

Optimizer entries (:data:`OPTIMIZERS`) get the fast update rule's trajectory against the
reference's over several steps (plain, in pieces of 7 elements on two threads, with the
emulated CUDA kernel and on a GPU) and the trajectory of ``torch.optim``. The last test
fails when a fast class is registered that no entry tests.

Semantics that a comparison cannot show (hand-computed values, special values, errors) are
in ``test_functional_semantics.py`` and ``test_functional_errors.py``; the fused kernels in
float32 and over rows longer than a thread block in ``test_gpu_kernels.py``; the optimizers'
groups, state dicts and errors in ``test_optim.py``.
"""

import math
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE
from cuda_emulator import GXX, Backend, emulate_cuda

import scratchlm as sl
import scratchlm.functional as F
import scratchlm.optim as optim
from scratchlm import backend
from scratchlm.autograd import dispatch, engine
from scratchlm.fast import cpu, cuda_kernels, registry, rows, threads
from scratchlm.fast import optim as fast_optim
from scratchlm.functional.activations import GELUErf, GELUTanh, ReLU, Sigmoid
from scratchlm.functional.attention import ScaledDotProductAttention
from scratchlm.functional.cross_entropy import CrossEntropy
from scratchlm.functional.dropout import Dropout, keep_mask
from scratchlm.functional.embedding import Embedding
from scratchlm.functional.layer_norm import LayerNorm
from scratchlm.functional.linear import Linear
from scratchlm.functional.losses import BinaryCrossEntropyWithLogits, MSELoss
from scratchlm.functional.softmax import LogSoftmax, Softmax
from scratchlm.nn.heads import MergeHeads, SplitHeads, merge_heads, split_heads
from scratchlm.ops.elementwise import Tanh

#: Fast equals reference, in float64: each entry to a relative 1e-12, or else to 1e-13 of
#: the largest entry of its array, or of 1 (the inputs are O(1)): a gradient that cancels
#: to exactly 0 in one order of operations is ±1e-16 in another (the gradient of a float
#: mask constant along the keys is 0 up to rounding), and a GELU tail, 1 + tanh u ≈ 1e-6,
#: loses most digits of tanh u to cancellation.
FAST_RTOL, FAST_SCALE_ATOL = 1e-12, 1e-13
#: rows.ROW_BLOCK_BYTES in the "blocks" mode: 10 float64, so blocks of 1 to 3 rows.
SMALL_BLOCK_BYTES = 80
DROPOUT_SEED = 5


# ------------------------------------------------------------------------ input domains
def same(x):
    return x


def away_from_zero(x):
    """Keep ReLU's inputs off its kink, where central differences straddle two slopes."""
    return np.sign(x) * (np.abs(x) + 0.1) + (x == 0)


def probability(x):
    return 1 / (1 + np.exp(-x))


def with_a_masked_row(mask):
    """An additive mask with −∞ over all of its second row (a query with no key) and one
    more entry of another row."""
    mask = mask.copy()
    mask[..., 1, :] = -np.inf
    mask[..., 0, -1] = -np.inf
    return mask


def on_device_of(x, array):
    """A constant (ids, targets, masks) as a tensor on ``x``'s device."""
    return sl.tensor(array, device=x.device)


def seeded(fn):
    """``fn`` drawing the same dropout mask on every call, so central differences apply and
    two implementations see one mask."""
    def run(*args):
        sl.manual_seed(DROPOUT_SEED)
        return fn(*args)
    return run


def torch_keep_mask(torch, shape, p, like):
    """The keep mask scratchlm draws after ``sl.manual_seed(DROPOUT_SEED)`` for an array of
    ``shape`` with ``like``'s dtype, as a torch tensor."""
    sl.manual_seed(DROPOUT_SEED)
    keep = keep_mask(shape, p, np.empty((), like.detach().numpy().dtype))
    assert keep.size == 1 or 0 < keep.sum() < keep.size  # some dropped, some kept
    return torch.tensor(keep)


# -------------------------------------------------------------------------- torch sides
def torch_cross_entropy(torch, logits, target, **options):
    """torch's cross-entropy with the class axis last (torch wants it second)."""
    target = torch.as_tensor(target)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), **options)
    return loss.reshape(target.shape) if options.get("reduction") == "none" else loss


def torch_attention(torch, q, k, v, mask=None, **options):
    if mask is not None and not torch.is_tensor(mask):
        mask = torch.as_tensor(mask, dtype=None if mask.dtype == bool else q.dtype)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, **options)


def torch_attention_dropout(torch, q, k, v, p, is_causal=False):
    """softmax(Q Kᵀ/√d) with scratchlm's dropout mask, times V (torch draws its own)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if is_causal:
        allowed = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        scores = scores.masked_fill(~allowed, -math.inf)
    weights = torch.softmax(scores, dim=-1)
    keep = torch_keep_mask(torch, tuple(weights.shape), p, q)
    return (weights * keep / (1 - p)) @ v


def torch_split_heads(torch, x, parts, heads):
    B, T, width = x.shape
    split = x.reshape(B, T, parts, heads, width // (parts * heads)).permute(2, 0, 3, 1, 4)
    return tuple(split) if parts > 1 else split[0]


# ------------------------------------------------------------------------------- the table
@dataclass
class Op:
    fn: object  # scratchlm: the float input Tensors -> a Tensor or a tuple of them
    torch_fn: object  # (torch, float input torch tensors) -> the same
    shapes: list  # shape sets of the float inputs
    reference: type  # the reference Function whose output ``fn`` returns
    fast_cpu: str = None  # name of the class registered for the CPU (None: none)
    fast_cuda: str = None  # name of the CUDA class, for the ops with CUDA kernels
    kernels: tuple = ()  # the kernels that CUDA class launches
    blocked: str = None  # "rows": row blocks on one thread; "threads": shared out
    domain: object = same  # normals -> the op's domain: one map, or a tuple of one per input
    setup: object = None  # monkeypatch -> None: forces the fast path this entry is about
    check_fast: object = None  # the fast op (after forward) -> None: asserts on its path


def one_hot_backward(op):
    assert op.weight_shape[0] <= cpu.ONE_HOT_MAX_ROWS


def sorted_backward(op):
    assert op.weight_shape[0] > cpu.ONE_HOT_MAX_ROWS


def small_query_blocks(monkeypatch):
    monkeypatch.setattr(cpu, "MIN_BLOCK_QUERIES", 2)


def in_query_blocks(op):
    assert len(op.blocks) > 1, op.blocks


LAYER_NORM_KERNELS = ("layer_norm_backward_rows", "layer_norm_rows")
SOFTMAX_KERNELS = ("softmax_backward_rows", "softmax_rows")
ATTENTION_KERNELS = ("attention_softmax_rows", "softmax_backward_rows")  # no mask, no dropout
IDS_SMALL_TABLE = np.array([[0, 2, 2], [1, 0, 2]])  # 3 rows: the one-hot GEMM backward
IDS_LARGE_TABLE = np.array([[5, 299, 5, 0, 6], [17, 5, 298, 42, 299],  # 300 rows: sort
                            [1, 0, 6, 6, 5]])  # and sum runs of equal ids, some ids adjacent
TARGETS = np.array([3, -100, 0, 1, 3])  # 5 positions over 4 classes, one ignored
TARGETS_BT = np.array([[1, 2, 0], [1, 3, 1]])  # (B, T) = (2, 3) over 4 classes
MASK = np.array([[1, 0, 1, 1, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 1]], dtype=bool)  # (Tq, Tk)
MASK_PER_BATCH = np.array([MASK, MASK[::-1]])[:, None]  # (2, 1, Tq, Tk)
MASK_EMPTY_ROWS = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 1]], dtype=bool)
MASK_EMPTY_ROWS_PER_BATCH = np.array([MASK_EMPTY_ROWS, ~MASK_EMPTY_ROWS])[:, None]
ATTENTION_SHAPES = [((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), ((3, 2), (5, 2), (5, 2))]

OPS = {
    "linear": Op(
        F.linear, lambda torch, x, w, b: torch.nn.functional.linear(x, w, b),
        [((3, 4), (5, 4), (5,)), ((2, 3, 4), (5, 4), (5,)), ((4,), (2, 4), (2,)),
         ((2, 1, 3, 4), (1, 4), (1,))], Linear),
    "linear_no_bias": Op(
        F.linear, lambda torch, x, w: torch.nn.functional.linear(x, w),
        [((3, 4), (5, 4)), ((2, 3, 4), (2, 4))], Linear),
    "relu": Op(F.relu, lambda torch, x: torch.nn.functional.relu(x),
               [((3, 4),), ((),), ((2, 1, 3),)], ReLU,
               domain=away_from_zero),
    "gelu_tanh": Op(
        F.gelu, lambda torch, x: torch.nn.functional.gelu(x, approximate="tanh"),
        [((3, 4),), ((),), ((2, 3, 4),), ((7, 5),)], GELUTanh, "GELUTanhRowBlocks",
        "GELUTanhKernel", ("scratchlm_gelu_tanh_backward", "scratchlm_gelu_tanh_forward"),
        blocked="threads", domain=lambda x: 2 * x),
    "gelu_erf": Op(
        lambda x: F.gelu(x, approximate="none"),
        lambda torch, x: torch.nn.functional.gelu(x, approximate="none"),
        [((3, 4),), ((),), ((2, 3, 4),)], GELUErf,
        domain=lambda x: 2 * x),
    "sigmoid": Op(F.sigmoid, lambda torch, x: torch.sigmoid(x),
                  [((3, 4),), ((),), ((2, 1, 3),)], Sigmoid,
                  domain=lambda x: 4 * x),
    "tanh": Op(F.tanh, lambda torch, x: torch.tanh(x), [((3, 4),), ((),)], Tanh),
    "softmax_last": Op(
        F.softmax, lambda torch, x: torch.softmax(x, dim=-1),
        [((3, 4),), ((2, 3, 4),), ((5,),), ((3, 1),)], Softmax, "SoftmaxInPlace",
        "SoftmaxKernel", SOFTMAX_KERNELS),
    "softmax_last_positive_axis": Op(
        lambda x: F.softmax(x, axis=2), lambda torch, x: torch.softmax(x, dim=2),
        [((2, 3, 4),)], Softmax, "SoftmaxInPlace", "SoftmaxKernel", SOFTMAX_KERNELS),
    "softmax_middle": Op(  # the CUDA class keeps the reference off the last axis
        lambda x: F.softmax(x, axis=1), lambda torch, x: torch.softmax(x, dim=1),
        [((2, 3, 4),), ((2, 1, 3),)], Softmax, "SoftmaxInPlace", "SoftmaxKernel"),
    "softmax_first": Op(
        lambda x: F.softmax(x, axis=0), lambda torch, x: torch.softmax(x, dim=0),
        [((3, 4),), ((3, 1, 2),)], Softmax, "SoftmaxInPlace", "SoftmaxKernel"),
    "log_softmax_last": Op(
        F.log_softmax, lambda torch, x: torch.log_softmax(x, dim=-1),
        [((3, 4),), ((2, 3, 4),), ((5,),)], LogSoftmax, "LogSoftmaxInPlace"),
    "log_softmax_first": Op(
        lambda x: F.log_softmax(x, axis=0), lambda torch, x: torch.log_softmax(x, dim=0),
        [((3, 4),), ((2, 3, 4),)], LogSoftmax, "LogSoftmaxInPlace"),
    "layer_norm": Op(
        F.layer_norm, lambda torch, x, w, b: torch.nn.functional.layer_norm(x, w.shape, w, b),
        [((3, 4), (4,), (4,)), ((2, 3, 5), (5,), (5,)), ((6,), (6,), (6,)),
         ((7, 5), (5,), (5,))], LayerNorm, "LayerNormRowBlocks", "LayerNormKernel",
        LAYER_NORM_KERNELS, blocked="rows"),
    "layer_norm_no_affine": Op(
        lambda x: F.layer_norm(x, None, None),
        lambda torch, x: torch.nn.functional.layer_norm(x, x.shape[-1:]),
        [((3, 4),), ((2, 1, 5),)], LayerNorm, "LayerNormRowBlocks", "LayerNormKernel",
        LAYER_NORM_KERNELS, blocked="rows"),
    "layer_norm_no_bias": Op(
        lambda x, w: F.layer_norm(x, w, None, eps=1e-3),
        lambda torch, x, w: torch.nn.functional.layer_norm(x, w.shape, w, None, eps=1e-3),
        [((3, 4), (4,))], LayerNorm, "LayerNormRowBlocks", "LayerNormKernel",
        LAYER_NORM_KERNELS, blocked="rows"),
    "dropout": Op(
        seeded(lambda x: F.dropout(x, 0.4)),
        lambda torch, x: x * torch_keep_mask(torch, tuple(x.shape), 0.4, x) / 0.6,
        [((3, 4),), ((2, 3, 5),), ((),)], Dropout),
    "embedding_small_table": Op(
        lambda w: F.embedding(on_device_of(w, IDS_SMALL_TABLE), w),
        lambda torch, w: torch.nn.functional.embedding(torch.as_tensor(IDS_SMALL_TABLE), w),
        [((3, 4),)], Embedding, "EmbeddingSortedBackward", check_fast=one_hot_backward),
    "embedding_large_table": Op(
        lambda w: F.embedding(on_device_of(w, IDS_LARGE_TABLE), w),
        lambda torch, w: torch.nn.functional.embedding(torch.as_tensor(IDS_LARGE_TABLE), w),
        [((300, 2),)], Embedding, "EmbeddingSortedBackward", check_fast=sorted_backward),
    "embedding_1d_ids": Op(
        lambda w: F.embedding(on_device_of(w, np.array([2, 2, 0, 2])), w),
        lambda torch, w: torch.nn.functional.embedding(torch.tensor([2, 2, 0, 2]), w),
        [((3, 2),)], Embedding, "EmbeddingSortedBackward", check_fast=one_hot_backward),
    "cross_entropy_mean": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS)),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS), [((5, 4),)], CrossEntropy,
        "CrossEntropyRowBlocks", "CrossEntropyKernel", ("softmax_rows",), blocked="threads"),
    "cross_entropy_3d_ignore_index_sum": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS_BT), ignore_index=1,
                                  reduction="sum"),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS_BT, ignore_index=1,
                                             reduction="sum"),
        [((2, 3, 4),)], CrossEntropy, "CrossEntropyRowBlocks", "CrossEntropyKernel",
        ("softmax_rows",), blocked="threads"),
    "cross_entropy_3d_smoothing_mean": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS_BT), ignore_index=3,
                                  label_smoothing=0.2),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS_BT, ignore_index=3,
                                             label_smoothing=0.2),
        [((2, 3, 4),)], CrossEntropy, "CrossEntropyRowBlocks", "CrossEntropyKernel",
        ("softmax_rows",), blocked="threads"),
    "cross_entropy_smoothing_none": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS), label_smoothing=0.1,
                                  reduction="none"),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS, label_smoothing=0.1,
                                             reduction="none"),
        [((5, 4),)], CrossEntropy, "CrossEntropyRowBlocks", "CrossEntropyKernel",
        ("softmax_rows",), blocked="threads"),
    "cross_entropy_3d_smoothing_none": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, TARGETS_BT), ignore_index=0,
                                  label_smoothing=0.3, reduction="none"),
        lambda torch, z: torch_cross_entropy(torch, z, TARGETS_BT, ignore_index=0,
                                             label_smoothing=0.3, reduction="none"),
        [((2, 3, 4),)], CrossEntropy, "CrossEntropyRowBlocks", "CrossEntropyKernel",
        ("softmax_rows",), blocked="threads"),
    "cross_entropy_unbatched": Op(
        lambda z: F.cross_entropy(z, on_device_of(z, np.array(2))),
        lambda torch, z: torch_cross_entropy(torch, z, np.array(2)), [((4,),)], CrossEntropy,
        "CrossEntropyRowBlocks", "CrossEntropyKernel", ("softmax_rows",)),
    "bce_with_logits_mean": Op(
        F.binary_cross_entropy_with_logits,
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(x, t),
        [((3, 4), (3, 4)), ((5,), (5,))], BinaryCrossEntropyWithLogits,
        domain=(lambda x: 3 * x, probability)),
    "bce_with_logits_sum": Op(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(
            x, t, reduction="sum"),
        [((2, 3, 2), (2, 3, 2))], BinaryCrossEntropyWithLogits,
        domain=(lambda x: 3 * x, probability)),
    "bce_with_logits_none": Op(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
        lambda torch, x, t: torch.nn.functional.binary_cross_entropy_with_logits(
            x, t, reduction="none"),
        [((3, 4), (3, 4))], BinaryCrossEntropyWithLogits,
        domain=(lambda x: 3 * x, probability)),
    "mse_loss": Op(F.mse_loss, lambda torch, x, y: torch.nn.functional.mse_loss(x, y),
                   [((3, 4), (3, 4)), ((5,), (5,)), ((), ())], MSELoss),
    "attention": Op(
        F.scaled_dot_product_attention, torch_attention,
        [((2, 3, 4), (2, 3, 4), (2, 3, 5)), ((3, 4), (5, 4), (5, 2))],
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        ATTENTION_KERNELS, blocked="threads"),
    "attention_broadcast_batch": Op(
        F.scaled_dot_product_attention, torch_attention,
        [((2, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3)), ((2, 3, 4), (5, 4), (5, 2)),
         ((3, 4), (2, 5, 4), (2, 5, 3))],
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels", blocked="threads"),
    "attention_causal": Op(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, is_causal=True),
        [((2, 2, 3, 4),) * 3, ((1, 2, 4), (1, 5, 4), (1, 5, 3)), ((4, 2),) * 3],
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        ATTENTION_KERNELS, blocked="threads"),
    "attention_causal_query_blocks": Op(  # 8 queries: 4 blocks of 2; 7: blocks of 3, 3, 1
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, is_causal=True),
        [((2, 3, 8, 4),) * 3, ((1, 7, 3),) * 3, ((7, 2), (7, 2), (7, 3))],
        ScaledDotProductAttention, "AttentionBlocks", blocked="threads",
        setup=small_query_blocks, check_fast=in_query_blocks),
    "attention_bool_mask": Op(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, on_device_of(q, MASK)),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, MASK), ATTENTION_SHAPES,
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels", blocked="threads"),
    "attention_bool_mask_per_batch": Op(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                       on_device_of(q, MASK_PER_BATCH)),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, MASK_PER_BATCH),
        ATTENTION_SHAPES[:1], ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        blocked="threads"),
    "attention_bool_mask_and_causal": Op(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, on_device_of(q, MASK[:, :3]),
                                                       is_causal=True),
        lambda torch, q, k, v: torch_attention(  # torch refuses both with autograd on
            torch, q, k, v, MASK[:, :3] & np.tril(np.ones((3, 3), dtype=bool))),
        [((2, 3, 4),) * 3], ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        blocked="threads"),
    "attention_fully_masked_rows": Op(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v,
                                                       on_device_of(q, MASK_EMPTY_ROWS)),
        lambda torch, q, k, v: torch_attention(torch, q, k, v, MASK_EMPTY_ROWS),
        ATTENTION_SHAPES, ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        blocked="threads"),
    "attention_fully_masked_rows_per_batch_and_causal": Op(
        lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, on_device_of(q, MASK_EMPTY_ROWS_PER_BATCH[..., :3]), is_causal=True),
        lambda torch, q, k, v: torch_attention(
            torch, q, k, v,
            MASK_EMPTY_ROWS_PER_BATCH[..., :3] & np.tril(np.ones((3, 3), dtype=bool))),
        [((2, 2, 3, 4),) * 3], ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels",
        blocked="threads"),
    "attention_float_mask": Op(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m),
        lambda torch, q, k, v, m: torch_attention(torch, q, k, v, m),
        [((2, 3, 4), (2, 5, 4), (2, 5, 3), (3, 5)), ((2, 3, 4), (2, 5, 4), (2, 5, 3), (2, 3, 1)),
         ((3, 4), (5, 4), (5, 2), (1, 5)), ((2, 3, 4), (5, 4), (5, 2), (2, 1, 5))],
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels", blocked="threads"),
    "attention_float_mask_fully_masked_row": Op(
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m),
        lambda torch, q, k, v, m: torch_attention(torch, q, k, v, m),
        [((2, 3, 4), (2, 5, 4), (2, 5, 3), (3, 5)), ((2, 3, 4), (2, 5, 4), (2, 5, 3), (2, 3, 5))],
        ScaledDotProductAttention, "AttentionBlocks", "AttentionKernels", blocked="threads",
        domain=(same, same, same, with_a_masked_row)),
    "attention_dropout": Op(
        seeded(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, dropout_p=0.3)),
        lambda torch, q, k, v: torch_attention_dropout(torch, q, k, v, 0.3),
        [((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)), ((3, 2), (5, 2), (5, 2))],
        ScaledDotProductAttention, "AttentionBlocks", blocked="threads"),
    "attention_dropout_causal": Op(
        seeded(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                              dropout_p=0.4)),
        lambda torch, q, k, v: torch_attention_dropout(torch, q, k, v, 0.4, is_causal=True),
        [((2, 2, 3, 4),) * 3, ((8, 2),) * 3], ScaledDotProductAttention, "AttentionBlocks",
        blocked="threads", setup=small_query_blocks),  # dropout keeps to one query block
    "split_heads_qkv": Op(
        lambda x: split_heads(x, 3, 2), lambda torch, x: torch_split_heads(torch, x, 3, 2),
        [((2, 3, 12),), ((1, 1, 6),)], SplitHeads),
    "split_heads_kv": Op(
        lambda x: split_heads(x, 2, 2), lambda torch, x: torch_split_heads(torch, x, 2, 2),
        [((1, 2, 8),)], SplitHeads),
    "split_heads_q": Op(
        lambda x: split_heads(x, 1, 2), lambda torch, x: torch_split_heads(torch, x, 1, 2),
        [((2, 3, 4),)], SplitHeads),
    "merge_heads": Op(
        merge_heads,
        lambda torch, x: x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1),
        [((2, 3, 4, 5),), ((1, 1, 1, 2),), ((1, 4, 3, 1),)], MergeHeads),
}


def shape_id(shapes):
    return "_".join("x".join(map(str, s)) or "scalar" for s in shapes)


def op_cases(keep=lambda op, shapes: True):
    return [pytest.param(name, shapes, id=f"{name}-{shape_id(shapes)}")
            for name, op in OPS.items() for shapes in op.shapes if keep(op, shapes)]


def make_inputs(op, shapes, seed=0):
    rng = np.random.default_rng(seed)
    domains = op.domain if isinstance(op.domain, tuple) else (op.domain,) * len(shapes)
    return [d(rng.standard_normal(shape)) for d, shape in zip(domains, shapes, strict=True)]


def as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def outputs_and_gradients(op, arrays, device="cpu", check=None):
    """``op``'s outputs and the gradient of every input, as NumPy arrays, after backward
    from a fixed random cotangent (a tuple of outputs backward one after another), and the
    class of the op that made the outputs. ``check(op)`` runs between forward and backward.
    The cotangents must come back unchanged: backward never writes into its g."""
    inputs = [sl.tensor(a, requires_grad=True, device=device) for a in arrays]
    outputs = as_tuple(op.fn(*inputs))
    function = outputs[0]._ctx
    assert all(y._ctx is function for y in outputs)
    if check is not None:
        check(function)
    rng = np.random.default_rng(1)
    cotangents = [backend.to_device(rng.standard_normal(y.shape), device) for y in outputs]
    kept = [backend.to_numpy(c).copy() for c in cotangents]
    for i, (y, c) in enumerate(zip(outputs, cotangents)):
        y.backward(c, retain_graph=i < len(outputs) - 1)
    for c, copy in zip(cotangents, kept):
        np.testing.assert_array_equal(backend.to_numpy(c), copy)
    return ([backend.to_numpy(y.data) for y in outputs]
            + [backend.to_numpy(t.grad) for t in inputs]), type(function)


def assert_same(fast, reference):
    """Equal arrays, in float64, to :data:`FAST_RTOL` (or :data:`FAST_SCALE_ATOL` of the
    array's largest entry, at least 1)."""
    assert len(fast) == len(reference)
    for i, (a, b) in enumerate(zip(fast, reference)):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64, i
        scale = float(np.abs(b).max(initial=1.0))
        np.testing.assert_allclose(a, b, rtol=FAST_RTOL, atol=FAST_SCALE_ATOL * scale,
                                   err_msg=f"array {i}")


# ------------------------------------------------------------------ (a) gradcheck
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, shapes", op_cases())
def test_gradcheck_reference(name, shapes, device):
    op = OPS[name]
    inputs = [sl.tensor(x, requires_grad=True, device=device) for x in make_inputs(op, shapes)]
    with sl.use_fast(False):
        assert type(as_tuple(op.fn(*inputs))[0]._ctx) is op.reference
        assert sl.gradcheck(op.fn, inputs)


# ------------------------------------------------------- (b) fast equals reference
class Spy:
    """Stands in for the fast layer's helpers to record what ran: the pieces of every
    ``threads.run_shared`` call and the slots (threads) that ran them, the number of row
    blocks ``cpu.row_blocks`` cut, and the CUDA kernels asked for (as the backend of
    ``cuda_kernels``, passing on to ``inner``)."""

    def __init__(self, monkeypatch, inner=backend):
        self.inner, self.pieces, self.slots, self.blocks, self.kernels = inner, [], set(), [], []
        run_shared, row_blocks = threads.run_shared, cpu.row_blocks

        def counting_run_shared(work, pieces):
            pieces = list(pieces)
            self.pieces.append(len(pieces))

            def counted(piece, slot):
                self.slots.add(slot)
                work(piece, slot)
            run_shared(counted, pieces)

        def counting_row_blocks(x):
            blocks = row_blocks(x)
            self.blocks.append(len(blocks))
            return blocks
        monkeypatch.setattr(threads, "run_shared", counting_run_shared)
        monkeypatch.setattr(cpu, "row_blocks", counting_row_blocks)

    def is_gpu_array(self, array):
        return self.inner.is_gpu_array(array)

    def get_array_module(self, *arrays):
        return self.inner.get_array_module(*arrays)

    def elementwise_kernel(self, in_params, out_params, operation, name, options=()):
        self.kernels.append(name)
        return self.inner.elementwise_kernel(in_params, out_params, operation, name, options)

    def raw_kernel(self, code, name, options=()):
        self.kernels.append(name)
        return self.inner.raw_kernel(code, name, options)


def spy_for(mode, monkeypatch, request):
    """A :class:`Spy`; for the CUDA modes also the backend of the kernels: the emulator's
    (NumPy inputs then look their fast versions up for "cuda") or the GPU's."""
    if mode == "emulated-cuda":
        spy = Spy(monkeypatch, request.getfixturevalue("emulator"))
        emulate_cuda(monkeypatch, spy)
        return spy
    spy = Spy(monkeypatch)
    if mode == "cuda":
        monkeypatch.setattr(cuda_kernels, "backend", spy)
    return spy


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    return Backend(str(tmp_path_factory.mktemp("cuda_emulator")))


def gpu_mode(name):
    return pytest.mark.skipif(not sl.gpu_available(), reason="no GPU (CuPy with a CUDA "
                              "device) on this machine") if name == "cuda" else \
        pytest.mark.skipif(GXX is None, reason="no g++ to build the CUDA emulator")


def rows_of(shape):
    return math.prod(shape[:-1]) if shape else 1


def many_rows(op, shapes):
    """Inputs big enough for several blocks of SMALL_BLOCK_BYTES: two rows or more, and
    more than one block's bytes."""
    return rows_of(shapes[0]) > 1 and 8 * math.prod(shapes[0]) > SMALL_BLOCK_BYTES


FAST_CASES = (
    [pytest.param(name, shapes, "plain", id=f"plain-{name}-{shape_id(shapes)}")
     for name, shapes in (p.values for p in op_cases())]
    + [pytest.param(name, shapes, "blocks", id=f"blocks-{name}-{shape_id(shapes)}")
       for name, shapes in (p.values for p in op_cases(
           lambda op, shapes: op.blocked and many_rows(op, shapes)))]
    + [pytest.param(name, shapes, mode, id=f"{mode}-{name}-{shape_id(shapes)}",
                    marks=gpu_mode(mode))
       for mode in ("emulated-cuda", "cuda")
       for name, shapes in (p.values for p in op_cases(lambda op, _: op.fast_cuda))])


@pytest.mark.parametrize("name, shapes, mode", FAST_CASES)
def test_fast_equals_reference(name, shapes, mode, monkeypatch, request):
    op = OPS[name]
    arrays = make_inputs(op, shapes)
    device = "cuda" if mode == "cuda" else "cpu"
    with sl.use_fast(False):
        reference, ran = outputs_and_gradients(op, arrays, device)
    assert ran is op.reference

    if op.setup is not None:
        op.setup(monkeypatch)
    spy = spy_for(mode, monkeypatch, request)
    if mode == "blocks":
        request.getfixturevalue("two_threads")
        monkeypatch.setattr(rows, "ROW_BLOCK_BYTES", SMALL_BLOCK_BYTES)
    with sl.use_fast(True):
        fast, ran = outputs_and_gradients(op, arrays, device, op.check_fast)
        registered = registry.fast_version(op.reference, "cpu" if mode in ("plain", "blocks")
                                           else "cuda")
    assert ran is (registered or op.reference) and issubclass(ran, op.reference)
    assert ran.__name__ == ((op.fast_cpu or op.reference.__name__)
                            if mode in ("plain", "blocks") else op.fast_cuda)
    assert_same(fast, reference)

    if mode == "blocks":  # several blocks ran, on both threads where the op shares them
        if op.blocked == "threads":
            assert max(spy.pieces) > 1 and spy.slots == {0, 1}, (spy.pieces, spy.slots)
        else:
            assert max(spy.blocks) > 1, spy.blocks
    if mode in ("emulated-cuda", "cuda"):
        assert sorted(set(spy.kernels)) == sorted(op.kernels)
    else:
        assert spy.kernels == []


# ------------------------------------------------------------- (c) against PyTorch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, shapes", op_cases())
def test_matches_torch(name, shapes, dtype):
    torch = pytest.importorskip("torch")
    op = OPS[name]
    arrays = [x.astype(dtype) for x in make_inputs(op, shapes, seed=1)]
    ours = [sl.tensor(x, requires_grad=True) for x in arrays]
    theirs = [torch.tensor(x, requires_grad=True) for x in arrays]
    outputs, outputs_ref = as_tuple(op.fn(*ours)), as_tuple(op.torch_fn(torch, *theirs))
    assert len(outputs) == len(outputs_ref)
    tol = TOLERANCE[np.dtype(dtype)]
    rng = np.random.default_rng(2)
    cotangents = [rng.standard_normal(y.shape).astype(dtype) for y in outputs]
    kept = [c.copy() for c in cotangents]
    for i, (y, y_ref, c) in enumerate(zip(outputs, outputs_ref, cotangents)):
        assert y.shape == tuple(y_ref.shape) and y.dtype == dtype
        np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), **tol)
        last = i == len(outputs) - 1
        y_ref.backward(torch.tensor(c), retain_graph=not last)
        y.backward(c, retain_graph=not last)
    for t, t_ref in zip(ours, theirs, strict=True):
        assert t.grad.dtype == dtype
        np.testing.assert_allclose(t.grad, t_ref.grad.numpy(), **tol)
    for c, copy in zip(cotangents, kept):
        np.testing.assert_array_equal(c, copy)  # backward never writes into g


# ------------------------------------------------------ (d) backward on a kept graph
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
@pytest.mark.parametrize("name, shapes", op_cases())
def test_backward_twice_with_retain_graph_doubles_gradients(name, shapes, fast):
    """Backward may run twice on a kept graph: it must not consume its saved arrays (a fast
    op may write into them only in the last backward)."""
    op = OPS[name]
    inputs = [sl.tensor(x, requires_grad=True) for x in make_inputs(op, shapes)]
    with sl.use_fast(fast):
        outputs = as_tuple(op.fn(*inputs))
        rng = np.random.default_rng(3)
        cotangents = [rng.standard_normal(y.shape) for y in outputs]
        for y, c in zip(outputs, cotangents):
            y.backward(c, retain_graph=True)
        once = [t.grad.copy() for t in inputs]
        for i, (y, c) in enumerate(zip(outputs, cotangents)):
            y.backward(c, retain_graph=i < len(outputs) - 1)
    for t, grad in zip(inputs, once):
        np.testing.assert_allclose(t.grad, 2 * grad, rtol=1e-14, atol=1e-300)


# ------------------------------------------------------------------------- optimizers
@dataclass
class Rule:
    optimizer: str  # the name in scratchlm.optim and torch.optim
    kwargs: dict
    fast_cpu: str  # the function registered for the CPU
    fast_cuda: str = None  # the CUDA function, for the rules with a kernel


OPTIMIZERS = {
    "sgd": Rule("SGD", dict(lr=0.1), "sgd_in_pieces"),
    "sgd_momentum": Rule("SGD", dict(lr=0.1, momentum=0.9), "sgd_in_pieces"),
    "sgd_nesterov": Rule("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), "sgd_in_pieces"),
    "sgd_weight_decay": Rule("SGD", dict(lr=0.1, weight_decay=0.05), "sgd_in_pieces"),
    "sgd_momentum_dampening_weight_decay": Rule(
        "SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1), "sgd_in_pieces"),
    "sgd_nesterov_weight_decay": Rule(
        "SGD", dict(lr=0.05, momentum=0.7, weight_decay=0.1, nesterov=True), "sgd_in_pieces"),
    "adam": Rule("Adam", dict(lr=1e-2), "adam_in_pieces", "adam_kernel"),
    "adam_l2": Rule("Adam", dict(lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
                    "adam_in_pieces", "adam_kernel"),
    "adamw": Rule("AdamW", dict(lr=1e-2), "adam_in_pieces", "adam_kernel"),
    "adamw_strong": Rule("AdamW", dict(lr=3e-2, betas=(0.5, 0.9), eps=1e-4, weight_decay=0.3),
                         "adam_in_pieces", "adam_kernel"),
}
PARAM_SHAPES = [(3, 4), (5,), (2, 3, 4), (40,), (1,)]
STEPS = 6


def trajectory(rule, device="cpu"):
    """The parameters and every state array after each step of ``rule`` from fixed starts and
    gradients (float64; the last parameter has no gradient on step 2 and is skipped there),
    and the update rules ``Optimizer.step`` looked up (None: the reference ran)."""
    rng = np.random.default_rng(0)
    params = [sl.tensor(rng.standard_normal(s), requires_grad=True, device=device)
              for s in PARAM_SHAPES]
    optimizer = getattr(optim, rule.optimizer)(params, **rule.kwargs)
    found = []
    look_up = dispatch.faster

    def recording(reference, on):
        rule = look_up(reference, on)
        if getattr(reference, "__name__", None) == "update_parameter":
            found.append(rule)
        return rule
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "faster", recording)
        states = []
        for step in range(STEPS):
            for i, p in enumerate(params):
                gradient = rng.standard_normal(p.shape)
                p.grad = None if (step, i) == (2, 4) else backend.to_device(gradient, device)
            optimizer.step()
            states.append([p.numpy() for p in params] + [
                backend.to_numpy(value) for key in sorted(optimizer.state)
                for name, value in sorted(optimizer.state[key].items()) if name != "step"])
    return states, found


FAST_RULE_CASES = (
    [pytest.param(name, mode, id=f"{mode}-{name}") for mode in ("plain", "pieces")
     for name in OPTIMIZERS]
    + [pytest.param(name, mode, id=f"{mode}-{name}", marks=gpu_mode(mode))
       for mode in ("emulated-cuda", "cuda") for name, rule in OPTIMIZERS.items()
       if rule.fast_cuda])


@pytest.mark.parametrize("name, mode", FAST_RULE_CASES)
def test_fast_optimizer_equals_reference(name, mode, monkeypatch, request):
    rule = OPTIMIZERS[name]
    device = "cuda" if mode == "cuda" else "cpu"
    with sl.use_fast(False):
        reference, found = trajectory(rule, device)
    assert found == [None] * len(found) and len(found) == STEPS * len(PARAM_SHAPES) - 1

    spy = spy_for(mode, monkeypatch, request)
    if mode == "pieces":
        request.getfixturevalue("two_threads")
        monkeypatch.setattr(fast_optim, "CHUNK_SIZE", 7)
    with sl.use_fast(True):
        fast, found = trajectory(rule, device)
    expected = rule.fast_cpu if mode in ("plain", "pieces") else rule.fast_cuda
    assert [getattr(r, "__name__", None) for r in found] == [expected] * len(found)
    assert all(r.__module__ == "scratchlm.fast.optim" for r in found)
    for a, b in zip(fast, reference, strict=True):
        assert_same(a, b)
    if mode == "pieces":  # the 40 elements in 6 pieces, on both threads
        assert max(spy.pieces) == 6 and spy.slots == {0, 1}, (spy.pieces, spy.slots)
    if mode in ("emulated-cuda", "cuda"):
        assert sorted(set(spy.kernels)) == ["scratchlm_adam_update"]
    else:
        assert spy.kernels == []


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_matches_torch(name):
    torch = pytest.importorskip("torch")
    rule = OPTIMIZERS[name]
    ours, _ = trajectory(rule)
    rng = np.random.default_rng(0)
    params = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in PARAM_SHAPES]
    optimizer = getattr(torch.optim, rule.optimizer)(params, foreach=False, **rule.kwargs)
    for step, ours_step in enumerate(ours):
        for i, p in enumerate(params):
            gradient = torch.tensor(rng.standard_normal(tuple(p.shape)))
            p.grad = None if (step, i) == (2, 4) else gradient
        optimizer.step()
        for i, p in enumerate(params):
            np.testing.assert_allclose(ours_step[i], p.detach().numpy(), rtol=1e-12,
                                       atol=1e-12, err_msg=f"parameter {i}, step {step + 1}")


# ------------------------------------------------------------------- the table is whole
def test_the_table_covers_every_fast_implementation():
    """Every op class and update rule registered in the fast layer is an entry's fast
    version: for the CPU every one, for CUDA every one with code of its own (the rest run
    the reference's code)."""
    with sl.use_fast(True):
        registry.fast_version(Linear, "cpu")  # loads the implementation modules
    tested = {("cpu", op.reference, op.fast_cpu) for op in OPS.values() if op.fast_cpu}
    tested |= {("cuda", op.reference, op.fast_cuda) for op in OPS.values() if op.fast_cuda}
    for rule in OPTIMIZERS.values():
        reference = getattr(optim, rule.optimizer).update_parameter
        tested.add(("cpu", reference, rule.fast_cpu))
        if rule.fast_cuda:
            tested.add(("cuda", reference, rule.fast_cuda))
    registered = set()
    for (reference, device), fast in registry._implementations.items():
        if reference is engine.run_backward:  # the fast engine: tests/test_engine_fast.py
            continue
        own_code = not isinstance(fast, type) or any(
            name in vars(fast) for name in ("forward", "backward"))
        if device == "cpu" or own_code:
            registered.add((device, reference, fast.__name__))
    assert registered == tested
