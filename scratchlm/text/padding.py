"""Padding: sequences of different lengths as one rectangular batch of ids."""

from itertools import chain

import numpy as np

from scratchlm.checks import bad_argument, check_id_sequence, check_int
from scratchlm.errors import ArgumentError, ArgumentTypeError


def pad_sequences(sequences, pad_id=0):
    """Lists of ids as one (N, longest) int64 array, padded on the right with ``pad_id``.

    Right padding keeps every real token at its own position; a model masks the padding out
    of attention and the loss (for a decoder, causal attention already keeps it away from
    every real position). All rows are written at once: a boolean mask of the filled cells,
    ``column < length of its row``, receives the concatenated sequences in row order.

    >>> pad_sequences([[5, 6, 7], [8]])
    array([[5, 6, 7],
           [8, 0, 0]])
    """
    if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__iter__"):
        raise bad_argument("pad_sequences", "sequences", sequences,
                           "a list of token id lists", error=ArgumentTypeError)
    pad_id = check_int("pad_sequences", "pad_id", pad_id)
    sequences = [check_id_sequence("pad_sequences", f"sequences[{i}]", sequence)
                 for i, sequence in enumerate(sequences)]
    if not sequences:
        raise ArgumentError("pad_sequences: no sequences to pad; expected at least one "
                            "sequence", where="pad_sequences", name="sequences",
                            value=sequences)
    lengths = np.array([len(sequence) for sequence in sequences])
    batch = np.full((len(sequences), lengths.max()), pad_id, dtype=np.int64)
    batch[np.arange(lengths.max()) < lengths[:, None]] = list(chain.from_iterable(sequences))
    return batch
