"""The library's errors: one base class, so ``except ScratchlmError`` catches every failure
scratchlm reports on purpose, and one class per kind of failure below it.

    ScratchlmError                  everything scratchlm raises on purpose
    ├── FileFormatError             a file that cannot be read as what it claims to be
    │   │                           (also a ValueError, as these errors were before)
    │   └── MissingFileError        no file at that path (also a FileNotFoundError)
    ├── ConfigError                 a setting that cannot work (also a ValueError)
    ├── ArgumentError               a bad argument to a public function, class or config
    │   │                           (also a ValueError)
    │   └── ArgumentTypeError       an argument of the wrong type (also a TypeError)
    ├── RunError                    a run folder that cannot be used as asked
    │   ├── RunExistsError          a new run would overwrite an existing one
    │   ├── RunNotFoundError        no run (or no checkpoint) where one was named
    │   │                           (also a FileNotFoundError)
    │   ├── RunInUseError           another process is training into that run
    │   └── CheckpointWriteError    a checkpoint that could not be written (disk full)
    ├── NotEnoughMemoryError        a run that would need more memory than there is
    ├── DivergenceError             training met a NaN or infinite loss or gradient
    └── TrainingInterrupted         SIGINT or SIGTERM stopped training (after saving)

Each class has an ``exit_status``: what ``python -m scratchlm`` exits with when the error
reaches it (2 for a request that cannot be carried out as given, as for a usage error; 1
for a run that failed; 128 + the signal's number for an interruption, as a shell reports it).

A :class:`FileFormatError` names the file (``.path``), the entry inside it when there is one
(``.entry``: an array of a checkpoint, a tensor of a safetensors file) and, in its message,
what is wrong and what to do about it. Loaders raise it for every problem a file can have —
truncation, damage, a foreign or hostile layout, contents that contradict each other — and
for nothing else: a file that passes their checks is one they can read.

An :class:`ArgumentError` names the function or class, the argument, the value given and
what is expected, e.g. ``GPTConfig: n_head=0; expected an integer ≥ 1``; the checks that
raise them are in :mod:`scratchlm.checks`.
"""

class ScratchlmError(Exception):
    """The base of every error scratchlm raises on purpose."""

    exit_status = 2


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


class ConfigError(ScratchlmError, ValueError):
    """A setting (of a config, a command-line flag) that cannot work; the message says
    which one and what to give instead (also a ``ValueError``)."""


class RunError(ScratchlmError):
    """A run folder that cannot be used as asked; ``path`` is the folder."""

    def __init__(self, message, *, path=None):
        super().__init__(message)
        self.path = path


class RunExistsError(RunError):
    """A new run would write into a folder that holds a run already."""


class RunNotFoundError(RunError, FileNotFoundError):
    """No run folder, or no checkpoint in it, where one was named."""


class RunInUseError(RunError):
    """Another process holds the run's lock: it is training into the same folder."""


class CheckpointWriteError(RunError):
    """A checkpoint that could not be written (a full disk, a file-size limit); the last
    good checkpoint is left as it was."""

    exit_status = 1


class NotEnoughMemoryError(ScratchlmError):
    """A run whose estimated memory exceeds what is available (``needed`` and
    ``available`` in bytes)."""

    def __init__(self, message, *, needed=None, available=None):
        super().__init__(message)
        self.needed, self.available = needed, available


class DivergenceError(ScratchlmError, FloatingPointError):
    """Training met a NaN or infinite loss or gradient at ``step`` (the update that was
    not made); ``checkpoint`` is the last good checkpoint kept on disk, or None."""

    exit_status = 1

    def __init__(self, message, *, step=None, checkpoint=None):
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


class TrainingInterrupted(ScratchlmError):
    """SIGINT (Ctrl-C) or SIGTERM stopped training after a step: ``signal`` is its number,
    ``step`` the last step taken, ``checkpoint`` the checkpoint saved then (None without a
    run folder). ``exit_status`` is 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message, *, signal, step, checkpoint=None):
        super().__init__(message)
        self.signal, self.step, self.checkpoint = signal, step, checkpoint
        self.exit_status = 128 + int(signal)


class ArgumentError(ScratchlmError, ValueError):
    """A bad argument to a public function, class or config: the message names where
    (``GPTConfig``, ``generate``), the argument, the value given and what is expected
    (also a ``ValueError``). ``where``, ``name`` and ``value`` are kept as attributes."""

    def __init__(self, message, *, where=None, name=None, value=None):
        super().__init__(message)
        self.where, self.name, self.value = where, name, value


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type: a float or a bool where an integer is needed, a
    string where a number is (a ``TypeError``, and a ``ValueError`` as every
    :class:`ArgumentError`, so code that caught either before still does)."""
