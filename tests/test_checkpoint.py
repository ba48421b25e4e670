"""save/load round trips, atomic writes, and refusals of damaged or code-carrying files."""

import json
import math
import os
import pickle

import numpy as np
import pytest

from scratchlm import backend
from scratchlm.checkpoint import CheckpointError, load, save


def assert_same(expected, got, where="state"):
    """Equal values of the same types, arrays equal with the same dtype and shape."""
    if isinstance(expected, np.ndarray):
        assert type(got) is np.ndarray, where
        assert got.dtype == expected.dtype and got.shape == expected.shape, where
        np.testing.assert_array_equal(got, expected, err_msg=where)
        return
    assert type(got) is type(expected), f"{where}: {type(got)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(got) == list(expected), where
        for key in expected:
            assert_same(expected[key], got[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (e, g) in enumerate(zip(expected, got)):
            assert_same(e, g, f"{where}[{i}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got), where
    else:
        assert got == expected, where


def nested_state():
    rng = np.random.default_rng(0)
    return {
        "model": {
            "transformer.wte.weight": rng.normal(size=(5, 3)).astype(np.float32),
            "transformer.h.0.ln_1.bias": rng.normal(size=3),
            "ids": np.arange(-3, 4, dtype=np.int64),
            "mask": np.array([[True, False], [False, True]]),
            "half": np.array([1.5, -2.25], dtype=np.float16),
            "scalar": np.array(2.5),
            "empty": np.zeros((0, 4), dtype=np.float32),
            "text": np.array(["ab", "ü"]),
        },
        "optimizer": {
            "state": {0: {"step": 3, "exp_avg": np.ones(2)}, 1: {"step": 3}},
            "param_groups": [{"lr": 3e-4, "betas": (0.9, 0.999), "params": [0, 1]}],
        },
        "step": 12,
        "huge": 2 ** 200,
        "negative_huge": -(10 ** 60),
        "ratio": 1 / 3,
        "minus_zero": -0.0,
        "nan": math.nan,
        "inf": -math.inf,
        "flag": True,
        "nothing": None,
        "name": "模型 ✓ naïve — \"quoted\"\n",
        "mixed": [1, "two", 3.0, None, False, np.arange(2), (np.eye(2), [])],
        "weird keys": {"a/b": np.zeros(1), "a%2Fb": np.ones(1), "a.b": 1, "#1": np.full(1, 2.0),
                       "": np.full(1, 3.0), "..": np.full(1, 4.0), 1: np.full(1, 5.0)},
        "empty containers": {"dict": {}, "list": [], "tuple": ()},
    }


def test_round_trip_restores_values_types_and_nesting(tmp_path):
    state = nested_state()
    path = tmp_path / "ckpt.npz"
    save(state, path)
    assert_same(state, load(path))
    assert_same(state, load(str(path)))


def test_numpy_scalars_come_back_as_python_numbers(tmp_path):
    save({"loss": np.float32(0.5), "count": np.int64(7), "ok": np.bool_(True)}, tmp_path / "c")
    assert_same({"loss": 0.5, "count": 7, "ok": True}, load(tmp_path / "c"))


def test_a_bare_value_or_list_is_a_valid_state(tmp_path):
    for state in ([np.arange(3), {"a": 1}], np.ones((2, 2)), "just text", 42):
        save(state, tmp_path / "c")
        assert_same(state, load(tmp_path / "c"))


def test_file_is_a_plain_npz_with_readable_entry_names(tmp_path):
    path = tmp_path / "c.npz"
    save({"model": {"transformer.wte.weight": np.ones(2)}, "a/b": np.zeros(1), 3: np.ones(1)},
         path)
    with np.load(path, allow_pickle=False) as npz:
        expected = ["checkpoint.json", "arrays/model/transformer.wte.weight", "arrays/a%2Fb",
                    "arrays/#3"]
        assert sorted(npz.files) == sorted(expected)
        document = json.loads(npz["checkpoint.json"].tobytes().decode("utf-8"))
    assert document["format"] == "scratchlm-checkpoint"



def test_strings_and_keys_utf8_cannot_encode_come_back_exactly(tmp_path):
    """A lone surrogate (what os.fsdecode makes of a file name that is not UTF-8, or half
    of a split emoji) and NUL, in values and in keys, arrays' keys included: the same
    strings come back, each key's array under its own key."""
    state = {"text": "\ud800", "name": "caf\udce9.txt", "mixed": ["中文", "a\udfffb", "\x00"],
             "\ud83d": np.arange(3), "\udcff/x": np.ones(2), "a\x00": np.zeros(1),
             "a": np.full(1, 7.0), "%uD800": np.full(1, 5.0)}
    path = tmp_path / "c.npz"
    save(state, path)
    assert_same(state, load(path))
    with np.load(path, allow_pickle=False) as npz:  # plain names, none cut at the NUL
        assert sorted(npz.files) == sorted(["checkpoint.json", "arrays/%uD83D",
                                            "arrays/%uDCFF%2Fx", "arrays/a%00", "arrays/a",
                                            "arrays/%25uD800"])
    # a state without such strings is written as UTF-8 text, as before
    save({"text": "中文"}, path)
    with np.load(path, allow_pickle=False) as npz:
        assert "中文".encode() in npz["checkpoint.json"].tobytes()

def test_save_overwrites_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "c.npz"
    save({"v": 1}, path)
    save({"v": 2}, path)
    assert load(path) == {"v": 2}
    assert os.listdir(tmp_path) == ["c.npz"]


def test_a_failure_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save({"weights": np.arange(4)}, path)

    def failing_savez(file, **entries):
        file.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save({"weights": np.zeros(4)}, path)
    monkeypatch.undo()
    assert_same({"weights": np.arange(4)}, load(path))
    assert os.listdir(tmp_path) == ["c.npz"]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("state, where, what", [
    ({"a": {"b": object()}}, "state['a']['b']", "builtins.object"),
    ({"a": [1, {2, 3}]}, "state['a'][1]", "builtins.set"),
    ({"z": 1 + 2j}, "state['z']", "builtins.complex"),
    ({"b": b"bytes"}, "state['b']", "builtins.bytes"),
    ({"a": np.array([{}, 1], dtype=object)}, "state['a']", "dtype object"),
    ({"a": {(1, 2): 3}}, "state['a']", "key (1, 2) of type tuple"),
])
def test_unsupported_values_are_named(tmp_path, state, where, what):
    with pytest.raises(TypeError) as info:
        save(state, tmp_path / "c.npz")
    assert where in str(info.value) and what in str(info.value)
    assert not os.listdir(tmp_path)


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load(path)


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make", [
    lambda d: write_bytes(d / "garbage.npz", b"this is not a checkpoint at all" * 10),
    lambda d: write_bytes(d / "empty.npz", b""),
    lambda d: truncated_copy(d),
    lambda d: corrupted_copy(d),
    lambda d: npy_file(d),
    lambda d: npz_without_document(d),
    lambda d: npz_with_foreign_document(d),
])
def test_damaged_or_foreign_files_are_refused_with_the_path(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(CheckpointError) as info:
        load(path)
    assert str(path) in str(info.value)
    assert "not a scratchlm checkpoint" in str(info.value)


def truncated_copy(directory):
    save(nested_state(), directory / "full.npz")
    data = (directory / "full.npz").read_bytes()
    return write_bytes(directory / "truncated.npz", data[: len(data) // 2])


def corrupted_copy(directory):
    """Array bytes overwritten; the zip directory at the end still reads."""
    save({"w": np.zeros(1000)}, directory / "full.npz")
    data = bytearray((directory / "full.npz").read_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64
    return write_bytes(directory / "corrupted.npz", bytes(data))


def npy_file(directory):
    np.save(directory / "array.npy", np.arange(3))
    return directory / "array.npy"


def npz_without_document(directory):
    np.savez(directory / "plain.npz", weights=np.ones(3))
    return directory / "plain.npz"


def npz_with_foreign_document(directory):
    document = np.frombuffer(json.dumps({"hello": 1}).encode(), dtype=np.uint8)
    np.savez(directory / "foreign.npz", **{"checkpoint.json": document})
    return directory / "foreign.npz"


class LeavesAMark:
    """Unpickling this would create a directory: proof that code ran."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return os.makedirs, (self.mark,)


def test_a_pickled_object_array_is_refused_without_running_it(tmp_path):
    mark = str(tmp_path / "code-ran")
    payload = np.array([LeavesAMark(mark), 1], dtype=object)
    assert pickle.dumps(payload)  # the payload really is a pickle that would run makedirs
    document = {"format": "scratchlm-checkpoint", "version": 1,
                "state": {"dict": [["w", {"array": "arrays/w"}]]}}
    entries = {"checkpoint.json": np.frombuffer(json.dumps(document).encode(), dtype=np.uint8),
               "arrays/w": payload}
    path = tmp_path / "evil.npz"
    np.savez(path, allow_pickle=True, **entries)

    with pytest.raises(CheckpointError) as info:
        load(path)
    assert str(path) in str(info.value) and "arrays/w" in str(info.value)
    assert "allow_pickle=False" in str(info.value)
    assert not os.path.exists(mark)


# ----------------------------------------------------------------------------- GPU
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")
def test_gpu_arrays_are_saved_as_numpy_arrays(tmp_path):
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    save({"w": backend.cupy.asarray(weights)}, tmp_path / "c.npz")
    assert_same({"w": weights}, load(tmp_path / "c.npz"))
