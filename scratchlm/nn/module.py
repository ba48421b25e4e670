"""``Module`` and ``Parameter``: the bookkeeping every layer shares.

A layer is a :class:`Module` whose learnable arrays are :class:`Parameter` attributes and
whose pieces are sub-Module attributes. Assigning one registers it (``__setattr__``), so the
module can list its parameters by dotted name (``attn.c_attn.weight``), save and load them,
switch dropout off, and move everything to a device — the same design as ``torch.nn.Module``.

Parameters and sub-modules are also ordinary attributes, so ``self.weight`` inside
``forward`` is a plain attribute read (no ``__getattr__`` hook in the hot path).
"""

from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from scratchlm import backend
from scratchlm.autograd.tensor import Tensor
from scratchlm.checks import check_bool, check_type
from scratchlm.errors import ArgumentTypeError


class Parameter(Tensor):
    """A Tensor a module learns: a leaf with ``requires_grad=True``.

    ``Parameter(data)`` copies ``data`` as :func:`scratchlm.tensor` does: Python numbers and
    lists become float32 (the default everywhere), NumPy/CuPy arrays keep their dtype.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


#: What ``load_state_dict(strict=False)`` returns: the keys it could not match.
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


#: How many keys of each kind a load_state_dict error lists (a whole model's state dict
#: would otherwise fill the screen in one line).
KEYS_SHOWN = 4


def _more(items):
    """' and N more' for the items a message leaves out, else ''."""
    return f" and {len(items) - KEYS_SHOWN} more" if len(items) > KEYS_SHOWN else ""


def _listed(problems):
    """The first few of ``problems`` (strings) joined by '; ', and how many more."""
    return "; ".join(problems[:KEYS_SHOWN]) + _more(problems)


class Module:
    """Base class of every layer and model: subclass it, assign parameters and sub-modules
    in ``__init__`` (after ``super().__init__()``) and write ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() in __init__ "
                                 f"before assigning attributes (assigning {name!r})")
        parameters, modules = self._parameters, self._modules
        if isinstance(value, Parameter):
            modules.pop(name, None)
            parameters[name] = value
        elif isinstance(value, Module):
            parameters.pop(name, None)
            modules[name] = value
        elif name in parameters and value is not None:
            raise ArgumentTypeError(f"{type(self).__name__}: cannot assign a "
                                    f"{type(value).__name__} to parameter {name!r}; assign an "
                                    f"nn.Parameter (or None), or change the data in place with "
                                    f".{name}.data", where=type(self).__name__, name=name,
                                    value=value)
        elif name in self._buffers:
            self._buffers[name] = value
        else:
            parameters.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name, array, persistent=True):
        """Keep a non-learned array (a table of positional encodings, a running statistic)
        as attribute ``name``: it moves with ``to(device)`` and, when ``persistent``, is
        saved in ``state_dict()``."""
        self._buffers[name] = array
        if not persistent:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, array)

    # ---------------------------------------------------------------------- traversal
    def named_modules(self, prefix=""):
        """``(dotted name, module)`` for this module (name ``""``) and every sub-module,
        parents before children, each module once."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module._modules.items() if child is not None]
            stack.extend(reversed(children))

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        """The direct sub-modules with their attribute names, each once."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_parameters(self):
        """``(dotted name, Parameter)`` in definition order; a parameter shared by several
        modules (tied weights) is listed once, under the first name that reaches it."""
        seen = set()
        for module_name, module in self.named_modules():
            for name, parameter in module._parameters.items():
                if parameter is None or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self):
        for _, parameter in self.named_parameters():
            yield parameter

    def num_parameters(self):
        """How many numbers the module learns (a tied parameter counted once)."""
        return sum(p.size for p in self.parameters())

    def _state_entries(self):
        """``(dotted name, owner module, attribute, kind)`` for every saved array — tied
        parameters under each of their names, as PyTorch saves them."""
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, parameter in module._parameters.items():
                if parameter is not None:
                    yield prefix + name, module, name, "parameter"
            for name in module._buffers:
                if name not in module._non_persistent_buffers:
                    yield prefix + name, module, name, "buffer"

    # -------------------------------------------------------------- saving and loading
    def state_dict(self):
        """Every parameter and persistent buffer by dotted name, as host NumPy copies."""
        state = {}
        for key, module, name, kind in self._state_entries():
            value = getattr(module, name)
            array = value.data if kind == "parameter" else value
            state[key] = np.array(backend.to_numpy(array), copy=True)
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy the arrays of ``state_dict`` into this module's parameters and buffers.

        Each parameter takes the loaded array's dtype (a float64 state dict makes a float64
        model, for gradient checks) and stays on its device. A shape mismatch always raises;
        missing and unexpected keys raise when ``strict``. Nothing is changed unless every
        check passes. Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        check_type("load_state_dict", "state_dict", state_dict, Mapping,
                   "a dict of arrays by dotted name, as state_dict() returns")
        strict = check_bool("load_state_dict", "strict", strict)
        entries = list(self._state_entries())
        expected = {key for key, *_ in entries}
        missing = [key for key, *_ in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        arrays, not_float, misshaped = {}, [], []
        for key, module, name, kind in entries:
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = backend.to_numpy(value.data if isinstance(value, Tensor) else value)
            current = getattr(module, name)
            current_shape = current.shape
            if array.shape != current_shape:
                misshaped.append(f"{key}: expected shape {current_shape}, got {array.shape}")
            elif kind == "parameter" and array.dtype.kind != "f":
                not_float.append(f"{key}: a parameter needs floating-point values, got "
                                 f"dtype {array.dtype}")
            arrays[key] = array
        problems = [_listed(not_float)] if not_float else []
        if strict and missing:
            problems.append(f"missing keys: {missing[:KEYS_SHOWN]}{_more(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected[:KEYS_SHOWN]}{_more(unexpected)}")
        if misshaped:
            problems.append("mis-shaped keys: " + _listed(misshaped))
        if problems:
            raise RuntimeError(f"load_state_dict: the state dict does not fit "
                               f"{type(self).__name__}: " + "; ".join(problems))
        for key, module, name, kind in entries:
            if key not in arrays:
                continue
            current = getattr(module, name)
            device = backend.device_of(current.data if kind == "parameter" else current)
            array = backend.to_device(np.array(arrays[key], copy=True), device)
            if kind == "parameter":
                if current.grad is not None and current.grad.dtype != array.dtype:
                    current.grad = None  # a gradient of the old dtype cannot accumulate
                current.data = array
                current.bump_version()  # a graph recorded before the load must not backward
            else:
                setattr(module, name, array)
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ modes and moves
    def train(self, mode=True):
        """Training mode (dropout active) for this module and all sub-modules; returns self."""
        mode = check_bool(f"{type(self).__name__}.train", "mode", mode)
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off): ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (False freezes them: backward leaves
        their ``.grad`` None and optimizers skip them); returns self, as in PyTorch."""
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    def zero_grad(self):
        """Forget every parameter's gradient (``grad = None``)."""
        for parameter in self.parameters():
            parameter.grad = None

    def to(self, device):
        """Move every parameter (``.data`` and ``.grad``, in place) and buffer to ``device``
        (``"cpu"`` or ``"cuda"``); returns self."""
        backend.check_device(device, f"{type(self).__name__}.to")
        for parameter in self.parameters():
            parameter.data = backend.to_device(parameter.data, device)
            if parameter.grad is not None:
                parameter.grad = backend.to_device(parameter.grad, device)
        for module in self.modules():
            for name, array in list(module._buffers.items()):
                setattr(module, name, backend.to_device(array, device))
        return self

    # ------------------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------------ printing
    def extra_repr(self):
        """The layer's settings, shown inside its ``repr`` (override in layers)."""
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ")
                 for name, child in self._modules.items()]
        header = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return header + ")"
        return header + "\n  " + "\n  ".join(lines) + "\n)"
