"""The autodiff engine: Tensor, Function, the backward pass, no_grad, gradcheck, anomaly
mode (NaN/Inf detection) and in-place change detection (version counters)."""

# isort: off
# Tensor comes first: its operators call the ops, which subclass Function, which wraps
# its outputs in Tensor.
from scratchlm.autograd.tensor import Tensor, tensor
# isort: on
from scratchlm.autograd.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled
from scratchlm.autograd.engine import GraphReleasedError, InPlaceChangeError
from scratchlm.autograd.function import Function
from scratchlm.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad
from scratchlm.autograd.gradcheck import GradcheckError, gradcheck, gradcheck_op

__all__ = ["Tensor", "tensor", "Function", "no_grad", "enable_grad", "is_grad_enabled",
           "gradcheck", "gradcheck_op", "GradcheckError", "GraphReleasedError",
           "InPlaceChangeError", "detect_anomaly", "is_anomaly_enabled", "AnomalyError"]
