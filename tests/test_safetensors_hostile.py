"""Hostile and inconsistent safetensors files: every one is refused with a FileFormatError
naming the file before the reader allocates more than a small multiple of the file."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_damage_is_refused

from scratchlm.errors import FileFormatError, MissingFileError
from scratchlm.safetensors import (
    MAX_HEADER_BYTES,
    SafetensorsError,
    load_safetensors,
    save_safetensors,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
ZEROS8 = b"\0" * 8


def raw_file(header, data=b"", header_length=None):
    """The bytes of a file with ``header`` (a dict, or raw bytes) and ``data``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if header_length is None else header_length
    return length.to_bytes(8, "little") + raw + data


def good_bytes(tmp_path):
    tensors = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float16),
               "ids": np.arange(4, dtype=np.int64)}
    save_safetensors(tensors, tmp_path / "good.safetensors", metadata={"format": "np"})
    return (tmp_path / "good.safetensors").read_bytes()


def flip(data, offset):
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def bf16(values):
    return (np.asarray(values, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()


def truncations():
    return [(f"truncated at {where}", lambda d, w=where: d[:eval(w, {"n": len(d)})], "")
            for where in ("0", "3", "8", "9", "n//3", "n//2", "n-13", "n-1")]


CASES = truncations() + [
    ("header claiming 8 TB", lambda d: raw_file(
        {"w": {"dtype": "F64", "shape": [10**6, 10**6], "data_offsets": [0, 8 * 10**12]}},
        ZEROS8), "run past the end"),
    ("header length of 2**63", lambda d: raw_file(b"{}", b"", 1 << 63),
     "header length 9223372036854775808 is larger than the file"),
    ("header length past the end", lambda d: raw_file({"w": F32_2}, ZEROS8, 10**6),
     "larger than the file"),
    ("JSON nested 10,000 deep", lambda d: raw_file(
        b'{"w": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"), "levels deep"),
    ("tensor named twice", lambda d: raw_file(
        b'{"w": ' + json.dumps(F32_2).encode() + b', "w": '
        + json.dumps({**F32_2, "shape": [1], "data_offsets": [0, 4]}).encode() + b"}", ZEROS8),
     "names 'w' twice"),
    ("extra field in an entry", lambda d: raw_file({"w": {**F32_2, "pickle": 1}}, ZEROS8),
     "unknown fields ['pickle']"),
    ("missing data_offsets", lambda d: raw_file({"w": {"dtype": "F32", "shape": [2]}}, ZEROS8),
     "must be an object with dtype, shape and data_offsets"),
    ("entry that is a list", lambda d: raw_file({"w": [1, 2]}, ZEROS8), "must be an object"),
    ("dtype that is a list", lambda d: raw_file({"w": {**F32_2, "dtype": ["F32"]}}, ZEROS8),
     "unsupported dtype ['F32']"),
    ("dtype F8_E4M3", lambda d: raw_file({"w": {**F32_2, "dtype": "F8_E4M3"}}, ZEROS8),
     "unsupported dtype 'F8_E4M3'"),
    ("shape an integer", lambda d: raw_file({"w": {**F32_2, "shape": 2}}, ZEROS8),
     "shape must be a list"),
    ("shape of floats", lambda d: raw_file({"w": {**F32_2, "shape": [2.0]}}, ZEROS8),
     "shape must be a list"),
    ("shape of booleans", lambda d: raw_file({"w": {**F32_2, "shape": [True, True]}}, ZEROS8),
     "shape must be a list"),
    ("negative shape", lambda d: raw_file({"w": {**F32_2, "shape": [-2]}}, ZEROS8),
     "shape must be a list"),
    ("40 dimensions", lambda d: raw_file({"w": {**F32_2, "shape": [1] * 38 + [2, 1]}}, ZEROS8),
     "40 dimensions"),
    ("shape of a 5000-digit size", lambda d: raw_file(
        b'{"w": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 8]}}',
        ZEROS8), "not valid UTF-8 JSON"),
    ("shape not matching the bytes", lambda d: raw_file({"w": {**F32_2, "shape": [3]}}, ZEROS8),
     "needs 12 bytes"),
    ("negative offsets", lambda d: raw_file({"w": {**F32_2, "data_offsets": [-8, 0]}}, ZEROS8),
     "data_offsets must be"),
    ("three offsets", lambda d: raw_file({"w": {**F32_2, "data_offsets": [0, 4, 8]}}, ZEROS8),
     "data_offsets must be"),
    ("offsets as strings", lambda d: raw_file({"w": {**F32_2, "data_offsets": ["0", "8"]}},
                                              ZEROS8), "data_offsets must be"),
    ("offsets reversed", lambda d: raw_file({"w": {**F32_2, "data_offsets": [8, 0]}}, ZEROS8),
     "data_offsets must be"),
    ("offsets out of range", lambda d: raw_file({"w": {**F32_2, "data_offsets": [8, 16]}},
                                                ZEROS8), "run past the end"),
    ("overlapping offsets", lambda d: raw_file(
        {"a": F32_2, "b": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12), "overlap"),
    ("two tensors on the same bytes", lambda d: raw_file({"a": F32_2, "b": F32_2}, ZEROS8),
     "overlap"),
    ("hole between tensors", lambda d: raw_file(
        {"a": F32_2, "b": {**F32_2, "data_offsets": [12, 20]}}, b"\0" * 20), "hole"),
    ("bytes after the last tensor", lambda d: raw_file({"w": F32_2}, b"\0" * 64),
     "belong to no tensor"),
    ("empty tensor inside another", lambda d: raw_file(
        {"a": F32_2, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}}, ZEROS8),
     "overlap"),
    ("metadata of numbers", lambda d: raw_file({"__metadata__": {"step": 3}}), "__metadata__"),
    ("header a list", lambda d: raw_file(b"[1, 2]"), "header must be a JSON object"),
    ("header not UTF-8", lambda d: raw_file(b'{"\xff": 1}'), "not valid UTF-8 JSON"),
    ("flipped header brace", lambda d: flip(d, 8), "not valid UTF-8 JSON"),
    ("flipped header length", lambda d: flip(d, 7), "larger than the file"),
    ("NaN in F32", lambda d: raw_file({"w": F32_2}, np.array([1, np.nan], "<f4").tobytes()),
     "1 of its 2 values are NaN or infinite"),
    ("Inf in F16", lambda d: raw_file({"w": {"dtype": "F16", "shape": [4],
                                             "data_offsets": [0, 8]}},
                                      np.array([1, np.inf, -np.inf, 0], "<f2").tobytes()),
     "2 of its 4 values"),
    ("NaN in BF16", lambda d: raw_file({"w": {"dtype": "BF16", "shape": [2],
                                              "data_offsets": [0, 4]}}, bf16([np.nan, 1])),
     "1 of its 2 values"),
    ("NaN in F64", lambda d: raw_file({"w": {"dtype": "F64", "shape": [1],
                                             "data_offsets": [0, 8]}},
                                      np.array([np.nan]).tobytes()), "NaN or infinite"),
]


def test_the_table_is_large():
    assert len(CASES) >= 40
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize("make, words", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_hostile_files_are_refused_naming_the_file(tmp_path, make, words):
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(make(good_bytes(tmp_path)))
    with pytest.raises(FileFormatError) as info:
        load_safetensors(path)
    message = str(info.value)
    assert isinstance(info.value, SafetensorsError) and isinstance(info.value, ValueError)
    assert message.startswith(f"load_safetensors: {path}: "), message
    assert info.value.path == str(path)
    assert words in message, message


def test_a_header_over_the_format_limit_is_refused_unread(tmp_path):
    """A (sparse) 150 MB file whose header claims 120 MB: refused before reading it."""
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as file:
        file.write((MAX_HEADER_BYTES + 20_000_000).to_bytes(8, "little") + b"{")
        file.truncate(150_000_000)
    with pytest.raises(SafetensorsError, match="over the format's limit"):
        load_safetensors(path)


def test_non_finite_tensors_load_when_allowed(tmp_path):
    path = tmp_path / "nan.safetensors"
    save_safetensors({"w": np.array([np.nan, 2.0], np.float32), "i": np.arange(2)}, path)
    with pytest.raises(SafetensorsError, match="tensor 'w': 1 of its 2 values"):
        load_safetensors(path)
    got = load_safetensors(path, allow_nonfinite=True)
    assert np.isnan(got["w"][0]) and got["w"][1] == 2.0


def test_valid_layouts_still_load(tmp_path):
    """Empty tensors at the edges of others, and the reference package's own files."""
    path = tmp_path / "ok.safetensors"
    path.write_bytes(raw_file({"e0": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]},
                               "w": F32_2,
                               "e8": {"dtype": "I8", "shape": [0], "data_offsets": [8, 8]}},
                              np.array([1, 2], "<f4").tobytes()))
    got = load_safetensors(path)
    assert got["e0"].shape == (0, 3) and got["e8"].shape == (0,)
    np.testing.assert_array_equal(got["w"], [1, 2])
    st_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {"a": np.arange(5, dtype=np.int16), "b": np.zeros((2, 0)), "c": np.eye(3)}
    st_numpy.save_file(tensors, str(path))
    for name, array in load_safetensors(path).items():
        np.testing.assert_array_equal(array, tensors[name])


def test_random_damage_never_raises_anything_else(tmp_path):
    assert_damage_is_refused(load_safetensors, good_bytes(tmp_path),
                             tmp_path / "damaged.safetensors", seed=1, max_flips=5)


def test_missing_file_is_a_file_format_error_and_a_file_not_found_error(tmp_path):
    with pytest.raises(MissingFileError, match="no safetensors file at"):
        load_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(FileFormatError, match="is a directory, not a regular file"):
        load_safetensors(tmp_path)


PROBE = r"""
import json, os, resource, sys, tracemalloc
from scratchlm.errors import FileFormatError
from scratchlm.safetensors import load_safetensors

results = {}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
for path in sys.argv[1:]:
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        load_safetensors(path)
        outcome = "loaded"
    except FileFormatError:
        outcome = "refused"
    results[path] = {"outcome": outcome, "size": os.path.getsize(path),
                     "peak": tracemalloc.get_traced_memory()[1] - start}
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"files": results, "maxrss_growth": (after - before) * 1024}))
"""
LARGE_CLAIMS = ["header claiming 8 TB", "header length of 2**63", "JSON nested 10,000 deep",
                "offsets out of range", "40 dimensions"]


def test_large_claims_allocate_little(tmp_path):
    """Refused with at most 2 × the file's size + 1 MiB allocated (tracemalloc), and the
    process's peak memory grows by less than 32 MiB over all of them (ru_maxrss); a valid
    8 MB file costs about its size."""
    cases = {case[0]: case[1] for case in CASES}
    good = good_bytes(tmp_path)
    paths = []
    for i, name in enumerate(LARGE_CLAIMS):
        paths.append(tmp_path / f"claim{i}.safetensors")
        paths[-1].write_bytes(cases[name](good))
    rng = np.random.default_rng(0)
    save_safetensors({f"w{i}": rng.normal(size=(256, 1024)).astype(np.float32)
                      for i in range(8)}, tmp_path / "big.safetensors")
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths),
                          str(tmp_path / "big.safetensors")], capture_output=True, text=True,
                         env=env, check=True, timeout=600)
    report = json.loads(out.stdout)
    for name, path in zip(LARGE_CLAIMS, paths):
        result = report["files"][str(path)]
        assert result["outcome"] == "refused", name
        assert result["peak"] <= 2 * result["size"] + (1 << 20), (name, result)
    big = report["files"][str(tmp_path / "big.safetensors")]
    assert big["outcome"] == "loaded" and big["peak"] <= 1.1 * big["size"] + (1 << 20), big
    assert report["maxrss_growth"] < 64 << 20, report
