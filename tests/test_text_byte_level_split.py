"""split_words, GPT-2's pre-tokenizer on the standard library's `re`, cuts any text exactly as
the `regex` package does with GPT-2's published ``\\p{L}``/``\\p{N}`` pattern.

Our classes follow Python's Unicode database (`unicodedata.unidata_version`); `regex` carries
its own, usually newer, one. Characters that `regex` already knows as letters, numbers or
whitespace but Python's database has not assigned yet (category Cn) are left out of the
comparison: on them the two databases, not the splitters, differ.
"""

import random
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.text import GPT2_SPLIT_PATTERN, split_words
from scratchlm.text.bpe_tokenizer import _split_on

regex = pytest.importorskip("regex")

REFERENCE = regex.compile(GPT2_SPLIT_PATTERN)

LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéèçñßøÆœĳǅ"
SCRIPTS = [
    LATIN,
    "学而时习之不亦说乎有朋自远方来𠀀𠀁𪜀",  # CJK, two from the supplementary plane
    "العربيةمرحبا\u064b\u0650",  # Arabic letters and harakat (combining marks)
    "हिन्दीदेवनागरी\u094d\u093c",  # Devanagari with virama and nukta
    "ひらがなカタカナー한국어텍스트ㄱㅏ",
    "αβγδΩЖжщЙ",
    "0123456789٠١٢٣٤٥٦٧٨٩۴०१२३๑๒๓",  # decimal digits of several scripts
    "²³¹¼½¾ⅫⅣↂ①⑩⓿㊿𝟘𝟙〇",  # other numbers (No, Nl) and a few Nd
    "\u0300\u0301\u0308\u0327\u20dd\ufe0f\u200d",  # combining marks, variation selector, ZWJ
    "😀👍🏽👨🇫🇷∑∫√©®™→←★♥",  # emoji and symbols
    ".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`\"«»„“”¿¡、。，？",
    "'",  # apostrophes, to form contractions
    " " * 8,  # plain spaces weigh most: they lead words
    "\t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000",
    "\x00\x01\x07\x1b\x1c\x1d\x1e\x1f\x7f\x80\u200b\u2060\ufeff",  # controls, format chars
    "\ue000\U000f0000\U0010fffd",  # private use
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "''s"]


def newer_in_regex() -> set[int]:
    """Code points `regex` classes as letter, number or whitespace that Python's database has
    not assigned (they came in a later Unicode version)."""
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    return {ord(c) for c in regex.findall(r"[\p{L}\p{N}\s]", every)
            if unicodedata.category(c) == "Cn"}


def random_text(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randrange(0, 40)):
        if rng.random() < 0.05:
            pieces.append(rng.choice(CONTRACTIONS))
        else:
            script = rng.choice(SCRIPTS)
            pieces.append("".join(rng.choices(script, k=rng.randrange(1, 5))))
    return "".join(pieces)


def test_every_character_is_classed_as_regex_does():
    # In "a{c}1{c}.{c}" a letter c joins the "a", a number the "1", a symbol the ".", and
    # whitespace stands alone: the pieces show the class of c. Every code point Python's
    # database assigns (and the private-use ones), plus every 97th unassigned one.
    newer = newer_in_regex()
    assert len(newer) < 40_000  # only Unicode versions newer than Python's differ
    code_points = [c for c in range(sys.maxunicode + 1) if c not in newer
                   and (unicodedata.category(chr(c)) not in ("Cn", "Co") or c % 97 == 0)]
    assert len(code_points) > 140_000
    text = "".join(f"a{chr(c)}1{chr(c)}.{chr(c)}" for c in code_points)
    assert split_words(text) == REFERENCE.findall(text)


def test_classes_on_known_characters():
    assert split_words("a١٢b ٣²Ⅻ x") == ["a", "١٢", "b", " ٣²Ⅻ", " x"]
    assert split_words("e\u0301t\u0308") == ["e", "\u0301", "t", "\u0308"]  # marks: symbols
    assert split_words("a\x1cb") == ["a", "\x1c", "b"]  # not whitespace for GPT-2 (nor `regex`)
    # Only a plain space leads a word; other whitespace stands alone.
    assert split_words("a\u3000\u3000b") == ["a", "\u3000", "\u3000", "b"]
    assert split_words("he's  done\n\n") == ["he", "'s", " ", " done", "\n\n"]


def test_random_text_from_many_scripts_splits_as_regex_does():
    rng = random.Random(1234)
    for _ in range(5000):
        text = random_text(rng)
        assert split_words(text) == REFERENCE.findall(text), ascii(text)
        assert "".join(split_words(text)) == text


def test_surrogates_split_as_regex_does():
    text = "a\ud800b \udfff\ud83d1 x\udc00"
    assert split_words(text) == REFERENCE.findall(text)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=("Cn",))))
def test_any_assigned_text_splits_as_regex_does(text):
    assert split_words(text) == REFERENCE.findall(text)


@pytest.mark.parametrize("special", [["<|endoftext|>"], ["<a>", "<a><b>"], ["[x]", "a.b", "$"]])
def test_special_token_split_as_regex_did(special):
    # _split_on now builds its pattern with `re`; compare with the `regex` one it replaced.
    ordered = sorted(special, key=len, reverse=True)
    reference = regex.compile("(" + "|".join(regex.escape(token) for token in ordered) + ")")
    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice([*special, "a", "b", ".", "<", ">", " ", "x]", "$$"])
                       for _ in range(rng.randrange(0, 12)))
        assert _split_on(text, special) == [piece for piece in reference.split(text) if piece]
