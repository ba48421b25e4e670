"""Containers that hold sub-modules: ``Sequential``, ``ModuleList`` and ``ModuleDict``.

Their children are registered under the names ``"0"``, ``"1"``, … (or the dict's keys), so
parameter names read ``h.0.attn.c_attn.weight`` as in PyTorch and nanoGPT.
"""

from scratchlm.checks import check_type
from scratchlm.nn.module import Module


def _check_module(where, name, value):
    return check_type(where, name, value, Module, "an nn.Module (a layer, such as nn.Linear)")


class ModuleList(Module):
    """A list of modules whose parameters are registered; indexing and iteration as a list."""

    def __init__(self, modules=()):
        super().__init__()
        for position, module in enumerate(modules):
            setattr(self, str(position),
                    _check_module(type(self).__name__, f"modules[{position}]", module))

    def append(self, module):
        setattr(self, str(len(self)), _check_module(f"{type(self).__name__}.append", "module",
                                                    module))
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    @classmethod
    def _of(cls, modules):
        """A container of this kind holding ``modules`` (what a slice returns)."""
        return cls(modules)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return self._of(items[index])
        try:
            return items[index]
        except IndexError:
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for "
                             f"{len(items)} modules") from None


class Sequential(ModuleList):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) == c(b(a(x)))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    @classmethod
    def _of(cls, modules):
        return cls(*modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under the keys, in insertion order
    (nanoGPT keeps ``wte``, ``wpe``, ``h`` and ``ln_f`` in one)."""

    def __init__(self, modules=None):
        super().__init__()
        for name, module in (modules or {}).items():
            self[name] = module

    def __setitem__(self, name, module):
        if hasattr(ModuleDict, name):
            raise KeyError(f"ModuleDict: the key {name!r} would hide the attribute of that "
                           "name; choose another key")
        setattr(self, name, _check_module("ModuleDict", f"modules[{name!r}]", module))

    def __getitem__(self, name):
        try:
            return self._modules[name]
        except KeyError:
            raise KeyError(f"ModuleDict has no module {name!r}; it has "
                           f"{list(self._modules)}") from None

    def __contains__(self, name):
        return name in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()
