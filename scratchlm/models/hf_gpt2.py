"""Reading Hugging Face GPT-2 weights for :class:`~scratchlm.models.gpt.GPT`.

Hugging Face's GPT-2 names match nanoGPT's (``h.0.attn.c_attn.weight`` …), sometimes behind a
``transformer.`` prefix, but its projections are ``Conv1D`` layers that store the weight as
(in, out): y = x W + b. scratchlm's ``Linear`` stores (out, in), so those four matrices per
layer are transposed. The causal-mask buffers (``attn.bias``, ``attn.masked_bias``) are not
weights and are skipped; ``lm_head.weight``, when saved, is the tied token embedding.

A file is checked before anything is allocated: the safetensors header alone gives every
tensor's name, dtype and shape; the configuration comes from ``config.json`` beside the
file (each field checked, and checked against the shapes) or from the shapes; every tensor
the configuration implies must be there with exactly its shape and a float dtype, and no
other; and the memory the load needs (the file's tensors, the converted copies and the
model) must be available. So a small file whose names describe a huge model is refused
with its size, never built.

This module knows Hugging Face's file layout and nothing of the model: it returns the
configuration as plain fields and the arrays under nanoGPT's names, and
``GPT.from_hf_gpt2`` builds the model from them.
"""

import math
import os
import re
from types import SimpleNamespace

import numpy as np

from scratchlm.errors import ArgumentTypeError, FileFormatError, NotEnoughMemoryError
from scratchlm.file_reading import Fields, read_json_file
from scratchlm.memory_estimate import available_memory, format_bytes, gpt_parameter_count
from scratchlm.safetensors import FLOAT_TAGS, load_safetensors, read_safetensors_header

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")
GPT2_HEAD_SIZE = 64
MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")
LAYER_NAME = re.compile(r"h\.(0|[1-9][0-9]*)\.(.+)$")
WHERE = "from_hf_gpt2"
#: config.json's fields read, and the GPTConfig field each one is.
CONFIG_FIELDS = {"n_layer": "n_layer", "n_embd": "n_embd", "n_head": "n_head",
                 "vocab_size": "vocab_size", "n_positions": "block_size"}


class HFCheckpointError(FileFormatError):
    """A GPT-2 checkpoint (safetensors file, its config.json, or arrays) that is not one."""


def _strip(name):
    return name[len("transformer."):] if name.startswith("transformer.") else name


def _layer_shapes(C, bias):
    """Hugging Face's shape of each tensor of one block (Conv1D weights are (in, out))."""
    shapes = {"ln_1.weight": (C,), "attn.c_attn.weight": (C, 3 * C),
              "attn.c_proj.weight": (C, C), "ln_2.weight": (C,),
              "mlp.c_fc.weight": (C, 4 * C), "mlp.c_proj.weight": (4 * C, C)}
    if bias:
        shapes.update({"ln_1.bias": (C,), "attn.c_attn.bias": (3 * C,),
                       "attn.c_proj.bias": (C,), "ln_2.bias": (C,),
                       "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.bias": (C,)})
    return shapes


def _outer_shapes(fields):
    C = fields["n_embd"]
    shapes = {"wte.weight": (fields["vocab_size"], C), "wpe.weight": (fields["block_size"], C),
              "ln_f.weight": (C,)}
    if fields["bias"]:
        shapes["ln_f.bias"] = (C,)
    return shapes


def _expected_shape(name, fields, layer_shapes):
    """The shape ``name`` must have for ``fields``; None for a name no such model has."""
    match = LAYER_NAME.match(name)
    if match:
        if int(match[1]) >= fields["n_layer"]:
            return None
        return layer_shapes.get(match[2])
    return _outer_shapes(fields).get(name)


def _fail(source, problem, hint="is this a GPT-2 checkpoint? export it again", entry=None):
    raise HFCheckpointError(f"{WHERE}: {source}: {problem}" + (f"; {hint}" if hint else ""),
                            path=source if isinstance(source, str) else None, entry=entry)


def _read_config_json(config_path):
    """The GPTConfig fields config.json gives (checked one by one), or {} without one."""
    if config_path is None or not os.path.lexists(config_path):
        return {}
    fields = Fields(read_json_file(config_path, WHERE, "config.json", error=HFCheckpointError),
                    WHERE, config_path, config_path, HFCheckpointError,
                    what="an object of GPT-2's settings (n_layer, n_embd, n_head, ...)")
    return {ours: fields.integer(theirs, 1) for theirs, ours in CONFIG_FIELDS.items()
            if theirs in fields.value}


def _config_fields(shapes, config_path, source):
    """GPTConfig's fields: read off the shapes, checked against config.json when there is
    one (which alone gives the head count; else GPT-2's head size of 64 is assumed)."""
    for required in ("wte.weight", "wpe.weight"):
        if required not in shapes:
            _fail(source, f"no {required!r} among the tensors ({sorted(shapes)[:5]}…)")
        if len(shapes[required]) != 2:
            _fail(source, f"tensor {required!r} has shape {list(shapes[required])}; "
                  "expected (rows, n_embd)", entry=required)
    vocab_size, n_embd = shapes["wte.weight"]
    block_size = shapes["wpe.weight"][0]
    layers = {int(match[1]) for match in map(LAYER_NAME.match, shapes) if match}
    fields = dict(vocab_size=vocab_size, block_size=block_size,
                  n_layer=max(layers, default=-1) + 1, n_embd=n_embd,
                  bias="h.0.attn.c_attn.bias" in shapes or "ln_f.bias" in shapes)
    stated = _read_config_json(config_path)
    for name in ("n_layer", "n_embd", "vocab_size", "block_size"):
        if name in stated and stated[name] != fields[name]:
            theirs = next(k for k, v in CONFIG_FIELDS.items() if v == name)
            _fail(config_path, f"{theirs}={stated[name]} but the weights in {source} have "
                  f"{name}={fields[name]} (n_layer={fields['n_layer']}, "
                  f"n_embd={fields['n_embd']})", hint="the config.json belongs to another "
                  "model: put the right one beside the weights, or remove it")
    if "n_head" in stated:
        fields["n_head"] = stated["n_head"]
        if n_embd % fields["n_head"]:
            _fail(config_path, f"n_head={fields['n_head']} does not divide n_embd={n_embd}",
                  hint="the config.json is damaged")
    elif n_embd % GPT2_HEAD_SIZE or n_embd == 0:
        _fail(source, f"n_embd={n_embd} is not a multiple of GPT-2's head size "
              f"{GPT2_HEAD_SIZE}", hint="put the checkpoint's config.json beside it")
    else:
        fields["n_head"] = n_embd // GPT2_HEAD_SIZE
    for name in ("vocab_size", "block_size", "n_embd"):
        if fields[name] < 1:
            _fail(source, f"its {name} is {fields[name]}; a GPT-2 has at least 1")
    return fields


def _check_tensors(tensors, fields, source):
    """Every tensor the configuration implies is there, with its exact shape and a float
    dtype, and no other. ``tensors`` maps names to ``(dtype tag or NumPy dtype, shape)``."""
    parameters = gpt_parameter_count(SimpleNamespace(**fields))
    model = (f"a GPT-2 of {fields['n_layer']} layers, width {fields['n_embd']} and "
             f"{fields['vocab_size']} tokens ({parameters:,} parameters, about "
             f"{format_bytes(4 * parameters)} as float32)")
    layer_shapes = _layer_shapes(fields["n_embd"], fields["bias"])
    for name, (dtype, shape) in tensors.items():
        expected = _expected_shape(name, fields, layer_shapes)
        if expected is None:
            _fail(source, f"tensor {name!r} belongs to no part of {model}", entry=name)
        if tuple(shape) != expected:
            _fail(source, f"tensor {name!r} has shape {list(shape)}, but {model} needs "
                  f"{list(expected)}", entry=name)
        is_float = dtype in FLOAT_TAGS if isinstance(dtype, str) else \
            np.dtype(dtype).kind == "f"
        if not is_float:
            _fail(source, f"tensor {name!r} holds {dtype} values; weights are floats "
                  "(converting integers to floats would load wrong weights silently)",
                  entry=name)
    needed = fields["n_layer"] * len(layer_shapes) + len(_outer_shapes(fields))
    if len(tensors) != needed:
        missing = next((f"h.{i}.{part}" for i in range(fields["n_layer"])
                        for part in layer_shapes if f"h.{i}.{part}" not in tensors),
                       next((n for n in _outer_shapes(fields) if n not in tensors), None))
        _fail(source, f"it holds {len(tensors)} of the {needed} tensors of {model}"
              + (f"; {missing!r} is missing" if missing else ""))
    return parameters


def _check_memory(source, parameters, file_values):
    """Refuse a load whose tensors, float32 copies and model would not fit in memory."""
    needed = 4 * file_values + 2 * 4 * parameters
    available = available_memory()
    if available is not None and needed > available:
        raise NotEnoughMemoryError(
            f"{WHERE}: {source}: loading it needs about {format_bytes(needed)} (the file's "
            f"tensors, their float32 copies and a model of {parameters:,} parameters), but "
            f"{format_bytes(available)} is available; free some memory or use a machine "
            "with more", needed=needed, available=available)


def read_hf_gpt2(path_or_state_dict):
    """A Hugging Face GPT-2 checkpoint (a ``model.safetensors`` path, its folder, or its
    arrays by name) as ``(config_fields, state_dict)``: GPTConfig's fields, and float32
    arrays under GPT's parameter names, the Conv1D matrices transposed to (out, in).

    Everything is checked before any tensor is read (see the module docstring): a file that
    is not a GPT-2 checkpoint raises :class:`HFCheckpointError` naming it and the tensor; a
    load that would not fit in memory raises
    :class:`~scratchlm.errors.NotEnoughMemoryError` with the estimate."""
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = os.fspath(path_or_state_dict)
        if os.path.isdir(path):
            path = os.path.join(path, "model.safetensors")
        config_path = os.path.join(os.path.dirname(path), "config.json")
        header = {_strip(name): (info.dtype, info.shape)
                  for name, info in read_safetensors_header(path).items()}
        source = path
    elif isinstance(path_or_state_dict, dict):
        config_path, source = None, "the state dict given"
        header = {}
        for name, value in path_or_state_dict.items():
            if not (isinstance(name, str) and hasattr(value, "shape")
                    and hasattr(value, "dtype")):
                raise ArgumentTypeError(f"{WHERE}: the state dict maps {name!r} to a "
                                        f"{type(value).__name__}; expected names mapped to "
                                        "arrays", where=WHERE, name="path_or_state_dict",
                                        value=path_or_state_dict)
            header[_strip(name)] = (value.dtype, tuple(value.shape))
    else:
        raise ArgumentTypeError(f"{WHERE}: path_or_state_dict is a "
                                f"{type(path_or_state_dict).__name__}; expected the path of "
                                "a model.safetensors (or its folder) or a dict of arrays",
                                where=WHERE, name="path_or_state_dict",
                                value=path_or_state_dict)
    header = {name: info for name, info in header.items() if not MASK_BUFFER.match(name)}
    lm_head = header.pop("lm_head.weight", None)
    fields = _config_fields({name: shape for name, (_, shape) in header.items()},
                            config_path, source)
    if lm_head is not None and tuple(lm_head[1]) != tuple(header["wte.weight"][1]):
        _fail(source, f"lm_head.weight has shape {list(lm_head[1])}, not wte.weight's "
              f"{list(header['wte.weight'][1])}, but GPT ties them", entry="lm_head.weight")
    parameters = _check_tensors(header, fields, source)
    file_values = sum(math.prod(shape) for _, shape in header.values())
    _check_memory(source, parameters, file_values)

    raw = load_safetensors(path) if config_path is not None else path_or_state_dict
    arrays = {_strip(name): np.asarray(value) for name, value in raw.items()}
    if lm_head is not None and not np.array_equal(arrays["lm_head.weight"],
                                                  arrays["wte.weight"]):
        _fail(source, "lm_head.weight differs from wte.weight, but GPT ties them",
              entry="lm_head.weight")
    state = {}
    for name in header:
        value = arrays.pop(name).astype(np.float32)
        state["transformer." + name] = value.T if name.endswith(CONV1D_WEIGHTS) else value
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return fields, state
