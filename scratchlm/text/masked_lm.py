"""BERT's masked-language-model corruption: choose 15% of the tokens, then 80/10/10."""

from collections.abc import Iterable

import numpy as np

from scratchlm.checks import check_id_sequence, check_int, check_probability
from scratchlm.errors import ArgumentError, ArgumentTypeError

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
    where = "mask_tokens"
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ArgumentTypeError(f"mask_tokens: expected integer token ids, got dtype "
                                f"{ids.dtype} (the argument ids)", where=where, name="ids",
                                value=ids)
    vocab_size = check_int(where, "vocab_size", vocab_size, 1)
    check_int(where, "mask_token_id", mask_token_id)
    if not 0 <= mask_token_id < vocab_size:
        raise ArgumentError(f"mask_tokens: mask_token_id={mask_token_id} is outside the "
                            f"vocabulary [0, {vocab_size}); expected 0 ≤ mask_token_id < "
                            f"vocab_size", where=where, name="mask_token_id",
                            value=mask_token_id)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
        raise ArgumentError(f"mask_tokens: ids hold {bad}, outside the vocabulary [0, "
                            f"{vocab_size}); expected 0 ≤ id < vocab_size={vocab_size}",
                            where=where, name="ids", value=ids)
    special_ids = check_id_sequence(where, "special_ids", special_ids)
    check_probability(where, "mask_prob", mask_prob)
    if rng is None:
        rng = np.random.default_rng()
    elif not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(f"mask_tokens: rng must be a numpy.random.Generator, "
                                f"got {type(rng).__name__}", where=where, name="rng", value=rng)

    ids = ids.astype(np.int64)
    special = np.isin(ids, np.fromiter(special_ids, dtype=np.int64))
    chosen = (rng.random(ids.shape) < mask_prob) & ~special
    action = rng.random(ids.shape)  # < 0.8: mask, 0.8-0.9: random token, >= 0.9: unchanged
    random_ids = rng.integers(0, vocab_size, size=ids.shape)

    inputs = np.where(chosen & (action < 0.8), mask_token_id, ids)
    inputs = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, inputs)
    labels = np.where(chosen, ids, IGNORE_INDEX)
    return inputs.astype(np.int64), labels.astype(np.int64)
