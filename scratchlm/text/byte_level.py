"""GPT-2's two building blocks for byte-level BPE: the pre-tokenizer and the byte↔unicode table.

Byte-level BPE never sees characters, only UTF-8 bytes, so every string can be encoded and
no token is ever "unknown". Two details come from GPT-2 unchanged:

* Text is first cut into words with a regular expression, and merges never cross a word
  boundary (so " dog." and " dog!" share the token " dog").
* To store byte tokens in a readable JSON file, each of the 256 bytes is shown as one
  printable unicode character: printable bytes stand for themselves, the others are moved
  to the characters from U+0100 up (a space becomes "Ġ", a newline "Ċ").
"""

import functools
import re
import sys
import unicodedata

from scratchlm.checks import check_text

#: GPT-2's pre-tokenization pattern, as published (tiktoken and the `regex` package read it):
#: English contractions, runs of letters, runs of digits, runs of other symbols (each
#: optionally led by one space), and whitespace. ``\p{L}`` is any letter (Unicode general
#: category L*), ``\p{N}`` any number (N*), ``\s`` any Unicode whitespace.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def split_words(text: str) -> list[str]:
    """Cut text into GPT-2's pre-tokenized words; joining them gives the text back."""
    check_text("split_words", "text", text)
    return _gpt2_splitter().findall(text)


@functools.cache
def _gpt2_splitter() -> re.Pattern:
    r"""`GPT2_SPLIT_PATTERN` for the standard library's `re`, which has no ``\p{...}`` classes.

    Each class is spelled out as ranges of code points, read from Python's own Unicode
    database (`unicodedata`), so the pieces are exactly those of the `regex` package for every
    character that database knows; it follows the Unicode version of the running Python
    (``unicodedata.unidata_version``: 14.0 on Python 3.11, 15.0 on 3.12), and a character
    assigned in a later Unicode version is a symbol here until Python's database has it.

    * ``\p{L}``: general categories Lu, Ll, Lt, Lm, Lo;  ``\p{N}``: Nd, Nl, No.
    * ``\s``: Unicode's White_Space property, which `regex` and tiktoken use: the separators
      (Zs, Zl, Zp) and the controls tab, line feed, vertical tab, form feed, carriage return
      and U+0085. (`re`'s own ``\s`` also matches U+001C..U+001F, so it is not used.)

    Built on the first call (reading the category of all 1,114,112 code points takes about
    0.2 s) and kept, so importing the library stays fast.
    """
    # The major class of every code point c at position c: "L" (letter), "N" (number), "Z"
    # (separator), ... the first letter of its two-letter general category ("Lu", "Nd", ...).
    majors = "".join(map(unicodedata.category, map(chr, range(sys.maxunicode + 1))))[::2]
    letter, number = _class_of(majors, "L"), _class_of(majors, "N")
    space = _class_of(majors, "Z") + r"\t\n\x0b\x0c\r\x85"
    return re.compile(
        rf"""'s|'t|'re|'ve|'m|'ll|'d| ?[{letter}]+| ?[{number}]+| ?[^{space}{letter}{number}]+"""
        rf"""|[{space}]+(?![^{space}])|[{space}]+"""
    )


def _class_of(majors: str, major: str) -> str:
    r"""The inside of a ``[...]`` class matching the code points c with ``majors[c] == major``,
    as ranges of consecutive code points: ``\U00000041-\U0000005a\U00000061-...`` for "L"."""
    ranges = []
    for run in re.finditer(f"{major}+", majors):
        first, last = run.start(), run.end() - 1
        ranges.append(f"\\U{first:08x}" if first == last else f"\\U{first:08x}-\\U{last:08x}")
    return "".join(ranges)


def _bytes_to_unicode() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    next_free = 256
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(next_free)
            next_free += 1
    return table


#: byte value -> the printable character that stands for it in GPT-2's files.
BYTE_TO_UNICODE: dict[int, str] = _bytes_to_unicode()
#: the inverse table: printable character -> byte value.
UNICODE_TO_BYTE: dict[str, int] = {char: byte for byte, char in BYTE_TO_UNICODE.items()}


def bytes_to_printable(token: bytes) -> str:
    """Show a byte token as GPT-2 writes it in encoder.json and vocab.bpe."""
    return "".join(BYTE_TO_UNICODE[byte] for byte in token)


def printable_to_bytes(token: str) -> bytes:
    """Inverse of `bytes_to_printable`; raises ValueError for a character outside the table."""
    try:
        return bytes(UNICODE_TO_BYTE[char] for char in token)
    except KeyError as error:
        raise ValueError(f"printable_to_bytes: {error.args[0]!r} in token {token!r} is not one "
                         "of GPT-2's 256 byte characters") from None
