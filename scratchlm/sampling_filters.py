"""Top-k and top-p (nucleus) filtering of next-token logits, as Hugging Face's
``TopKLogitsWarper`` and ``TopPLogitsWarper`` do.

Both work over the last axis of an array of any leading shape (``(V,)``, ``(B, V)``,
``(B, T, V)``), on NumPy or CuPy, and return a new array in which every removed entry is
``-inf`` — so a softmax afterwards gives the removed tokens probability 0.
"""

import numbers
import operator

from scratchlm.backend import get_array_module
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.functional.softmax import softmax_array


def _check_logits(name, logits):
    if not hasattr(logits, "dtype") or not hasattr(logits, "shape"):
        raise ArgumentTypeError(f"{name}: logits must be a NumPy or CuPy array, "
                                f"got {type(logits).__name__}", where=name, name="logits",
                                value=logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ArgumentError(f"{name}: logits must have a non-empty last (vocabulary) axis, "
                            f"got shape {tuple(logits.shape)}", where=name, name="logits",
                            value=logits)
    if logits.dtype.kind != "f":
        raise ArgumentTypeError(f"{name}: logits must be a floating-point array, got dtype "
                                f"{logits.dtype}", where=name, name="logits", value=logits)
    if bool(get_array_module(logits).isnan(logits).any()):
        raise ArgumentError(f"{name}: logits hold NaN (a diverged model or damaged weights); "
                            "expected finite logits or -inf", where=name, name="logits",
                            value=logits)


def _fill_removed(logits, remove):
    filtered = logits.copy()
    filtered[remove] = -float("inf")
    return filtered


def top_k_filter(logits, k):
    """Keep the ``k`` largest logits of each row and every logit tied with the k-th largest:

        keep_i  ⇔  logits_i ≥ (k-th largest logit of the row)

    ``k`` ≥ 1; ``k`` at least the vocabulary size keeps everything.
    """
    _check_logits("top_k_filter", logits)
    if isinstance(k, bool):
        raise ArgumentTypeError("top_k_filter: k must be an integer ≥ 1, got a bool",
                                where="top_k_filter", name="k", value=k)
    try:
        k = operator.index(k)
    except TypeError:
        raise ArgumentTypeError(f"top_k_filter: k must be an integer ≥ 1, got "
                                f"{type(k).__name__} {k!r}", where="top_k_filter", name="k",
                                value=k) from None
    if k < 1:
        raise ArgumentError(f"top_k_filter: k must be an integer ≥ 1, got {k}",
                            where="top_k_filter", name="k", value=k)
    xp = get_array_module(logits)
    vocab = logits.shape[-1]
    k = min(k, vocab)
    kth_largest = xp.partition(logits, vocab - k, axis=-1)[..., vocab - k:vocab - k + 1]
    return _fill_removed(logits, logits < kth_largest)


def top_p_filter(logits, p):
    """Keep the smallest set of most probable tokens whose probabilities sum to at least ``p``
    (the token that crosses ``p`` is kept, and always at least one token).

    As Hugging Face computes it: sort each row ascending (stable), take the cumulative softmax
    ``c_j = Σ_{i ≤ j} softmax(sorted)_i`` and remove the sorted tokens with ``c_j ≤ 1 − p`` —
    that is, a token is kept when the tokens ranked above it hold less than ``p``. The largest
    logit is never removed. Among equal logits on the boundary the later index ranks higher.
    ``0 < p ≤ 1``.
    """
    _check_logits("top_p_filter", logits)
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise ArgumentTypeError(f"top_p_filter: p must be a number in (0, 1], got "
                                f"{type(p).__name__} {p!r}", where="top_p_filter", name="p",
                                value=p)
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ArgumentError(f"top_p_filter: p must be in (0, 1], got {p}", where="top_p_filter",
                            name="p", value=p)
    xp = get_array_module(logits)
    vocab = logits.shape[-1]
    rows = logits.reshape(-1, vocab)

    order = xp.argsort(rows, axis=-1, kind="stable")
    ascending = xp.take_along_axis(rows, order, axis=-1)
    probs = softmax_array(ascending)
    remove_sorted = xp.cumsum(probs, axis=-1) <= 1.0 - p
    remove_sorted[:, -1] = False

    remove = xp.empty_like(remove_sorted)
    remove[xp.arange(rows.shape[0])[:, None], order] = remove_sorted
    return _fill_removed(logits, remove.reshape(logits.shape))
