"""Prompt tuning (Lester et al., 2021): n trainable "virtual token" vectors before the input.

    E' = [P₁ … Pₙ ; E[x₁] … E[x_T]]        P (n, C) trainable, the model frozen

The model then runs on E' as on any n + T embeddings (positions, attention, everything as
before), and only P is learned: a few thousand numbers per task instead of a copy of the
model. peft calls this ``PromptTuningConfig``; its ``num_virtual_tokens`` is n.

How: :class:`PromptTuning` feeds the model ids with n placeholder tokens in front and, for
the duration of the call, puts a :class:`PromptEmbedding` in the word embedding's place
that returns P for those n positions. Per-token arrays (``attention_mask``,
``token_type_ids``, ``targets``, ``mlm_labels``) get n entries in front too (attended,
segment 0, ignored by the loss); per-token outputs (a language model's logits) lose them.
"""

import inspect

import numpy as np

from scratchlm import backend
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import bad_argument
from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.nn import init
from scratchlm.nn.embedding import Embedding
from scratchlm.nn.module import Module, Parameter
from scratchlm.ops import concat
from scratchlm.peft.freezing import _matches

#: What goes in front of each per-token input for the virtual positions.
_PAD_VALUES = {"input_ids": 0, "idx": 0, "attention_mask": 1, "token_type_ids": 0,
               "targets": -100, "mlm_labels": -100, "labels": -100}


def find_input_embedding(model):
    """(parent module, attribute, Embedding) of the model's word embedding: the first
    Embedding named ``wte`` (GPT) or ``word_embeddings`` (BERT)."""
    for name, module in model.named_modules():
        if isinstance(module, Embedding) and name.rsplit(".", 1)[-1] in ("wte",
                                                                        "word_embeddings"):
            parent = model
            *path, leaf = name.split(".")
            for part in path:
                parent = parent._modules[part]
            return parent, leaf, module
    raise ArgumentError(f"PromptTuning: found no word embedding (an Embedding named 'wte' or "
                        f"'word_embeddings') in {type(model).__name__}")


class PromptEmbedding(Module):
    """The word embedding with P in front: ids (B, n + T) → [P; E[ids[:, n:]]] (B, n+T, C)."""

    def __init__(self, embedding, prompt):
        super().__init__()
        self.embedding, self.prompt = embedding, prompt

    def forward(self, ids):
        ids = ids.data if isinstance(ids, Tensor) else ids
        n = self.prompt.shape[0]
        tokens = self.embedding(ids[:, n:])
        xp = backend.get_array_module(tokens.data)
        # P broadcast over the batch: the add sums P's gradient over the batch's rows
        front = self.prompt.reshape(1, n, -1) + xp.zeros((ids.shape[0], n, 1), tokens.dtype)
        return concat([front, tokens], axis=1)


class PromptTuning(Module):
    """``PromptTuning(model, num_virtual_tokens)``: the model, frozen, behind a trainable
    prompt ``prompt`` of shape (num_virtual_tokens, n_embd).

    ``init``: ``"random"`` (U(−0.5, 0.5), as Lester et al.), ``"vocab"`` (the embeddings of
    n tokens drawn at random from the vocabulary) or a list of token ids whose embeddings
    start the prompt (repeated to length n: peft's text initialization).
    ``train``: names of model parameters that train too (e.g. a new ``classifier`` head);
    by default none, and the prompt is the only trainable parameter.
    Call it as the model: ``prompted(input_ids, attention_mask=..., labels=...)``.
    """

    def __init__(self, model, num_virtual_tokens, init="random", train=()):
        super().__init__()
        if not isinstance(model, Module):
            raise bad_argument("PromptTuning", "model", model, "an nn.Module (a GPT or BERT)",
                               error=ArgumentTypeError)
        if not (isinstance(num_virtual_tokens, int) and num_virtual_tokens >= 1):
            raise ArgumentError(f"PromptTuning: num_virtual_tokens must be a positive integer, "
                                f"got {num_virtual_tokens!r}")
        self.model = model
        self.num_virtual_tokens = n = num_virtual_tokens
        _, _, embedding = find_input_embedding(model)
        table = embedding.weight.data
        width = table.shape[1]
        if isinstance(init, str) and init == "random":
            values = _host_uniform((n, width), 0.5)
        elif isinstance(init, str) and init == "vocab":
            rows = backend.generator("cpu").choice(table.shape[0], size=n, replace=False)
            values = backend.to_numpy(table)[rows]
        elif not isinstance(init, str):
            ids = np.resize(np.asarray(list(init), dtype=np.int64), n)
            values = backend.to_numpy(table)[ids]
        else:
            raise ArgumentError(f"PromptTuning: init must be 'random', 'vocab' or a list of "
                                f"token ids, got {init!r}")
        model.requires_grad_(False)
        if train:
            for name, parameter in model.named_parameters():
                if _matches(name, train):
                    parameter.requires_grad_(True)
        self.prompt = Parameter(backend.to_device(np.asarray(values, dtype=table.dtype),
                                                  backend.device_of(table)))
        self._parameter_names = list(inspect.signature(model.forward).parameters)

    def forward(self, *args, **kwargs):
        named = dict(zip(self._parameter_names, args))
        overlap = set(named) & set(kwargs)
        if overlap:
            raise ArgumentTypeError(f"PromptTuning: {sorted(overlap)} given twice")
        named.update(kwargs)
        first = self._parameter_names[0]
        ids = named[first]
        ids = ids.data if isinstance(ids, Tensor) else ids
        if getattr(ids, "ndim", 0) != 2:
            raise ArgumentError(f"PromptTuning: {first} should be token ids (batch, time), got "
                                f"shape {getattr(ids, 'shape', None)}")
        n, shape = self.num_virtual_tokens, ids.shape
        for name, value in list(named.items()):
            array = value.data if isinstance(value, Tensor) else value
            if value is not None and getattr(array, "shape", None) == shape:
                xp = backend.get_array_module(array)
                fill = _PAD_VALUES.get(name, 0)
                front = xp.full((shape[0], n), fill, dtype=array.dtype)
                named[name] = xp.concatenate([front, array], axis=1)
        parent, leaf, embedding = find_input_embedding(self.model)
        setattr(parent, leaf, PromptEmbedding(embedding, self.prompt))
        try:
            output = self.model(**named)
        finally:
            setattr(parent, leaf, embedding)
        return _strip_virtual(output, n, shape[1] + n)

    def extra_repr(self):
        return f"num_virtual_tokens={self.num_virtual_tokens}"


def _host_uniform(shape, bound):
    return init.uniform(shape, bound)


def _strip_virtual(output, n, length):
    """Drop the n virtual positions from per-token outputs (axis 1 of length n + T)."""
    def strip(value):
        if isinstance(value, Tensor) and value.ndim == 3 and value.shape[1] == length:
            return value[:, n:]
        return value
    if isinstance(output, tuple):
        stripped = [strip(v) for v in output]
        return type(output)(*stripped) if hasattr(output, "_fields") else tuple(stripped)
    return strip(output)
