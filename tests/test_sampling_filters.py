"""top_k_filter / top_p_filter against per-row definitions, hand examples and Hugging Face's
warper formulas re-written in PyTorch."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchlm import backend
from scratchlm.sampling_filters import top_k_filter, top_p_filter

NEG_INF = -np.inf


# ----------------------------------------------------------------------------- definitions
def reference_top_k(logits, k):
    """Row by row: keep every logit ≥ the k-th largest of its row."""
    out = logits.copy()
    for row in out.reshape(-1, logits.shape[-1]):
        kth_largest = sorted(row, reverse=True)[min(k, len(row)) - 1]
        row[row < kth_largest] = NEG_INF
    return out


def reference_top_p(logits, p):
    """Row by row: take tokens from the most probable down (equal logits: later index first)
    until their probabilities sum to at least p. Also returns the smallest distance between p
    and a partial sum, to skip cases that rounding could decide either way."""
    out = np.full_like(logits, NEG_INF)
    closest = math.inf
    for row, out_row in zip(logits.reshape(-1, logits.shape[-1]),
                            out.reshape(-1, logits.shape[-1])):
        probs = np.exp(row.astype(np.float64) - row.max())
        probs /= probs.sum()
        mass = 0.0
        for i in sorted(range(len(row)), key=lambda i: (row[i], i), reverse=True):
            out_row[i] = row[i]
            mass += probs[i]
            closest = min(closest, abs(mass - p))
            if mass >= p:
                break
    return out, closest


def logits_arrays(dtype=np.float64):
    """Small arrays of shape (V,), (B, V) or (B, T, V) with many ties."""
    shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7)
    elements = st.one_of(st.floats(-12, 12, width=32), st.sampled_from([0.0, 1.0, 2.5, -3.0]))
    return hnp.arrays(dtype, shapes, elements=elements)


# ----------------------------------------------------------------------------- top-k
@settings(max_examples=200, deadline=None)
@given(logits=logits_arrays(), k=st.integers(1, 10))
def test_top_k_matches_definition(logits, k):
    np.testing.assert_array_equal(top_k_filter(logits, k), reference_top_k(logits, k))


def test_top_k_by_hand():
    logits = np.array([1.0, 3.0, 3.0, 2.0, -1.0])
    # k=1 and k=2: the two 3s are tied for first, both stay
    np.testing.assert_array_equal(top_k_filter(logits, 1), [NEG_INF, 3, 3, NEG_INF, NEG_INF])
    np.testing.assert_array_equal(top_k_filter(logits, 2), [NEG_INF, 3, 3, NEG_INF, NEG_INF])
    np.testing.assert_array_equal(top_k_filter(logits, 3), [NEG_INF, 3, 3, 2, NEG_INF])
    np.testing.assert_array_equal(top_k_filter(logits, 5), logits)
    np.testing.assert_array_equal(top_k_filter(logits, 50), logits)  # k > vocab: no-op


def test_top_k_batched_rows_are_independent():
    logits = np.array([[[0.0, 1.0, 2.0], [5.0, 4.0, 3.0]],
                       [[1.0, 1.0, 1.0], [9.0, -9.0, 0.0]]], dtype=np.float32)
    expected = np.array([[[NEG_INF, 1.0, 2.0], [5.0, 4.0, NEG_INF]],
                         [[1.0, 1.0, 1.0], [9.0, NEG_INF, 0.0]]], dtype=np.float32)
    out = top_k_filter(logits, 2)
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, expected)


# ----------------------------------------------------------------------------- top-p
@settings(max_examples=200, deadline=None)
@given(logits=logits_arrays(), p=st.floats(0.01, 1.0))
def test_top_p_matches_definition(logits, p):
    expected, closest = reference_top_p(logits, p)
    assume(closest > 1e-9)
    np.testing.assert_array_equal(top_p_filter(logits, p), expected)


def test_top_p_by_hand():
    logits = np.log(np.array([0.2, 0.5, 0.3]))
    # 0.5 alone is below 0.55; 0.5 + 0.3 crosses it: the crossing token stays
    np.testing.assert_array_equal(top_p_filter(logits, 0.55), [NEG_INF, logits[1], logits[2]])
    # 0.5 alone already reaches 0.45
    np.testing.assert_array_equal(top_p_filter(logits, 0.45), [NEG_INF, logits[1], NEG_INF])
    # a tiny p still keeps the most probable token
    np.testing.assert_array_equal(top_p_filter(logits, 1e-6), [NEG_INF, logits[1], NEG_INF])


def test_top_p_ties_on_the_boundary_keep_the_later_index():
    # four equal tokens of probability 1/4: two reach p = 0.5; ranked as a stable ascending
    # sort ranks them, the later indices count as the more probable
    logits = np.zeros(4)
    np.testing.assert_array_equal(top_p_filter(logits, 0.5), [NEG_INF, NEG_INF, 0.0, 0.0])
    np.testing.assert_array_equal(top_p_filter(logits, 0.6), [NEG_INF, 0.0, 0.0, 0.0])


def test_top_p_one_keeps_every_token():
    logits = np.random.default_rng(0).normal(scale=5.0, size=(3, 4, 50)).astype(np.float32)
    np.testing.assert_array_equal(top_p_filter(logits, 1.0), logits)


def test_top_p_keeps_already_removed_tokens_removed():
    logits = top_k_filter(np.array([[0.5, 2.0, 1.0, -1.0]]), 2)
    np.testing.assert_array_equal(top_p_filter(logits, 1.0), [[NEG_INF, 2.0, 1.0, NEG_INF]])


def test_filters_do_not_modify_their_input():
    logits = np.array([[3.0, 1.0, 2.0]])
    original = logits.copy()
    top_k_filter(logits, 1)
    top_p_filter(logits, 0.1)
    np.testing.assert_array_equal(logits, original)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, error, words", [
    (lambda: top_k_filter(np.zeros(3), 0), ValueError, "top_k_filter: k must be an integer ≥ 1"),
    (lambda: top_k_filter(np.zeros(3), 2.0), TypeError, "top_k_filter: k must be an integer"),
    (lambda: top_k_filter(np.zeros(3), True), TypeError, "top_k_filter: k must be an integer"),
    (lambda: top_k_filter([1.0, 2.0], 1), TypeError, "top_k_filter: logits must be a NumPy"),
    (lambda: top_k_filter(np.zeros((2, 0)), 1), ValueError, "non-empty last"),
    (lambda: top_k_filter(np.float64(1.0), 1), ValueError, "got shape ()"),
    (lambda: top_k_filter(np.arange(3), 1), TypeError, "floating-point array, got dtype int64"),
    (lambda: top_p_filter(np.zeros(3), 0.0), ValueError, "top_p_filter: p must be in (0, 1]"),
    (lambda: top_p_filter(np.zeros(3), 1.5), ValueError, "top_p_filter: p must be in (0, 1]"),
    (lambda: top_p_filter(np.zeros(3), math.nan), ValueError, "top_p_filter: p must be in"),
    (lambda: top_p_filter(np.zeros(3), "0.9"), TypeError, "top_p_filter: p must be a number"),
])
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


# ----------------------------------------------------------------------------- HF oracle
def hf_top_k(scores, k, torch):
    """TopKLogitsWarper's formula."""
    k = min(k, scores.size(-1))
    remove = scores < torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(remove, -math.inf)


def hf_top_p(scores, p, torch):
    """TopPLogitsWarper's formula (with a stable sort, so equal logits rank by index)."""
    ascending, order = torch.sort(scores, descending=False, stable=True)
    remove_sorted = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - p)
    remove_sorted[..., -1:] = 0
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return scores.masked_fill(remove, -math.inf)


@pytest.mark.parametrize("shape", [(17,), (4, 33), (2, 3, 64)])
def test_filters_match_hugging_face_formulas_in_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    logits = rng.normal(scale=3.0, size=shape)
    ties = rng.random(shape) < 0.3
    logits[ties] = np.round(logits[ties])
    scores = torch.from_numpy(logits)
    for k in (1, 2, 5, shape[-1], shape[-1] + 3):
        np.testing.assert_array_equal(top_k_filter(logits, k), hf_top_k(scores, k, torch).numpy())
    for p in (0.05, 0.3, 0.5, 0.9, 0.99, 1.0):
        np.testing.assert_array_equal(top_p_filter(logits, p), hf_top_p(scores, p, torch).numpy())


# ----------------------------------------------------------------------------- GPU
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")
def test_filters_on_the_gpu_match_the_cpu():
    cupy = backend.cupy
    logits = np.random.default_rng(1).normal(size=(2, 3, 40)).astype(np.float32)
    on_gpu = cupy.asarray(logits)
    np.testing.assert_array_equal(cupy.asnumpy(top_k_filter(on_gpu, 7)), top_k_filter(logits, 7))
    np.testing.assert_array_equal(
        np.isinf(cupy.asnumpy(top_p_filter(on_gpu, 0.8))), np.isinf(top_p_filter(logits, 0.8)))
