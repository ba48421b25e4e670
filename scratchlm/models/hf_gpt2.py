"""Reading Hugging Face GPT-2 weights for :class:`~scratchlm.models.gpt.GPT`.

Hugging Face's GPT-2 names match nanoGPT's (``h.0.attn.c_attn.weight`` …), sometimes behind a
``transformer.`` prefix, but its projections are ``Conv1D`` layers that store the weight as
(in, out): y = x W + b. scratchlm's ``Linear`` stores (out, in), so those four matrices per
layer are transposed. The causal-mask buffers (``attn.bias``, ``attn.masked_bias``) are not
weights and are skipped; ``lm_head.weight``, when saved, is the tied token embedding.

This module knows Hugging Face's file layout and nothing of the model: it returns the
configuration as plain fields and the arrays under nanoGPT's names, and
``GPT.from_hf_gpt2`` builds the model from them.
"""

import json
import os
import re

import numpy as np

from scratchlm.safetensors import load_safetensors

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")
GPT2_HEAD_SIZE = 64
MASK_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)$")


def _strip(name):
    return name[len("transformer."):] if name.startswith("transformer.") else name


def _config_fields(arrays, config_path):
    """GPTConfig's fields: from ``config.json`` when present, else read off the arrays."""
    vocab_size, n_embd = arrays["wte.weight"].shape
    block_size = arrays["wpe.weight"].shape[0]
    n_layer = len({name.split(".")[1] for name in arrays if name.startswith("h.")})
    n_head = n_embd // GPT2_HEAD_SIZE
    has_config = config_path is not None and os.path.exists(config_path)
    if not has_config and n_embd % GPT2_HEAD_SIZE:
        raise ValueError(f"from_hf_gpt2: n_embd={n_embd} is not a multiple of GPT-2's head size "
                         f"{GPT2_HEAD_SIZE}; put the checkpoint's config.json beside it")
    if has_config:
        with open(config_path, encoding="utf-8") as f:
            hf = json.load(f)
        n_head = hf.get("n_head", n_head)
        if hf.get("n_layer", n_layer) != n_layer or hf.get("n_embd", n_embd) != n_embd:
            raise ValueError(f"from_hf_gpt2: {config_path} describes n_layer={hf.get('n_layer')}"
                             f", n_embd={hf.get('n_embd')} but the weights have "
                             f"n_layer={n_layer}, n_embd={n_embd}")
    bias = "h.0.attn.c_attn.bias" in arrays
    return dict(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                n_embd=n_embd, bias=bias)


def read_hf_gpt2(path_or_state_dict):
    """A Hugging Face GPT-2 checkpoint (a ``model.safetensors`` path, its folder, or its
    arrays by name) as ``(config_fields, state_dict)``: GPTConfig's fields, and float32
    arrays under GPT's parameter names, the Conv1D matrices transposed to (out, in)."""
    config_path = None
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = os.fspath(path_or_state_dict)
        if os.path.isdir(path):
            path = os.path.join(path, "model.safetensors")
        config_path = os.path.join(os.path.dirname(path), "config.json")
        raw = load_safetensors(path)
    else:
        raw = dict(path_or_state_dict)
    arrays = {}
    for name, value in raw.items():
        name = _strip(name)
        if MASK_BUFFER.match(name):
            continue  # causal-mask buffers, not weights
        arrays[name] = np.asarray(value)
    for required in ("wte.weight", "wpe.weight"):
        if required not in arrays:
            raise ValueError(f"from_hf_gpt2: no {required!r} among the arrays "
                             f"({sorted(arrays)[:5]}…); is this a GPT-2 checkpoint?")
    lm_head = arrays.pop("lm_head.weight", None)
    if lm_head is not None and not np.array_equal(lm_head, arrays["wte.weight"]):
        raise ValueError("from_hf_gpt2: lm_head.weight differs from wte.weight, but GPT "
                         "ties them")
    config_fields = _config_fields(arrays, config_path)
    state = {}
    for name, value in arrays.items():
        value = value.astype(np.float32)
        if name.endswith(CONV1D_WEIGHTS):
            value = value.T
        state["transformer." + name] = value
    state["lm_head.weight"] = state["transformer.wte.weight"]
    return config_fields, state
