"""Losses besides cross-entropy (``cross_entropy.py``): binary cross-entropy with logits and
mean squared error. Reductions follow PyTorch: "mean", "sum" or "none"; a reduced loss is
a 0-d tensor."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import REDUCTIONS, check_choice, check_operand
from scratchlm.errors import ArgumentError
from scratchlm.functional.activations import logistic


def reduce_losses(losses, reduction, count):
    """Sum or average ``losses`` (dividing by ``count``), or return them as they are."""
    if reduction == "none":
        return losses
    total = losses.sum()
    return get_array_module(losses).asarray(total if reduction == "sum" else total / count)


def _check_same_shape(op_name, a, b, names):
    if a.shape != b.shape:
        raise ArgumentError(f"{op_name}: {names[0]} has shape {a.shape} but {names[1]} has "
                            f"shape {b.shape}; expected equal shapes")


class BinaryCrossEntropyWithLogits(Function):
    """Per element, loss = −[t log σ(x) + (1 − t) log(1 − σ(x))], computed without overflow as
    max(x, 0) − x t + log(1 + e^(−|x|)).

    ∂loss/∂x = σ(x) − t,  ∂loss/∂t = −x; each times the gradient reaching that element's loss
    (g/n for "mean" over n elements, g for "sum", gᵢ for "none").
    """

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, x, target):
        xp = get_array_module(x)
        target = xp.asarray(target)
        _check_same_shape("binary_cross_entropy_with_logits", x, target, ("logits", "target"))
        if target.dtype.kind != "f":
            target = target.astype(x.dtype)
        self.x, self.target = x, target
        losses = xp.maximum(x, 0) - x * target + xp.log1p(xp.exp(-xp.abs(x)))
        return reduce_losses(losses, self.reduction, x.size)

    def backward(self, g):
        weights = g / self.x.size if self.reduction == "mean" else g
        grad_x = grad_target = None
        if self.needs_input_grad[0]:
            grad_x = (logistic(self.x) - self.target) * weights
        if self.needs_input_grad[1]:
            grad_target = -self.x * weights
        return grad_x, grad_target


class MSELoss(Function):
    """L = (1/n) Σ (x − y)²;  ∂L/∂x = 2(x − y) g/n,  ∂L/∂y = −∂L/∂x."""

    def forward(self, x, y):
        _check_same_shape("mse_loss", x, y, ("input", "target"))
        self.diff = x - y
        return get_array_module(x).asarray((self.diff * self.diff).mean())

    def backward(self, g):
        grad_x = self.diff * (2 * g / self.diff.size)
        grad_y = -grad_x if self.needs_input_grad[1] else None
        return (grad_x if self.needs_input_grad[0] else None), grad_y


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of probabilities σ(logits) against ``target`` in [0, 1] (same
    shape), stable for any logit."""
    check_operand("binary_cross_entropy_with_logits", "logits", logits, number=False)
    check_choice("binary_cross_entropy_with_logits", "reduction", reduction, REDUCTIONS)
    return BinaryCrossEntropyWithLogits(reduction)(logits, target)


def mse_loss(x, y):
    """Mean squared error (1/n) Σ (x − y)² over all elements of two same-shaped tensors."""
    return MSELoss()(check_operand("mse_loss", "x", x, number=False),
                     check_operand("mse_loss", "y", y, number=False))
