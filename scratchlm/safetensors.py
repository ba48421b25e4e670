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
"""

import json
import math
import os

import numpy as np

from scratchlm.backend import is_gpu_array, to_numpy

METADATA_KEY = "__metadata__"
HEADER_LENGTH_BYTES = 8

# dtype tag -> NumPy dtype of the stored bytes (BF16 is stored as 16-bit patterns)
DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
# NumPy dtype kind and size -> dtype tag, for writing (BF16 has no NumPy dtype)
TAGS = {(DTYPES[tag].kind, DTYPES[tag].itemsize): tag for tag in DTYPES if tag != "BF16"}


class SafetensorsError(ValueError):
    """A file that breaks the safetensors format."""


def bf16_to_float32(bits):
    """bfloat16 bit patterns (uint16) to float32: the same sign, exponent and top 7 mantissa
    bits, so the float32 pattern is the bf16 pattern shifted left by 16."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ----------------------------------------------------------------------------- reading
def _read_header(file, path, file_size):
    """The parsed JSON header and the size of the data section after it."""
    def fail(problem):
        raise SafetensorsError(f"load_safetensors: {path}: {problem}")

    prefix = file.read(HEADER_LENGTH_BYTES)
    if len(prefix) < HEADER_LENGTH_BYTES:
        fail(f"truncated: {file_size} bytes, fewer than the 8-byte header length")
    header_length = int.from_bytes(prefix, "little")
    if header_length > file_size - HEADER_LENGTH_BYTES:
        fail(f"header length {header_length} is larger than the file ({file_size} bytes); "
             "the file is truncated or not a safetensors file")
    try:
        header = json.loads(file.read(header_length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        fail(f"the header is not valid UTF-8 JSON ({error})")
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
        raise SafetensorsError(f"load_safetensors: {path}: tensor {name!r}: {problem}")

    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        fail("its header entry must be an object with dtype, shape and data_offsets")
    tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if tag not in DTYPES:
        fail(f"unsupported dtype {tag!r}; supported: {', '.join(DTYPES)}")

    def natural(n):
        return isinstance(n, int) and not isinstance(n, bool) and n >= 0

    if not isinstance(shape, list) or not all(natural(n) for n in shape):
        fail(f"shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(natural(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        fail(f"data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r}")
    begin, end = offsets
    if end > data_size:
        fail(f"data_offsets {offsets} run past the end of the data ({data_size} bytes)")
    expected = math.prod(shape) * DTYPES[tag].itemsize
    if end - begin != expected:
        fail(f"shape {shape} of {tag} needs {expected} bytes but data_offsets {offsets} "
             f"hold {end - begin}")
    return tag, tuple(shape), begin, end


def _check_no_overlap(entries, path):
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in entries.items()
                   if end > begin)
    for (_, previous_end, previous), (begin, _, name) in zip(spans, spans[1:]):
        if begin < previous_end:
            raise SafetensorsError(f"load_safetensors: {path}: tensor {name!r}: its bytes "
                                   f"overlap those of tensor {previous!r}")


def load_safetensors(path):
    """Read every tensor of a ``.safetensors`` file into a dict of NumPy arrays (BF16 comes
    back as float32). Raises :class:`SafetensorsError` naming the file and the tensor when
    the file breaks the format."""
    path = os.fspath(path)
    with open(path, "rb") as file:
        file_size = os.fstat(file.fileno()).st_size
        header, data_size = _read_header(file, path, file_size)
        entries = {name: _check_entry(name, entry, data_size, path)
                   for name, entry in header.items() if name != METADATA_KEY}
        _check_no_overlap(entries, path)
        data = np.fromfile(file, dtype=np.uint8, count=data_size)
    if data.size != data_size:
        raise SafetensorsError(f"load_safetensors: {path}: truncated while reading")

    tensors = {}
    for name, (tag, shape, begin, end) in entries.items():
        array = data[begin:end].view(DTYPES[tag]).reshape(shape)
        tensors[name] = bf16_to_float32(array) if tag == "BF16" else array
    return tensors


# ----------------------------------------------------------------------------- writing
def _tag_of(name, array):
    tag = TAGS.get((array.dtype.kind, array.dtype.itemsize))
    if tag is None:
        raise TypeError(f"save_safetensors: tensor {name!r} has dtype {array.dtype}, which "
                        f"safetensors cannot hold; supported: {', '.join(TAGS.values())}")
    return tag


def save_safetensors(tensors, path, metadata=None):
    """Write a dict of arrays (NumPy or CuPy) to ``path`` in the safetensors format, with an
    optional ``metadata`` dict of strings. Tensors are laid out largest itemsize first, so
    every tensor starts at a multiple of its itemsize, as the reference writer does."""
    if not isinstance(tensors, dict):
        raise TypeError(f"save_safetensors: tensors must be a dict of name -> array, "
                        f"got {type(tensors).__name__}")
    if metadata is not None and not (isinstance(metadata, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError("save_safetensors: metadata must be a dict of strings to strings")
    arrays = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or name == METADATA_KEY:
            raise ValueError(f"save_safetensors: tensor name {name!r} must be a string "
                             f"other than {METADATA_KEY!r}")
        if not (isinstance(array, np.ndarray) or is_gpu_array(array)):
            raise TypeError(f"save_safetensors: tensor {name!r} must be an array, "
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
