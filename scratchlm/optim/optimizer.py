"""``Optimizer``: parameter groups, per-parameter state, saving and loading — what every
update rule shares. A rule (SGD, Adam) only writes :meth:`Optimizer.update_parameter`.

Parameters come as PyTorch takes them: an iterable of Tensors, of ``(name, tensor)`` pairs
(``model.named_parameters()``), or of group dicts ``{"params": [...], "lr": ...}`` whose
missing hyperparameters are filled from the optimizer's defaults.

State (step counts, moments, momentum buffers) is keyed by the parameter's *name* when the
optimizer was given names, else by its *position* counted through the groups in order — never
by ``id()``, so ``state_dict()`` means the same thing in a fresh process and saves into an
``.npz`` checkpoint as plain NumPy arrays and numbers.

An optimizer's update rule is its formula on arrays (the reference); a faster version of it
for one device (the update in cache-sized pieces shared among threads, or one fused CUDA
kernel) may be registered in :mod:`scratchlm.fast` as a function for the method
``update_parameter``, and then runs in its place, given the optimizer as its first argument:
``step`` asks the one hook, :data:`scratchlm.autograd.dispatch.faster`, which the fast layer
fills in. A subclass that writes its own ``update_parameter`` always runs its own.
"""

import abc

import numpy as np

from scratchlm import backend
from scratchlm.autograd import dispatch
from scratchlm.autograd.tensor import Tensor


def weight_decay_groups(named_parameters, weight_decay):
    """Two AdamW parameter groups, as GPT-2 and BERT train: decay every matrix (weights,
    embeddings), not the biases or LayerNorm gains (vectors), for which shrinking towards 0
    has no regularising sense. ``named_parameters``: (name, tensor) pairs."""
    named = list(named_parameters)
    return [{"params": [(n, p) for n, p in named if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [(n, p) for n, p in named if p.ndim < 2], "weight_decay": 0.0}]


class Optimizer(abc.ABC):
    """Base class of every optimizer.

    A subclass passes its hyperparameter defaults to ``__init__``, lists its per-parameter
    state entries in ``STATE_KEYS``, and writes :meth:`check_hyperparameters`,
    :meth:`update_parameter` and, if it starts with some state, :meth:`initial_state`.
    """

    STATE_KEYS = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # state key -> {"step": ..., "exp_avg": ...}
        self._keys = []  # per group: its parameters' state keys (names or positions)
        self.check_hyperparameters(self.defaults, self._name)
        if isinstance(params, (Tensor, set, frozenset, dict, str)):
            raise TypeError(f"{self._name}: params must be an iterable (a list) of Tensors, of "
                            f"(name, Tensor) pairs or of group dicts, got "
                            f"{type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError(f"{self._name}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self):
        return type(self).__name__

    # ---------------------------------------------------------------- parameter groups
    def add_param_group(self, group):
        """Add a group dict ``{"params": [...], **hyperparameters}``; missing
        hyperparameters are filled from the defaults."""
        where = f"{self._name} (parameter group {len(self.param_groups)})"
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{where}: a parameter group is a dict with a 'params' entry, got "
                            f"{type(group).__name__}")
        unknown = sorted(set(group) - set(self.defaults) - {"params"})
        if unknown:
            raise ValueError(f"{where}: unknown hyperparameter(s) {unknown}; this optimizer "
                             f"takes {sorted(self.defaults)}")
        params, names = self._parse_params(group["params"], where)
        new_group = {**self.defaults, **group, "params": params}
        self.check_hyperparameters(new_group, where)
        if "betas" in new_group:
            new_group["betas"] = tuple(float(b) for b in new_group["betas"])

        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params} - seen) < len(params):
            raise ValueError(f"{where}: some parameters appear more than once (in this group "
                             "or in an earlier one); list each parameter once")
        if self._keys and isinstance(self._keys[0][0], str) != (names is not None):
            raise ValueError(f"{where}: give (name, Tensor) pairs in every group or bare "
                             "Tensors in every group, not a mix")
        if names is None:
            first = sum(len(keys) for keys in self._keys)
            keys = list(range(first, first + len(params)))
        else:
            keys = names
            repeated = [n for n in dict.fromkeys(names)
                        if names.count(n) > 1 or any(n in k for k in self._keys)]
            if repeated:
                raise ValueError(f"{where}: parameter name(s) {repeated} appear more than once")
        self.param_groups.append(new_group)
        self._keys.append(keys)

    def _parse_params(self, params, where):
        """(tensors, names or None) from a Tensor, Tensors, or (name, Tensor) pairs."""
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{where}: params must be an ordered sequence (a set has no "
                            "stable order, so state positions would change between runs)")
        params = list(params)
        if not params:
            raise ValueError(f"{where}: got an empty parameter list")
        named = [isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in params]
        if any(named) and not all(named):
            raise ValueError(f"{where}: give either (name, Tensor) pairs or bare Tensors, "
                             "not a mix")
        names = [p[0] for p in params] if all(named) else None
        tensors = [p[1] for p in params] if names is not None else params
        for i, p in enumerate(tensors):
            label = repr(names[i]) if names is not None else f"#{i}"
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}: parameter {label} is a {type(p).__name__}; an "
                                "optimizer updates scratchlm Tensors (nn.Parameter)")
            if not p.is_leaf or p.data.dtype.kind != "f":
                raise ValueError(f"{where}: parameter {label} must be a floating-point leaf "
                                 f"tensor (dtype {p.dtype}, leaf={p.is_leaf}); an optimizer "
                                 "cannot update the output of an op")
        return tensors, names

    def named_params(self):
        """(group, state key, parameter) for every parameter, in order; the key is the name
        when the optimizer was given names, else the position counted through the groups."""
        for group, keys in zip(self.param_groups, self._keys):
            for key, param in zip(keys, group["params"]):
                yield group, key, param

    # ------------------------------------------------------------------------- stepping
    def zero_grad(self):
        """Set every parameter's gradient to None (the next backward starts afresh)."""
        for group in self.param_groups:
            for param in group["params"]:
                param.grad = None

    def step(self):
        """Update every parameter that has a gradient; those whose ``.grad`` is None (unused)
        or that do not require one (frozen, even with a stale ``.grad``) are skipped, get no
        state, and their state (e.g. Adam's step count) does not advance."""
        for group, key, param in self.named_params():
            grad = param.grad
            if grad is None or not param.requires_grad:
                continue
            if grad.shape != param.shape:
                raise ValueError(f"{self._name}.step: parameter {key!r} has shape "
                                 f"{param.shape} but its .grad has shape {grad.shape}")
            if backend.device_of(grad) != param.device:
                raise RuntimeError(f"{self._name}.step: parameter {key!r} is on "
                                   f"{param.device} but its .grad is on "
                                   f"{backend.device_of(grad)}")
            state = self.state.get(key)
            if state is None:
                state = self.state[key] = self.initial_state(param.data)
            # the fast layer's version of this update rule for the device, if it has one
            fast_update = dispatch.faster(type(self).update_parameter, param.device)
            if fast_update is None:
                self.update_parameter(param.data, grad, state, group)
            else:
                fast_update(self, param.data, grad, state, group)
            param.bump_version()  # changed in place: a graph recorded before sees it

    def initial_state(self, param):
        """The state a parameter starts with, before its first update (none by default)."""
        return {}

    @abc.abstractmethod
    def check_hyperparameters(self, group, where):
        """Raise a ValueError naming the bad hyperparameter of ``group`` (``where`` says
        which optimizer and group, for the message)."""

    @abc.abstractmethod
    def update_parameter(self, param, grad, state, group):
        """Update the array ``param`` in place from ``grad``; ``state`` is this parameter's
        dict (empty on its first step), ``group`` its group's hyperparameters."""

    # --------------------------------------------------------------- saving and loading
    def state_dict(self):
        """``{"state": {key: {...}}, "param_groups": [{hyperparameters, "params": [keys]}]}``.

        Keys are parameter positions (ints) or names; arrays are host NumPy copies, so the
        dict is a snapshot that later steps do not change and ``scratchlm.save`` can write.
        """
        state = {key: {name: value if name == "step" else np.array(backend.to_numpy(value))
                       for name, value in entries.items()}
                 for key, entries in self.state.items()}
        groups = [{**{k: group[k] for k in self.defaults}, "params": list(keys)}
                  for group, keys in zip(self.param_groups, self._keys)]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state from :meth:`state_dict`'s output (or a loaded
        checkpoint of it). Parameters are matched by name when both sides have names, else
        by position; group and parameter counts, shapes and state entries are all checked
        before anything changes."""
        where = f"{self._name}.load_state_dict"
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict)
            raise ValueError(f"{where}: expected a dict with keys 'param_groups' and 'state', "
                             f"got {got}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}: the state dict has {len(saved_groups)} parameter "
                             f"group(s) but this optimizer has {len(self.param_groups)}")
        key_map, hyperparameters = {}, []
        for index, (saved, keys) in enumerate(zip(saved_groups, self._keys)):
            saved_keys = list(saved.get("params", ()))
            if len(saved_keys) != len(keys):
                raise ValueError(f"{where}: parameter group {index} has {len(saved_keys)} "
                                 f"parameter(s) in the state dict but {len(keys)} here")
            if all(isinstance(k, str) for k in saved_keys + keys):
                missing, unexpected = set(keys) - set(saved_keys), set(saved_keys) - set(keys)
                if missing or unexpected:
                    raise ValueError(f"{where}: the names in parameter group {index} differ; "
                                     f"not in the state dict: {sorted(missing)[:5]}, "
                                     f"not in this optimizer: {sorted(unexpected)[:5]}")
                key_map.update((k, k) for k in saved_keys)
            else:
                key_map.update(zip(saved_keys, keys))
            absent = sorted(set(self.defaults) - set(saved))
            if absent:
                raise ValueError(f"{where}: parameter group {index} of the state dict lacks "
                                 f"{absent}; was it saved from another kind of optimizer?")
            hyper = {k: saved[k] for k in self.defaults}
            if "betas" in hyper:
                hyper["betas"] = tuple(float(b) for b in hyper["betas"])
            self.check_hyperparameters(hyper, f"{where} (parameter group {index})")
            hyperparameters.append(hyper)

        params = {key: param for _, key, param in self.named_params()}
        new_state = {}
        for saved_key, entries in state_dict["state"].items():
            if saved_key not in key_map:
                raise ValueError(f"{where}: the state dict has state for parameter "
                                 f"{saved_key!r}, which none of its groups lists")
            if set(entries) != set(self.STATE_KEYS):
                raise ValueError(f"{where}: the state of parameter {saved_key!r} has entries "
                                 f"{sorted(entries)} but {self._name} keeps "
                                 f"{sorted(self.STATE_KEYS)}")
            key = key_map[saved_key]
            new_state[key] = {name: self._restore(where, saved_key, name, value, params[key])
                              for name, value in entries.items()}

        for group, hyper in zip(self.param_groups, hyperparameters):
            group.update(hyper)
        self.state = new_state

    @staticmethod
    def _restore(where, key, name, value, param):
        """One saved state entry as this parameter's dtype and device (a fresh copy)."""
        if name == "step":
            step = int(value)
            if step < 0:
                raise ValueError(f"{where}: parameter {key!r} has step {step} < 0")
            return step
        if not hasattr(value, "shape"):
            value = np.asarray(value)
        if tuple(value.shape) != param.shape:
            raise ValueError(f"{where}: {name} of parameter {key!r} has shape "
                             f"{tuple(value.shape)} but the parameter has shape {param.shape}")
        return backend.to_device(value, param.device).astype(param.dtype, copy=True)

    def __repr__(self):
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(self.defaults)]
        return "\n".join(lines + [")"])
