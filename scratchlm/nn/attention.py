"""``MultiHeadAttention``: H scaled dot-product attentions over learned projections.

    MultiHead(x) = Concat(head₁, …, head_H) W_Oᵀ,
    headₕ = softmax(Qₕ Kₕᵀ / √hd + mask) Vₕ,   Q = x W_Qᵀ,  K = m W_Kᵀ,  V = m W_Vᵀ,

with m = x (self-attention) or the encoder's memory (cross-attention), and hd = d / H.

Self-attention computes Q, K and V with ONE fused projection ``c_attn`` (d → 3d, one GEMM
instead of three) and splits its output into heads as strided views (:mod:`.heads`);
cross-attention projects the queries with ``q_proj`` (d → d) and the memory with a fused
``kv_proj`` (d → 2d). ``c_proj`` is W_O. Names and layout follow nanoGPT; ``c_attn.weight``
is ``torch.nn.MultiheadAttention``'s ``in_proj_weight`` (rows: q, k, v).

Masks. Inside scratchlm a boolean mask is True where a query may attend (as
:func:`scratchlm.functional.scaled_dot_product_attention` and PyTorch's op take it). This
layer's arguments keep ``torch.nn.MultiheadAttention``'s meaning, so models port unchanged:
a boolean ``attn_mask`` True where a query may not attend (a float mask is added to the
scores, −inf blocks), ``key_padding_mask`` (B, Tk) True at padding keys. They are turned
into "may attend" once, where they come in (:meth:`MultiHeadAttention._may_attend`), and
combined with ``is_causal`` into the one mask the op receives.
"""

from scratchlm import backend
from scratchlm import functional as F
from scratchlm.autograd.grad_mode import is_grad_enabled
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import check_attention_sizes, check_bool, check_probability
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.nn.heads import merge_heads, split_heads
from scratchlm.nn.linear import Linear
from scratchlm.nn.module import Module


def _array(value):
    return value.data if isinstance(value, Tensor) else value


class MultiHeadAttention(Module):
    """Multi-head attention over inputs (B, T, embed_dim); returns (B, T, embed_dim).

    ``forward(x, memory=None, attn_mask=None, key_padding_mask=None, is_causal=False,
    kv_cache=None)``: ``memory`` (B, S, embed_dim) is required for cross-attention (unless
    its keys and values are already in ``kv_cache``) and refused for self-attention.
    ``attn_mask`` is (Tq, Tk), (B·H, Tq, Tk) as in PyTorch, or broadcastable to
    (B, H, Tq, Tk). ``is_causal=True`` lets query i attend only keys j ≤ i, combined with
    any mask (PyTorch treats it as a hint that needs the mask too).

    ``kv_cache`` (an :class:`~scratchlm.nn.KVCache`, under ``sl.no_grad()``) makes decoding
    incremental: self-attention appends the new keys and values and attends over all cached
    ones (causal masking is offset by the cached length, and a ``key_padding_mask`` covers
    every cached key); cross-attention projects the memory at the first call and reuses its
    keys and values after.

    Init: each projection is a ``Linear`` with its default U(±1/√d) weight and bias
    (PyTorch's ``MultiheadAttention`` instead uses Xavier-uniform and zero biases).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, cross_attention=False):
        super().__init__()
        embed_dim, num_heads = check_attention_sizes("MultiHeadAttention", "embed_dim",
                                                     embed_dim, "num_heads", num_heads)
        check_probability("MultiHeadAttention", "dropout", dropout)
        bias = check_bool("MultiHeadAttention", "bias", bias)
        cross_attention = check_bool("MultiHeadAttention", "cross_attention", cross_attention)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout, self.cross_attention = dropout, cross_attention
        if cross_attention:
            self.q_proj = Linear(embed_dim, embed_dim, bias)
            self.kv_proj = Linear(embed_dim, 2 * embed_dim, bias)
        else:
            self.c_attn = Linear(embed_dim, 3 * embed_dim, bias)
        self.c_proj = Linear(embed_dim, embed_dim, bias)

    def forward(self, x, memory=None, attn_mask=None, key_padding_mask=None, is_causal=False,
                kv_cache=None):
        self._check_sequence("x", x)
        if kv_cache is not None and is_grad_enabled():
            raise RuntimeError("MultiHeadAttention: a kv_cache is for inference and cuts the "
                               "graph; call the model under sl.no_grad()")
        if self.cross_attention:
            q = split_heads(self.q_proj(x), 1, self.num_heads)
            k, v = self._memory_keys_values(x, memory, kv_cache)
            cached_length = 0  # the keys are the memory's positions, not earlier steps
        else:
            if memory is not None:
                raise ArgumentError("MultiHeadAttention: memory was given to a self-attention "
                                    "layer; build it with cross_attention=True")
            q, k, v = split_heads(self.c_attn(x), 3, self.num_heads)
            cached_length = 0 if kv_cache is None else kv_cache.length
            if kv_cache is not None:  # attend over every cached step and the new ones
                k, v = (Tensor._wrap(a) for a in kv_cache.append(k.data, v.data))
        mask, causal_only = self._may_attend(x, q.shape[2], k.shape[2], attn_mask,
                                             key_padding_mask, is_causal, cached_length)
        heads = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal_only,
            dropout_p=self.dropout if self.training else 0.0)
        return self.c_proj(merge_heads(heads))

    def _memory_keys_values(self, x, memory, kv_cache):
        """The memory's keys and values: from the cache when it holds them, else projected."""
        if kv_cache is not None and kv_cache.length:
            return tuple(Tensor._wrap(a) for a in kv_cache.cached())
        if memory is None:
            raise ArgumentError("MultiHeadAttention: cross-attention needs memory (B, S, "
                                f"{self.embed_dim})")
        self._check_sequence("memory", memory)
        if memory.shape[0] != x.shape[0]:
            raise ArgumentError(f"MultiHeadAttention: memory of shape {memory.shape} and x of "
                                f"shape {x.shape} have different batch sizes")
        k, v = split_heads(self.kv_proj(memory), 2, self.num_heads)
        if kv_cache is not None:
            kv_cache.append(k.data, v.data)
        return k, v

    def _check_sequence(self, name, x):
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ArgumentError(f"MultiHeadAttention: {name} of shape {x.shape} should be "
                                f"(batch, time, embed_dim={self.embed_dim})")

    def _may_attend(self, x, Tq, Tk, attn_mask, key_padding_mask, is_causal, cached_length):
        """The mask for the attention op, broadcastable to (B, H, Tq, Tk) — boolean (True =
        may attend) or additive float — or None; and whether plain causal masking can be
        left to the op itself."""
        B = x.shape[0]
        if attn_mask is None and key_padding_mask is None:
            if not is_causal or Tq == 1:  # one new query may see every cached key
                return None, False
            if cached_length == 0 and Tq == Tk:
                return None, True
        xp = backend.get_array_module(x.data)
        allowed = additive = None  # True where a query may attend / a float to add
        if attn_mask is not None:
            mask = self._attn_mask_layout(xp.asarray(_array(attn_mask)), B, Tq, Tk)
            if mask.dtype == bool:
                allowed = ~mask  # the argument's True: may not attend
            else:
                additive = mask
        if key_padding_mask is not None:
            padding = xp.asarray(_array(key_padding_mask))
            if padding.shape != (B, Tk) or padding.dtype != bool:
                raise ArgumentError(f"MultiHeadAttention: key_padding_mask of shape "
                                    f"{padding.shape} and dtype {padding.dtype} should be boolean "
                                    f"(batch, keys) = {(B, Tk)}, True at padding")
            real_keys = ~padding[:, None, None, :]
            allowed = real_keys if allowed is None else allowed & real_keys
        if is_causal:  # query i sits at position cached_length + i; it sees keys j ≤ that
            seen = xp.arange(Tk) <= xp.arange(cached_length, cached_length + Tq)[:, None]
            allowed = seen if allowed is None else allowed & seen
        if additive is None:
            return allowed, False
        if allowed is None:
            return additive, False
        return xp.where(allowed, additive, -xp.inf), False

    def _attn_mask_layout(self, mask, B, Tq, Tk):
        """``attn_mask`` checked and laid out to broadcast to (B, H, Tq, Tk)."""
        H = self.num_heads
        if mask.dtype != bool and mask.dtype.kind != "f":
            raise ArgumentTypeError(f"MultiHeadAttention: attn_mask has dtype {mask.dtype}; "
                                    "expected bool (True = may not attend) or float (added to "
                                    "the scores)")
        if mask.shape == (Tq, Tk):
            return mask
        if mask.shape == (B * H, Tq, Tk):  # PyTorch's per-(batch, head) layout
            return mask.reshape(B, H, Tq, Tk)
        if mask.ndim == 4 and mask.shape[0] in (1, B) and mask.shape[1] in (1, H) \
                and mask.shape[2:] == (Tq, Tk):
            return mask
        raise ArgumentError(f"MultiHeadAttention: attn_mask of shape {mask.shape} does not fit "
                            f"{Tq} queries and {Tk} keys; expected {(Tq, Tk)}, "
                            f"{(B * H, Tq, Tk)} or broadcastable to {(B, H, Tq, Tk)}")

    def extra_repr(self):
        kind = ", cross_attention=True" if self.cross_attention else ""
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"dropout={self.dropout}{kind}")
