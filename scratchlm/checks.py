"""Every argument check in one place: each names where (a function, a class, a config),
the argument, the value given and what is expected, and raises
:class:`~scratchlm.errors.ArgumentError` (a ValueError) or, for a value of the wrong type,
:class:`~scratchlm.errors.ArgumentTypeError` (a TypeError too), e.g.
``GPTConfig: n_head=0; expected an integer ≥ 1``. Each returns the value checked (an
``int``, ``float`` or ``bool``; a dtype; an array or the operand itself), so a caller can
keep what it returns.

The checks of tensors and operands (:func:`check_operand`, :func:`check_numbers`) run on
every call of an op, so they cost one look at a dtype when the value is fine; the
primitive ops check their operands' types only once NumPy has refused them.
"""

import argparse
import math
import numbers
import operator

import numpy as np

from scratchlm.errors import ArgumentError, ArgumentTypeError

REDUCTIONS = ("mean", "sum", "none")


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
    if type(value) is int:  # the common case, answered first: axes are checked on every op
        return True
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
    if not is_integer(value):
        raise bad_argument(where, name, value, _int_expected(low, high, optional, hint),
                           _kind(value), ArgumentTypeError)
    value = operator.index(value)
    if (low is not None and value < low) or (high is not None and value >= high):
        raise bad_argument(where, name, value, _int_expected(low, high, optional, hint))
    return value


def _int_expected(low, high, optional, hint):
    """What :func:`check_int` expected, for its error (written only when one is raised)."""
    if high is not None:
        expected = f"an integer in [{0 if low is None else low}, {high})"
    else:
        expected = f"an integer {_bounds(low, None)}".rstrip()
    return expected + (" or None" if optional else "") + (f" {hint}" if hint else "")


def check_real(where, name, value, low=None, high=None, *, low_open=False, high_open=False,
               optional=False, hint=""):
    """``value`` as a finite ``float`` (an int or NumPy number too, not a bool or string;
    never NaN or ±inf) within the bounds given (closed unless ``low_open``/``high_open``).
    ``optional=True`` lets None through."""
    if optional and value is None:
        return None
    bounds = (low, high, low_open, high_open, optional, hint)
    if type(value) is not float and type(value) is not int:  # a plain number skips these
        if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_") \
                or isinstance(value, (str, bytes)) or getattr(value, "ndim", 0) != 0:
            raise bad_argument(where, name, value, _real_expected(*bounds), _kind(value),
                               ArgumentTypeError)
        if not isinstance(value, numbers.Real):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise bad_argument(where, name, value, _real_expected(*bounds), _kind(value),
                                   ArgumentTypeError) from None
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        raise bad_argument(where, name, value, _real_expected(*bounds), "not a finite number")
    if (low is not None and (number < low or (low_open and number == low))) \
            or (high is not None and (number > high or (high_open and number == high))):
        raise bad_argument(where, name, value, _real_expected(*bounds))
    return number


def _real_expected(low, high, low_open, high_open, optional, hint):
    """What :func:`check_real` expected, for its error (written only when one is raised)."""
    expected = f"a finite number {_bounds(low, high, low_open, high_open)}".rstrip()
    return expected + (" or None" if optional else "") + (f" {hint}" if hint else "")


def check_probability(where, name, value):
    """A probability in [0, 1] (a dropout rate, a masking rate) as a float."""
    return check_real(where, name, value, 0, 1, hint="(a probability)")


def check_bool(where, name, value):
    """``value`` as a ``bool``: True or False (a NumPy bool too), not 0/1 or a string, whose
    truth would be taken silently."""
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise bad_argument(where, name, value, "True or False", _kind(value), ArgumentTypeError)


def check_type(where, name, value, types, expected):
    """``value`` if it is an instance of ``types`` (a class or a tuple of them), else an
    :class:`ArgumentTypeError` saying what was ``expected`` (``"an nn.Module"``)."""
    if isinstance(value, types):
        return value
    raise bad_argument(where, name, value, expected, _kind(value), ArgumentTypeError)


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


def check_attention_sizes(where, width_name, width, heads_name, heads):
    """A width and a head count, both integers ≥ 1, the width a multiple of the heads (each
    head gets width / heads features); returns them as ints."""
    width = check_int(where, width_name, width, 1)
    heads = check_int(where, heads_name, heads, 1, hint="(the number of attention heads)")
    if width % heads:
        near = width // heads * heads or heads
        raise ArgumentError(f"{where}: {width_name}={width} is not divisible by "
                            f"{heads_name}={heads}; expected {width_name} a multiple of "
                            f"{heads_name} (for example {near} or {near + heads}), or a "
                            f"{heads_name} that divides {width}", where=where, name=heads_name,
                            value=heads)
    return width, heads


def normalize_axis(op_name, axis, shape):
    """``axis`` (an integer) as a non-negative axis of an array of ``shape``."""
    ndim = len(shape)
    if not is_integer(axis):
        raise bad_argument(op_name, "axis", axis, f"an integer in [{-ndim}, {ndim})",
                           _kind(axis), ArgumentTypeError)
    if not -ndim <= axis < ndim:
        raise ArgumentError(f"{op_name}: axis {axis} is out of range for an input of shape "
                            f"{shape}; expected {-ndim} ≤ axis < {ndim}", where=op_name,
                            name="axis", value=axis)
    return axis % ndim


def integer_array(op_name, what, values, xp):
    """``values`` (an array or a list of integers) as an integer array of module ``xp``."""
    values = xp.asarray(check_numbers(op_name, what, values))
    if values.dtype.kind not in "iu":
        raise ArgumentTypeError(f"{op_name}: {what} must hold integers, got dtype "
                                f"{values.dtype}", where=op_name, name=what, value=values)
    return values


# ------------------------------------------------------------------------- tensors and arrays
#: The dtype kinds a tensor may hold: booleans, signed and unsigned integers, floats.
NUMBER_KINDS = frozenset("biuf")
NUMBERS = "numbers: a number, an array, or nested lists of numbers with rows of one length"


def check_dtype(where, dtype):
    """``dtype`` (a name such as ``"float32"``, a NumPy type, None) as a NumPy dtype of
    numbers or booleans; None stays None (the data's own dtype)."""
    if dtype is None:
        return None
    expected = "a NumPy dtype of numbers such as 'float32', 'float64', 'int64' or 'bool'"
    try:
        checked = np.dtype(dtype)
    except TypeError:
        raise bad_argument(where, "dtype", dtype, expected, "not a dtype",
                           ArgumentTypeError) from None
    if checked.kind not in NUMBER_KINDS:
        raise bad_argument(where, "dtype", dtype, expected, f"dtype {checked}")
    return checked


def check_numbers(where, name, data, dtype=None):
    """``data`` if it holds numbers or booleans. An array (NumPy or CuPy) is returned as it
    is, its dtype checked; anything else (a number, nested lists) becomes a NumPy array of
    NumPy's own dtype first, so strings, objects and ragged lists are refused rather than
    parsed, then of ``dtype`` where one is given."""
    array = data
    if not isinstance(getattr(data, "dtype", None), np.dtype):  # not an array of NumPy or CuPy
        try:
            array = np.asarray(data)
        except ValueError:  # nested lists whose rows differ in length
            raise bad_argument(where, name, data, NUMBERS, "rows of different lengths",
                               ArgumentTypeError) from None
    if array.dtype.kind not in NUMBER_KINDS:
        raise bad_argument(where, name, data, NUMBERS, _described(data, array.dtype),
                           ArgumentTypeError)
    return array if dtype is None or array is data else array.astype(dtype, copy=False)


def check_operand(where, name, value, *, number=True, optional=False, hint=""):
    """``value`` if it is a tensor or an array (NumPy, CuPy) of numbers or booleans, or,
    with ``number``, a Python or NumPy number; else an :class:`ArgumentTypeError` (a string,
    a list, None unless ``optional``). ``hint`` is added to the expectation. Cheap on the
    hot path: a tensor or an array passes after one look at its dtype."""
    dtype = getattr(value, "dtype", None)
    if getattr(dtype, "kind", None) in NUMBER_KINDS:  # a NumPy or CuPy dtype of numbers
        return value
    if (number and dtype is None and isinstance(value, numbers.Real)) \
            or (optional and value is None):
        return value
    expected = ("a tensor or an array of numbers" + (", or a number" if number else "")
                + (", or None" if optional else "") + (f" {hint}" if hint else ""))
    raise bad_argument(where, name, value, expected, _described(value, dtype),
                       ArgumentTypeError)


def _described(value, dtype):
    """The detail of an error about ``value``, which does not hold numbers: nothing for an
    array (:func:`show` prints its dtype), the dtype NumPy made of a list, else its type."""
    if hasattr(value, "dtype"):
        return None
    if dtype is not None and isinstance(value, (list, tuple)):
        return f"dtype {dtype}"
    return _kind(value)


def check_requires_grad(where, requires_grad, dtype):
    """``requires_grad`` as a bool (True or False, not a string), True only for a
    floating-point ``dtype``: only those get gradients."""
    if check_bool(where, "requires_grad", requires_grad) and dtype.kind != "f":
        raise ArgumentTypeError(f"{where}: requires_grad=True for a tensor of dtype {dtype}; "
                                "expected a floating-point tensor (only those get gradients: "
                                "make it with dtype=np.float32, or convert with .astype)",
                                where=where, name="requires_grad", value=requires_grad)
    return bool(requires_grad)


# ------------------------------------------------------------------------ command-line numbers
def cli_int(low=None, high=None, what="an integer"):
    """An argparse ``type``: the text as an ``int`` with ``low ≤ value ≤ high`` (both
    inclusive, where given); anything else is refused with the range it takes."""
    expected = f"{what} {_bounds(low, high)}".rstrip()

    def parse(text):
        try:
            value = int(text.strip(), 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def cli_real(low=None, high=None, *, low_open=False, high_open=False):
    """An argparse ``type``: the text as a finite ``float`` within the bounds (closed
    unless ``low_open``/``high_open``); NaN, ±inf and anything else are refused."""
    expected = f"a finite number {_bounds(low, high, low_open, high_open)}".rstrip()

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (not math.isfinite(value)
                or (low is not None and (value < low or (low_open and value == low)))
                or (high is not None and (value > high or (high_open and value == high)))):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


#: The command line's common numbers: a count of steps, batches, samples ... (≥ 1), and a
#: random seed (NumPy takes 0 … 2³² − 1).
positive_int = cli_int(1, 10**9)
count = cli_int(0, 10**9)
seed = cli_int(0, 2**32 - 1, "a seed")
