"""The character vocabulary and padding that feed the sequence-to-sequence model."""

import numpy as np
import pytest

from scratchlm.text import CharVocabulary, pad_sequences
from scratchlm.text.char_vocabulary import BOS_ID, EOS_ID, NUM_SPECIAL_IDS, PAD_ID


def test_vocabulary_ids_follow_the_three_special_ids():
    vocab = CharVocabulary(["abba", "cab"])
    assert (PAD_ID, BOS_ID, EOS_ID, NUM_SPECIAL_IDS) == (0, 1, 2, 3)
    assert vocab.vocab_size == 3 + 3
    assert vocab.encode("abc") == [3, 4, 5]
    assert vocab.encode("a?c") == [3, 5]  # an unseen character is dropped
    assert vocab.decode([BOS_ID, 5, PAD_ID, 3, EOS_ID, 4]) == "ca"  # stops at [EOS]
    assert vocab.decode(np.array([4, 4])) == "bb"


def test_pad_sequences_pads_on_the_right():
    batch = pad_sequences([[5, 6, 7], [8], []])
    np.testing.assert_array_equal(batch, [[5, 6, 7], [8, 0, 0], [0, 0, 0]])
    assert batch.dtype == np.int64
    np.testing.assert_array_equal(pad_sequences([(1,), [2, 3]], pad_id=9), [[1, 9], [2, 3]])
    assert pad_sequences([[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="no sequences"):
        pad_sequences([])
