"""Reading files that may be hostile: regular files only, UTF-8 checked, JSON of bounded
depth, and the fields of a JSON object checked one by one.

Every loader of scratchlm opens its file through :func:`open_regular_file`. Opening a FIFO
for reading blocks until a writer appears, and reading a character device such as
``/dev/zero`` never ends; so the file is opened without blocking, ``fstat`` of the open
descriptor (not of the path, which could be swapped in between) must say it is a regular
file, and only then is the descriptor made blocking and read. A symbolic link is followed
to what it names, which must itself be a regular file.

Every failure is a :class:`~scratchlm.errors.FileFormatError` (a ``ValueError``) whose
message starts with the caller (``load``, ``CharTokenizer.load``...), names the file, and
says what is wrong and what to do; a missing file is a
:class:`~scratchlm.errors.MissingFileError` (also a ``FileNotFoundError``).
"""

import errno
import json
import os
import stat

import numpy as np

from scratchlm.errors import FileFormatError, MissingFileError

#: The nesting a JSON side file may have (a tokenizer or config.json nests 2 or 3 deep).
MAX_SIDE_FILE_DEPTH = 16
#: The largest JSON side file read whole (GPT-2's encoder.json is about 1 MB).
MAX_SIDE_FILE_BYTES = 256 * 2**20

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_kind(mode):
    """'a directory', 'a FIFO (named pipe)', ... for an ``st_mode`` that is no regular file."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular_file(path, where, what="file", error=FileFormatError):
    """``path`` opened for reading in binary mode, after checking that it is a regular file.

    ``where`` names the caller and ``what`` the file's role (``"checkpoint"``) in the
    messages; ``error`` is the :class:`~scratchlm.errors.FileFormatError` subclass raised.
    Never blocks on a FIFO or a device: those are refused before anything is read."""
    path = os.fspath(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        dangling = os.path.islink(path)
        raise MissingFileError(f"{where}: no {what} at {path}"
                               + (" (a symbolic link to a file that does not exist)"
                                  if dangling else ""), path=path) from None
    except OSError as problem:
        raise error(f"{where}: {path} cannot be opened as a {what} ("
                    f"{_reason(problem)})", path=path) from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{where}: {path} is {file_kind(mode)}, not a regular file; give the "
                        f"path of the {what} itself", path=path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _reason(problem):
    """A short reason for an ``OSError``: 'permission denied', 'too many symbolic links'."""
    if problem.errno == errno.ELOOP:
        return "a loop of symbolic links"
    if problem.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; check the file's permissions"
    return (problem.strerror or str(problem)).lower()


def read_file_bytes(path, where, what="file", limit=MAX_SIDE_FILE_BYTES,
                    error=FileFormatError):
    """All the bytes of the regular file ``path`` (at most ``limit`` of them: a larger
    file is refused before it is read)."""
    with open_regular_file(path, where, what, error) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise error(f"{where}: {os.fspath(path)} is {size:,} bytes, more than the "
                        f"{limit:,} a {what} may have; is it the right file?", path=path)
        try:
            return file.read(limit + 1)
        except OSError as problem:
            raise error(f"{where}: {os.fspath(path)} cannot be read ({_reason(problem)})",
                        path=path) from None


# ----------------------------------------------------------------------------- JSON
class JSONProblem(ValueError):
    """JSON text that cannot be parsed safely; ``duplicate`` is a key that appears twice."""

    def __init__(self, message, duplicate=None):
        super().__init__(message)
        self.duplicate = duplicate


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_JSON_CHUNK = 1 << 16


def json_depth(raw):
    """How deep the arrays and objects of the JSON text ``raw`` (bytes) nest, found on the
    bytes without parsing them and in little memory: escaped backslashes and quotes are
    dropped, then everything but quotes and brackets; a bracket counts when an even number
    of quotes precede it (it is outside every string). A chunk at a time: a running count.
    (On text that is not JSON the answer is meaningless, and the parser refuses it.)"""
    skeleton = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    depth = deepest = quotes = 0
    for start in range(0, len(skeleton), _JSON_CHUNK):
        chunk = np.frombuffer(skeleton, dtype=np.uint8, offset=start,
                              count=min(_JSON_CHUNK, len(skeleton) - start))
        is_quote = chunk == ord('"')
        outside = (np.cumsum(is_quote, dtype=np.int32) + quotes) % 2 == 0
        steps = (np.isin(chunk, (ord("["), ord("{"))).astype(np.int32)
                 - np.isin(chunk, (ord("]"), ord("}"))))
        running = np.cumsum(np.where(outside, steps, 0), dtype=np.int32) + depth
        deepest, depth = max(deepest, int(running.max())), int(running[-1])
        quotes += int(np.count_nonzero(is_quote))
    return deepest


def _unique_pairs(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONProblem(f"the key {key!r} appears twice in one object", key)
            seen.add(key)
    return result


def _no_constant(name):
    raise JSONProblem(f"it holds {name}, which is not JSON (a number must be finite)")


def parse_json(raw, max_depth, finite=True):
    """Parse UTF-8 JSON bytes that may be hostile: the nesting is checked before parsing
    (no RecursionError), a key given twice in one object is refused (not silently
    overwritten), and so are NaN and Infinity (not JSON) unless ``finite=False``. Raises
    :class:`JSONProblem`."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogatepass")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise JSONProblem(f"it is not UTF-8 text (byte {problem.start} is "
                          f"{raw[problem.start:problem.start + 1]!r})") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise JSONProblem(f"it nests {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text, object_pairs_hook=_unique_pairs,
                          parse_constant=_no_constant if finite else None)
    except JSONProblem:
        raise
    except json.JSONDecodeError as problem:
        raise JSONProblem(f"it is not JSON: {problem}") from None
    except ValueError as problem:  # an integer of more digits than int() reads
        raise JSONProblem(f"it holds a number Python does not read ({str(problem)[:60]}…)"
                          ) from None
    except RecursionError:  # not reached: the depth is checked first
        raise JSONProblem("it nests too deeply") from None


def read_json_file(path, where, what="JSON file", max_depth=MAX_SIDE_FILE_DEPTH,
                   error=FileFormatError):
    """The JSON document in the regular file ``path``, parsed as :func:`parse_json` does;
    any problem is ``error`` naming ``where``, the file and what is wrong."""
    raw = read_file_bytes(path, where, what, error=error)
    try:
        return parse_json(raw, max_depth)
    except JSONProblem as problem:
        raise error(f"{where}: {os.fspath(path)} is not a readable {what}: {problem}",
                    path=path) from None


# ----------------------------------------------------------------------------- fields
def json_kind(value):
    """'an object', 'a list', 'a string', 'a number', 'true', 'null' for a JSON value."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return "a number"


class Fields:
    """The fields of one JSON object (or dict) read from ``source``, each taken with a check
    of its kind; a failure is ``error`` naming ``where``, the source and the field.

    ``source`` says where the object came from: a path, or ``"extras['tokenizer'] of
    runs/x/checkpoint.npz"``; ``path`` (the file) goes on the error."""

    def __init__(self, value, where, source, path=None, error=FileFormatError, what="an object"):
        self.where, self.source, self.path, self.error = where, source, path, error
        if not isinstance(value, dict):
            self.fail(None, f"holds {json_kind(value)}; expected {what}")
        self.value = value

    def fail(self, field, problem, hint="the file is damaged or was not written by "
                                        "scratchlm; write it again"):
        where = f"field {field!r} " if field is not None else ""
        raise self.error(f"{self.where}: {self.source}: {where}{problem}"
                         + (f"; {hint}" if hint else ""), path=self.path, entry=field)

    def get(self, field, check, expected, default=...):
        """The field's value if ``check(value)`` holds; ``default`` when it is absent and a
        default is given, else an error saying it is missing or ``expected``."""
        if field not in self.value:
            if default is not ...:
                return default
            self.fail(field, "is missing")
        value = self.value[field]
        if not check(value):
            self.fail(field, f"is {describe(value)}; expected {expected}")
        return value

    def string(self, field, default=...):
        return self.get(field, lambda v: isinstance(v, str), "a string", default)

    def integer(self, field, low=None, default=...):
        def ok(value):
            return type(value) is int and (low is None or value >= low)
        return self.get(field, ok, "an integer" + (f" ≥ {low}" if low is not None else ""),
                        default)

    def mapping(self, field, default=...):
        return self.get(field, lambda v: isinstance(v, dict), "an object", default)

    def sequence(self, field, default=...):
        return self.get(field, lambda v: isinstance(v, list), "a list", default)


def describe(value):
    """A JSON value for a message: its kind, and the value itself when short."""
    kind = json_kind(value)
    if isinstance(value, (dict, list)):
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, float) \
        else repr(value)
    return f"{kind} ({text[:40] + '…' if len(text) > 40 else text})" if kind in (
        "a string", "a number") else kind
