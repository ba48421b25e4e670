"""GPT-2's two building blocks for byte-level BPE: the pre-tokenizer and the byte↔unicode table.

Byte-level BPE never sees characters, only UTF-8 bytes, so every string can be encoded and
no token is ever "unknown". Two details come from GPT-2 unchanged:

* Text is first cut into words with a regular expression, and merges never cross a word
  boundary (so " dog." and " dog!" share the token " dog").
* To store byte tokens in a readable JSON file, each of the 256 bytes is shown as one
  printable unicode character: printable bytes stand for themselves, the others are moved
  to the characters from U+0100 up (a space becomes "Ġ", a newline "Ċ").
"""

import regex

#: GPT-2's pre-tokenization pattern: English contractions, runs of letters, runs of digits,
#: runs of other symbols (each optionally led by one space), and whitespace.
GPT2_SPLIT_PATTERN = (
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)

_GPT2_SPLITTER = regex.compile(GPT2_SPLIT_PATTERN)


def split_words(text: str) -> list[str]:
    """Cut text into GPT-2's pre-tokenized words; joining them gives the text back."""
    return _GPT2_SPLITTER.findall(text)


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
