"""CharTokenizer: ids are ranks among the sorted characters; round trips; JSON files; errors."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchlm.text import CharTokenizer

VARIED_TEXT = "To be, or not to be?\n学而时习之，不亦说乎。😀 e\u0301 \t\x00\x7f ﬁ Ω≈ç√"


def test_vocabulary_is_the_sorted_distinct_characters():
    tokenizer = CharTokenizer().train("hello world")
    assert tokenizer.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tokenizer.vocab_size == 8
    assert tokenizer.encode("hello") == [3, 2, 4, 4, 5]
    assert tokenizer.decode([7, 5, 6, 4, 1]) == "world"


def test_round_trip_on_varied_unicode():
    tokenizer = CharTokenizer().train(VARIED_TEXT)
    ids = tokenizer.encode(VARIED_TEXT)
    assert len(ids) == len(VARIED_TEXT)
    assert tokenizer.decode(ids) == VARIED_TEXT
    assert ids == [sorted(set(VARIED_TEXT)).index(char) for char in VARIED_TEXT]


@given(st.text(min_size=1))
def test_round_trip_on_any_text(text):
    tokenizer = CharTokenizer().train(text)
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.vocab_size == len(set(text))


@pytest.mark.parametrize("load_on", ["class", "instance"])
def test_save_and_load_give_the_same_ids(tmp_path, load_on):
    tokenizer = CharTokenizer().train(VARIED_TEXT)
    path = tmp_path / "chars.json"
    tokenizer.save(path)
    loaded = CharTokenizer.load(path) if load_on == "class" else CharTokenizer().load(path)
    assert loaded.chars == sorted(set(VARIED_TEXT))
    assert loaded.encode(VARIED_TEXT) == tokenizer.encode(VARIED_TEXT)


def test_unknown_character_error_names_it():
    tokenizer = CharTokenizer().train("abc")
    with pytest.raises(ValueError, match=r"CharTokenizer.encode: character 'z' \(U\+007A\)"):
        tokenizer.encode("abz")


def test_bad_input_errors():
    tokenizer = CharTokenizer().train("abc")
    with pytest.raises(ValueError, match="CharTokenizer.decode: id 3 is outside"):
        tokenizer.decode([0, 3])
    with pytest.raises(ValueError, match="3 distinct characters, more than vocab_size=2"):
        CharTokenizer().train("abc", vocab_size=2)
    with pytest.raises(TypeError, match="CharTokenizer.train: expected text as str"):
        CharTokenizer().train(b"abc")


def test_loading_a_bpe_file_is_refused(tmp_path):
    from scratchlm.text import BPETokenizer

    BPETokenizer().save(tmp_path / "bpe.json")
    with pytest.raises(ValueError, match="holds a 'BPETokenizer' tokenizer, expected 'CharTok"):
        CharTokenizer.load(tmp_path / "bpe.json")
