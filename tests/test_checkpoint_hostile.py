"""Hostile and inconsistent checkpoints: every one is refused with a FileFormatError that
names the file, before it costs memory; old (version 1) checkpoints still load."""

import functools
import io
import json
import math
import os
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from conftest import assert_damage_is_refused

from scratchlm.checkpoint import MAX_JSON_DEPTH, CheckpointError, load, save
from scratchlm.errors import FileFormatError, MissingFileError, ScratchlmError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- file makers
def npy_bytes(array):
    """The bytes of one .npy file (object arrays pickled, as np.save would)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npy_with_header(header, payload=b"", version=(1, 0)):
    """A .npy file with a hand-written header dict literal (padded as NumPy pads it)."""
    text = header.encode("latin-1")
    size_bytes = 2 if version == (1, 0) else 4
    text += b" " * (-(len(text) + 1 + 8 + size_bytes) % 64) + b"\n"
    return (b"\x93NUMPY" + bytes(version) + len(text).to_bytes(size_bytes, "little") + text
            + payload)


def build_zip(members, comment=b"", prefix=b"", gap=b""):
    """A zip archive of stored ``members``: dicts with ``name`` and ``data`` and, to make it
    odd, ``flags``, ``method``, ``crc``, ``usize``/``csize`` (central and local; zip64
    extra fields when over 32 bits), ``local_name``, ``offset`` (central directory's) and
    ``disk``. ``prefix`` goes before the first entry, ``gap`` between entries."""
    out, central = bytearray(prefix), bytearray()
    for i, member in enumerate(members):
        if i:
            out += gap
        name = member["name"].encode()
        data = member["data"]
        flags, method = member.get("flags", 0), member.get("method", 0)
        crc = member.get("crc", zlib.crc32(data))
        usize, csize = member.get("usize", len(data)), member.get("csize", len(data))
        big = usize > 0xFFFFFFFF or csize > 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, usize, csize) if big else b""
        usize32, csize32 = (0xFFFFFFFF, 0xFFFFFFFF) if big else (usize, csize)
        offset = member.get("offset", len(out))
        local_name = member.get("local_name", member["name"]).encode()
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, flags, method, 0, 33, crc,
                           csize32, usize32, len(local_name), len(extra))
        out += local_name + extra + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, flags, method, 0,
                               33, crc, csize32, usize32, len(name), len(extra), 0,
                               member.get("disk", 0), 0, 0o600 << 16, offset)
        central += name + extra
    count = len(members)
    out += central
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(central),
                       len(out) - len(central), len(comment)) + comment
    return bytes(out)


def document(state, arrays, version=2, **fields):
    """The checkpoint.json member for a JSON ``state`` tree naming ``arrays``."""
    doc = {"format": "scratchlm-checkpoint", "version": version}
    if version >= 2:
        doc["arrays"] = {name: {"dtype": a.dtype.str, "shape": list(a.shape),
                                "crc32": zlib.crc32(np.ascontiguousarray(a).tobytes())}
                         for name, a in arrays.items()}
    doc["state"] = state
    doc.update(fields)
    return json_member(json.dumps(doc))


def json_member(text):
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return {"name": "checkpoint.json.npy", "data": npy_bytes(np.frombuffer(raw, np.uint8))}


def array_members(arrays):
    return [{"name": name + ".npy", "data": npy_bytes(a)} for name, a in arrays.items()]


def weights_state(arrays, **scalars):
    """A state tree {"w": <array>, ...scalars} for arrays named arrays/<key>."""
    pairs = [[name.split("/", 1)[1], {"array": name}] for name in arrays]
    pairs += [[key, value] for key, value in scalars.items()]
    return {"dict": pairs}


def checkpoint_zip(arrays=None, state=None, version=2, **fields):
    arrays = {"arrays/w": np.arange(6, dtype=np.float32).reshape(2, 3)} if arrays is None \
        else arrays
    state = weights_state(arrays, step=3) if state is None else state
    return build_zip([document(state, arrays, version, **fields), *array_members(arrays)])


def good_bytes(tmp_path):
    """A real checkpoint written by save()."""
    state = {"model": {"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                       "b": np.ones(3)}, "step": 5, "name": "run"}
    save(state, tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


def patched(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


def flip(data, offset):
    return patched(data, offset, bytes([data[offset] ^ 0xFF]))


def entry_offsets(data):
    """zipfile's view of an archive: {name: (local header offset, data start, size)} and the
    central directory offset."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        result = {}
        for info in archive.infolist():
            name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_length + extra_length
            result[info.filename] = (info.header_offset, start, info.compress_size)
        cd_offset = struct.unpack_from("<I", data, len(data) - 6)[0]
    return result, cd_offset


def set_both_headers(data, name, field_offset, fmt, value):
    """Overwrite a field in the local and the central header of entry ``name``
    (``field_offset``: in the local header; the central one is 2 bytes later)."""
    offsets, cd_offset = entry_offsets(data)
    local = offsets[name][0]
    data = patched(data, local + field_offset, struct.pack(fmt, value))
    at = cd_offset
    while data[at:at + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, at + 28)
        if data[at + 46:at + 46 + name_length].decode() == name:
            return patched(data, at + field_offset + 2, struct.pack(fmt, value))
        at += 46 + name_length + extra_length + comment_length
    raise AssertionError(name)


def deflated(member_data, claimed=None):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(member_data) + compressor.flush()
    return {"data": stream, "method": 8, "crc": zlib.crc32(member_data),
            "usize": len(member_data) if claimed is None else claimed, "csize": len(stream)}


@functools.cache
def deflate_bomb(total=1 << 30):
    """A raw deflate stream of ``total`` zero bytes after a .npy header: about 1 MB that
    expands to ``total`` bytes."""
    header = npy_with_header(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({total},), }}")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 24)
    parts = [compressor.compress(header)]
    crc = zlib.crc32(header)
    for _ in range(total >> 24):
        parts.append(compressor.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(compressor.flush())
    stream = b"".join(parts)
    return {"data": stream, "method": 8, "crc": crc, "usize": len(header) + total,
            "csize": len(stream)}


def with_member(extra_member, arrays=None):
    arrays = {"arrays/w": np.arange(3.0)} if arrays is None else arrays
    return build_zip([document(weights_state(arrays), arrays), *array_members(arrays),
                      extra_member])


W = {"arrays/w": np.arange(3.0)}
W_STATE = weights_state(W)


def replaced_array(npy):
    """A checkpoint whose arrays/w entry holds ``npy`` (the document lists it as W's)."""
    doc = document(W_STATE, W)
    return build_zip([doc, {"name": "arrays/w.npy", "data": npy}])


def state_with(scalars, arrays=W):
    return checkpoint_zip(arrays, weights_state(arrays, **scalars))


def config_checkpoint(config, arrays=W, key="model_config"):
    state = weights_state(arrays)
    state["dict"].append([key, {"dict": [[k, v] for k, v in config.items()]}])
    return checkpoint_zip(arrays, state)


GPT3_175B = dict(vocab_size=50257, block_size=2048, n_layer=96, n_head=96, n_embd=12288,
                 dropout=0.0, bias=True)
GPT_100B = dict(vocab_size=50257, block_size=2048, n_layer=80, n_head=80, n_embd=10240,
                dropout=0.0, bias=True)


def nested_json(depth):
    return ('{"format": "scratchlm-checkpoint", "version": 2, "arrays": {}, "state": '
            + "[" * depth + "]" * depth + "}")


# Each case: (id, a function of the good checkpoint's bytes -> hostile bytes, words the
# message must hold). Every one must raise FileFormatError naming the file.
def truncations():
    cases = []
    for where in ("0", "1", "4", "21", "22", "30", "100", "n//4", "n//2", "3*n//4", "n-23",
                  "n-22", "n-21", "n-1"):
        cases.append((f"truncated at {where}",
                      lambda d, w=where: d[:eval(w, {"n": len(d)})], ""))
    return cases


def flips():
    def at_entry(name, part, delta=0):
        def make(d):
            offsets, _ = entry_offsets(d)
            local, start, size = offsets[name]
            position = {"local": local + delta, "start": start + delta,
                        "middle": start + (size + 128) // 2, "last": start + size - 1}[part]
            return flip(d, position)
        return make

    def in_central(delta):
        def make(d):
            return flip(d, entry_offsets(d)[1] + delta)
        return make

    return [
        ("flipped local signature", at_entry("arrays/model/w.npy", "local"), ""),
        ("flipped local crc", at_entry("arrays/model/w.npy", "local", 14), "disagrees"),
        ("flipped local name", at_entry("arrays/model/w.npy", "local", 31), "names"),
        ("flipped .npy magic", at_entry("arrays/model/w.npy", "start"), "NUMPY"),
        ("flipped .npy header", at_entry("arrays/model/w.npy", "start", 20), ""),
        ("flipped array data", at_entry("arrays/model/w.npy", "middle"), "CRC-32"),
        ("flipped last array byte", at_entry("arrays/model/b.npy", "last"), "CRC-32"),
        ("flipped JSON document", at_entry("checkpoint.json.npy", "middle"), "CRC-32"),
        ("flipped central signature", in_central(0), "central directory"),
        ("flipped central size", in_central(20), ""),
        ("flipped central offset", in_central(42), ""),
        ("flipped end record count", lambda d: flip(d, len(d) - 12), ""),
        ("flipped end record offset", lambda d: flip(d, len(d) - 6), "central directory"),
    ]


def zip_tricks():
    wdoc = document(W_STATE, W)
    wnpy = npy_bytes(W["arrays/w"])
    return [
        ("encrypted entry", lambda d: set_both_headers(d, "arrays/model/w.npy", 6, "<H", 1),
         "encrypted"),
        ("data descriptor flag", lambda d: set_both_headers(d, "arrays/model/w.npy", 6, "<H",
                                                            8), "data descriptor"),
        ("odd zip flag", lambda d: set_both_headers(d, "arrays/model/w.npy", 6, "<H", 0x40),
         "zip flags"),
        ("unsupported compression (bzip2)",
         lambda d: set_both_headers(d, "arrays/model/w.npy", 8, "<H", 12),
         "compression method 12"),
        ("deflate (np.savez_compressed)", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", **deflated(wnpy)}]), "deflate"),
        ("deflate bomb claiming 4 GB", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", **deflated(wnpy, claimed=1 << 32)}]), "deflate"),
        ("deflate bomb expanding to 1 GB", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", **deflate_bomb()}]), "deflate"),
        ("stored entry claiming 1 TB uncompressed", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy, "usize": 1 << 40}]),
         "claims 1099511627776 bytes uncompressed"),
        ("stored entry claiming 1 TB stored", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy, "usize": 1 << 40,
                    "csize": 1 << 40}]), ""),
        ("duplicate entry names", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy},
             {"name": "arrays/w.npy", "data": wnpy}]), "appears twice"),
        ("two central entries, one local header (overlap)", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy},
             {"name": "arrays/v.npy", "data": wnpy, "offset": 0}]), ""),
        ("local name differs from central", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy, "local_name": "arrays/x.npy"}]),
         "names"),
        ("junk between entries", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy}], gap=b"hidden payload"),
         "unexplained bytes"),
        ("junk before the archive", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy}], prefix=b"#!/bin/sh\n"),
         "unexplained bytes"),
        ("archive comment", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy}], comment=b"hi"), "end record"),
        ("entry on another disk", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy, "disk": 3}]), "disk 3"),
        ("end record claims 65535 entries", lambda d: patched(d, len(d) - 14,
                                                               struct.pack("<HH", 65535, 65535)),
         "65535 entries"),
        ("an entry that is not .npy", lambda d: build_zip(
            [wdoc, {"name": "arrays/w.npy", "data": wnpy},
             {"name": "payload.exe", "data": b"MZ"}]), "not a .npy array"),
        ("not a zip at all", lambda d: b"PK\x03\x04" + os.urandom(200), "not an .npz"),
        ("empty file", lambda d: b"", "not an .npz"),
    ]


def npy_tricks():
    def header(descr="'<f8'", fortran="False", shape="(3,)"):
        return f"{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}"

    payload = np.arange(3.0).tobytes()
    return [
        ("pickle inside .npy (object array)", lambda d: replaced_array(
            npy_bytes(np.array([{"x": 1}, None], dtype=object))), "allow_pickle=False"),
        ("structured dtype", lambda d: replaced_array(
            npy_bytes(np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))), "structured"),
        ("shape larger than the bytes", lambda d: replaced_array(
            npy_with_header(header(shape="(4,)"), payload)), "needs 32 bytes"),
        ("shape smaller than the bytes", lambda d: replaced_array(
            npy_with_header(header(shape="(2,)"), payload)), "needs 16 bytes"),
        ("shape claiming 8 TB", lambda d: replaced_array(
            npy_with_header(header(shape="(1000000, 1000000)"), payload)),
         "needs 8000000000000 bytes"),
        ("negative shape", lambda d: replaced_array(
            npy_with_header(header(shape="(-1,)"), payload)), "not one NumPy writes"),
        ("100 dimensions", lambda d: replaced_array(
            npy_with_header(header(shape="(" + "1, " * 100 + ")"), payload)),
         "at most 64 sizes"),
        ("unknown dtype", lambda d: replaced_array(
            npy_with_header(header(descr="'<f3'"), payload)), "dtype '<f3'"),
        (".npy header length past the entry", lambda d: replaced_array(
            b"\x93NUMPY\x02\x00" + (1 << 31).to_bytes(4, "little") + b"{}"), "header claims"),
        (".npy format version 9.9", lambda d: replaced_array(
            b"\x93NUMPY\x09\x09" + npy_bytes(np.arange(3.0))[8:]), "version 9.9"),
        ("not .npy at all", lambda d: replaced_array(b"just some bytes here"), "NUMPY"),
        ("python code in the .npy header", lambda d: replaced_array(npy_with_header(
            "{'descr': __import__('os').system('echo hi'), 'fortran_order': False, "
            "'shape': (3,), }", payload)), "not one NumPy writes"),
        ("document of float32, not uint8", lambda d: build_zip(
            [{"name": "checkpoint.json.npy", "data": npy_bytes(np.zeros(4, np.float32))},
             *array_members(W)]), "uint8"),
    ]


def document_tricks():
    arrays = W
    w_member = array_members(arrays)

    def with_doc(text):
        return build_zip([json_member(text), *w_member])

    good = json.loads(np.load(io.BytesIO(document(W_STATE, W)["data"])).tobytes())

    def edited(**changes):
        doc = {**good, **changes}
        return with_doc(json.dumps({k: v for k, v in doc.items() if v is not None}))

    return [
        ("no checkpoint.json", lambda d: build_zip(w_member), "no checkpoint.json"),
        ("document not JSON", lambda d: with_doc("{not json"), "not valid JSON"),
        ("document not UTF-8", lambda d: with_doc(b"\xff\xfe{}"), "not valid JSON"),
        ("JSON nested 10,000 deep", lambda d: with_doc(nested_json(10_000)),
         f"more than the {MAX_JSON_DEPTH} allowed"),
        ("duplicate JSON keys", lambda d: with_doc(
            json.dumps(good)[:-1] + ', "state": {"dict": []}}'), "appears twice"),
        ("a 5000-digit integer", lambda d: with_doc(
            json.dumps(good)[:-1] + ', "x": ' + "9" * 5000 + "}"), "not valid JSON"),
        ("foreign document", lambda d: with_doc('{"hello": 1}'), "format tag"),
        ("a JSON list document", lambda d: with_doc("[1, 2]"), "format tag"),
        ("missing state field", lambda d: edited(state=None), "lacks ['state']"),
        ("extra field", lambda d: edited(hello="world"), "unknown fields ['hello']"),
        ("missing arrays listing", lambda d: edited(arrays=None), "lacks ['arrays']"),
        ("version 99", lambda d: edited(version=99), "version 99"),
        ("version as a string", lambda d: edited(version="2"), "version '2'"),
        ("version true", lambda d: edited(version=True), "version True"),
        ("unknown node kind", lambda d: edited(state={"pickle": "cos\nsystem\n"}),
         "unknown kind"),
        ("node with two tags", lambda d: edited(state={"array": "arrays/w", "dict": []}),
         "unknown kind"),
        ("dict items not pairs", lambda d: edited(state={"dict": [["w"]]}),
         "not a [key, value] pair"),
        ("dict key that is a list", lambda d: edited(
            state={"dict": [[["w"], {"array": "arrays/w"}]]}), "keys are strings"),
        ("duplicate dict keys", lambda d: edited(state={"dict": [
            ["w", {"array": "arrays/w"}], ["w", 1]]}), "the key 'w' twice"),
        ("array entry missing", lambda d: edited(state={"dict": [
            ["w", {"array": "arrays/w"}], ["v", {"array": "arrays/v"}]]}),
         "no such entry"),
        ("array named twice", lambda d: edited(state=[{"array": "arrays/w"},
                                                      {"array": "arrays/w"}]), "names it twice"),
        ("array name not a string", lambda d: edited(state={"array": 7}), "names the array 7"),
        ("array named outside arrays/", lambda d: edited(state={"array": "checkpoint.json"}),
         "not an array entry"),
        ("entry the document does not name", lambda d: with_member(
            {"name": "arrays/hidden.npy", "data": npy_bytes(np.zeros(2))}), "does not name it"),
        ("listing with a wrong dtype", lambda d: edited(
            arrays={"arrays/w": {**good["arrays"]["arrays/w"], "dtype": "<f4"}}), "disagrees"),
        ("listing with a wrong shape", lambda d: edited(
            arrays={"arrays/w": {**good["arrays"]["arrays/w"], "shape": [1, 3]}}), "disagrees"),
        ("listing with a wrong checksum", lambda d: edited(
            arrays={"arrays/w": {**good["arrays"]["arrays/w"], "crc32": 12345}}),
         "checksum checkpoint.json lists"),
        ("listing with an extra field", lambda d: edited(
            arrays={"arrays/w": {**good["arrays"]["arrays/w"], "pickle": 1}}), "exactly"),
        ("listing missing an array", lambda d: edited(arrays={}), "does not match"),
    ]


def value_tricks():
    return [
        ("NaN weights", lambda d: checkpoint_zip({"arrays/w": np.array([1.0, np.nan])}),
         "1 of its 2 values are NaN or infinite"),
        ("Inf weights (float16)", lambda d: checkpoint_zip(
            {"arrays/w": np.array([np.inf, 1, -np.inf], np.float16)}), "2 of its 3 values"),
        ("complex NaN", lambda d: checkpoint_zip(
            {"arrays/w": np.array([complex(0, np.nan)])}), "NaN or infinite"),
        ("NaN weights in a version 1 file", lambda d: checkpoint_zip(
            {"arrays/w": np.full((2, 2), np.nan)}, version=1), "4 of its 4 values"),
        ("negative step", lambda d: state_with({"step": -5}), "a step count"),
        ("NaN step", lambda d: state_with({"step": math.nan}), "a step count"),
        ("negative step in optimizer state", lambda d: checkpoint_zip(W, {"dict": [
            ["w", {"array": "arrays/w"}],
            ["optimizer", {"dict": [["state", {"dict": [[0, {"dict": [["step", -1]]}]]}]]}]]}),
         "['optimizer']['state'][0]['step']"),
        ("config naming a 100B-parameter model in a 1 KB file",
         lambda d: config_checkpoint(GPT_100B), "describes a model of at least"),
        ("config naming GPT-3 175B", lambda d: config_checkpoint(GPT3_175B),
         "describes a model of at least"),
        ("config with n_embd 10**12", lambda d: config_checkpoint(
            dict(vocab_size=3, block_size=3, n_layer=1, n_head=1, n_embd=10**12)),
         "describes a model"),
        ("config with a negative n_layer", lambda d: config_checkpoint(
            dict(vocab_size=3, block_size=4, n_layer=-2, n_head=1, n_embd=4)),
         "a size is not negative"),
        ("config with dropout 2.0", lambda d: config_checkpoint(
            dict(vocab_size=3, n_embd=4, n_layer=1, dropout=2.0)), "dropout"),
        ("config with Infinity", lambda d: config_checkpoint(
            dict(vocab_size=3, n_embd=math.inf, n_layer=1)), "not a finite number"),
        ("train_config with a NaN learning rate", lambda d: config_checkpoint(
            dict(learning_rate=math.nan, max_steps=10), key="train_config"),
         "not a finite number"),
        ("train_config with negative max_steps", lambda d: config_checkpoint(
            dict(learning_rate=1e-3, max_steps=-10), key="train_config"),
         "a size is not negative"),
    ]


CASES = truncations() + flips() + zip_tricks() + npy_tricks() + document_tricks() + \
    value_tricks()


def test_the_table_is_large():
    assert len(CASES) >= 50
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("make, words", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_hostile_checkpoints_are_refused_naming_the_file(tmp_path, make, words):
    data = make(good_bytes(tmp_path))
    path = tmp_path / "hostile.npz"
    path.write_bytes(data)
    with pytest.raises(FileFormatError) as info:
        load(path)
    message = str(info.value)
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, ValueError)
    assert message.startswith(f"load: {path}"), message
    assert info.value.path == str(path)
    assert words in message, message


def test_the_builder_makes_loadable_checkpoints(tmp_path):
    """The hostile files above differ from loadable ones only in what each case changes."""
    for data, expected in [(checkpoint_zip(), {"w": np.arange(6, dtype=np.float32)
                                               .reshape(2, 3), "step": 3}),
                           (checkpoint_zip(version=1), None),
                           (config_checkpoint(dict(vocab_size=3, block_size=4, n_layer=1,
                                                   n_head=1, n_embd=4, dropout=0.1)), None),
                           (state_with({"step": 0}), None)]:
        (tmp_path / "ok.npz").write_bytes(data)
        loaded = load(tmp_path / "ok.npz")
        if expected is not None:
            assert loaded.keys() == expected.keys()
            np.testing.assert_array_equal(loaded["w"], expected["w"])
            assert loaded["step"] == 3


def test_non_finite_weights_load_when_allowed(tmp_path):
    (tmp_path / "nan.npz").write_bytes(checkpoint_zip({"arrays/w": np.array([1.0, np.nan])}))
    got = load(tmp_path / "nan.npz", allow_nonfinite=True)
    assert got["w"][0] == 1.0 and np.isnan(got["w"][1])
    save({"w": np.array([np.inf, 2.0], np.float32)}, tmp_path / "inf.npz")
    with pytest.raises(CheckpointError, match=r"'arrays/w': 1 of its 2 values .*"
                                              "allow_nonfinite=True"):
        load(tmp_path / "inf.npz")
    assert load(tmp_path / "inf.npz", allow_nonfinite=True)["w"][0] == np.inf


# ----------------------------------------------------------------------------- every byte
def test_every_single_byte_flip_is_refused_or_harmless(tmp_path):
    """Flip each byte of a real checkpoint in turn: the loader refuses it with a
    FileFormatError, or — for the few central-directory bytes no reader needs (the
    'version made by' and the file attributes) — loads the very same state."""
    state = {"w": np.arange(4, dtype=np.float32), "step": 3, "name": "x"}
    save(state, tmp_path / "c.npz")
    data = (tmp_path / "c.npz").read_bytes()
    _, cd_offset = entry_offsets(data)
    harmless = set()
    at = cd_offset
    while data[at:at + 4] == b"PK\x01\x02":
        harmless |= {at + 4, at + 5, *range(at + 36, at + 42)}  # version made by, attributes
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + name_length + extra_length + comment_length
    path = tmp_path / "flipped.npz"
    accepted = []
    for offset in range(len(data)):
        path.write_bytes(flip(data, offset))
        try:
            got = load(path)
        except FileFormatError as error:
            assert str(path) in str(error)
            continue
        accepted.append(offset)
        np.testing.assert_array_equal(got["w"], state["w"])
        assert got["step"] == 3 and got["name"] == "x"
    assert set(accepted) <= harmless, sorted(set(accepted) - harmless)


def test_random_damage_never_raises_anything_else(tmp_path):
    assert_damage_is_refused(load, good_bytes(tmp_path), tmp_path / "damaged.npz", seed=0,
                             max_flips=7)


# ----------------------------------------------------------------------------- old files
def test_version_1_checkpoints_written_before_checksums_still_load(tmp_path):
    """Version 1 (no array listing) as the previous save() wrote it with np.savez, a
    Fortran-ordered array included."""
    arrays = {"arrays/model/w": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "arrays/model/ids": np.arange(4), "arrays/text": np.array(["a", "bc"])}
    state = {"dict": [["model", {"dict": [["w", {"array": "arrays/model/w"}],
                                          ["ids", {"array": "arrays/model/ids"}]]}],
                      ["text", {"array": "arrays/text"}], ["step", 7],
                      ["betas", {"tuple": [0.9, 0.99]}]]}
    doc = json.dumps({"format": "scratchlm-checkpoint", "version": 1, "state": state})
    entries = {"checkpoint.json": np.frombuffer(doc.encode(), np.uint8), **arrays}
    np.savez(tmp_path / "v1.npz", **entries)
    got = load(tmp_path / "v1.npz")
    np.testing.assert_array_equal(got["model"]["w"], arrays["arrays/model/w"])
    np.testing.assert_array_equal(got["model"]["ids"], np.arange(4))
    assert got["text"].tolist() == ["a", "bc"] and got["step"] == 7
    assert got["betas"] == (0.9, 0.99)
    # its zip CRC-32s still guard every byte
    data = bytearray((tmp_path / "v1.npz").read_bytes())
    offsets, _ = entry_offsets(bytes(data))
    _, start, size = offsets["arrays/model/ids.npy"]
    data[start + size - 1] ^= 1
    (tmp_path / "v1.npz").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="'arrays/model/ids': its bytes do not match"):
        load(tmp_path / "v1.npz")


def test_saved_documents_list_each_array_with_its_checksum(tmp_path):
    w = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    save({"w": w, "n": 0}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        doc = json.loads(npz["checkpoint.json"].tobytes())
        assert not npz["arrays/w"].flags.f_contiguous or npz["arrays/w"].flags.c_contiguous
    assert doc["version"] == 2
    assert doc["arrays"] == {"arrays/w": {"dtype": "<f4", "shape": [2, 3],
                                          "crc32": zlib.crc32(np.ascontiguousarray(w))}}
    np.testing.assert_array_equal(load(tmp_path / "c.npz")["w"], w)


# ----------------------------------------------------------------------------- errors
def test_error_classes():
    assert issubclass(CheckpointError, FileFormatError)
    assert issubclass(FileFormatError, ScratchlmError) and issubclass(FileFormatError,
                                                                      ValueError)
    assert issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(MissingFileError, FileFormatError)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(MissingFileError, match="no checkpoint file at .*nope.npz"):
        load(tmp_path / "nope.npz")
    with pytest.raises(FileFormatError, match="is a directory"):
        load(tmp_path)


def test_save_refuses_what_load_would_refuse(tmp_path):
    deep = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="nested too deeply"):
        save({"x": deep}, tmp_path / "c.npz")
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="does the state contain itself"):
        save({"x": loop}, tmp_path / "c.npz")
    with pytest.raises(TypeError, match="dtype"):
        save({"x": np.zeros(2, dtype=[("a", "<f4")])}, tmp_path / "c.npz")
    assert not os.listdir(tmp_path)
    nested, saved = [], 0
    for depth in range(1, MAX_JSON_DEPTH + 1):  # whatever save writes, load reads
        nested = [nested]
        try:
            save({"x": nested, "d": {"t": (nested,)}}, tmp_path / "c.npz")
        except ValueError:
            break
        saved = depth
        assert load(tmp_path / "c.npz") == {"x": nested, "d": {"t": (nested,)}}
    assert MAX_JSON_DEPTH - 20 < saved < MAX_JSON_DEPTH


# ----------------------------------------------------------------------------- memory
MEMORY_PROBE = r"""
import json, os, resource, sys, tracemalloc
import scratchlm.checkpoint as checkpoint
import scratchlm.safetensors as safetensors
from scratchlm.errors import FileFormatError

results = {}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
for path in sys.argv[1:]:
    loader = safetensors.load_safetensors if path.endswith(".safetensors") else checkpoint.load
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        loader(path)
        outcome = "loaded"
    except FileFormatError as error:
        outcome = "refused"
    results[path] = {"outcome": outcome, "size": os.path.getsize(path),
                     "peak": tracemalloc.get_traced_memory()[1] - start}
tracemalloc.stop()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"files": results, "maxrss_growth": (after - before) * 1024}))
"""


def measure(paths):
    """Load each file in a fresh process: per file the tracemalloc peak, and the growth of
    the process's peak resident memory over all of them."""
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, *map(str, paths)],
                         capture_output=True, text=True, env=env, check=True, timeout=600)
    return json.loads(out.stdout)


LARGE_CLAIMS = ["shape claiming 8 TB", "stored entry claiming 1 TB uncompressed",
                "stored entry claiming 1 TB stored", "deflate bomb claiming 4 GB",
                "deflate bomb expanding to 1 GB", "end record claims 65535 entries",
                ".npy header length past the entry", "JSON nested 10,000 deep",
                "config naming a 100B-parameter model in a 1 KB file",
                "config naming GPT-3 175B", "two central entries, one local header (overlap)"]
BOUND_FACTOR, BOUND_CONSTANT = 2, 1 << 20


def test_large_claims_allocate_little(tmp_path):
    """A file that claims gigabytes or terabytes is refused having allocated at most
    2 × its own size + 1 MiB (tracemalloc), and the process's peak memory grows by less
    than 32 MiB over all of them (ru_maxrss)."""
    cases = {case[0]: case[1] for case in CASES}
    good = good_bytes(tmp_path)
    paths = []
    for i, name in enumerate(LARGE_CLAIMS):
        paths.append(tmp_path / f"claim{i}.npz")
        paths[-1].write_bytes(cases[name](good))
    report = measure(paths)
    for name, path in zip(LARGE_CLAIMS, paths):
        result = report["files"][str(path)]
        assert result["outcome"] == "refused", name
        assert result["peak"] <= BOUND_FACTOR * result["size"] + BOUND_CONSTANT, (name, result)
    assert report["maxrss_growth"] < 32 << 20, report


def test_a_real_checkpoint_costs_about_its_size(tmp_path):
    """Loading a valid 8 MB checkpoint allocates about its size, not a multiple."""
    rng = np.random.default_rng(0)
    save({"model": {f"w{i}": rng.normal(size=(256, 1024)).astype(np.float32)
                    for i in range(8)}, "step": 10, "history": list(range(1000))},
         tmp_path / "big.npz")
    report = measure([tmp_path / "big.npz"])
    result = report["files"][str(tmp_path / "big.npz")]
    assert result["outcome"] == "loaded"
    assert result["peak"] <= 1.1 * result["size"] + BOUND_CONSTANT, result


def test_json_heavy_documents_cost_a_bounded_multiple(tmp_path):
    """The JSON document is the one part whose Python objects outweigh its bytes: at worst
    (nothing but empty lists or dicts) about 20 times; never more than 24 times + 1 MiB."""
    paths = []
    for i, state in enumerate(([[]] * 100_000, [{}] * 50_000, ["ab"] * 80_000,
                               {"loss": [0.5] * 100_000})):
        paths.append(tmp_path / f"json{i}.npz")
        save(state, paths[-1])
    report = measure(paths)
    for path in paths:
        result = report["files"][str(path)]
        assert result["outcome"] == "loaded"
        assert result["peak"] <= 24 * result["size"] + BOUND_CONSTANT, result


def test_a_directory_of_many_tiny_entries_costs_a_small_multiple(tmp_path):
    """The zip directory's entries are held as Python objects while they are checked: for
    a file of nothing but empty entries that is about 4 times the file, never more than
    5 times + 1 MiB."""
    paths = [tmp_path / "empty_entries.npz", tmp_path / "empty_arrays.npz"]
    paths[0].write_bytes(build_zip([{"name": f"{i:06d}.npy", "data": b""}
                                    for i in range(20_000)]))
    paths[1].write_bytes(build_zip([{"name": f"arrays/{i:06d}.npy", "data": npy_bytes(
        np.zeros(0))} for i in range(10_000)]))
    report = measure(paths)
    for path in paths:
        result = report["files"][str(path)]
        assert result["outcome"] == "refused"
        assert result["peak"] <= 5 * result["size"] + BOUND_CONSTANT, result
