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
what is expected, e.g. ``GPTConfig: n_head=0; expected an integer ≥ 1``. The ``check_*``
functions at the end of this module raise them; each returns the value checked (an ``int``,
``float`` or ``bool``), so a caller can keep what it returns.
"""

import math
import numbers
import operator


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


# ------------------------------------------------------------------------ checking arguments
def show(value):
    """A short description of ``value`` for an error message: its repr (cut at 60
    characters), or the shape and dtype of an array."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0):
        return f"<array of shape {tuple(value.shape)} and dtype {value.dtype}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bad_argument(where, name, value, expected, detail=None, error=ArgumentError):
    """The error ``{where}: {name}={value}[ ({detail})]; expected {expected}``."""
    detail = f" ({detail})" if detail else ""
    return error(f"{where}: {name}={show(value)}{detail}; expected {expected}",
                 where=where, name=name, value=value)


def _kind(value):
    """'a bool', 'a float', 'a str', ... for a type error's detail."""
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _bounds(low, high, low_open=False, high_open=False):
    """'≥ 1', '> 0', 'in [0, 1]', 'in (0, 1]', '' for no bounds."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '≥'} {low}"
    if high is not None:
        return f"{'<' if high_open else '≤'} {high}"
    return ""


def is_integer(value):
    """True for an int or NumPy integer (or anything with ``__index__``), not a bool."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_int(where, name, value, low=None, high=None, *, optional=False, hint=""):
    """``value`` as an ``int``: an integer (a NumPy one too), not a bool, float or string,
    with ``low ≤ value`` and ``value < high`` where given (``high`` is exclusive, as for
    ids below a vocabulary size). ``optional=True`` lets None through. ``hint`` is added to
    the expectation, e.g. ``"(the number of attention heads)"``."""
    if optional and value is None:
        return None
    if high is not None:
        expected = f"an integer in [{0 if low is None else low}, {high})"
    else:
        expected = f"an integer {_bounds(low, None)}".rstrip()
    if optional:
        expected += " or None"
    if hint:
        expected += f" {hint}"
    if not is_integer(value):
        raise bad_argument(where, name, value, expected, _kind(value), ArgumentTypeError)
    value = operator.index(value)
    if (low is not None and value < low) or (high is not None and value >= high):
        raise bad_argument(where, name, value, expected)
    return value


def check_real(where, name, value, low=None, high=None, *, low_open=False, high_open=False,
               optional=False, hint=""):
    """``value`` as a finite ``float`` (an int or NumPy number too, not a bool or string;
    never NaN or ±inf) within the bounds given (closed unless ``low_open``/``high_open``).
    ``optional=True`` lets None through."""
    if optional and value is None:
        return None
    expected = f"a finite number {_bounds(low, high, low_open, high_open)}".rstrip()
    if optional:
        expected += " or None"
    if hint:
        expected += f" {hint}"
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_") \
            or isinstance(value, (str, bytes)) or getattr(value, "ndim", 0) != 0:
        raise bad_argument(where, name, value, expected, _kind(value), ArgumentTypeError)
    if not isinstance(value, numbers.Real):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise bad_argument(where, name, value, expected, _kind(value),
                               ArgumentTypeError) from None
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise bad_argument(where, name, value, expected, "not a finite number")
    if low is not None and (number < low or (low_open and number == low)):
        raise bad_argument(where, name, value, expected)
    if high is not None and (number > high or (high_open and number == high)):
        raise bad_argument(where, name, value, expected)
    return number


def check_probability(where, name, value):
    """A probability in [0, 1] (a dropout rate, a masking rate) as a float."""
    return check_real(where, name, value, 0, 1, hint="(a probability)")


def check_bool(where, name, value):
    """``value`` as a ``bool``: True or False (a NumPy bool too), not 0/1 or a string, whose
    truth would be taken silently."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise bad_argument(where, name, value, "True or False", _kind(value), ArgumentTypeError)


def check_choice(where, name, value, choices):
    """``value`` if it is one of ``choices`` (strings), else an error listing them."""
    if isinstance(value, str) and value in choices:
        return value
    error = ArgumentError if isinstance(value, str) else ArgumentTypeError
    raise bad_argument(where, name, value, f"one of {', '.join(map(repr, choices))}",
                       error=error)


def check_token_ids(where, name, ids, vocab_size=None, *, ndim=2, ignore_index=None,
                    shape=None):
    """Token ids (a NumPy or CuPy array) checked as ``where`` takes them: ``ndim`` axes
    ((batch, time) by default) or exactly ``shape``, an integer dtype, at least one id,
    and every id in [0, vocab_size) (or equal to ``ignore_index``). Returns ``ids``."""
    layout = {1: "(batch,)", 2: "(batch, time)"}.get(ndim, f"{ndim} axes")
    if shape is not None:
        layout = f"{tuple(shape)}"
    given = getattr(ids, "shape", None)
    if given is None or not hasattr(ids, "dtype"):
        raise bad_argument(where, name, ids, f"an integer array of shape {layout}",
                           _kind(ids), ArgumentTypeError)
    if (shape is not None and tuple(given) != tuple(shape)) or \
            (shape is None and len(given) != ndim):
        raise ArgumentError(f"{where}: {name} has shape {tuple(given)}; expected token ids of "
                            f"shape {layout}", where=where, name=name, value=ids)
    if ids.dtype.kind not in "iu":
        raise ArgumentTypeError(f"{where}: {name} has dtype {ids.dtype}; expected integer "
                                f"token ids (for example ids.astype(np.int64))",
                                where=where, name=name, value=ids)
    if ids.size == 0:
        raise ArgumentError(f"{where}: {name} of shape {tuple(given)} holds no tokens; "
                            "expected at least one token in each row", where=where, name=name,
                            value=ids)
    if vocab_size is not None:
        valid = (ids >= 0) & (ids < vocab_size)
        if ignore_index is not None:
            valid |= ids == ignore_index
        if not bool(valid.all()):
            bad = int(ids[~valid].reshape(-1)[0])
            also = "" if ignore_index is None else f" or {ignore_index} (ignored)"
            raise ArgumentError(f"{where}: {name} holds id {bad}, outside the vocabulary of "
                                f"{vocab_size} tokens; expected 0 ≤ id < {vocab_size}{also}",
                                where=where, name=name, value=ids)
    return ids


def check_id_sequence(where, name, ids):
    """A sequence of token ids (a list, a tuple, a 1-D integer array; a Tensor's or CuPy
    array's too) as a list of ``int``: not a string, and no float or bool among them, whose
    conversion would truncate silently. Ranges are the caller's to check."""
    if hasattr(ids, "data") and hasattr(ids, "requires_grad"):  # a Tensor
        ids = ids.data
    if hasattr(ids, "dtype") and hasattr(ids, "ndim"):
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise bad_argument(where, name, ids, "a 1-D sequence of integer token ids",
                               error=ArgumentTypeError if ids.dtype.kind not in "iu"
                               else ArgumentError)
        return [int(i) for i in ids.tolist()]
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise bad_argument(where, name, ids, "a sequence of integer token ids", _kind(ids),
                           ArgumentTypeError)
    ids = list(ids)
    for position, token_id in enumerate(ids):
        if not is_integer(token_id):
            raise bad_argument(where, f"{name}[{position}]", token_id, "an integer token id",
                               _kind(token_id), ArgumentTypeError)
    return [operator.index(i) for i in ids]


def check_text(where, name, text):
    """``text`` if it is a ``str``."""
    if not isinstance(text, str):
        raise bad_argument(where, name, text, "a string (str)", _kind(text), ArgumentTypeError)
    return text
