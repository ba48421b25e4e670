"""The library's errors: one base class, so ``except ScratchlmError`` catches every failure
scratchlm reports on purpose, and one class per kind of failure below it.

    ScratchlmError                  everything scratchlm raises on purpose
    └── FileFormatError             a file that cannot be read as what it claims to be
        │                           (also a ValueError, as these errors were before)
        └── MissingFileError        no file at that path (also a FileNotFoundError)

A :class:`FileFormatError` names the file (``.path``), the entry inside it when there is one
(``.entry``: an array of a checkpoint, a tensor of a safetensors file) and, in its message,
what is wrong and what to do about it. Loaders raise it for every problem a file can have —
truncation, damage, a foreign or hostile layout, contents that contradict each other — and
for nothing else: a file that passes their checks is one they can read.
"""


class ScratchlmError(Exception):
    """The base of every error scratchlm raises on purpose."""


class FileFormatError(ScratchlmError, ValueError):
    """A file that is not what it claims to be: damaged, truncated, foreign or hostile.

    ``path`` is the file, ``entry`` the named part of it that is wrong (None when the
    problem is the file as a whole)."""

    def __init__(self, message, *, path=None, entry=None):
        super().__init__(message)
        self.path = path
        self.entry = entry


class MissingFileError(FileFormatError, FileNotFoundError):
    """No file at the path given (a :class:`FileFormatError` and a ``FileNotFoundError``)."""
