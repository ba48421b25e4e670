"""Initial values of parameters, drawn from scratchlm's seeded generator.

Parameters are drawn on the host (``backend.generator("cpu")``) in float32, so
``sl.manual_seed(s)`` gives the same model on every device; ``Module.to`` moves them after.
"""

import numpy as np

from scratchlm import backend


def uniform(shape, bound):
    """An array of ``shape`` with entries from U(−bound, bound)."""
    return backend.generator("cpu").uniform(-bound, bound, size=shape).astype(np.float32)


def normal(shape, std=1.0):
    """An array of ``shape`` with entries from N(0, std²)."""
    return (std * backend.generator("cpu").standard_normal(shape)).astype(np.float32)


def ones(shape):
    return np.ones(shape, dtype=np.float32)


def zeros(shape):
    return np.zeros(shape, dtype=np.float32)
