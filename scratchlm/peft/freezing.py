"""Choosing what trains: freezing by parameter name or by depth, and counting what is left.

A frozen parameter has ``requires_grad=False``: backward computes no gradient for it (and
skips the matrix products that would only serve it), and optimizers skip it and keep no
state for it, so fine-tuning the top of a network costs less time and memory than the whole.
"""

import fnmatch

from scratchlm.errors import ArgumentError, ArgumentTypeError
from scratchlm.nn.module import Module


def _matches(name, patterns):
    """True when ``name`` fits one of ``patterns``: a shell pattern (``*.ln_*``), an exact
    name, or a dotted suffix (``classifier`` matches ``classifier.weight``'s module)."""
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".")
               or f".{p}." in f".{name}." for p in patterns)


def set_trainable(model, patterns, trainable=True):
    """Set ``requires_grad`` on the parameters whose dotted name matches one of
    ``patterns`` (see :func:`_matches`); returns the names changed. Raises if none match."""
    if isinstance(patterns, str):
        patterns = [patterns]
    changed = [name for name, p in model.named_parameters() if _matches(name, patterns)]
    if not changed:
        names = [name for name, _ in model.named_parameters()]
        raise ArgumentError(f"set_trainable: no parameter of {type(model).__name__} matches "
                            f"{list(patterns)}; its parameters are named like {names[:6]} ...")
    lookup = dict(model.named_parameters())
    for name in changed:
        lookup[name].requires_grad_(trainable)
    return changed


def block_names(model):
    """The dotted names of the model's stacked blocks, bottom first: GPT's
    ``transformer.h.{i}``, BERT's ``bert.layers.{i}`` (or ``layers.{i}``), found as the
    longest ModuleList of the model."""
    from scratchlm.nn.containers import ModuleList

    lists = [(name, module) for name, module in model.named_modules()
             if isinstance(module, ModuleList) and len(module)]
    if not lists:
        raise ArgumentError(f"block_names: {type(model).__name__} has no ModuleList of blocks")
    name, blocks = max(lists, key=lambda item: len(item[1]))
    return [f"{name}.{i}" for i in range(len(blocks))]


def freeze(model, patterns=None, train_top_k=None, train=("classifier", "score")):
    """Freeze ``model`` except what is named to train; returns the model.

    * ``patterns``: freeze only the parameters matching these names (the rest untouched);
    * ``train_top_k``: freeze everything, then unfreeze the top ``k`` blocks (``k = 0``: none)
      and the final LayerNorm that follows them (GPT's ``ln_f``);
    * ``train``: names that always stay trainable when freezing everything (the task head:
      ``classifier`` in BERT's classifiers, ``score`` in GPT's). Names that match nothing
      are ignored here.
    """
    if not isinstance(model, Module):
        raise ArgumentTypeError(f"freeze: expected a Module, got {type(model).__name__}")
    if patterns is not None:
        set_trainable(model, patterns, False)
        return model
    model.requires_grad_(False)
    names = []
    if train_top_k:
        blocks = block_names(model)
        if train_top_k > len(blocks):
            raise ArgumentError(f"freeze: train_top_k={train_top_k} but the model has "
                                f"{len(blocks)} blocks")
        names += blocks[len(blocks) - train_top_k:] + ["ln_f"]
    names += list(train)
    for name, parameter in model.named_parameters():
        if _matches(name, names):
            parameter.requires_grad_(True)
    return model


def count_parameters(model):
    """(trainable, total) numbers of parameters, tied ones counted once."""
    total = trainable = 0
    for parameter in model.parameters():
        total += parameter.size
        trainable += parameter.size if parameter.requires_grad else 0
    return trainable, total


def describe_parameters(model):
    """``"trainable 12,345 / total 1,234,567 (1.00%)"``."""
    trainable, total = count_parameters(model)
    return f"trainable {trainable:,} / total {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def trainable_named_parameters(model):
    """(name, parameter) of the parameters that train: what an optimizer should get."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


__all__ = ["set_trainable", "freeze", "block_names", "count_parameters",
           "describe_parameters", "trainable_named_parameters"]
