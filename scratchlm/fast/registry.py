"""Which implementation of an op runs: the reference, or a fast one registered for it.

Every op and optimizer of scratchlm is written once as its formula (the reference, in
``scratchlm/functional`` and ``scratchlm/optim``). The fast layer (this package) may add,
for one reference class and one device, a subclass that computes the same thing faster (row
blocks that stay in cache, threads, fused CUDA kernels)::

    @implements(LayerNorm, "cpu")
    class LayerNormRowBlocks(LayerNorm):
        def forward(self, x, weight, bias): ...
        def backward(self, grad): ...

The backward pass and the optimizers' update rules are registered the same way, on a
function with the reference function's signature: ``@implements(engine.run_backward,
"cpu")`` (:mod:`scratchlm.fast.engine`), ``@implements(Adam.update_parameter, "cpu")`` with
the optimizer as first argument (:mod:`scratchlm.fast.optim`).

Importing this module puts :func:`fast_version` into the one hook the reference library
exposes, :data:`scratchlm.autograd.dispatch.faster`, which ops, the backward pass and the
optimizers ask before they run: the library never imports the fast layer. With fast mode off
(``sl.use_fast(False)`` or ``SCRATCHLM_FAST=0`` in the environment) it finds nothing, and
the reference runs everywhere. Only exact classes and functions are looked up: a user's
subclass of ``LayerNorm`` runs its own code, never a fast version of its parent, and an
optimizer subclass with its own ``update_parameter`` runs that.
"""

import importlib
import os

from scratchlm.autograd import dispatch

#: The modules that register fast implementations; imported at the first look-up (they
#: subclass the reference ops, so they can only load once the library has).
IMPLEMENTATION_MODULES = ("scratchlm.fast.engine", "scratchlm.fast.cpu", "scratchlm.fast.cuda",
                          "scratchlm.fast.optim")

_implementations = {}  # (reference class, device) -> fast subclass
_loaded = False
_enabled = os.environ.get("SCRATCHLM_FAST", "1") != "0"


def implements(reference, device):
    """Decorator: register the decorated subclass of ``reference`` (a class), or function
    with the same signature (``reference`` a function), as its fast implementation on
    ``device`` ("cpu" or "cuda")."""
    def register(fast):
        if isinstance(reference, type) and not (isinstance(fast, type)
                                                and issubclass(fast, reference)):
            raise TypeError(f"{fast.__name__} must subclass {reference.__name__}, "
                            "the reference op it implements")
        _implementations[(reference, device)] = fast
        return fast
    return register


def fast_version(reference, device):
    """The fast subclass or function registered for exactly ``reference`` on ``device``, or
    None (none registered, or fast mode off)."""
    global _loaded
    if not _enabled:
        return None
    if not _loaded:
        _loaded = True
        for module in IMPLEMENTATION_MODULES:
            importlib.import_module(module)
    return _implementations.get((reference, device))


dispatch.faster = fast_version


def is_fast_enabled():
    """True when registered fast implementations are used (the default)."""
    return _enabled


class use_fast:
    """Turn the fast implementations on or off: ``sl.use_fast(False)`` runs the reference
    formulas everywhere from here on; as a context manager it restores the previous
    setting on exit::

        with sl.use_fast(False):
            loss = model(x, y)[1]      # every op runs its reference formula
    """

    def __init__(self, enabled=True):
        global _enabled
        self.previous = _enabled
        _enabled = bool(enabled)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        global _enabled
        _enabled = self.previous
