"""Language-model batches: random contiguous blocks of a token stream, targets shifted by one."""

import numpy as np

from scratchlm.checks import check_int, check_real
from scratchlm.errors import ArgumentError, ArgumentTypeError


def train_val_split(ids, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Split a 1-D token stream into its first ``1 - val_fraction`` and its last ``val_fraction``.

    The split is contiguous (no shuffling), so no validation text leaks into training blocks.
    """
    ids = _token_stream(ids, "train_val_split")
    check_real("train_val_split", "val_fraction", val_fraction)
    if not 0.0 < val_fraction < 1.0:
        raise ArgumentError("train_val_split: val_fraction must be between 0 and 1, "
                            f"got {val_fraction}; expected 0 < val_fraction < 1",
                            where="train_val_split", name="val_fraction", value=val_fraction)
    boundary = int(round(len(ids) * (1.0 - val_fraction)))
    if boundary in (0, len(ids)):
        raise ValueError(f"train_val_split: {len(ids)} tokens are too few to split "
                         f"with val_fraction={val_fraction}")
    return ids[:boundary], ids[boundary:]


def get_batch(data, batch_size: int, block_size: int, rng: np.random.Generator | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """``batch_size`` random blocks of ``data``: inputs and targets, int64 arrays (B, T).

    Row ``b`` of the inputs is ``data[s : s + T]`` for a random start ``s``, and its targets are
    ``data[s + 1 : s + T + 1]``: at each position the model predicts the next token. All rows
    are gathered at once through an index matrix ``starts[:, None] + arange(T + 1)``.
    """
    data = _token_stream(data, "get_batch")
    _check_sizes(data, batch_size, block_size, "get_batch")
    rng = _generator(rng, "get_batch")
    starts = rng.integers(0, len(data) - block_size, size=batch_size)
    blocks = np.asarray(data[starts[:, None] + np.arange(block_size + 1)], dtype=np.int64)
    return blocks[:, :-1], blocks[:, 1:]


class LMBatcher:
    """Endless random language-model batches from one token stream.

    >>> batches = LMBatcher(np.arange(100), 4, 8, rng=np.random.default_rng(0))
    >>> inputs, targets = next(batches)  # two int64 arrays of shape (4, 8)
    """

    def __init__(self, data, batch_size: int, block_size: int,
                 rng: np.random.Generator | None = None):
        self.data = _token_stream(data, "LMBatcher")
        self.batch_size = batch_size
        self.block_size = block_size
        self.rng = _generator(rng, "LMBatcher")
        _check_sizes(self.data, batch_size, block_size, "LMBatcher")

    def __iter__(self) -> "LMBatcher":
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return get_batch(self.data, self.batch_size, self.block_size, self.rng)


def _token_stream(ids, caller: str) -> np.ndarray:
    if not isinstance(ids, np.ndarray):  # keep memory-mapped arrays as they are
        ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        error = ArgumentError if np.issubdtype(ids.dtype, np.integer) else ArgumentTypeError
        raise error(f"{caller}: expected a 1-D array of integer token ids, got "
                    f"shape {ids.shape} and dtype {ids.dtype}", where=caller, name="data",
                    value=ids)
    return ids


def _check_sizes(data: np.ndarray, batch_size: int, block_size: int, caller: str) -> None:
    check_int(caller, "batch_size", batch_size)
    check_int(caller, "block_size", block_size)
    if batch_size < 1 or block_size < 1:
        raise ArgumentError(f"{caller}: batch_size and block_size must be positive, got "
                            f"batch_size={batch_size} and block_size={block_size}; expected "
                            "integers ≥ 1", where=caller,
                            name="batch_size" if batch_size < 1 else "block_size",
                            value=batch_size if batch_size < 1 else block_size)
    if len(data) <= block_size:
        raise ArgumentError(f"{caller}: block_size={block_size} needs more than {block_size} "
                            f"tokens, the data has {len(data)}; expected block_size < "
                            f"{len(data)}", where=caller, name="block_size", value=block_size)


def _generator(rng, caller: str) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(f"{caller}: rng must be a numpy.random.Generator "
                                f"(np.random.default_rng(seed)), got {type(rng).__name__}",
                                where=caller, name="rng", value=rng)
    return rng
