"""Position information added to token vectors: fixed sinusoids or learned vectors.

Both take x of shape (B, T, d) and return x + P[offset : offset + T], where ``offset`` is
the position of x's first step (non-zero when decoding one token at a time with a cache).
"""

import numpy as np

from scratchlm.checks import check_int
from scratchlm.errors import ArgumentError
from scratchlm.nn import init
from scratchlm.nn.module import Module, Parameter


def _check_positions(layer, x, offset, d_model, max_len):
    check_int(layer, "offset", offset, 0, hint="(the position of x's first step)")
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{layer}: input of shape {x.shape} should be (batch, time, "
                         f"{d_model})")
    if offset + x.shape[1] > max_len:
        raise ArgumentError(f"{layer}: positions {offset}..{offset + x.shape[1] - 1} are beyond "
                            f"max_len={max_len}", where=layer, name="offset", value=offset)


def sinusoidal_table(max_len, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).

    Each pair of features is a sine and cosine of one frequency; the frequencies fall
    geometrically from 1 to 1/10000, so PE(pos + k) is a fixed rotation of PE(pos).
    Computed in float64, returned as float32 of shape (max_len, d_model).
    """
    positions = np.arange(max_len, dtype=np.float64)[:, None]
    even_features = np.arange(0, d_model, 2, dtype=np.float64)  # the 2i
    angles = positions / 10000.0 ** (even_features / d_model)  # (max_len, ⌈d/2⌉)
    table = np.empty((max_len, d_model))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : d_model // 2])
    return table.astype(np.float32)


class SinusoidalPositionalEncoding(Module):
    """x + PE[offset : offset + T] with the fixed sinusoidal table of "Attention Is All You
    Need" (see :func:`sinusoidal_table`); nothing is learned. The table is a buffer: it moves
    with ``to(device)`` and is not saved in ``state_dict``."""

    def __init__(self, d_model, max_len=5000):
        super().__init__()
        d_model = check_int("SinusoidalPositionalEncoding", "d_model", d_model, 1)
        max_len = check_int("SinusoidalPositionalEncoding", "max_len", max_len, 1)
        self.d_model, self.max_len = d_model, max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x, offset=0):
        _check_positions("SinusoidalPositionalEncoding", x, offset, self.d_model, self.max_len)
        return x + self.pe[offset:offset + x.shape[1]]

    def extra_repr(self):
        return f"d_model={self.d_model}, max_len={self.max_len}"


class LearnedPositionalEmbedding(Module):
    """x + W[offset : offset + T] with ``weight`` W of shape (max_len, d_model) learned, as
    in GPT and BERT. Init: N(0, 1), as ``Embedding``.

    The slice's gradient is the sum of ∂L/∂y over the batch, written into rows
    offset … offset + T − 1 of ∂L/∂W (a slice, not a scatter-add: positions never repeat).
    """

    def __init__(self, max_len, d_model):
        super().__init__()
        max_len = check_int("LearnedPositionalEmbedding", "max_len", max_len, 1)
        d_model = check_int("LearnedPositionalEmbedding", "d_model", d_model, 1)
        self.max_len, self.d_model = max_len, d_model
        self.weight = Parameter(init.normal((max_len, d_model)))

    def forward(self, x, offset=0):
        _check_positions("LearnedPositionalEmbedding", x, offset, self.d_model, self.max_len)
        return x + self.weight[offset:offset + x.shape[1]]

    def extra_repr(self):
        return f"{self.max_len}, {self.d_model}"
