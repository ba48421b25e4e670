"""The safetensors file format, read and written from scratch (no PyTorch, no pickle).

A ``.safetensors`` file is

    [8 bytes]  N, the header length, an unsigned little-endian integer
    [N bytes]  a UTF-8 JSON object: for each tensor name
               {"dtype": "F32", "shape": [768, 2304], "data_offsets": [begin, end]},
               and optionally "__metadata__": {string: string}
    [rest]     the data: each tensor's raw little-endian bytes, row-major, at
               [begin, end) counted from the first byte after the header

so ``end − begin = prod(shape) · itemsize``. BF16 (bfloat16) is the upper half of a float32:
it is read as float32 by shifting each 16-bit pattern left by 16 bits.

Reading checks the whole header before it allocates anything: the header length against
the file size (and the reference implementation's 100 MB limit), the JSON (valid UTF-8,
nested at most a few levels, no name twice), each entry (exactly dtype, shape and
data_offsets; a known dtype; a shape of at most 32 non-negative sizes whose bytes are the
span's), and the spans together (inside the data, none overlapping, no byte of the data
left over, as the reference reader demands). Only then is each tensor read, into an array
of exactly its size, so a file never makes the reader allocate more than its own data
(plus a float32 copy of a BF16 tensor) and a small multiple of its header. Every failure
is a :class:`SafetensorsError` (a :class:`~scratchlm.errors.FileFormatError`) naming the
file and the tensor. Tensors holding NaN or ±Inf are refused unless the caller passes
``allow_nonfinite=True``.
"""

import json
import math
import os
from typing import NamedTuple

import numpy as np

from scratchlm.backend import is_gpu_array, to_numpy
from scratchlm.checkpoint import count_nonfinite
from scratchlm.errors import ArgumentError, ArgumentTypeError, FileFormatError
from scratchlm.file_reading import JSONProblem, open_regular_file, parse_json

METADATA_KEY = "__metadata__"
HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
MAX_HEADER_DEPTH = 8  # a valid header nests 3 deep: {name: {"shape": [...]}}
MAX_NDIM = 32
ENTRY_FIELDS = ("dtype", "shape", "data_offsets")

# dtype tag -> NumPy dtype of the stored bytes (BF16 is stored as 16-bit patterns)
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_TAGS = ("F64", "F32", "F16", "BF16")
# NumPy dtype kind and size -> dtype tag, for writing (BF16 has no NumPy dtype)
TAGS = {(DTYPES[tag].kind, DTYPES[tag].itemsize): tag for tag in DTYPES if tag != "BF16"}

DAMAGED = ("the file is damaged, truncated or not a safetensors file; download or export "
           "it again")


class SafetensorsError(FileFormatError):
    """A file that breaks the safetensors format (a :class:`FileFormatError`)."""


def bf16_to_float32(bits):
    """bfloat16 bit patterns (uint16) to float32: the same sign, exponent and top 7 mantissa
    bits, so the float32 pattern is the bf16 pattern shifted left by 16."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ----------------------------------------------------------------------------- reading
def _natural(n):
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _read_header(file, path, file_size):
    """The parsed JSON header and the size of the data section after it."""
    def fail(problem):
        raise SafetensorsError(f"load_safetensors: {path}: {problem}", path=path)

    prefix = file.read(HEADER_LENGTH_BYTES)
    if len(prefix) < HEADER_LENGTH_BYTES:
        fail(f"truncated: {file_size} bytes, fewer than the 8-byte header length")
    header_length = int.from_bytes(prefix, "little")
    if header_length > file_size - HEADER_LENGTH_BYTES:
        fail(f"header length {header_length} is larger than the file ({file_size} bytes); "
             "the file is truncated or not a safetensors file")
    if header_length > MAX_HEADER_BYTES:
        fail(f"header length {header_length} is over the format's limit of "
             f"{MAX_HEADER_BYTES} bytes; {DAMAGED}")
    raw = file.read(header_length)
    if len(raw) != header_length:
        fail("truncated while reading the header")
    try:
        header = parse_json(raw, MAX_HEADER_DEPTH)
    except JSONProblem as problem:
        if problem.duplicate is not None:
            fail(f"the header names {problem.duplicate!r} twice; {DAMAGED}")
        fail(f"the header is not valid UTF-8 JSON ({problem}); {DAMAGED}")
    if not isinstance(header, dict):
        fail(f"the header must be a JSON object, got {type(header).__name__}")
    metadata = header.get(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        fail(f"{METADATA_KEY} must map strings to strings")
    return header, file_size - HEADER_LENGTH_BYTES - header_length


def _check_entry(name, entry, data_size, path):
    """Validate one tensor's header entry; returns (tag, shape, begin, end)."""
    def fail(problem):
        raise SafetensorsError(f"load_safetensors: {path}: tensor {name!r}: {problem}",
                               path=path, entry=name)

    if not isinstance(entry, dict) or not set(ENTRY_FIELDS) <= set(entry):
        fail("its header entry must be an object with dtype, shape and data_offsets")
    extra = sorted(set(entry) - set(ENTRY_FIELDS))
    if extra:
        fail(f"its header entry has unknown fields {extra}; an entry holds exactly dtype, "
             f"shape and data_offsets; {DAMAGED}")
    tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(tag, str) or tag not in DTYPES:
        fail(f"unsupported dtype {tag!r}; supported: {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(_natural(n) for n in shape):
        fail(f"shape must be a list of non-negative integers, got {shape!r}")
    if len(shape) > MAX_NDIM:
        fail(f"shape has {len(shape)} dimensions; at most {MAX_NDIM} can be read")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(_natural(n) for n in offsets) and offsets[0] <= offsets[1]):
        fail(f"data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}")
    begin, end = offsets
    if end > data_size:
        fail(f"data_offsets {offsets} run past the end of the data ({data_size} bytes); "
             f"{DAMAGED}")
    expected = math.prod(shape) * DTYPES[tag].itemsize
    if end - begin != expected:
        fail(f"shape {shape} of {tag} needs {expected} bytes but data_offsets {offsets} "
             f"hold {end - begin}")
    return tag, tuple(shape), begin, end


def _check_layout(entries, data_size, path):
    """The spans tile the data exactly: no overlap, no hole, nothing after the last one."""
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items())
    covered, previous = 0, None
    for begin, end, name in spans:
        if begin < covered:
            raise SafetensorsError(f"load_safetensors: {path}: tensor {name!r}: its bytes "
                                   f"overlap those of tensor {previous!r}", path=path,
                                   entry=name)
        if begin > covered:
            raise SafetensorsError(
                f"load_safetensors: {path}: tensor {name!r}: its data starts at byte {begin} "
                f"but the tensors before it end at byte {covered}: the header leaves a hole "
                f"in the data; {DAMAGED}", path=path, entry=name)
        covered, previous = end, name
    if covered != data_size:
        raise SafetensorsError(
            f"load_safetensors: {path}: the tensors cover {covered} bytes of data but the file "
            f"holds {data_size}; {data_size - covered} bytes after the header belong to no "
            f"tensor; {DAMAGED}", path=path)


def _read_exactly(file, array, path, name):
    """Fill ``array`` (contiguous) from the file's current position."""
    view = memoryview(array.reshape(-1).view(np.uint8))
    filled = 0
    while filled < len(view):
        got = file.readinto(view[filled:])
        if not got:
            raise SafetensorsError(f"load_safetensors: {path}: tensor {name!r}: the file "
                                   f"ended while reading it (truncated while reading)",
                                   path=path, entry=name)
        filled += got


class TensorInfo(NamedTuple):
    """One tensor as a safetensors header describes it: ``dtype`` is the format's tag
    (``"F32"``, ``"BF16"``...), ``shape`` a tuple."""

    dtype: str
    shape: tuple


def _checked_header(file, path):
    """(entries, data_start) of an open file: every entry as ``(tag, shape, begin, end)``
    after every check of the header and of the layout."""
    try:
        file_size = os.fstat(file.fileno()).st_size
        header, data_size = _read_header(file, path, file_size)
    except OSError as error:
        raise SafetensorsError(f"load_safetensors: {path}: cannot be read "
                               f"({type(error).__name__}: {error})", path=path) from error
    entries = {name: _check_entry(name, entry, data_size, path)
               for name, entry in header.items() if name != METADATA_KEY}
    _check_layout(entries, data_size, path)
    return entries, file_size - data_size


def read_safetensors_header(path):
    """The tensors of a ``.safetensors`` file as ``{name: TensorInfo}``, read and checked
    as :func:`load_safetensors` checks them, without reading or allocating any tensor: a
    caller can check the shapes and estimate the memory before anything is loaded."""
    path = os.fspath(path)
    with open_regular_file(path, "load_safetensors", "safetensors file",
                           SafetensorsError) as file:
        entries, _ = _checked_header(file, path)
    return {name: TensorInfo(tag, shape) for name, (tag, shape, _, _) in entries.items()}


def load_safetensors(path, *, allow_nonfinite=False):
    """Read every tensor of a ``.safetensors`` file into a dict of NumPy arrays (BF16 comes
    back as float32).

    The whole header is checked before any tensor is allocated (see the module docstring);
    a file that breaks the format raises :class:`SafetensorsError` (a
    :class:`~scratchlm.errors.FileFormatError`) naming the file and the tensor. A float
    tensor holding NaN or ±Inf is refused unless ``allow_nonfinite=True``."""
    path = os.fspath(path)
    file = open_regular_file(path, "load_safetensors", "safetensors file", SafetensorsError)
    with file:
        entries, data_start = _checked_header(file, path)
        try:
            tensors = {}
            for name, (tag, shape, begin, _) in sorted(entries.items(),
                                                         key=lambda item: item[1][2]):
                array = np.empty(shape, dtype=DTYPES[tag])
                if array.nbytes:
                    file.seek(data_start + begin)
                    _read_exactly(file, array, path, name)
                tensors[name] = bf16_to_float32(array) if tag == "BF16" else array
        except OSError as error:
            raise SafetensorsError(f"load_safetensors: {path}: cannot be read "
                                   f"({type(error).__name__}: {error})", path=path) from error
    if not allow_nonfinite:
        for name, (tag, *_) in entries.items():
            bad = count_nonfinite(tensors[name]) if tag in FLOAT_TAGS else 0
            if bad:
                raise SafetensorsError(
                    f"load_safetensors: {path}: tensor {name!r}: {bad} of its "
                    f"{tensors[name].size} values are NaN or infinite; the weights are "
                    f"damaged or come from a diverged run (pass allow_nonfinite=True to load "
                    f"them anyway)", path=path, entry=name)
    return {name: tensors[name] for name in entries}


# ----------------------------------------------------------------------------- writing
def _tag_of(name, array):
    tag = TAGS.get((array.dtype.kind, array.dtype.itemsize))
    if tag is None:
        raise ArgumentTypeError(f"save_safetensors: tensor {name!r} has dtype {array.dtype}, which "
                                f"safetensors cannot hold; supported: {', '.join(TAGS.values())}")
    return tag


def save_safetensors(tensors, path, metadata=None):
    """Write a dict of arrays (NumPy or CuPy) to ``path`` in the safetensors format, with an
    optional ``metadata`` dict of strings. Tensors are laid out largest itemsize first, so
    every tensor starts at a multiple of its itemsize, as the reference writer does."""
    if not isinstance(tensors, dict):
        raise ArgumentTypeError(f"save_safetensors: tensors must be a dict of name -> array, "
                                f"got {type(tensors).__name__}")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise ArgumentTypeError("save_safetensors: metadata must be a dict of strings to strings")
    arrays = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or name == METADATA_KEY:
            raise ArgumentError(f"save_safetensors: tensor name {name!r} must be a string "
                                f"other than {METADATA_KEY!r}")
        if not (isinstance(array, np.ndarray) or is_gpu_array(array)):
            raise ArgumentTypeError(f"save_safetensors: tensor {name!r} must be an array, "
                                    f"got {type(array).__name__}")
        array = to_numpy(array)
        arrays[name] = (_tag_of(name, array), array)

    header = {METADATA_KEY: dict(metadata)} if metadata else {}
    offset = 0
    order = sorted(arrays, key=lambda name: (-arrays[name][1].dtype.itemsize, name))
    for name in order:
        tag, array = arrays[name]
        header[name] = {"dtype": tag, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # pad so the data starts 8-byte aligned

    with open(path, "wb") as file:
        file.write(len(header_bytes).to_bytes(HEADER_LENGTH_BYTES, "little"))
        file.write(header_bytes)
        for name in order:
            tag, array = arrays[name]
            file.write(np.ascontiguousarray(array, dtype=DTYPES[tag]).tobytes())
