"""Our safetensors reader and writer against the reference `safetensors` package, and the
errors on malformed files."""

import json

import numpy as np
import pytest

from scratchlm.safetensors import SafetensorsError, load_safetensors, save_safetensors

st_numpy = pytest.importorskip("safetensors.numpy")


def sample_tensors():
    rng = np.random.default_rng(0)
    return {
        "transformer.wte.weight": rng.normal(size=(7, 5)).astype(np.float32),
        "f64": rng.normal(size=(3,)),
        "f16": rng.normal(size=(2, 3)).astype(np.float16),
        "i64": rng.integers(-2**62, 2**62, size=4, dtype=np.int64),
        "i32": rng.integers(-2**31, 2**31, size=(2, 2), dtype=np.int32),
        "i16": np.array([-32768, 0, 32767], dtype=np.int16),
        "i8": np.array([-128, 5, 127], dtype=np.int8),
        "u8": np.arange(250, 256, dtype=np.uint8),
        "bool": np.array([[True, False, True]]),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "odd.sized": np.ones(3, dtype=np.int8),
    }


def assert_tensors_equal(expected, got):
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_reads_files_written_by_the_reference_package(tmp_path):
    tensors = sample_tensors()
    st_numpy.save_file(tensors, str(tmp_path / "ref.safetensors"), metadata={"format": "np"})
    assert_tensors_equal(tensors, load_safetensors(tmp_path / "ref.safetensors"))


def test_reference_package_reads_our_files(tmp_path):
    from safetensors import safe_open

    tensors = sample_tensors()
    path = tmp_path / "ours.safetensors"
    save_safetensors(tensors, path, metadata={"format": "np", "note": "héllo"})
    assert_tensors_equal(tensors, st_numpy.load_file(str(path)))
    with safe_open(str(path), framework="np") as file:
        assert file.metadata() == {"format": "np", "note": "héllo"}


def test_our_writer_and_reader_round_trip_big_endian_and_strided_input(tmp_path):
    tensors = {"big_endian": np.arange(6, dtype=">f4").reshape(2, 3),
               "strided": np.arange(20, dtype=np.int64).reshape(4, 5)[:, ::2]}
    save_safetensors(tensors, tmp_path / "t.safetensors")
    got = load_safetensors(tmp_path / "t.safetensors")
    np.testing.assert_array_equal(got["big_endian"], tensors["big_endian"])
    np.testing.assert_array_equal(got["strided"], tensors["strided"])


def test_bf16_written_by_torch_reads_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    values = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    values[0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")])
    tensors = {"w": values.to(torch.bfloat16), "v": torch.arange(3, dtype=torch.bfloat16)}
    st_torch.save_file(tensors, str(tmp_path / "bf16.safetensors"))
    with pytest.raises(SafetensorsError, match="tensor 'w': 2 of its 24 values are NaN"):
        load_safetensors(tmp_path / "bf16.safetensors")  # NaN/Inf only when allowed
    got = load_safetensors(tmp_path / "bf16.safetensors", allow_nonfinite=True)
    for name, tensor in tensors.items():
        assert got[name].dtype == np.float32
        np.testing.assert_array_equal(got[name], tensor.float().numpy())


# ----------------------------------------------------------------------------- malformed files
def header_file(path, header, data=b"", header_length=None):
    """A file with ``header`` (a dict, or raw bytes) and ``data``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if header_length is None else header_length
    path.write_bytes(length.to_bytes(8, "little") + raw + data)
    return path


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header, data, header_length, words", [
    (b"", b"", None, "header is not valid UTF-8 JSON"),
    (b"{not json", b"", None, "header is not valid UTF-8 JSON"),
    (b"\xff\xfe{}", b"", None, "header is not valid UTF-8 JSON"),
    (b"[1, 2]", b"", None, "header must be a JSON object"),
    ({"x": F32_2}, b"\0" * 8, 10**6, "header length 1000000 is larger than the file"),
    ({"__metadata__": {"a": 1}}, b"", None, "__metadata__ must map strings to strings"),
    ({"w": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None,
     "tensor 'w': its header entry must be an object"),
    ({"w": {**F32_2, "dtype": "F8_E4M3"}}, b"\0" * 8, None,
     "tensor 'w': unsupported dtype 'F8_E4M3'"),
    ({"w": {**F32_2, "shape": [2, -1]}}, b"\0" * 8, None,
     "tensor 'w': shape must be a list of non-negative integers"),
    ({"w": {**F32_2, "data_offsets": [8, 0]}}, b"\0" * 8, None,
     "tensor 'w': data_offsets must be [begin, end]"),
    ({"w": F32_2}, b"\0" * 5, None, "tensor 'w': data_offsets [0, 8] run past the end"),
    ({"w": {**F32_2, "shape": [3]}}, b"\0" * 8, None,
     "tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8"),
    ({"a": F32_2, "b": {**F32_2, "data_offsets": [4, 12]}}, b"\0" * 12, None,
     "tensor 'b': its bytes overlap those of tensor 'a'"),
])
def test_malformed_files_name_the_file_and_the_tensor(tmp_path, header, data, header_length,
                                                      words):
    path = header_file(tmp_path / "bad.safetensors", header, data, header_length)
    with pytest.raises(SafetensorsError) as info:
        load_safetensors(path)
    message = str(info.value)
    assert message.startswith(f"load_safetensors: {path}: "), message
    assert words in message, message


def test_truncated_files_are_reported(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"\x10\0\0")
    with pytest.raises(SafetensorsError, match="truncated: 3 bytes"):
        load_safetensors(path)
    st_numpy.save_file(sample_tensors(), str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SafetensorsError, match="run past the end of the data"):
        load_safetensors(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("tensors, metadata, error, words", [
    ({"c": np.zeros(2, dtype=np.complex64)}, None, TypeError, "tensor 'c' has dtype complex64"),
    ({"o": np.array([None])}, None, TypeError, "tensor 'o' has dtype object"),
    ({"l": [1.0, 2.0]}, None, TypeError, "tensor 'l' must be an array"),
    ({"__metadata__": np.zeros(1)}, None, ValueError, "tensor name '__metadata__'"),
    ({3: np.zeros(1)}, None, ValueError, "tensor name 3 must be a string"),
    ({"w": np.zeros(1)}, {"step": 3}, TypeError, "metadata must be a dict of strings"),
    ([np.zeros(1)], None, TypeError, "tensors must be a dict"),
])
def test_writer_rejects_what_the_format_cannot_hold(tmp_path, tensors, metadata, error, words):
    with pytest.raises(error) as info:
        save_safetensors(tensors, tmp_path / "x.safetensors", metadata=metadata)
    assert str(info.value).startswith("save_safetensors: ") and words in str(info.value)
