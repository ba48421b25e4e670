"""Saving and loading tokenizers as plain JSON (never pickle: loading a file cannot run code).

A tokenizer file is one JSON object, ``{"type": "CharTokenizer", ...fields}``. Reading one
checks it as a hostile file: a regular file (never a FIFO or a device), UTF-8, JSON nested
a few levels at most, an object of the right ``type``; each tokenizer then checks its own
fields (:class:`~scratchlm.file_reading.Fields`), so a damaged file is one line naming the
file and the field, never a traceback.
"""

import functools
import json
import os
from pathlib import Path

from scratchlm.errors import FileFormatError
from scratchlm.file_reading import (
    MAX_SIDE_FILE_DEPTH,
    Fields,
    JSONProblem,
    describe,
    parse_json,
    read_json_file,
)


class TokenizerFileError(FileFormatError):
    """A tokenizer file (or a tokenizer stored in a checkpoint) that cannot be read."""


def write_tokenizer_json(path: str | os.PathLike, kind: str, fields: dict) -> None:
    """Write ``{"type": kind, **fields}`` to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"type": kind, **fields}, ensure_ascii=False, indent=1),
                       encoding="utf-8")
    os.replace(partial, path)


def tokenizer_fields(payload, kind: str | None, where: str, source: str,
                     path=None) -> Fields:
    """The fields of a parsed tokenizer document, checked to be an object whose ``type``
    is ``kind`` (any string when ``kind`` is None)."""
    fields = Fields(payload, where, source, path, TokenizerFileError,
                    what='a tokenizer object ({"type": ..., ...})')
    found = fields.string("type")
    if kind is not None and found != kind:
        hint = (f"load it with {found}.load" if found in KINDS
                else "the file is damaged or not a scratchlm tokenizer")
        fields.fail("type", f"holds a {found[:40]!r} tokenizer, expected {kind!r}", hint=hint)
    return fields


#: The tokenizer classes' names, as the ``type`` field gives them.
KINDS = ("CharTokenizer", "BPETokenizer", "SpecialCharTokenizer")


def read_tokenizer_json(path: str | os.PathLike, kind: str) -> Fields:
    """The fields of the tokenizer file ``path`` written by `write_tokenizer_json`, checked
    to hold a ``kind`` tokenizer."""
    where = f"{kind}.load"
    payload = read_json_file(path, where, "tokenizer file", MAX_SIDE_FILE_DEPTH,
                             TokenizerFileError)
    return tokenizer_fields(payload, kind, where, os.fspath(path), path)


def parse_tokenizer_text(text, where: str, source: str) -> Fields:
    """The fields of a tokenizer stored as JSON text (in a checkpoint's extras)."""
    if not isinstance(text, str):
        raise TokenizerFileError(f"{where}: {source} is {describe(text)}; expected the "
                                 "tokenizer's JSON text", entry=source)
    try:
        payload = parse_json(text, MAX_SIDE_FILE_DEPTH)
    except JSONProblem as problem:
        raise TokenizerFileError(f"{where}: {source} is not a readable tokenizer: {problem}",
                                 entry=source) from None
    return tokenizer_fields(payload, None, where, source)


def distinct_characters(fields: Fields, name: str, chars) -> list[str]:
    """``chars`` (a list of one-character strings, or one string) as a list, checked to be
    distinct single characters."""
    chars = list(chars)
    for position, char in enumerate(chars):
        if not (isinstance(char, str) and len(char) == 1):
            fields.fail(name, f"item {position} is {describe(char)}; expected one character")
    if len(set(chars)) != len(chars):
        seen = set()
        twice = next(c for c in chars if c in seen or seen.add(c))
        fields.fail(name, f"holds the character {twice!r} twice; each must appear once")
    return chars


class loader:
    """Decorator for a tokenizer's ``load(self, path)``: callable on the class or on an instance.

    ``Tokenizer.load(path)`` builds a new tokenizer; ``tokenizer.load(path)`` fills in that
    tokenizer. Both return the loaded tokenizer.
    """

    def __init__(self, load_into):
        self.load_into = load_into
        functools.update_wrapper(self, load_into)

    def __get__(self, instance, owner):
        target = owner() if instance is None else instance
        return functools.partial(self.load_into, target)
