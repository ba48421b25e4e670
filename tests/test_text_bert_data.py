"""BERT's data: MLM masking statistics (15%, then 80/10/10), NSP pairs (50/50), packing."""

import numpy as np
import pytest

from scratchlm.text import make_nsp_pairs, mask_tokens, pack_bert_pair, pack_bert_pairs

VOCAB_SIZE = 1000
MASK_ID, CLS_ID, SEP_ID, PAD_ID = 3, 1, 2, 0
SPECIAL_IDS = (PAD_ID, CLS_ID, SEP_ID, MASK_ID)


@pytest.fixture(scope="module")
def masked():
    """400,000 ids, about 10% of them special, corrupted with a fixed seed."""
    rng = np.random.default_rng(0)
    ids = rng.integers(4, VOCAB_SIZE, size=(400, 1000))
    ids[rng.random(ids.shape) < 0.1] = rng.choice(SPECIAL_IDS)
    inputs, labels = mask_tokens(ids, MASK_ID, VOCAB_SIZE, special_ids=SPECIAL_IDS,
                                 rng=np.random.default_rng(1))
    return ids, inputs, labels


def test_shapes_dtypes_and_labels(masked):
    ids, inputs, labels = masked
    assert inputs.shape == labels.shape == ids.shape
    assert inputs.dtype == labels.dtype == np.int64
    chosen = labels != -100
    np.testing.assert_array_equal(labels[chosen], ids[chosen])  # the original ids
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # the rest untouched


def test_fifteen_percent_of_ordinary_tokens_are_chosen_and_no_special_one(masked):
    ids, _, labels = masked
    special = np.isin(ids, SPECIAL_IDS)
    chosen = labels != -100
    assert not chosen[special].any()
    # Binomial standard error here is about 0.0006; allow 5 of them.
    assert abs(chosen[~special].mean() - 0.15) < 0.003


def test_chosen_tokens_split_80_10_10(masked):
    ids, inputs, labels = masked
    chosen = labels != -100
    shown, original = inputs[chosen], ids[chosen]
    # A random replacement equals the mask id or the original id with probability 1/1000 each.
    expected = {"mask": 0.8 + 0.1 / VOCAB_SIZE, "random": 0.1 * (1 - 2 / VOCAB_SIZE),
                "unchanged": 0.1 + 0.1 / VOCAB_SIZE}
    observed = {"mask": np.mean(shown == MASK_ID),
                "random": np.mean((shown != MASK_ID) & (shown != original)),
                "unchanged": np.mean(shown == original)}
    for outcome in expected:  # about 54,000 chosen tokens: standard errors below 0.002
        assert abs(observed[outcome] - expected[outcome]) < 0.01, outcome
    replaced = shown[(shown != MASK_ID) & (shown != original)]
    assert replaced.min() >= 0 and replaced.max() < VOCAB_SIZE
    assert abs(replaced.mean() - (VOCAB_SIZE - 1) / 2) < 10  # uniform over the vocabulary


def test_same_seed_same_masking_and_any_shape():
    ids = np.arange(4, 64).reshape(3, 4, 5)
    first = mask_tokens(ids, MASK_ID, VOCAB_SIZE, rng=np.random.default_rng(5), mask_prob=0.5)
    second = mask_tokens(ids.tolist(), MASK_ID, VOCAB_SIZE, rng=np.random.default_rng(5),
                         mask_prob=0.5)
    for a, b in zip(first, second):
        assert a.shape == (3, 4, 5)
        np.testing.assert_array_equal(a, b)


def test_mask_tokens_errors():
    with pytest.raises(ValueError, match="mask_tokens: expected integer token ids"):
        mask_tokens(np.ones(3), MASK_ID, VOCAB_SIZE)
    with pytest.raises(ValueError, match=r"mask_token_id=1000 is outside the vocabulary"):
        mask_tokens(np.ones(3, dtype=int), 1000, VOCAB_SIZE)
    with pytest.raises(TypeError, match="mask_tokens: rng must be a numpy.random.Generator"):
        mask_tokens(np.ones(3, dtype=int), MASK_ID, VOCAB_SIZE, rng=42)


# ---------------------------------------------------------------------------- NSP
def test_nsp_pairs_are_half_real_next_sentences_half_random():
    documents = [[f"d{d}s{s}" for s in range(d % 7 + 1)] for d in range(300)]
    pairs = make_nsp_pairs(documents, np.random.default_rng(0))
    consecutive = sum(len(document) - 1 for document in documents)
    assert len(pairs) == consecutive
    labels = [is_next for _, _, is_next in pairs]
    assert sum(labels) == (consecutive + 1) // 2
    for sentence_a, sentence_b, is_next in pairs:
        doc_a, index_a = map(int, sentence_a[1:].split("s"))
        doc_b, index_b = map(int, sentence_b[1:].split("s"))
        if is_next:
            assert (doc_b, index_b) == (doc_a, index_a + 1)
        else:
            assert doc_b != doc_a
    first_half = labels[: len(labels) // 2]
    assert 0.4 < np.mean(first_half) < 0.6  # shuffled, not all real pairs first


def test_nsp_errors():
    with pytest.raises(ValueError, match="make_nsp_pairs: no document has two sentences"):
        make_nsp_pairs([["a"], ["b"]], np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least two non-empty documents"):
        make_nsp_pairs([["a", "b"], []], np.random.default_rng(0))


def test_pack_bert_pair_layout():
    packed = pack_bert_pair([10, 11, 12], [20, 21], CLS_ID, SEP_ID, PAD_ID, max_length=10)
    np.testing.assert_array_equal(packed.input_ids, [1, 10, 11, 12, 2, 20, 21, 2, 0, 0])
    np.testing.assert_array_equal(packed.token_type_ids, [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(packed.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])


def test_pack_bert_pair_truncates_the_longer_sentence_first():
    packed = pack_bert_pair(list(range(10, 20)), [30, 31, 32], CLS_ID, SEP_ID, PAD_ID, 9)
    np.testing.assert_array_equal(packed.input_ids, [1, 10, 11, 12, 2, 30, 31, 32, 2])
    packed = pack_bert_pair(list(range(10, 20)), list(range(30, 40)), CLS_ID, SEP_ID, PAD_ID, 9)
    np.testing.assert_array_equal(packed.input_ids, [1, 10, 11, 12, 2, 30, 31, 32, 2])


def test_pack_bert_pairs_batches():
    batch, is_next = pack_bert_pairs([([10], [20, 21], 1), ([11, 12], [22], 0)],
                                     CLS_ID, SEP_ID, PAD_ID, max_length=6)
    np.testing.assert_array_equal(batch.input_ids, [[1, 10, 2, 20, 21, 2], [1, 11, 12, 2, 22, 2]])
    np.testing.assert_array_equal(batch.token_type_ids, [[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(is_next, [1, 0])
