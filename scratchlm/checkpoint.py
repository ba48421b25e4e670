"""Checkpoints: nested state in one ``.npz`` file that can never run code when loaded.

``save(state, path)`` takes dicts (string or integer keys), lists and tuples nested to any
depth, holding arrays, Python numbers (int, float, bool), None and strings. Every array
becomes one ``.npy`` entry of the ``.npz``, named after its place in the state
(``arrays/model/transformer.wte.weight``); everything else — the nesting, the numbers, the
strings — goes into one JSON document stored as a uint8 entry, ``checkpoint.json``, whose
tree points at the array entries by name.

``load(path)`` reads it back with ``np.load(..., allow_pickle=False)``: arrays come back as
NumPy arrays, numbers and strings as Python numbers and strings, dicts, lists and tuples as
they were. Nothing in the file is unpickled, so a checkpoint can never run code.

The file is written atomically: into a temporary file in the same directory, flushed to disk,
then renamed over ``path`` — a crash mid-save leaves the previous checkpoint intact.
"""

import json
import os
import uuid
import zipfile

import numpy as np

from scratchlm.backend import is_gpu_array, to_numpy

FORMAT = "scratchlm-checkpoint"
VERSION = 1
DOCUMENT_ENTRY = "checkpoint.json"
ARRAY_PREFIX = "arrays"


class CheckpointError(ValueError):
    """A file that is not a readable scratchlm checkpoint."""


# ----------------------------------------------------------------------------- encoding
def _escape(key):
    """An entry-name component for a dict key: '%', '/' and '#' percent-escaped in strings;
    integer keys written as '#<n>'. Different keys of one dict never share a component."""
    if isinstance(key, int):
        return f"#{key}"
    return key.replace("%", "%25").replace("/", "%2F").replace("#", "%23")


def _encode(value, components, where, arrays):
    """The JSON tree of ``value``; its arrays are added to ``arrays`` (entry name -> array).

    ``components`` build the entry name, ``where`` is the readable key path for errors.
    JSON node kinds: plain JSON scalars for None/bool/int/float/str, JSON lists for lists,
    and tagged objects ``{"array": name}``, ``{"tuple": [...]}``, ``{"dict": [[key, v], ...]}``.
    """
    if isinstance(value, np.generic):  # NumPy scalars are saved as Python numbers
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray) or is_gpu_array(value):
        array = to_numpy(value)
        if array.dtype.hasobject:
            raise TypeError(f"save: {where} is an array of dtype object; object arrays need "
                            "pickle and are refused (a checkpoint can never run code)")
        name = "/".join((ARRAY_PREFIX, *components))
        arrays[name] = array
        return {"array": name}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, (*components, str(i)), f"{where}[{i}]", arrays)
                 for i, item in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save: {where} has a key {key!r} of type "
                                f"{type(key).__name__}; keys must be strings or integers")
            pairs.append([key, _encode(item, (*components, _escape(key)),
                                       f"{where}[{key!r}]", arrays)])
        return {"dict": pairs}
    raise TypeError(
        f"save: {where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint "
        "holds arrays, numbers (int, float, bool), None, strings, and dicts, lists and tuples "
        "of them (a Tensor: save tensor.numpy())")


def _decode(node, npz, path):
    """Rebuild the value of a JSON tree node, reading its arrays from ``npz``."""
    if isinstance(node, list):
        return [_decode(item, npz, path) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"array"}:
        return _read_array(npz, node["array"], path)
    if set(node) == {"tuple"}:
        return tuple(_decode(item, npz, path) for item in node["tuple"])
    if set(node) == {"dict"}:
        return {key: _decode(item, npz, path) for key, item in node["dict"]}
    raise CheckpointError(f"load: {path}: unknown node {sorted(node)} in {DOCUMENT_ENTRY}")


def _read_array(npz, name, path):
    if name not in npz.files:
        raise CheckpointError(f"load: {path}: array entry {name!r} is missing")
    try:
        return npz[name]
    except ValueError as error:  # an object array (it would need pickle), or a bad header
        raise CheckpointError(f"load: {path}: entry {name!r} is refused ({error})") from None


# ----------------------------------------------------------------------------- save / load
def save(state, path):
    """Write ``state`` (nested dicts/lists/tuples of arrays, numbers, None and strings) to
    ``path`` as one ``.npz``, atomically. CuPy arrays are copied to the host first."""
    path = os.fspath(path)
    arrays = {}
    tree = _encode(state, (), "state", arrays)
    document = json.dumps({"format": FORMAT, "version": VERSION, "state": tree},
                          ensure_ascii=False)
    entries = {DOCUMENT_ENTRY: np.frombuffer(document.encode("utf-8"), dtype=np.uint8)}
    entries.update(arrays)

    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    # created like any new file (mode 0o666 less the umask); O_EXCL: never an existing file
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    handle = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **entries)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX; Windows cannot open a directory)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def load(path):
    """Read a checkpoint written by :func:`save`: arrays come back as NumPy arrays, numbers
    and strings as Python values, the nesting as it was. Never unpickles anything."""
    path = os.fspath(path)
    not_ours = f"load: {path} is not a scratchlm checkpoint"
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no checkpoint file at {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{not_ours} (it is not an .npz archive, or it is truncated)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{not_ours} ({error})") from None
    with npz:
        try:
            if DOCUMENT_ENTRY not in npz.files:
                raise CheckpointError(f"{not_ours} (it has no {DOCUMENT_ENTRY} entry)")
            document = json.loads(npz[DOCUMENT_ENTRY].tobytes().decode("utf-8"))
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise CheckpointError(f"{not_ours} ({DOCUMENT_ENTRY} lacks its format tag)")
            if document.get("version") != VERSION:
                raise CheckpointError(
                    f"load: {path}: checkpoint format version {document.get('version')!r}; "
                    f"this scratchlm reads version {VERSION}")
            return _decode(document["state"], npz, path)
        except CheckpointError:
            raise
        except (OSError, EOFError, ValueError, TypeError, KeyError,
                zipfile.BadZipFile) as error:
            raise CheckpointError(f"{not_ours} or it is damaged "
                                  f"({type(error).__name__}: {error})") from None
