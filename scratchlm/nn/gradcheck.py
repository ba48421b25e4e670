"""Gradient-checking a whole layer, with respect to its inputs and its parameters."""

from scratchlm.autograd.gradcheck import gradcheck


def _attribute_slots(module, parameter):
    """Every (owner module, attribute name) that holds ``parameter`` (more than one when tied)."""
    return [(owner, name) for _, owner in module.named_modules()
            for name, p in owner._parameters.items() if p is parameter]


def gradcheck_module(module, inputs, parameters=None, forward_kwargs=None, eps=1e-6,
                     atol=1e-5, rtol=1e-3, seed=0):
    """:func:`scratchlm.gradcheck` of ``module(*inputs, **forward_kwargs)`` with respect to
    the inputs that have ``requires_grad=True`` and to the named ``parameters`` (all of
    them when None).

    The module must be float64 (``load_state_dict`` of float64 arrays) and deterministic
    (dropout 0 or ``eval()``). Each checked parameter is swapped, during the check only,
    for gradcheck's own leaf: ``forward`` reads parameters as plain attributes, so
    re-binding the attribute routes the computation through the leaf.
    """
    inputs, forward_kwargs = list(inputs), forward_kwargs or {}
    named = dict(module.named_parameters())
    names = list(named) if parameters is None else list(parameters)
    unknown = [name for name in names if name not in named]
    if unknown:
        raise KeyError(f"gradcheck_module: {type(module).__name__} has no parameters "
                       f"{unknown}; it has {list(named)}")
    slots = [_attribute_slots(module, named[name]) for name in names]

    def run(*tensors):
        xs, leaves = tensors[:len(inputs)], tensors[len(inputs):]
        try:
            for leaf, holders in zip(leaves, slots):
                for owner, attribute in holders:
                    object.__setattr__(owner, attribute, leaf)
            return module(*xs, **forward_kwargs)
        finally:
            for name, holders in zip(names, slots):
                for owner, attribute in holders:
                    object.__setattr__(owner, attribute, named[name])

    return gradcheck(run, inputs + [named[name] for name in names], eps=eps, atol=atol,
                     rtol=rtol, seed=seed)
