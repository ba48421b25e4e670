"""Key/value caches for incremental decoding.

Generating token t with a decoder recomputes attention for one new query, but its keys and
values over positions 0 … t−1 are the same as at the previous step. A cache keeps them: each
step projects only the new tokens, appends their keys and values in place, and attends over
the filled prefix. The result equals recomputing the whole sequence (causal attention never
lets an old position see a new one), at O(T) instead of O(T²) work per step.

Caches hold plain arrays and are for inference: use them under ``sl.no_grad()``.
"""

from scratchlm import backend
from scratchlm.checks import check_int
from scratchlm.errors import ArgumentError


class KVCache:
    """The keys and values one attention layer has seen, in arrays (B, H, max_len, hd)
    allocated once, at the first :meth:`append`, on that step's device and dtype.

    ``max_len=None`` sizes the arrays to the first append (right for cross-attention, whose
    memory keys and values are computed once and only read afterwards).
    """

    def __init__(self, max_len=None):
        self.max_len = check_int("KVCache", "max_len", max_len, 1, optional=True,
                                 hint="(None sizes the cache to its first append)")
        self.keys = self.values = None
        self.length = 0

    def append(self, keys, values):
        """Write the new steps' ``keys``, ``values`` (B, H, t, hd) arrays after the cached
        ones and return views of everything cached so far, each (B, H, length, hd)."""
        if self.keys is None:
            B, H, t, head_dim = keys.shape
            capacity = t if self.max_len is None else self.max_len
            xp = backend.get_array_module(keys)
            self.keys = xp.empty((B, H, capacity, head_dim), dtype=keys.dtype)
            self.values = xp.empty((B, H, capacity, head_dim), dtype=values.dtype)
        B, H, capacity, head_dim = self.keys.shape
        t = keys.shape[2]
        if keys.shape[:2] + keys.shape[3:] != (B, H, head_dim):
            raise ArgumentError(f"KVCache: new keys of shape {keys.shape} do not fit the cache's "
                                f"(batch, heads, time, head_dim) = {(B, H, '…', head_dim)}")
        if self.length + t > capacity:
            raise ValueError(f"KVCache: {self.length} cached positions plus {t} new exceed "
                             f"its capacity of {capacity} (max_len={self.max_len})")
        end = self.length + t
        self.keys[:, :, self.length:end] = keys
        self.values[:, :, self.length:end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def cached(self):
        """Views of the cached keys and values, each (B, H, length, hd)."""
        return self.keys[:, :, :self.length], self.values[:, :, :self.length]

    def select_rows(self, rows):
        """Keep the cached sequences ``rows`` (an integer array): row i becomes the old row
        ``rows[i]``; a row may be kept several times, or dropped. Beam search calls this
        after each step with the hypotheses that survived it. The arrays keep their capacity;
        only the filled prefix is copied."""
        if self.keys is None:
            return
        xp = backend.get_array_module(self.keys)
        filled = slice(0, self.length)
        shape = (len(rows),) + self.keys.shape[1:]
        keys, values = xp.empty(shape, self.keys.dtype), xp.empty(shape, self.values.dtype)
        keys[:, :, filled] = self.keys[rows, :, filled]
        values[:, :, filled] = self.values[rows, :, filled]
        self.keys, self.values = keys, values

    def reset(self):
        """Forget everything cached; the next append starts a new sequence."""
        self.keys = self.values = None
        self.length = 0

    def __repr__(self):
        shape = None if self.keys is None else self.keys.shape
        return f"KVCache(length={self.length}, max_len={self.max_len}, arrays={shape})"


class DecoderKVCache:
    """The two caches of one decoder layer: ``self_attn`` grows by the new tokens every step,
    ``cross_attn`` holds the encoder memory's keys and values, computed at the first step."""

    def __init__(self, max_len):
        check_int("DecoderKVCache", "max_len", max_len, 1)
        self.self_attn = KVCache(max_len)
        self.cross_attn = KVCache()

    def reset(self):
        self.self_attn.reset()
        self.cross_attn.reset()

    def __repr__(self):
        return f"DecoderKVCache(self_attn={self.self_attn!r}, cross_attn={self.cross_attn!r})"
