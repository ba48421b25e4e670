"""scratchlm: large language models built from arrays up.

    import scratchlm as sl
    x = sl.tensor([[1.0, 2.0]], requires_grad=True)
    (x * x).sum().backward()      # x.grad == 2x
"""

from scratchlm.autograd import (
    AnomalyError,
    Function,
    GradcheckError,
    GraphReleasedError,
    InPlaceChangeError,
    Tensor,
    detect_anomaly,
    enable_grad,
    gradcheck,
    gradcheck_op,
    is_anomaly_enabled,
    is_grad_enabled,
    no_grad,
    tensor,
)
from scratchlm.backend import gpu_available, manual_seed
from scratchlm.checkpoint import load, save
from scratchlm.fast import is_fast_enabled, use_fast
from scratchlm.ops import concat, stack, where

__version__ = "0.1.0"

__all__ = ["Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
           "gradcheck", "gradcheck_op", "GradcheckError", "GraphReleasedError",
           "manual_seed", "gpu_available", "concat", "stack", "where", "save", "load",
           "use_fast", "is_fast_enabled", "detect_anomaly", "is_anomaly_enabled",
           "AnomalyError", "InPlaceChangeError"]
