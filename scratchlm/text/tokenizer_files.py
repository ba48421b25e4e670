"""Saving and loading tokenizers as plain JSON (never pickle: loading a file cannot run code)."""

import functools
import json
import os
from pathlib import Path


def write_tokenizer_json(path: str | os.PathLike, kind: str, fields: dict) -> None:
    """Write ``{"type": kind, **fields}`` to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps({"type": kind, **fields}, ensure_ascii=False, indent=1),
                       encoding="utf-8")
    os.replace(partial, path)


def read_tokenizer_json(path: str | os.PathLike, kind: str) -> dict:
    """Read a file written by `write_tokenizer_json`; check that it holds a ``kind`` tokenizer."""
    with open(path, encoding="utf-8") as handle:
        payload = json.load(handle)
    found = payload.get("type") if isinstance(payload, dict) else None
    if found != kind:
        raise ValueError(f"{kind}.load: {os.fspath(path)!r} holds a {found!r} tokenizer, "
                         f"expected {kind!r}")
    return payload


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
