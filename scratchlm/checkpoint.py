"""Checkpoints: nested state in one ``.npz`` file that can never run code when loaded.

``save(state, path)`` takes dicts (string or integer keys), lists and tuples nested to any
reasonable depth, holding arrays, Python numbers (int, float, bool), None and strings. Every
array becomes one ``.npy`` entry of the ``.npz``, named after its place in the state
(``arrays/model/transformer.wte.weight``); everything else — the nesting, the numbers, the
strings — goes into one JSON document stored as a uint8 entry, ``checkpoint.json``, whose
tree points at the array entries by name. The document also lists every array with its
dtype, shape and the CRC-32 of its bytes (format version 2).

``load(path)`` reads it back: arrays come back as NumPy arrays, numbers and strings as
Python numbers and strings (exactly: a lone surrogate such as ``"\\ud800"``, which UTF-8
cannot encode, is stored as a JSON escape), dicts, lists and tuples as they were. Nothing
in the file is unpickled, so a checkpoint can never run code.

The file is written atomically: into a temporary file in the same directory, flushed to disk,
then renamed over ``path`` — a crash mid-save leaves the previous checkpoint intact, and the
temporary file is removed on any failure.

Loading checks everything before it costs anything
--------------------------------------------------
``load`` reads the archive itself (it does not hand the file to ``zipfile`` or ``np.load``)
and checks, before it allocates a single array:

* the zip layout: one end record at the very end (zip64 records where needed), a central
  directory exactly where it says, every entry stored uncompressed (what ``np.savez``
  writes; compressed entries are refused because their real size cannot be checked against
  the file's), not encrypted, without data descriptors, on one disk, its two sizes equal,
  its local header agreeing with its central one, no name twice, and the entries tiling the
  file from byte 0 to the central directory with no gap and no overlap — so the entries
  together are never larger than the file;
* every ``.npy`` header: a plain dtype (no object arrays: they would need pickle, and
  ``allow_pickle=False`` refuses them; no structured dtypes), at most 64 dimensions, and
  a shape whose bytes are exactly what the entry holds;
* the JSON document: valid UTF-8, nested at most ``MAX_JSON_DEPTH`` levels (checked on the
  bytes before parsing), no key twice, the format tag and a version this scratchlm reads,
  no unknown field, every node of a known kind, every array named exactly once and every
  entry of the archive named by the document (version 2: with the dtype and shape its
  header has);
* the values a training run depends on: every number stored under a ``step`` key is finite
  and not negative; ``model_config`` and ``train_config`` hold finite numbers, sizes that
  are not negative and dropouts in [0, 1]; and a ``model_config`` cannot describe a model
  much larger than the arrays in the file (see :func:`_check_model_config`).

Only then is each array allocated, at exactly its size, and read; its bytes must match the
zip entry's CRC-32 and (version 2) the checksum in the document, and a float array holding
NaN or ±Inf is refused unless ``load(path, allow_nonfinite=True)``. So a file never makes
``load`` allocate much more than its own size: its arrays at exactly their size, plus the
Python objects of its JSON document — a few times the document's bytes for the documents
``save`` writes, about 20 times at worst (a document of nothing but empty lists), since
that is what Python's ``json`` module costs. A file that claims gigabytes is refused having
allocated next to nothing.

Every failure is a :class:`CheckpointError`, a :class:`~scratchlm.errors.FileFormatError`
(and so a ``ValueError``), whose message names the file, the entry and what is wrong; a
missing file is a :class:`~scratchlm.errors.MissingFileError` (also a
``FileNotFoundError``).

Version 1 checkpoints (written before the document listed its arrays) are still read: they
have no per-array checksum in the document, but the zip entries' CRC-32 still guards every
byte, and every other check above applies to them too.
"""

import json
import math
import os
import re
import struct
import uuid
import zlib

import numpy as np

from scratchlm.backend import is_gpu_array, to_numpy
from scratchlm.errors import ArgumentError, ArgumentTypeError, FileFormatError, MissingFileError
from scratchlm.file_reading import JSONProblem, open_regular_file, parse_json

FORMAT = "scratchlm-checkpoint"
VERSION = 2
READABLE_VERSIONS = (1, 2)
DOCUMENT_ENTRY = "checkpoint.json"
ARRAY_PREFIX = "arrays"
NPY_SUFFIX = ".npy"

MAX_JSON_DEPTH = 256  # the document's nesting; a dict of the state costs 3 levels
MAX_NDIM = 64  # NumPy 2's limit
MAX_NPY_HEADER = 65536
# a model_config may describe up to this many elements more than the file's arrays hold
# (buffers that are no parameters, such as a sinusoidal position table)
CONFIG_SLACK_ELEMENTS = 1 << 22
# dtype kinds a checkpoint holds: bool, integers, floats, complex, strings, datetimes
ARRAY_KINDS = "biufcUSmM"
CHUNK_ELEMENTS = 1 << 20  # the NaN/Inf scan looks at this many values at a time

NOT_OURS = "is not a scratchlm checkpoint, or it is damaged"
RESTORE = "restore the file from a copy, or save the checkpoint again"


class CheckpointError(FileFormatError):
    """A file that is not a readable scratchlm checkpoint (a :class:`FileFormatError`)."""


def count_nonfinite(array):
    """How many values of a float or complex array are NaN or ±Inf (0 for other dtypes),
    scanned in chunks so the scan itself allocates little."""
    if array.dtype.kind not in "fc":
        return 0
    flat = array.ravel(order="K")
    bad = 0
    for start in range(0, flat.size, CHUNK_ELEMENTS):
        chunk = flat[start:start + CHUNK_ELEMENTS]
        bad += chunk.size - int(np.count_nonzero(np.isfinite(chunk)))
    return bad


def _crc32(array):
    """CRC-32 of a C-contiguous array's bytes."""
    return zlib.crc32(array.reshape(-1).view(np.uint8))


# ----------------------------------------------------------------------------- encoding
#: characters of a string key that an entry name cannot hold as they are: '%' (the escape
#: itself), '/' (the separator), '#' (integer keys), NUL (zip cuts a name at it) and lone
#: surrogates (not UTF-8)
_ESCAPED = re.compile("[%/#\x00\ud800-\udfff]")


def _escape(key):
    """An entry-name component for a dict key: in strings, '%', '/', '#' and NUL
    percent-escaped as '%XX' and a lone surrogate as '%uXXXX'; integer keys written as
    '#<n>'. Different keys of one dict never share a component."""
    if isinstance(key, int):
        return f"#{key}"
    return _ESCAPED.sub(lambda found: f"%{ord(found[0]):02X}" if found[0] < "\x80"
                        else f"%u{ord(found[0]):04X}", key)


def _savable(array, where):
    """``array`` as it is written: a C-contiguous NumPy array of a dtype load accepts."""
    array = to_numpy(array)
    dtype = array.dtype
    if dtype.hasobject:
        raise ArgumentTypeError(f"save: {where} is an array of dtype object; object arrays need "
                                "pickle and are refused (a checkpoint can never run code)")
    if dtype.kind not in ARRAY_KINDS or dtype.names is not None or dtype.shape:
        raise ArgumentTypeError(f"save: {where} is an array of dtype {dtype}; a checkpoint holds "
                                "arrays of booleans, numbers, strings and datetimes")
    return array if array.flags.c_contiguous else array.copy(order="C")


def _encode(value, components, where, arrays, depth=1):
    """The JSON tree of ``value``; its arrays are added to ``arrays`` (entry name -> array).

    ``components`` build the entry name, ``where`` is the readable key path for errors,
    ``depth`` the JSON nesting of the node (the load limit is enforced here too, so every
    state saved can be loaded, and a state that contains itself is an error, not a crash).
    JSON node kinds: plain JSON scalars for None/bool/int/float/str, JSON lists for lists,
    and tagged objects ``{"array": name}``, ``{"tuple": [...]}``, ``{"dict": [[key, v], ...]}``.
    """
    if isinstance(value, np.generic):  # NumPy scalars are saved as Python numbers
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth + 3 > MAX_JSON_DEPTH:
        raise ArgumentError(f"save: {where} is nested too deeply: a checkpoint holds dicts, "
                            f"lists and tuples about {MAX_JSON_DEPTH // 3} levels deep at most "
                            "(does the state contain itself?)")
    if isinstance(value, np.ndarray) or is_gpu_array(value):
        name = "/".join((ARRAY_PREFIX, *components))
        arrays[name] = _savable(value, where)
        return {"array": name}
    if isinstance(value, (list, tuple)):
        inner = depth + 1 if isinstance(value, list) else depth + 2
        items = [_encode(item, (*components, str(i)), f"{where}[{i}]", arrays, inner)
                 for i, item in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, dict):
        pairs = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise ArgumentTypeError(f"save: {where} has a key {key!r} of type "
                                        f"{type(key).__name__}; keys must be strings or integers")
            pairs.append([key, _encode(item, (*components, _escape(key)),
                                       f"{where}[{key!r}]", arrays, depth + 3)])
        return {"dict": pairs}
    raise ArgumentTypeError(
        f"save: {where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint "
        "holds arrays, numbers (int, float, bool), None, strings, and dicts, lists and tuples "
        "of them (a Tensor: save tensor.numpy())")


def _decode(node, arrays):
    """Rebuild the value of a (checked) JSON tree node, its arrays taken from ``arrays``.

    The tree is taken apart as it is rebuilt — a JSON list becomes the Python list itself,
    a tagged node is emptied once its value is built — so the document and the state are
    never both held whole in memory."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, (list, dict)):
                node[i] = _decode(item, arrays)
        return node
    if not isinstance(node, dict):
        return node
    if "array" in node:
        return arrays[node["array"]]
    if "tuple" in node:
        value = tuple(_decode(item, arrays) for item in node["tuple"])
    else:
        value = {key: _decode(item, arrays) for key, item in node["dict"]}
    node.clear()
    return value


# ----------------------------------------------------------------------------- save
def _document_bytes(document):
    """The JSON document as UTF-8: text as it is, unless a string holds a lone surrogate
    (``"\\ud800"``, which UTF-8 cannot encode), and then every non-ASCII character as a
    ``\\uXXXX`` escape, which reads back to the very same string."""
    try:
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(document).encode("ascii")


def save(state, path):
    """Write ``state`` (nested dicts/lists/tuples of arrays, numbers, None and strings) to
    ``path`` as one ``.npz``, atomically. CuPy arrays are copied to the host first."""
    path = os.fspath(path)
    arrays = {}
    tree = _encode(state, (), "state", arrays)
    listing = {name: {"dtype": array.dtype.str, "shape": list(array.shape),
                      "crc32": _crc32(array)} for name, array in arrays.items()}
    entries = {DOCUMENT_ENTRY: np.frombuffer(_document_bytes(
        {"format": FORMAT, "version": VERSION, "arrays": listing, "state": tree}),
        dtype=np.uint8)}
    entries.update(arrays)

    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    # created like any new file (mode 0o666 less the umask); O_EXCL: never an existing file
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    if not os.path.isdir(directory):
        raise MissingFileError(f"save: cannot write {path}: the folder {directory} does not "
                               "exist; create it first (os.makedirs)", path=path)
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
    fsync_directory(directory)


def fsync_directory(directory):
    """Make the rename itself durable (POSIX; Windows cannot open a directory)."""
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------- the archive
_EOCD = struct.Struct("<4sHHHHIIH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sIQI")
_ZIP64_EOCD = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_FLAG_ENCRYPTED, _FLAG_DATA_DESCRIPTOR, _FLAG_UTF8 = 0x1, 0x8, 0x800
_MAX32, _MAX16 = 0xFFFFFFFF, 0xFFFF


class _Member:
    """One entry of the archive, as its headers describe it."""

    __slots__ = ("entry", "raw_name", "crc", "size", "offset", "flags", "method", "time",
                 "date", "version", "start", "npy_header", "dtype", "shape", "fortran",
                 "listed_crc")

    def __init__(self, entry, raw_name, crc, size, offset, flags, method, time, date,
                 version):
        self.entry, self.raw_name, self.crc, self.size = entry, raw_name, crc, size
        self.offset, self.flags, self.method = offset, flags, method
        self.time, self.date, self.version = time, date, version


class _Reader:
    """Reads and checks one checkpoint file; ``fail`` raises the error naming it."""

    def __init__(self, file, path, size):
        self.file, self.path, self.size = file, path, size

    def fail(self, problem, entry=None, kind=NOT_OURS, hint=RESTORE):
        if entry is not None and entry.endswith(NPY_SUFFIX):
            entry = entry[:-len(NPY_SUFFIX)]  # named as np.load names it
        where = f"entry {entry!r}: " if entry is not None else ""
        prefix = f"load: {self.path} {kind}" if kind else f"load: {self.path}"
        message = f"{prefix}: {where}{problem}" + (f"; {hint}" if hint else "")
        raise CheckpointError(message, path=self.path, entry=entry)

    def read(self, offset, count, entry=None):
        self.file.seek(offset)
        data = self.file.read(count)
        if len(data) != count:
            self.fail("the file ended early (truncated while reading)", entry)
        return data

    # ------------------------------------------------------------------ zip directory
    def directory(self):
        """The archive's members by entry name (``np.load``'s: without ``.npy``), checked
        to tile the file before the central directory."""
        fail = self.fail
        if self.size < _EOCD.size:
            fail("it is not an .npz archive, or it is truncated", hint=None)
        eocd_at = self.size - _EOCD.size
        (signature, disk, cd_disk, disk_entries, entries, cd_size, cd_offset,
         comment) = _EOCD.unpack(self.read(eocd_at, _EOCD.size))
        if signature != b"PK\x05\x06" or comment:
            fail("it is not an .npz archive, or it is truncated (no zip end record in its "
                 "last 22 bytes)", hint=None)
        cd_end = eocd_at
        locator_at = eocd_at - _ZIP64_LOCATOR.size
        if locator_at >= 0 and self.read(locator_at, 4) == b"PK\x06\x07":
            _, z_disk, record_at, disks = _ZIP64_LOCATOR.unpack(
                self.read(locator_at, _ZIP64_LOCATOR.size))
            if z_disk or disks != 1 or record_at != locator_at - _ZIP64_EOCD.size:
                fail("its zip64 end record is not where its locator says")
            (signature, record_size, _, _, disk, cd_disk, disk_entries, entries64, cd_size64,
             cd_offset64) = _ZIP64_EOCD.unpack(self.read(record_at, _ZIP64_EOCD.size))
            if signature != b"PK\x06\x06" or record_size != _ZIP64_EOCD.size - 12:
                fail("its zip64 end record is damaged")
            for small, big in ((entries, entries64), (cd_size, cd_size64),
                               (cd_offset, cd_offset64)):
                if small not in (big, _MAX16, _MAX32):
                    fail("its zip64 end record contradicts its zip end record")
            entries, cd_size, cd_offset, cd_end = entries64, cd_size64, cd_offset64, record_at
        if disk or cd_disk:
            fail("it is a zip archive split over several disks, which no .npz is")
        if disk_entries != entries:
            fail(f"its end record is damaged (it counts {disk_entries} and {entries} entries)")
        if cd_offset + cd_size != cd_end:
            fail(f"its central directory ({cd_size} bytes at byte {cd_offset}) is not where "
                 f"the end record says (it should end at byte {cd_end})")
        if entries * _CENTRAL.size > cd_size:
            fail(f"its end record claims {entries} entries, more than a central directory "
                 f"of {cd_size} bytes can describe")
        members = self._central_directory(self.read(cd_offset, cd_size), entries)
        self._check_local_headers(members, cd_offset)
        return members

    def _central_directory(self, data, count):
        members, at = {}, 0
        for _ in range(count):
            if at + _CENTRAL.size > len(data):
                self.fail("its central directory is truncated")
            (signature, _, version, flags, method, time, date, crc, csize, usize, name_length,
             extra_length, comment_length, disk, _, _, offset) = _CENTRAL.unpack_from(data, at)
            if signature != b"PK\x01\x02":
                self.fail(f"its central directory is damaged at byte {at}")
            name_at = at + _CENTRAL.size
            at = name_at + name_length + extra_length + comment_length
            if at > len(data):
                self.fail("its central directory is truncated")
            raw_name = data[name_at:name_at + name_length]
            name = self._name(raw_name, flags)
            extra = data[name_at + name_length:name_at + name_length + extra_length]
            wanted = [key for key, value in (("usize", usize), ("csize", csize),
                                             ("offset", offset)) if value == _MAX32]
            if disk == _MAX16:
                wanted.append("disk")
            big = self._zip64_fields(extra, wanted, name)
            usize, csize = big.get("usize", usize), big.get("csize", csize)
            offset, disk = big.get("offset", offset), big.get("disk", disk)
            self._check_member_kind(name, flags, method, usize, csize, disk)
            entry = name[:-len(NPY_SUFFIX)]
            if entry in members:
                self.fail("it appears twice in the archive", name)
            members[entry] = _Member(entry, raw_name, crc, csize, offset, flags, method, time,
                                     date, version)
        if at != len(data):
            self.fail(f"its central directory has {len(data) - at} bytes after its "
                      f"{count} entries")
        return members

    def _name(self, raw_name, flags):
        try:
            name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
        except UnicodeDecodeError:
            self.fail(f"the entry name {raw_name!r} is not valid UTF-8")
        if not name.endswith(NPY_SUFFIX):
            self.fail("it is not a .npy array (every entry of an .npz is one)", name)
        return name

    def _zip64_fields(self, extra, wanted, name):
        """The 64-bit values the zip64 extra field holds for the fields in ``wanted``."""
        at, found = 0, None
        while at < len(extra):
            if at + 4 > len(extra):
                self.fail("its zip extra field is damaged", name)
            kind, length = struct.unpack_from("<HH", extra, at)
            if at + 4 + length > len(extra):
                self.fail("its zip extra field runs past its end", name)
            if kind == 1:
                if found is not None:
                    self.fail("it has two zip64 extra fields", name)
                found = extra[at + 4:at + 4 + length]
            at += 4 + length
        if not wanted:
            return {}
        sizes = [4 if key == "disk" else 8 for key in wanted]
        if found is None or len(found) < sum(sizes):
            self.fail("its sizes need a zip64 extra field that is missing or too short", name)
        values, at = {}, 0
        for key, width in zip(wanted, sizes):
            values[key] = int.from_bytes(found[at:at + width], "little")
            at += width
        return values

    def _check_member_kind(self, name, flags, method, usize, csize, disk):
        if flags & _FLAG_ENCRYPTED:
            self.fail("it is encrypted (zip flag bit 0); a checkpoint never is, so this "
                      "file was made by another tool", name, hint=None)
        if method == 8:
            self.fail("it is compressed with deflate (as np.savez_compressed writes); "
                      "scratchlm.load reads only uncompressed entries, whose sizes it can "
                      "check against the file's", name,
                      hint="load it with np.load and save it again with scratchlm.save")
        if method != 0:
            self.fail(f"it uses zip compression method {method}, which scratchlm.load does "
                      "not read (it reads uncompressed entries only)", name, hint=None)
        if flags & _FLAG_DATA_DESCRIPTOR:
            self.fail("it has a trailing data descriptor (zip flag bit 3), which "
                      "scratchlm.save never writes", name, hint=None)
        if flags & ~_FLAG_UTF8:
            self.fail(f"it has zip flags {flags:#06x} that scratchlm.save never writes", name,
                      hint=None)
        if disk:
            self.fail(f"it starts on disk {disk} of a split archive", name)
        if usize != csize:
            self.fail(f"it claims {usize} bytes uncompressed but stores {csize}; an "
                      "uncompressed entry's two sizes are equal", name)

    def _check_local_headers(self, members, cd_offset):
        """Each local header agrees with the central directory, and the entries follow each
        other from byte 0 to the central directory without a gap or an overlap."""
        expected = 0
        for member in sorted(members.values(), key=lambda m: m.offset):
            name = member.entry
            if member.offset != expected:
                what = "overlaps the entry before it" if member.offset < expected else \
                    f"leaves {member.offset - expected} unexplained bytes before it"
                self.fail(f"its local header at byte {member.offset} {what}", name)
            if member.offset + _LOCAL.size > cd_offset:
                self.fail("its local header runs into the central directory", name)
            (signature, version, flags, method, time, date, crc, csize, usize, name_length,
             extra_length) = _LOCAL.unpack(self.read(member.offset, _LOCAL.size, name))
            if signature != b"PK\x03\x04":
                self.fail(f"no local header at byte {member.offset}", name)
            name_at = member.offset + _LOCAL.size
            header_end = name_at + name_length + extra_length
            if header_end > cd_offset:
                self.fail("its local header runs into the central directory", name)
            tail = self.read(name_at, name_length + extra_length, name)
            if tail[:name_length] != member.raw_name:
                self.fail(f"its local header names {tail[:name_length]!r}", name)
            wanted = [key for key, value in (("usize", usize), ("csize", csize))
                      if value == _MAX32]
            big = self._zip64_fields(tail[name_length:], wanted, name)
            usize, csize = big.get("usize", usize), big.get("csize", csize)
            if ((version, flags, method, time, date, crc, csize, usize) !=
                    (member.version, member.flags, member.method, member.time, member.date,
                     member.crc, member.size, member.size)):
                self.fail("its local header disagrees with the central directory", name)
            member.start = header_end
            expected = header_end + member.size
            if expected > cd_offset:
                self.fail(f"its {member.size} bytes run past the start of the central "
                          f"directory at byte {cd_offset}", name)
        if expected != cd_offset:
            self.fail(f"{cd_offset - expected} unexplained bytes lie between the last entry "
                      "and the central directory")

    # ------------------------------------------------------------------ .npy headers
    _NPY = re.compile(r"\{\s*'descr'\s*:\s*(?P<descr>'[^']*'|\[.*\])\s*,"
                      r"\s*'fortran_order'\s*:\s*(?P<fortran>True|False)\s*,"
                      r"\s*'shape'\s*:\s*\((?P<shape>[0-9,\sL]*)\)\s*,?\s*\}\s*\Z", re.DOTALL)
    _DESCR = re.compile(r"[<>|=]?(b1|[iu][1248]|f(2|4|8|12|16)|c(8|16|24|32)|[US][0-9]{1,9}"
                        r"|[mM]8(\[[0-9]{0,9}[a-zA-Z]{1,3}\])?)\Z")

    def npy_header(self, member):
        """Read and check the ``.npy`` header of ``member``: dtype, shape, byte count."""
        name = member.entry

        def fail(problem, hint=RESTORE):
            self.fail(problem, name, hint=hint)

        prefix = self.read(member.start, min(member.size, 12), name)
        if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY":
            fail("it is not a .npy array (no NUMPY magic string)")
        version = (prefix[6], prefix[7])
        if version == (1, 0):
            header_start, length = 10, int.from_bytes(prefix[8:10], "little")
        elif version in ((2, 0), (3, 0)) and len(prefix) == 12:
            header_start, length = 12, int.from_bytes(prefix[8:12], "little")
        else:
            fail(f"it is a .npy array of format version {version[0]}.{version[1]}, which "
                 "this scratchlm does not read")
        if length > MAX_NPY_HEADER or header_start + length > member.size:
            fail(f"its .npy header claims {length} bytes, more than "
                 f"{min(MAX_NPY_HEADER, member.size - header_start)}")
        raw = self.read(member.start + header_start, length, name)
        try:
            text = raw.decode("utf-8" if version == (3, 0) else "latin-1")
        except UnicodeDecodeError:
            fail("its .npy header is not valid UTF-8")
        match = self._NPY.match(text)
        if match is None:
            fail(f"its .npy header {text.strip()[:120]!r} is not one NumPy writes")
        descr = match["descr"]
        if descr.startswith("["):
            fail("it holds a structured dtype, which a checkpoint never does", hint=None)
        descr = descr[1:-1]
        if descr.lstrip("<>|=").startswith("O"):
            fail(f"it holds Python objects (dtype {descr!r}), which need pickle to read; "
                 "they are refused, as np.load with allow_pickle=False refuses them "
                 "(a checkpoint can never run code)", hint=None)
        if not self._DESCR.match(descr):
            fail(f"its dtype {descr!r} is not one a checkpoint holds")
        try:
            dtype = np.dtype(descr)
        except (TypeError, ValueError):
            fail(f"its dtype {descr!r} is not one NumPy knows")
        dims = [part.strip().rstrip("L") for part in match["shape"].split(",")]
        if dims and not dims[-1]:
            dims.pop()
        if len(dims) > MAX_NDIM or not all(re.fullmatch(r"[0-9]{1,19}", d) for d in dims):
            fail(f"its .npy shape ({match['shape']}) is not a tuple of at most {MAX_NDIM} "
                 "sizes")
        shape = tuple(int(d) for d in dims)
        payload = member.size - header_start - length
        needed = math.prod(shape) * dtype.itemsize
        if needed != payload:
            fail(f"its shape {shape} of {dtype} needs {needed} bytes but the entry holds "
                 f"{payload}")
        member.npy_header = prefix[:header_start] + raw
        member.dtype, member.shape = dtype, shape
        member.fortran = match["fortran"] == "True"

    def payload(self, member, array):
        """Fill ``array`` (C-contiguous, exactly the payload's size) with the entry's data
        and check the entry's zip CRC-32; returns the CRC-32 of the payload alone."""
        view = memoryview(array.reshape(-1).view(np.uint8))
        self.file.seek(member.start + len(member.npy_header))
        filled = 0
        while filled < len(view):
            got = self.file.readinto(view[filled:])
            if not got:
                self.fail("the file ended early (truncated while reading)", member.entry)
            filled += got
        payload_crc = zlib.crc32(view)
        entry_crc = zlib.crc32(view, zlib.crc32(member.npy_header))
        if entry_crc != member.crc:
            self.fail(f"its bytes do not match their CRC-32 (stored {member.crc:#010x}, "
                      f"computed {entry_crc:#010x})", member.entry)
        return payload_crc


# ----------------------------------------------------------------------------- the document
_SCALARS = (type(None), bool, int, float, str)
_WIDTH_FIELDS = ("n_embd", "d_model", "hidden_size")
_LAYER_FIELDS = ("n_layer", "n_layers", "num_layers", "num_hidden_layers",
                 "num_encoder_layers", "num_decoder_layers")
_LENGTH_FIELDS = ("block_size", "max_len", "max_position", "max_position_embeddings",
                  "n_positions")
_FEEDFORWARD_FIELDS = ("dim_feedforward", "intermediate_size", "d_ff")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_size_name(key):
    return (key in _WIDTH_FIELDS + _LAYER_FIELDS + _LENGTH_FIELDS + _FEEDFORWARD_FIELDS
            or key.endswith(("_size", "_steps", "_interval", "_batches"))
            or key.startswith(("n_", "num_", "d_", "dim_", "max_")))


class _Document:
    """Checks the JSON document of a checkpoint against its archive."""

    def __init__(self, reader, members):
        self.reader = reader
        self.members = members
        self.referenced = {}

    def fail(self, problem, kind=NOT_OURS, hint=RESTORE):
        self.reader.fail(problem, DOCUMENT_ENTRY, kind=kind, hint=hint)

    def check(self, document):
        """The checked document; ``self.referenced`` maps array names to members."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            self.fail("it lacks the format tag of a scratchlm checkpoint",
                      kind="is not a scratchlm checkpoint", hint=None)
        version = document.get("version")
        if type(version) is not int or version not in READABLE_VERSIONS:
            newer = type(version) is int and version > max(READABLE_VERSIONS)
            self.fail(f"checkpoint format version {version!r}; this scratchlm reads versions "
                      f"{' and '.join(map(str, READABLE_VERSIONS))}", kind="" if newer else
                      NOT_OURS, hint="a newer scratchlm wrote it: upgrade scratchlm to read "
                      "it" if newer else RESTORE)
        fields = {"format", "version", "state"} | ({"arrays"} if version >= 2 else set())
        if set(document) != fields:
            missing, unknown = sorted(fields - set(document)), sorted(set(document) - fields)
            self.fail(f"a version {version} document holds the fields {sorted(fields)}; "
                      + "; ".join(part for part in (
                          f"this one lacks {missing}" if missing else "",
                          f"this one has unknown fields {unknown}" if unknown else "")
                          if part))
        self._tree(document["state"], "state")
        unused = sorted(set(self.members) - set(self.referenced) - {DOCUMENT_ENTRY})
        if unused:
            self.reader.fail(f"it is in the archive but {DOCUMENT_ENTRY} does not name it",
                             unused[0])
        if version >= 2:
            self._listing(document["arrays"])
        self._semantics(document["state"])

    def _tree(self, node, where):
        if isinstance(node, _SCALARS):
            return
        if isinstance(node, list):
            for i, item in enumerate(node):
                if not isinstance(item, _SCALARS):
                    self._tree(item, f"{where}[{i}]")
            return
        if not isinstance(node, dict) or len(node) != 1:
            self.fail(f"{where} is a node of an unknown kind ({_kind(node)})")
        (tag, value), = node.items()
        if tag == "array":
            self._array(value, where)
        elif tag == "tuple" and isinstance(value, list):
            self._tree(value, where)
        elif tag == "dict" and isinstance(value, list):
            keys = set()
            for pair in value:
                if not (isinstance(pair, list) and len(pair) == 2):
                    self.fail(f"{where} has a dict item that is not a [key, value] pair")
                key, item = pair
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    self.fail(f"{where} has a key {key!r}; keys are strings or integers")
                if key in keys:
                    self.fail(f"{where} has the key {key!r} twice")
                keys.add(key)
                inner = f"{where}[{key!r}]"
                if key == "step" and _is_number(item) and not (math.isfinite(item)
                                                                 and item >= 0):
                    self.fail(f"{inner} is {item!r}; a step count is a finite number, not "
                              "negative", kind="")
                if not isinstance(item, _SCALARS):
                    self._tree(item, inner)
        else:
            self.fail(f"{where} is a node of an unknown kind ({_kind(node)})")

    def _array(self, name, where):
        if not isinstance(name, str) or not (name == ARRAY_PREFIX
                                             or name.startswith(ARRAY_PREFIX + "/")):
            self.fail(f"{where} names the array {name!r}, which is not an array entry's name")
        member = self.members.get(name)
        if member is None:
            self.reader.fail(f"{where} names it but the archive has no such entry", name)
        if name in self.referenced:
            self.reader.fail(f"{DOCUMENT_ENTRY} names it twice", name)
        self.referenced[name] = member

    def _listing(self, listing):
        if not isinstance(listing, dict) or set(listing) != set(self.referenced):
            self.fail("its list of arrays does not match the arrays its state names")
        for name, info in listing.items():
            member = self.members[name]
            if not (isinstance(info, dict) and set(info) == {"dtype", "shape", "crc32"}):
                self.fail(f"its listing of {name!r} does not hold exactly dtype, shape, crc32")
            dtype, shape, crc = info["dtype"], info["shape"], info["crc32"]
            if not (isinstance(dtype, str) and dtype == member.dtype.str
                    and isinstance(shape, list) and tuple(shape) == member.shape
                    and all(type(n) is int for n in shape)
                    and type(crc) is int and 0 <= crc <= _MAX32):
                self.reader.fail(f"its .npy header (dtype {member.dtype.str}, shape "
                                 f"{list(member.shape)}) disagrees with {DOCUMENT_ENTRY} "
                                 f"(dtype {dtype!r}, shape {shape!r}, crc32 {crc!r})", name)
            if member.fortran:
                self.reader.fail("it is stored in Fortran order; scratchlm.save writes C "
                                 "order", name)
            member.listed_crc = crc

    # ------------------------------------------------------------------ training state
    def _semantics(self, state):
        """Checks on the values a training run depends on (top-level keys of the state)."""
        if not (isinstance(state, dict) and "dict" in state):
            return
        top = dict((key, value) for key, value in state["dict"])
        for key in ("model_config", "train_config"):
            config = top.get(key)
            if isinstance(config, dict) and "dict" in config:
                self._config(dict(config["dict"]), f"state[{key!r}]")
        config = top.get("model_config")
        if isinstance(config, dict) and "dict" in config:
            _check_model_config(dict(config["dict"]), self.reader, self.members.values())

    def _config(self, config, where):
        for key, value in config.items():
            inner = f"{where}[{key!r}]"
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"{inner} is {value!r}, not a finite number", kind="")
            if not isinstance(key, str) or not _is_number(value):
                continue
            if _is_size_name(key) and value < 0:
                self.fail(f"{inner} is {value!r}; a size is not negative", kind="")
            if key.endswith("dropout") and not 0 <= value <= 1:
                self.fail(f"{inner} is {value!r}; a dropout is a probability in [0, 1]",
                          kind="")


def _kind(node):
    if isinstance(node, dict):
        return f"an object with the fields {sorted(node)[:5]}"
    return type(node).__name__


def _check_model_config(config, reader, members):
    """Refuse a ``model_config`` that describes a model far larger than the file's arrays.

    This module knows no model class, so the check is generic, on the field names that
    scratchlm's configurations (GPTConfig, BertConfig, Seq2SeqConfig) and Hugging Face's
    use: every such model has an embedding of (vocabulary × width) and a position table of
    (length × width), and each layer holds at least 4·width² attention weights plus
    2·width·feed-forward. That lower bound on its element count may exceed the elements
    of all arrays in the file by at most ``CONFIG_SLACK_ELEMENTS`` (for buffers such as a
    sinusoidal table) — so a file of a few kilobytes cannot make the caller build a model
    of billions of parameters from its configuration."""
    def size(keys):
        values = [config[key] for key in keys if _is_number(config.get(key))]
        return [int(v) for v in values if v == v and abs(v) != math.inf]

    width = max(size(_WIDTH_FIELDS), default=0)
    vocabulary = sum(int(v) for key, v in config.items() if isinstance(key, str)
                     and key.endswith("vocab_size") and _is_number(v))
    length = max(size(_LENGTH_FIELDS), default=0)
    layers = sum(size(_LAYER_FIELDS))
    feedforward = max(size(_FEEDFORWARD_FIELDS), default=0)
    described = width * (vocabulary + length) + layers * (4 * width * width
                                                          + 2 * width * feedforward)
    stored = sum(math.prod(member.shape) for member in members
                 if member.entry != DOCUMENT_ENTRY)
    if described > stored + CONFIG_SLACK_ELEMENTS:
        reader.fail(f"state['model_config'] describes a model of at least {described:,} "
                    f"parameters, but the file's arrays hold only {stored:,} values",
                    DOCUMENT_ENTRY, kind="",
                    hint="the configuration does not belong to these weights; the file is "
                         "damaged or was put together by hand")


# ----------------------------------------------------------------------------- load
def load(path, *, allow_nonfinite=False):
    """Read a checkpoint written by :func:`save`: arrays come back as NumPy arrays, numbers
    and strings as Python values, the nesting as it was. Never unpickles anything.

    Everything in the file is checked before any array is allocated (see the module
    docstring); any problem raises :class:`CheckpointError` (a
    :class:`~scratchlm.errors.FileFormatError`) naming the file and the entry. A float
    array holding NaN or ±Inf is refused unless ``allow_nonfinite=True``."""
    path = os.fspath(path)
    file = open_regular_file(path, "load", "checkpoint file", CheckpointError)
    with file:
        try:
            reader = _Reader(file, path, os.fstat(file.fileno()).st_size)
            return _load(reader, allow_nonfinite)
        except OSError as error:
            raise CheckpointError(f"load: {path} cannot be read ({type(error).__name__}: "
                                  f"{error})", path=path) from error


def _load(reader, allow_nonfinite):
    members = reader.directory()
    if DOCUMENT_ENTRY not in members:
        reader.fail(f"it has no {DOCUMENT_ENTRY} entry", kind="is not a scratchlm checkpoint",
                    hint=None)
    for member in members.values():
        reader.npy_header(member)
    document_member = members[DOCUMENT_ENTRY]
    if document_member.dtype != np.uint8 or len(document_member.shape) != 1:
        reader.fail("it is not a 1-D uint8 array of JSON bytes", DOCUMENT_ENTRY)
    raw = np.empty(document_member.shape, dtype=np.uint8)
    reader.payload(document_member, raw)
    try:
        document = parse_json(raw.tobytes(), MAX_JSON_DEPTH, finite=False)
    except JSONProblem as problem:
        reader.fail(f"it is not valid JSON ({problem})", DOCUMENT_ENTRY)
    del raw
    checker = _Document(reader, members)
    checker.check(document)

    # Everything is consistent: now allocate and read each array, exactly its size.
    arrays = {}
    for name, member in sorted(checker.referenced.items(), key=lambda item: item[1].offset):
        shape = member.shape[::-1] if member.fortran else member.shape
        array = np.empty(shape, dtype=member.dtype)
        payload_crc = reader.payload(member, array)
        listed = getattr(member, "listed_crc", None)
        if listed is not None and payload_crc != listed:
            reader.fail(f"its bytes do not match the checksum {DOCUMENT_ENTRY} lists "
                        f"(listed {listed:#010x}, computed {payload_crc:#010x})", name)
        if member.fortran:
            array = array.T
        if not allow_nonfinite:
            bad = count_nonfinite(array)
            if bad:
                reader.fail(f"{bad} of its {array.size} values are NaN or infinite", name,
                            kind="",
                            hint="the run diverged or the file is damaged; pass "
                                 "allow_nonfinite=True to load it anyway")
        arrays[name] = array
    state = document.pop("state")
    del document
    return _decode(state, arrays)
