"""Incremental decoding with key/value caches equals recomputing the whole sequence."""

import numpy as np
import pytest
from conftest import DEVICES, TOLERANCE

import scratchlm as sl
import scratchlm.nn as nn

B, T, S, D, H = 2, 6, 4, 8, 2
TOL = TOLERANCE[np.dtype(np.float32)]

#: how the T positions are fed: one at a time, and in uneven chunks
SPLITS = {"token_by_token": [1] * T, "chunks": [2, 3, 1], "prompt_then_tokens": [4, 1, 1]}


def chunks(x, sizes):
    start = 0
    for size in sizes:
        yield start, x[:, start:start + size]
        start += size


def random_sequence(length, device, seed=0):
    data = np.random.default_rng(seed).standard_normal((B, length, D)).astype(np.float32)
    return sl.tensor(data, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("split", list(SPLITS))
def test_self_attention_with_cache_equals_full_causal_attention(split, device):
    sl.manual_seed(0)
    attention = nn.MultiHeadAttention(D, H).to(device)
    x = random_sequence(T, device)
    with sl.no_grad():
        full = attention(x, is_causal=True).numpy()
        cache = nn.KVCache(max_len=T)
        steps = [attention(x_new, is_causal=True, kv_cache=cache).numpy()
                 for _, x_new in chunks(x, SPLITS[split])]
    assert cache.length == T
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, **TOL)


def test_cache_with_key_padding_mask_covering_every_cached_key():
    sl.manual_seed(0)
    attention = nn.MultiHeadAttention(D, H)
    x = random_sequence(T, "cpu")
    padding = np.zeros((B, T), dtype=bool)
    padding[1, 1] = True  # the second sequence has a hole at position 1
    with sl.no_grad():
        full = attention(x, is_causal=True, key_padding_mask=padding).numpy()
        cache = nn.KVCache(max_len=T)
        steps = [attention(x_new, is_causal=True, key_padding_mask=padding[:, :start + 2],
                           kv_cache=cache).numpy()
                 for start, x_new in chunks(x, [2, 2, 2])]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, **TOL)


def test_cross_attention_projects_the_memory_once():
    sl.manual_seed(0)
    attention = nn.MultiHeadAttention(D, H, cross_attention=True)
    x, memory = random_sequence(T, "cpu"), random_sequence(S, "cpu", seed=1)
    with sl.no_grad():
        full = attention(x, memory).numpy()
        cache = nn.KVCache()
        first = attention(x[:, :2], memory, kv_cache=cache).numpy()
        rest = attention(x[:, 2:], None, kv_cache=cache).numpy()  # memory no longer needed
    assert cache.length == S
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), full, **TOL)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("split", list(SPLITS))
def test_decoder_layer_with_cache_equals_full_recomputation(split, norm_first, device):
    sl.manual_seed(0)
    layer = nn.TransformerDecoderLayer(D, H, 16, dropout=0.0, norm_first=norm_first)
    layer.to(device).eval()
    tgt, memory = random_sequence(T, device), random_sequence(S, device, seed=1)
    memory_padding = np.zeros((B, S), dtype=bool)
    memory_padding[0, -1] = True
    with sl.no_grad():
        full = layer(tgt, memory, tgt_is_causal=True,
                     memory_key_padding_mask=memory_padding).numpy()
        cache = nn.DecoderKVCache(max_len=T)
        steps = [layer(tgt_new, memory, tgt_is_causal=True, kv_cache=cache,
                       memory_key_padding_mask=memory_padding).numpy()
                 for _, tgt_new in chunks(tgt, SPLITS[split])]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, **TOL)


def test_kv_cache_appends_in_place_and_returns_the_filled_prefix():
    cache = nn.KVCache(max_len=4)
    keys = np.arange(2 * 1 * 3 * 2, dtype=np.float32).reshape(2, 1, 3, 2)
    k, v = cache.append(keys, -keys)
    assert cache.keys.shape == (2, 1, 4, 2) and k.shape == (2, 1, 3, 2)
    assert np.shares_memory(k, cache.keys)
    k, v = cache.append(keys[:, :, :1] + 100, -keys[:, :, :1])
    np.testing.assert_array_equal(k[:, :, 3], keys[:, :, 0] + 100)
    np.testing.assert_array_equal(v[:, :, :3], -keys)
    with pytest.raises(ValueError, match="4 cached positions plus 1 new exceed its capacity"):
        cache.append(keys[:, :, :1], keys[:, :, :1])
    with pytest.raises(ValueError, match=r"new keys of shape \(1, 1, 1, 2\) do not fit"):
        cache.append(keys[:1, :, :1], keys[:1, :, :1])
    cache.reset()
    assert cache.length == 0 and cache.keys is None


def test_a_cache_outside_no_grad_is_refused():
    attention = nn.MultiHeadAttention(D, H)
    with pytest.raises(RuntimeError, match=r"kv_cache is for inference.*sl.no_grad\(\)"):
        attention(random_sequence(1, "cpu"), kv_cache=nn.KVCache(4))


def test_a_full_cache_names_its_capacity():
    attention = nn.MultiHeadAttention(D, H)
    cache = nn.KVCache(max_len=2)
    with sl.no_grad(), pytest.raises(ValueError, match="capacity of 2"):
        attention(random_sequence(3, "cpu"), is_causal=True, kv_cache=cache)


@pytest.mark.parametrize("device", DEVICES)
def test_select_rows_keeps_chosen_sequences_and_continues_as_their_recomputation(device):
    """Reordered (and repeated) rows continue exactly as if those sequences had been fed."""
    sl.manual_seed(0)
    attention = nn.MultiHeadAttention(D, H).to(device)
    x = random_sequence(T, device)
    rows = np.array([1, 1, 0])  # row 1 twice, row 0 once: batch 2 -> 3
    prefix = T - 2
    with sl.no_grad():
        cache = nn.KVCache(max_len=T)
        attention(x[:, :prefix], is_causal=True, kv_cache=cache)
        cache.select_rows(sl.backend.to_device(rows, device))
        assert cache.length == prefix and cache.keys.shape == (3, H, T, D // H)
        chosen = sl.tensor(x.numpy()[rows], device=device)
        stepped = attention(chosen[:, prefix:], is_causal=True, kv_cache=cache).numpy()
        full = attention(chosen, is_causal=True).numpy()
    np.testing.assert_allclose(stepped, full[:, prefix:], **TOL)
    empty = nn.KVCache(4)
    empty.select_rows(np.array([0, 0]))  # nothing cached yet: nothing to do
    assert empty.keys is None
