"""Hostile files through every loader and every command that reads files.

Each case writes one hostile file (or folder entry) — a FIFO, a directory, a device, a
dangling or looping symbolic link, an empty, random, non-UTF-8 or truncated file, a zip
bomb, a huge header, NaN or integer weights, a side file that is not JSON, a list, nested
hundreds deep, a checkpoint whose fields are of the wrong kind... — and hands it to a
loader (``sl.load``, ``load_safetensors``, ``GPT.from_hf_gpt2``, the tokenizer loaders,
the token cache) or to a command (``sample``, ``eval``, ``train --resume``, ``finetune``,
``prompt``, ``pretrain --hf-gpt2``; the coursework grader's ``grade`` and ``grade-all``, with
hostile submissions, hint progress, stored results and submission times), called in this
process under a time limit. Every one
must end in a refusal that is

* not a traceback: a :class:`~scratchlm.errors.ScratchlmError` from a loader, one line
  starting ``error:`` and exit status 1 or 2 from a command (or, from the grader, a failed
  grade whose reason names the file, output that a UTF-8 terminal can print);
* not a hang: within ``TIME_LIMIT_S`` (a SIGALRM per case);
* clear: it names the file (its path, or the run folder and the file's name) and says
  what is wrong, in more words than the path and never as a bare key or errno.

A handful of the commands also run in real subprocesses at the end.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

import scratchlm as sl
from scratchlm import __main__ as cli
from scratchlm.checkpoint_fields import (
    TRAINING_FIELDS,
    check_run_state,
    load_model,
    stored_tokenizer,
)
from scratchlm.errors import ScratchlmError
from scratchlm.exercises import __main__ as exercises_cli
from scratchlm.models import GPT, GPTConfig
from scratchlm.runs import load_run_checkpoint
from scratchlm.safetensors import load_safetensors, read_safetensors_header, save_safetensors
from scratchlm.text import BPETokenizer, CharTokenizer
from scratchlm.text.corpus_cache import read_token_cache
from scratchlm.text.special_chars import SpecialCharTokenizer
from scratchlm.train import TrainConfig, Trainer

TIME_LIMIT_S = 20
CRYPTIC = re.compile(r"^error: '?[\w.]+'?$|object is not iterable|list indices must be|"
                     r"\[Errno \d+\]|has no attribute|object is not subscriptable|"
                     r"KeyError|unhashable type|not supported between")


# ----------------------------------------------------------------------------- valid files
def tiny_model():
    sl.manual_seed(0)
    return GPT(GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=2, n_embd=8))


def run_state():
    """The state a `train` run saves: a tiny GPT on a character tokenizer."""
    model = tiny_model()
    tokenizer = CharTokenizer().train("abcdef")
    ids = np.array(tokenizer.encode("abcdef" * 50))
    config = TrainConfig(max_steps=2, batch_size=2, warmup_steps=1, eval_interval=10,
                         checkpoint_interval=10)
    trainer = Trainer(model, ids, ids, config, extras={
        "tokenizer": json.dumps({"type": "CharTokenizer", "chars": tokenizer.chars}),
        "corpus": "shakespeare", "tokenizer_kind": "char", "reverse": False,
        "preset": "tiny"})
    trainer.train(progress=False)
    return trainer.state()


STATE = None


def base_state():
    global STATE
    if STATE is None:
        STATE = run_state()
    return _copy(STATE)


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value.copy() if isinstance(value, np.ndarray) else value


def hf_arrays(n_layer=1, n_embd=64, vocab=10, positions=8):
    """A GPT-2 checkpoint's tensors under Hugging Face's names and layout."""
    model = GPT(GPTConfig(vocab_size=vocab, block_size=positions, n_layer=n_layer,
                          n_head=n_embd // 64, n_embd=n_embd))
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
              "mlp.c_proj.weight")
    return {name.removeprefix("transformer."): (value.T.copy() if name.endswith(conv1d)
                                                 else value)
            for name, value in model.state_dict().items() if name != "lm_head.weight"}


def safetensors_bytes(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


# ----------------------------------------------------------------------------- generic kinds
def make_fifo(path):
    os.mkfifo(path)


def make_directory(path):
    os.mkdir(path)


def make_device(path):
    os.symlink("/dev/zero", path)


def make_dangling(path):
    os.symlink(str(path) + ".nowhere", path)


def make_loop(path):
    os.symlink(path, path)


def writer(data):
    def make(path):
        with open(path, "wb") as f:
            f.write(data)
    return make


GENERIC = {
    "fifo": make_fifo, "directory": make_directory, "device": make_device,
    "dangling_symlink": make_dangling, "symlink_loop": make_loop, "empty": writer(b""),
    "one_byte": writer(b"{"), "random_bytes": writer(np.random.default_rng(0).bytes(4096)),
    "non_utf8": writer(b"\xff\xfe\x00{\"type\": \x80}"), "zip_magic": writer(b"PK\x03\x04"),
    "nul_bytes": writer(b"\x00" * 1000),
}

# ----------------------------------------------------------------------------- loaders
LOADERS = {
    "sl.load": lambda path: sl.load(path),
    "a run's checkpoint": lambda path: load_run_for_training(os.path.dirname(path)),
    "load_safetensors": lambda path: load_safetensors(path),
    "read_safetensors_header": lambda path: read_safetensors_header(path),
    "from_hf_gpt2": lambda path: GPT.from_hf_gpt2(path),
    "CharTokenizer.load": lambda path: CharTokenizer.load(path),
    "BPETokenizer.load": lambda path: BPETokenizer.load(path),
    "SpecialCharTokenizer.load": lambda path: SpecialCharTokenizer.load(path),
    "from_gpt2(encoder.json)": lambda path: BPETokenizer.from_gpt2(path, path),
    "read_token_cache": lambda path: read_token_cache(path, 10),
}
FILE_NAMES = {"sl.load": "checkpoint.npz", "a run's checkpoint": "checkpoint.npz",
              "load_safetensors": "model.safetensors",
              "read_safetensors_header": "model.safetensors",
              "from_hf_gpt2": "model.safetensors", "read_token_cache": "ids.npy",
              "from_gpt2(encoder.json)": "encoder.json"}


def load_run_for_training(run_dir):
    """What `sample` and `train --resume` read of a run, through the API."""
    path = os.path.join(run_dir, "checkpoint.npz")
    state = check_run_state(load_run_checkpoint(run_dir), path, "load", TRAINING_FIELDS,
                            train_config_class=TrainConfig)
    load_model(state, path, GPT, GPTConfig)
    stored_tokenizer(state, path)


# ----------------------------------------------------------------------------- the cases
def checkpoint_case(change):
    """A case writing a run checkpoint whose state ``change(state)`` spoils."""
    def make(path):
        state = base_state()
        state = change(state) or state
        sl.save(state, path)
    return make


def set_in(path_keys, value):
    def change(state):
        target = state
        for key in path_keys[:-1]:
            target = target[key]
        target[path_keys[-1]] = value
    return change


def drop(key):
    def change(state):
        del state[key]
    return change


def weights_as(dtype):
    def change(state):
        state["model"] = {k: v.astype(dtype) for k, v in state["model"].items()}
    return change


def nan_weight(state):
    weight = state["model"]["transformer.wte.weight"]
    weight[0, 0] = np.nan


def deep(depth, inner="1"):
    return "[" * depth + inner + "]" * depth


STATE_CASES = {
    "state_is_list": lambda state: [1, 2, 3],
    "no_model": drop("model"),
    "no_model_config": drop("model_config"),
    "no_extras": drop("extras"),
    "extras_list": set_in(["extras"], [1, 2]),
    "extras_tokenizer_missing": lambda state: state["extras"].pop("tokenizer") and None,
    "tokenizer_not_json": set_in(["extras", "tokenizer"], "{not json"),
    "tokenizer_list": set_in(["extras", "tokenizer"], "[1, 2, 3]"),
    "tokenizer_deep": set_in(["extras", "tokenizer"], deep(500)),
    "tokenizer_evil_type": set_in(["extras", "tokenizer"], '{"type": "Evil"}'),
    "tokenizer_no_type": set_in(["extras", "tokenizer"], '{"chars": ["a"]}'),
    "tokenizer_chars_int": set_in(["extras", "tokenizer"],
                                  '{"type": "CharTokenizer", "chars": 5}'),
    "tokenizer_chars_words": set_in(["extras", "tokenizer"],
                                    '{"type": "CharTokenizer", "chars": ["ab", "c"]}'),
    "tokenizer_is_number": set_in(["extras", "tokenizer"], 42),
    "tokenizer_kind_evil": set_in(["extras", "tokenizer_kind"], "evil"),
    "corpus_number": set_in(["extras", "corpus"], 7),
    "model_list": set_in(["model"], [1, 2]),
    "model_config_list": set_in(["model_config"], [1, 2]),
    "model_config_unknown_field": set_in(["model_config", "evil"], 1),
    "model_config_n_head_zero": set_in(["model_config", "n_head"], 0),
    "model_config_n_head_string": set_in(["model_config", "n_head"], "two"),
    "weights_float16": weights_as(np.float16),
    "weights_int32": weights_as(np.int32),
    "weights_nan": nan_weight,
    "weight_missing": lambda state: state.update(model={
        k: v for k, v in state["model"].items() if k != "transformer.wte.weight"}),
    "weight_wrong_shape": set_in(["model", "transformer.wte.weight"], np.zeros((3, 3),
                                                                              np.float32)),
    "rng_garbage": set_in(["rng", "data"], {"bit_generator": "Evil", "state": 5}),
    "rng_list": set_in(["rng"], [1, 2]),
    "rng_engine_string": set_in(["rng", "engine"], "seed"),
    "history_unequal": lambda state: state["history"]["train_loss"].append(1.0),
    "history_list": set_in(["history"], [1.0, 2.0]),
    "history_strings": set_in(["history", "step"], ["a", "b"]),
    "optimizer_list": set_in(["optimizer"], [1]),
    "optimizer_state_float16": lambda state: [
        entry.update({k: v.astype(np.float16) for k, v in entry.items()
                      if isinstance(v, np.ndarray)})
        for entry in state["optimizer"]["state"].values()] and None,
    "scheduler_list": set_in(["scheduler"], [1]),
    "scheduler_negative": set_in(["scheduler", "last_step"], -3),
    "step_negative": set_in(["step"], -1),
    "step_string": set_in(["step"], "ten"),
    "train_config_list": set_in(["train_config"], [1]),
    "config_changes_dict": set_in(["config_changes"], {"a": 1}),
}
#: training settings a run's checkpoint stores that TrainConfig refuses: the commands that
#: build a TrainConfig from them (train --resume, eval) name the file and the field
TRAIN_SETTINGS_CASES = {f"state_train_config_{name}": checkpoint_case(set_in(
    ["train_config", field], value)) for name, field, value in (
        ("batch_size_string", "batch_size", "32"), ("batch_size_zero", "batch_size", 0),
        ("max_steps_float", "max_steps", 2.5), ("learning_rate_negative", "learning_rate", -1.0),
        ("beta2_one", "beta2", 1.0), ("device_evil", "device", "tpu"),
        ("seed_huge", "seed", 2**40), ("skip_nonfinite_int", "skip_nonfinite", 1),
        ("grad_accum_steps_list", "grad_accum_steps", [2]))}


def zip_bomb(path):
    """An .npz whose one entry is deflated: 1 GiB of zeros in about 1 MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(1024)) + compressor.flush()
    name = b"checkpoint.json.npy"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(data), 1 << 30,
                        len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0,
                          len(data), 1 << 30, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    with open(path, "wb") as f:
        f.write(local + data + central + end)


def truncated_checkpoint(fraction):
    def make(path):
        sl.save(base_state(), path)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:int(len(data) * fraction)])
    return make


CHECKPOINT_FILE_CASES = {
    "zip_bomb": zip_bomb,
    **{f"truncated_{int(f * 100)}": truncated_checkpoint(f) for f in (0.1, 0.5, 0.9, 0.999)},
    "npy_not_npz": lambda path: np.save(path, np.zeros(3)),
    "json_not_npz": writer(b'{"format": "scratchlm-checkpoint"}'),
}


def safetensors_case(header, data=b"", arrays=None, config=None):
    def make(path):
        if arrays is not None:
            save_safetensors(arrays(), path)
        else:
            with open(path, "wb") as f:
                f.write(safetensors_bytes(header, data))
        if config is not None:
            config_path = os.path.join(os.path.dirname(path), "config.json")
            if callable(config):
                config(config_path)
            else:
                with open(config_path, "wb") as f:
                    f.write(config if isinstance(config, bytes) else json.dumps(config)
                            .encode())
    return make


def hundred_layers():
    """A tiny file whose names describe a 100-layer GPT-2 of width 768 (3.8 GB to build)."""
    arrays = {"wte.weight": np.zeros((4, 768), np.float16), "wpe.weight": np.zeros((2, 768),
                                                                                  np.float16)}
    for i in range(100):
        arrays[f"h.{i}.ln_1.weight"] = np.zeros(1, np.float16)
    return arrays


def with_dtype(dtype):
    return lambda: {k: v.astype(dtype) for k, v in hf_arrays().items()}


def nan_arrays():
    arrays = hf_arrays()
    arrays["h.0.ln_1.weight"][0] = np.nan
    return arrays


def drop_tensor(name):
    def arrays():
        tensors = hf_arrays()
        del tensors[name]
        return tensors
    return arrays


def extra_layer():
    tensors = hf_arrays()
    tensors["h.7.ln_1.weight"] = np.ones(64, np.float32)
    return tensors


SAFETENSORS_CASES = {
    "header_length_huge": writer(struct.pack("<Q", 1 << 62) + b"{}"),
    "header_not_json": writer(struct.pack("<Q", 5) + b"{nope"),
    "header_deep": writer(struct.pack("<Q", 4001) + (deep(2000, "") + " ").encode()),
    "header_list": safetensors_case([1, 2]),
    "dtype_unknown": safetensors_case({"x": {"dtype": "F128", "shape": [1],
                                             "data_offsets": [0, 16]}}, bytes(16)),
    "shape_bytes_mismatch": safetensors_case({"x": {"dtype": "F32", "shape": [1000],
                                                    "data_offsets": [0, 8]}}, bytes(8)),
    "offsets_overlap": safetensors_case({"a": {"dtype": "F32", "shape": [2],
                                               "data_offsets": [0, 8]},
                                         "b": {"dtype": "F32", "shape": [2],
                                               "data_offsets": [4, 12]}}, bytes(12)),
    "offsets_past_end": safetensors_case({"a": {"dtype": "F32", "shape": [4],
                                                "data_offsets": [0, 16]}}, bytes(8)),
    "shape_negative": safetensors_case({"a": {"dtype": "F32", "shape": [-1],
                                              "data_offsets": [0, 0]}}),
    "hundred_layers": safetensors_case(None, arrays=hundred_layers),
    "weights_int32": safetensors_case(None, arrays=with_dtype(np.int32)),
    "weights_nan": safetensors_case(None, arrays=nan_arrays),
    "tensor_missing": safetensors_case(None, arrays=drop_tensor("h.0.mlp.c_fc.weight")),
    "extra_layer": safetensors_case(None, arrays=extra_layer),
    "not_gpt2": safetensors_case(None, arrays=lambda: {"encoder.weight": np.zeros((2, 2),
                                                                                  np.float32)}),
    "config_not_json": safetensors_case(None, arrays=hf_arrays, config=b"{nope"),
    "config_not_utf8": safetensors_case(None, arrays=hf_arrays, config=b'{"n_layer": "\xff"}'),
    "config_list": safetensors_case(None, arrays=hf_arrays, config=[1, 2]),
    "config_deep": safetensors_case(None, arrays=hf_arrays, config=deep(500).encode()),
    "config_n_layer_contradicts": safetensors_case(None, arrays=hf_arrays,
                                                   config={"n_layer": 100}),
    "config_n_head_zero": safetensors_case(None, arrays=hf_arrays, config={"n_head": 0}),
    "config_n_head_string": safetensors_case(None, arrays=hf_arrays, config={"n_head": "1"}),
    "config_n_head_not_dividing": safetensors_case(None, arrays=hf_arrays,
                                                   config={"n_head": 3}),
    "config_vocab_contradicts": safetensors_case(None, arrays=hf_arrays,
                                                 config={"vocab_size": 50257}),
    "config_fifo": safetensors_case(None, arrays=hf_arrays, config=make_fifo),
    "config_directory": safetensors_case(None, arrays=hf_arrays, config=make_directory),
    "config_nan": safetensors_case(None, arrays=hf_arrays, config=b'{"n_head": NaN}'),
}

TOKENIZER_CASES = {
    "not_json": b"{nope",
    "list": b"[1, 2, 3]",
    "deep": deep(1000).encode(),
    "number": b"42",
    "evil_type": b'{"type": "Evil"}',
    "no_type": b'{"chars": ["a"]}',
    "type_number": b'{"type": 5}',
    "chars_int": b'{"type": "CharTokenizer", "chars": 5}',
    "chars_words": b'{"type": "CharTokenizer", "chars": ["ab"]}',
    "chars_twice": b'{"type": "CharTokenizer", "chars": ["a", "a"]}',
    "chars_empty": b'{"type": "CharTokenizer", "chars": []}',
    "bpe_vocab_list": b'{"type": "BPETokenizer", "vocab": [1], "merges": []}',
    "bpe_vocab_ids_strings": b'{"type": "BPETokenizer", "vocab": {"a": "0"}, "merges": []}',
    "bpe_vocab_gaps": b'{"type": "BPETokenizer", "vocab": {"a": 5}, "merges": []}',
    "bpe_merges_int": b'{"type": "BPETokenizer", "vocab": {"a": 0}, "merges": 3}',
    "special_chars_list": b'{"type": "SpecialCharTokenizer", "chars": ["a"]}',
    "duplicate_key": b'{"type": "CharTokenizer", "type": "BPETokenizer"}',
    "nan_literal": b'{"type": "CharTokenizer", "chars": NaN}',
    "huge_int": b'{"type": "CharTokenizer", "chars": ' + b"9" * 5000 + b"}",
}


def npy_case(array=None, raw=None, cut=None):
    def make(path):
        if raw is not None:
            data = raw
        else:
            buffer = io.BytesIO()
            np.save(buffer, array, allow_pickle=True)
            data = buffer.getvalue()
        with open(path, "wb") as f:
            f.write(data[:cut] if cut else data)
    return make


TOKEN_CACHE_CASES = {
    "object_array": npy_case(np.array([1, "x", None], dtype=object)),
    "truncated": npy_case(np.arange(100, dtype=np.uint16), cut=150),
    "floats": npy_case(np.arange(5, dtype=np.float64)),
    "two_dimensional": npy_case(np.zeros((2, 3), np.uint16)),
    "ids_out_of_range": npy_case(np.array([1, 2, 500], np.uint16)),
    "no_ids": npy_case(np.zeros(0, np.uint16)),
    "bad_magic": npy_case(raw=b"\x93NUMPY\x09\x00" + b"x" * 100),
    "huge_header_claim": npy_case(raw=b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100),
    "structured": npy_case(np.zeros(3, dtype=[("a", "<u2"), ("b", "<u2")])),
}


def build_cases():
    """(case id, kind: 'loader' or 'cli', target, make(tmp_path) -> argument)."""
    cases = []
    for loader in LOADERS:
        name = FILE_NAMES.get(loader, "tokenizer.json")
        for kind, make in GENERIC.items():
            cases.append((f"{loader}:{kind}", "loader", loader, name, make))
    for kind, make in CHECKPOINT_FILE_CASES.items():
        cases.append((f"sl.load:{kind}", "loader", "sl.load", "checkpoint.npz", make))
    for kind, make in {**CHECKPOINT_FILE_CASES, **{
            f"state_{k}": checkpoint_case(v) for k, v in STATE_CASES.items()},
            **TRAIN_SETTINGS_CASES}.items():
        cases.append((f"a run's checkpoint:{kind}", "loader", "a run's checkpoint",
                      "checkpoint.npz", make))
    for kind, make in SAFETENSORS_CASES.items():
        for loader in ("from_hf_gpt2", "load_safetensors"):
            if kind.startswith(("config", "hundred", "weights_int", "tensor_missing", "extra",
                                "not_gpt2")) and loader == "load_safetensors":
                continue
            cases.append((f"{loader}:{kind}", "loader", loader, "model.safetensors", make))
    for kind, data in TOKENIZER_CASES.items():
        for loader in ("CharTokenizer.load", "BPETokenizer.load", "SpecialCharTokenizer.load"):
            cases.append((f"{loader}:{kind}", "loader", loader, "tokenizer.json", writer(data)))
    cases.append(("from_gpt2(encoder.json):list", "loader", "from_gpt2(encoder.json)",
                  "encoder.json", writer(b"[1]")))
    cases.append(("from_gpt2(encoder.json):ids_strings", "loader", "from_gpt2(encoder.json)",
                  "encoder.json", writer(b'{"a": "b"}')))
    for kind, make in TOKEN_CACHE_CASES.items():
        cases.append((f"read_token_cache:{kind}", "loader", "read_token_cache", "ids.npy",
                      make))
    # the commands, each on a run folder whose checkpoint.npz is hostile
    checkpoint_kinds = {**{k: GENERIC[k] for k in ("fifo", "directory", "device", "empty",
                                                    "dangling_symlink", "random_bytes")},
                        "zip_bomb": zip_bomb, "truncated_50": truncated_checkpoint(0.5),
                        **{f"state_{k}": checkpoint_case(v) for k, v in STATE_CASES.items()},
                        **TRAIN_SETTINGS_CASES}
    for verb in ("sample", "eval", "train --resume", "finetune", "prompt"):
        for kind, make in checkpoint_kinds.items():
            if kind in TRAIN_SETTINGS_CASES and verb not in ("eval", "train --resume"):
                continue  # a command that never reads the training settings
            cases.append((f"{verb}:{kind}", "cli", verb, "checkpoint.npz", make))
    for kind in ("fifo", "directory", "hundred_layers", "weights_int32", "config_not_json",
                 "config_list", "config_deep", "header_not_json"):
        make = GENERIC.get(kind) or SAFETENSORS_CASES[kind]
        cases.append((f"pretrain --hf-gpt2:{kind}", "cli", "pretrain --hf-gpt2",
                      "model.safetensors", make))
    for kind in ("object_array", "truncated", "ids_out_of_range"):
        cases.append((f"eval --data-dir:{kind}", "cli", "eval --data-dir",
                      "shakespeare-char.npy", TOKEN_CACHE_CASES[kind]))
    return cases


# ----------------------------------------------------------------------------- the grader
# `python -m scratchlm.exercises grade EXERCISE FILE` and `grade-all`: a hostile submission
# (and the files grading reads beside it: the hint progress, the stored results of
# --expected, the --submitted times) is a clear refusal or a failed grade that says why.
EXERCISE = "softmax"
SUBMISSION = f"{EXERCISE}.py"
#: short grading limits (seconds, MiB): a file that loops costs this much
GRADE_LIMITS = ["--timeout", "8", "--memory", "1024"]
#: a grade that fails quickly, in its child process: the hint progress is updated after it
SYNTAX_ERROR = b"class Softmax(:\n"


def linked_to_fifo(path):
    os.mkfifo(f"{path}.fifo")
    os.symlink(f"{path}.fifo", path)


def linked_outside(path):
    """A link to a Python file in the folder above the submission's."""
    outside = os.path.join(os.path.dirname(os.path.dirname(path)), "outside.py")
    writer(b"class Softmax: pass\n")(outside)
    os.symlink(outside, path)


def sparse(size):
    def make(path):
        with open(path, "wb") as f:
            f.truncate(size)
    return make


SUBMISSION_CASES = {
    **GENERIC,
    "symlink_to_fifo": linked_to_fifo,
    "symlink_outside_its_folder": linked_outside,
    "syntax_error": writer(SYNTAX_ERROR),
    "unknown_coding_cookie": writer(b"# -*- coding: evil -*-\nclass Softmax: pass\n"),
    "latin1_without_cookie": writer("class Softmax:  # caf\xe9\n    pass\n".encode("latin-1")),
    "parentheses_nested_5000_deep": writer(b"x = " + b"(" * 5000 + b")" * 5000 + b"\n"),
    "expression_of_200000_terms": writer(b"x = " + b"1 + " * 200000 + b"1\n"),
    "comments_of_20_mb": writer((b"#" * 79 + b"\n") * 250000),
    "exits_on_import": writer(b"raise SystemExit(0)\n"),
    "raises_lone_surrogates": writer(b"raise ValueError('\\ud800 \\udcff')\n"),
    "prints_a_lone_surrogate": writer(b"print('\\ud800')\n"),
    "prints_bytes_not_utf8": writer(b"import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\n')\n"
                                    b"raise ValueError('caf\\xe9')\n"),
    "class_is_a_number": writer(b"Softmax = 5\n"),
}
#: the hint progress beside a failing submission, unusable: left as it is, and the report
#: says the progress was not kept
HINTS_UNUSABLE = {
    **{k: GENERIC[k] for k in ("fifo", "directory", "device", "symlink_loop", "non_utf8",
                               "random_bytes", "one_byte")},
    "list": writer(b"[1, 2]"),
    "deep": writer(deep(100000).encode()),
    "over_1_mb": writer(b'{"x": "' + b"a" * (1 << 20) + b'"}'),
}
#: hint progress that is a JSON object with entries of the wrong kinds: the grader's entry
#: is rewritten (hint 1 unlocked, one failed attempt), the rest kept
HINTS_REPAIRED = {
    "entry_list": writer(b'{"softmax": [1]}'),
    "unlocked_of_other_kinds": writer(b'{"softmax": {"unlocked": [true, "2", 99, -1, 1.5], '
                                      b'"failed attempts": true}}'),
    "attempts_4300_digits": writer(b'{"softmax": {"failed attempts": ' + b"9" * 4300 + b"}}"),
    "key_lone_surrogate": writer(b'{"\\ud800": 1}'),
    "dangling_symlink": GENERIC["dangling_symlink"],
}


def stored_results(cases, exercise=EXERCISE, checksum=None):
    """A stored-results file holding ``cases``, with the checksum grading checks (computed
    here as the module docstring of scratchlm.exercises.expected defines it)."""
    body = {"format": 1, "exercise": exercise, "seed": 0, "graded": "hostile", "cases": cases}
    text = json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":"))
    body["sha256"] = checksum or hashlib.sha256(text.encode()).hexdigest()
    return writer(json.dumps(body).encode())


EXPECTED_CASES = {
    **GENERIC,
    "not_json": writer(b"{nope"),
    "list": writer(b"[1]"),
    "deep": writer(deep(100000).encode()),
    "over_64_mb": sparse(64 * 2**20 + 1),
    "no_checksum": writer(b'{"format": 1}'),
    "checksum_wrong": stored_results([], checksum="0" * 64),
    "another_exercise": stored_results([], exercise="tanh"),
    "cases_of_numbers": stored_results([1, 2, 3, 4]),
    "cases_without_labels": stored_results([{"inputs": "x", "expected": 1}] * 4),
    "cases_labels_numbers": stored_results([{"label": 5, "inputs": "x", "expected": 1}] * 4),
    "cases_answers_garbage": stored_results(
        [{"label": "x", "inputs": "y", "expected": {"array": "evil"}}] * 4),
    "cases_other_inputs": stored_results([{"label": "x", "inputs": "y", "expected": 1}] * 4),
    "nan_checksum": writer(b'{"format": 1, "sha256": NaN}'),
}
#: what a student folder of `grade-all` may hold as its one file (or be, for the last two)
GRADE_ALL_CASES = {
    **{k: GENERIC[k] for k in ("fifo", "directory", "device", "dangling_symlink",
                               "symlink_loop", "non_utf8", "nul_bytes")},
    **{k: SUBMISSION_CASES[k] for k in ("symlink_to_fifo", "symlink_outside_its_folder",
                                        "comments_of_20_mb", "raises_lone_surrogates")},
}
SUBMITTED_CASES = {
    **GENERIC,
    "over_16_mb": sparse(16 * 2**20 + 1),
    "no_header": writer(b"alice,2026-12-01T10:00\n"),
    "time_not_a_time": writer(b"student,submitted\nalice,yesterday\n"),
    "time_out_of_range": writer(b"student,submitted\nalice,2026-13-45T99:99\n"),
    "latin1": writer("student,submitted\ncaf\xe9,2026-12-01T10:00\n".encode("latin-1")),
}


def exercise_cases():
    """(case id, 'exercises', verb, the hostile file's path in the case folder, make)."""
    cases = []
    for kind, make in SUBMISSION_CASES.items():
        cases.append((f"grade:{kind}", "exercises", "grade", SUBMISSION, make))
    cases.append(("grade:folder_name_not_utf8", "exercises", "grade",
                  os.path.join(os.fsdecode(b"caf\xe9"), SUBMISSION), writer(SYNTAX_ERROR)))
    for kind, make in {**HINTS_UNUSABLE, **HINTS_REPAIRED}.items():
        cases.append((f"grade (hint progress):{kind}", "exercises", "grade (hint progress)",
                      ".scratchlm_hints.json", make))
    for kind, make in EXPECTED_CASES.items():
        cases.append((f"grade --expected:{kind}", "exercises", "grade --expected",
                      f"expected/{EXERCISE}.json", make))
    for kind, make in GRADE_ALL_CASES.items():
        cases.append((f"grade-all:{kind}", "exercises", "grade-all",
                      f"submissions/alice/{SUBMISSION}", make))
    cases.append(("grade-all:student_folder_not_utf8", "exercises", "grade-all",
                  os.path.join("submissions", os.fsdecode(b"\xff\xfe"), SUBMISSION),
                  writer(SYNTAX_ERROR)))
    cases.append(("grade-all:student_folder_a_link_out", "exercises", "grade-all",
                  f"submissions/alice/{SUBMISSION}", student_folder_linked_out))
    for kind, make in SUBMITTED_CASES.items():
        cases.append((f"grade-all --submitted:{kind}", "exercises", "grade-all --submitted",
                      "submitted.csv", make))
    for kind in ("fifo", "not_json", "cases_without_labels"):
        cases.append((f"grade-all --expected:{kind}", "exercises", "grade-all --expected",
                      f"expected/{EXERCISE}.json", EXPECTED_CASES[kind]))
    return cases


def student_folder_linked_out(path):
    """alice/ is a link to a folder outside the submissions, holding a softmax.py."""
    outside = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(path))), "elsewhere")
    os.makedirs(outside)
    writer(SYNTAX_ERROR)(os.path.join(outside, SUBMISSION))
    os.rmdir(os.path.dirname(path))
    os.symlink(outside, os.path.dirname(path))


def exercises_argv(verb, run_dir, path):
    """The command line of ``verb`` on the case folder ``run_dir``."""
    submission = os.path.join(run_dir, SUBMISSION)
    if verb in ("grade", "grade (hint progress)", "grade --expected"):
        argv = ["grade", EXERCISE, path if verb == "grade" else submission, *GRADE_LIMITS]
        return argv + (["--expected", os.path.dirname(path)] if verb == "grade --expected"
                       else [])
    argv = ["grade-all", os.path.join(run_dir, "submissions"), "--csv",
            os.path.join(run_dir, "scores.csv"), *GRADE_LIMITS]
    if verb == "grade-all --submitted":
        argv += ["--due", "2026-12-01T00:00", "--submitted", path]
    if verb == "grade-all --expected":
        argv += ["--expected", os.path.dirname(path)]
    return argv


#: where each verb whose hostile file is not the submission finds a failing one
SUPPORTING_SUBMISSION = {"grade (hint progress)": SUBMISSION, "grade --expected": SUBMISSION,
                         "grade-all --submitted": f"submissions/alice/{SUBMISSION}",
                         "grade-all --expected": f"submissions/alice/{SUBMISSION}"}


def run_exercise_case(case_id, verb, run_dir, path):
    """'' when the command refused clearly, or graded and said why the file failed."""
    if verb in SUPPORTING_SUBMISSION:
        submission = os.path.join(run_dir, SUPPORTING_SUBMISSION[verb])
        os.makedirs(os.path.dirname(submission), exist_ok=True)
        writer(SYNTAX_ERROR)(submission)
    before = _snapshot(path)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with time_limit(TIME_LIMIT_S), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            status = exercises_cli.main(exercises_argv(verb, run_dir, path))
    except TimeLimit as hang:
        return str(hang)
    except SystemExit as stop:
        err = str(stop.code)
        if "\n" in err or not err.startswith("error: "):
            return f"exit {stop.code!r}"
        return judge(err, path, run_dir)
    except BaseException as error:  # noqa: BLE001 - a traceback is what we look for
        return f"traceback: {type(error).__name__}: {str(error)[:150]}"
    out = stdout.getvalue()
    try:
        out.encode("utf-8")
    except UnicodeEncodeError as error:  # what printing it to a terminal would raise
        return f"the output cannot be printed: {error}"
    if verb in ("grade-all --submitted", "grade-all --expected"):
        return "accepted"
    if verb == "grade-all":
        return judge_gradebook(run_dir, path)
    if status != 1 or "FAILED" not in out.splitlines()[0]:
        return f"exit status {status}: {out[:200]}"
    if verb == "grade (hint progress)":
        return judge_hints(out, path, before, case_id.split(":", 1)[1] in HINTS_REPAIRED)
    reason = out.splitlines()[1].strip()  # the report's reason, under its first line
    return judge_report(reason, path)


def _snapshot(path):
    """What is at ``path`` (its kind and, for a file, its bytes), to see it was left alone."""
    if not os.path.lexists(path):
        return None
    mode = os.lstat(path).st_mode
    if stat.S_ISREG(mode):
        with open(path, "rb") as f:
            return mode, f.read()
    return mode, None


def judge_hints(out, path, before, repairable):
    """The first hint is shown; progress of the wrong kinds is repaired and kept, an unusable
    file left as it was and named in the report."""
    notes = [line.strip() for line in out.splitlines() if line.strip().startswith("hint")]
    if not any(line.startswith("hint 1 of ") for line in notes):
        return f"no hint shown: {out[:300]}"
    kept = [line for line in notes if line.startswith("hints unlocked:")]
    if repairable:
        if len(kept) != 1 or not kept[0].startswith("hints unlocked: 1 ("):
            return f"the progress was not kept: {notes}"
        with open(path, encoding="utf-8") as f:
            progress = json.load(f)
        if progress.get(EXERCISE) != {"unlocked": [1], "failed attempts": 1}:
            return f"the progress file holds {str(progress)[:200]}"
        return ""
    said = [line for line in notes if line.startswith("hint progress not kept:")]
    if kept or not said or _snapshot(path) != before:
        return f"an unusable progress file was used or changed: {notes}"
    return judge_report(said[0], path)


def judge_gradebook(run_dir, path):
    """A finished grade-all: the student's row says why the file earned nothing, naming
    it (the CSV is UTF-8 and parses)."""
    with open(os.path.join(run_dir, "scores.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 1 or rows[0]["total"] != "0":
        return f"the gradebook holds {rows}"
    return judge_report(rows[0]["lost"], path)


CASES = build_cases() + exercise_cases()


# ----------------------------------------------------------------------------- running
class TimeLimit(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    def expired(signum, frame):
        raise TimeLimit(f"no answer within {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def cli_argv(verb, tmp_path, run_dir, path):
    out = str(tmp_path / "out")
    if verb == "sample":
        return ["sample", "--run", run_dir, "--max-new-tokens", "3"]
    if verb == "eval":
        return ["eval", "--run", run_dir, "--batches", "1", "--data-dir", str(tmp_path)]
    if verb == "train --resume":
        return ["train", "--resume", "--out-dir", str(tmp_path), "--run-name", "run",
                "--no-progress", "--max-steps", "5"]
    if verb in ("finetune", "prompt"):
        return [verb, "--from", run_dir, "--out", out, "--max-test", "2"] + (
            ["--max-steps", "1", "--no-progress"] if verb == "finetune" else [])
    if verb == "pretrain --hf-gpt2":
        return ["pretrain", "--hf-gpt2", path, "--out-dir", out, "--run-name", "gpt2"]
    raise AssertionError(verb)


def write_valid_run(run_dir):
    os.makedirs(run_dir, exist_ok=True)
    sl.save(base_state(), os.path.join(run_dir, "checkpoint.npz"))


def run_case(case, tmp_path):
    """'' for a clear refusal, else what went wrong."""
    case_id, kind, target, name, make = case
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    path = os.path.join(run_dir, name)
    if target == "eval --data-dir":
        write_valid_run(run_dir)
        path = str(tmp_path / name)
        CharTokenizer().train("abcdef").save(tmp_path / "shakespeare-char.tokenizer.json")
        target = "eval"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    make(path)
    if kind == "exercises":
        return run_exercise_case(case_id, target, run_dir, path)
    if kind == "loader":
        try:
            with time_limit(TIME_LIMIT_S):
                LOADERS[target](path)
        except TimeLimit as hang:
            return str(hang)
        except ScratchlmError as error:
            return judge(str(error), path, run_dir)
        except BaseException as error:  # noqa: BLE001 - a traceback is what we look for
            return f"traceback: {type(error).__name__}: {str(error)[:150]}"
        return "accepted"
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with time_limit(TIME_LIMIT_S), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            cli.main(cli_argv(target, tmp_path, run_dir, path))
    except TimeLimit as hang:
        return str(hang)
    except SystemExit as stop:
        err = stderr.getvalue().strip() or str(stop)
        if stop.code not in (1, 2) or "Traceback" in err or "\n" in err:
            return f"exit {stop.code}: {err[:200]}"
        return judge(err, path, run_dir)
    except BaseException as error:  # noqa: BLE001
        return f"traceback: {type(error).__name__}: {str(error)[:150]}"
    return "accepted"


def judge(message, path, run_dir):
    """'' when ``message`` names the file (its path, its name, or a file of the run folder)
    and says more than that, in words."""
    if not any(name in message for name in (path, run_dir, os.path.basename(path))):
        return f"does not name the file: {message[:200]}"
    if CRYPTIC.search(message) or len(message) < len(path) + 25:
        return f"cryptic: {message[:200]}"
    return ""


def judge_report(message, path):
    """'' when a line of a grading report (about one student's submission, so naming it by
    its file's or its folder's name) names it and says more than that, in words."""
    name = next((name for name in (os.path.basename(path),
                                   os.path.basename(os.path.dirname(path))) if name in message),
                None)
    if name is None:
        return f"does not name the file: {message[:200]}"
    if CRYPTIC.search(message) or len(message) < len(name) + 25:
        return f"cryptic: {message[:200]}"
    return ""


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_hostile_file_is_refused_clearly(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing a command writes lands in the checkout
    problem = run_case(case, tmp_path)
    assert not problem, f"{case[0]}: {problem}"


def test_the_suite_is_large_and_wide():
    assert len(CASES) >= 200
    targets = {case[2] for case in CASES}
    assert set(LOADERS) | {"sample", "eval", "train --resume", "finetune", "prompt",
                           "pretrain --hf-gpt2", "eval --data-dir", "grade",
                           "grade (hint progress)", "grade --expected", "grade-all",
                           "grade-all --submitted", "grade-all --expected"} <= targets


SUBPROCESS_CASES = [("sample", "fifo"), ("sample", "state_extras_list"),
                    ("train --resume", "state_weights_float16"),
                    ("pretrain --hf-gpt2", "hundred_layers")]


@pytest.mark.parametrize("verb,kind", SUBPROCESS_CASES)
def test_a_real_command_refuses_in_one_line(verb, kind, tmp_path):
    case = next(c for c in CASES if c[0] == f"{verb}:{kind}")
    run_dir = str(tmp_path / "run")
    os.makedirs(run_dir)
    path = os.path.join(run_dir, case[3])
    case[4](path)
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(sl.__file__))}
    done = subprocess.run([sys.executable, "-m", "scratchlm",
                           *cli_argv(verb, tmp_path, run_dir, path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env=env)
    err = done.stderr.strip()
    assert done.returncode in (1, 2), err[-2000:]
    assert "Traceback" not in err and "\n" not in err, err[-2000:]
    assert not judge(err, path, run_dir), err
