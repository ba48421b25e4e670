"""BERT's masked-language-model corruption: choose 15% of the tokens, then 80/10/10."""

from collections.abc import Iterable

import numpy as np

#: Label of a position the MLM loss ignores (cross_entropy's default ignore_index).
IGNORE_INDEX = -100


def mask_tokens(ids, mask_token_id: int, vocab_size: int, special_ids: Iterable[int] = (),
                mask_prob: float = 0.15, rng: np.random.Generator | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt ``ids`` (any shape) for masked-language-model training, as BERT does.

    Each token not in ``special_ids`` is chosen with probability ``mask_prob``. A chosen token
    becomes ``mask_token_id`` with probability 0.8, a uniformly random id in
    ``[0, vocab_size)`` with probability 0.1, and stays itself with probability 0.1. The model
    must predict the original token at every chosen position, whatever it now shows.

    Returns ``(inputs, labels)``, int64 arrays shaped like ``ids``: ``labels`` holds the
    original id where a token was chosen and -100 (ignored by the loss) everywhere else.
    """
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"mask_tokens: expected integer token ids, got dtype {ids.dtype}")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_tokens: mask_token_id={mask_token_id} is outside the "
                         f"vocabulary [0, {vocab_size})")
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_tokens: mask_prob must be in [0, 1], got {mask_prob}")
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"mask_tokens: rng must be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")

    ids = ids.astype(np.int64)
    special = np.isin(ids, np.fromiter(special_ids, dtype=np.int64))
    chosen = (rng.random(ids.shape) < mask_prob) & ~special
    action = rng.random(ids.shape)  # < 0.8: mask, 0.8-0.9: random token, >= 0.9: unchanged
    random_ids = rng.integers(0, vocab_size, size=ids.shape)

    inputs = np.where(chosen & (action < 0.8), mask_token_id, ids)
    inputs = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    labels = np.where(chosen, ids, IGNORE_INDEX)
    return inputs.astype(np.int64), labels.astype(np.int64)
