"""Character-level tokenizer: one token per distinct character, ids in sorted character order."""

import os
from collections.abc import Iterable

from scratchlm.checks import check_id_sequence, check_int, check_text
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.text.tokenizer_files import (
    distinct_characters,
    loader,
    read_tokenizer_json,
    write_tokenizer_json,
)


class CharTokenizer:
    """Maps each character of a training text to an id (its rank among the sorted characters).

    >>> tokenizer = CharTokenizer().train("hello")
    >>> tokenizer.encode("hell"), tokenizer.decode([3, 1])
    ([1, 0, 2, 2], 'oh')
    """

    def __init__(self, chars: Iterable[str] = ()):
        self._set_chars(chars)

    def _set_chars(self, chars: Iterable[str]) -> None:
        chars = list(chars)
        if any(not isinstance(char, str) or len(char) != 1 for char in chars):
            wrong = [c for c in chars if not isinstance(c, str) or len(c) != 1]
            raise ArgumentError(f"CharTokenizer: expected single characters, got {wrong[:5]}")
        if len(set(chars)) != len(chars):
            raise ArgumentError("CharTokenizer: the characters must be distinct")
        self._chars = chars
        self._ids = {char: index for index, char in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        return len(self._chars)

    @property
    def chars(self) -> list[str]:
        """The vocabulary: ``chars[i]`` is the character with id ``i``."""
        return list(self._chars)

    def train(self, text: str, vocab_size: int | None = None) -> "CharTokenizer":
        """Take the vocabulary from ``text``: its distinct characters, sorted.

        ``vocab_size``, if given, is an upper bound: a text with more distinct characters raises.
        Returns the tokenizer itself.
        """
        if not isinstance(text, str):
            raise ArgumentTypeError(f"CharTokenizer.train: expected text as str, got "
                                    f"{type(text).__name__}")
        vocab_size = check_int("CharTokenizer.train", "vocab_size", vocab_size, 1, optional=True,
                               hint="(an upper bound on the distinct characters)")
        if not text:
            raise ArgumentError("CharTokenizer.train: text='' holds no characters; expected "
                                "a text with at least one character (the vocabulary is its "
                                "distinct characters)", where="CharTokenizer.train",
                                name="text", value=text)
        chars = sorted(set(text))
        if vocab_size is not None and len(chars) > vocab_size:
            raise ArgumentError(f"CharTokenizer.train: the text has {len(chars)} distinct "
                                f"characters, more than vocab_size={vocab_size}")
        self._set_chars(chars)
        return self

    def encode(self, text: str) -> list[int]:
        check_text("CharTokenizer.encode", "text", text)
        try:
            return [self._ids[char] for char in text]
        except KeyError as error:
            char = error.args[0]
            raise ArgumentError(f"CharTokenizer.encode: character {char!r} (U+{ord(char):04X}) is "
                                "not in the vocabulary; train on a text that contains it") from None

    def decode(self, ids: Iterable[int]) -> str:
        pieces = []
        for token_id in check_id_sequence("CharTokenizer.decode", "ids", ids):
            if not 0 <= token_id < len(self._chars):
                raise ArgumentError(f"CharTokenizer.decode: id {token_id} is outside the "
                                    f"vocabulary of {len(self._chars)} characters; expected "
                                    f"ids in [0, {len(self._chars)})",
                                    where="CharTokenizer.decode", name="ids", value=token_id)
            pieces.append(self._chars[token_id])
        return "".join(pieces)

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to a JSON file."""
        write_tokenizer_json(path, "CharTokenizer", {"chars": self._chars})

    @loader
    def load(self, path: str | os.PathLike) -> "CharTokenizer":
        """Read a file written by `save`; callable on the class or on an instance."""
        return self.load_fields(read_tokenizer_json(path, "CharTokenizer"))

    def load_fields(self, fields) -> "CharTokenizer":
        """Take the vocabulary from a tokenizer file's checked fields
        (:func:`~scratchlm.text.tokenizer_files.read_tokenizer_json`)."""
        chars = distinct_characters(fields, "chars", fields.sequence("chars"))
        if not chars:
            fields.fail("chars", "is empty; a vocabulary holds at least one character")
        self._set_chars(chars)
        return self

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
