"""Cross-entropy over classes, with the softmax fused in (as PyTorch's ``cross_entropy`` with
the class axis last): the loss of a classifier and of every language model here."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.checks import (
    REDUCTIONS,
    check_choice,
    check_int,
    check_operand,
    check_real,
    integer_array,
)
from scratchlm.errors import ArgumentError
from scratchlm.functional.losses import reduce_losses
from scratchlm.functional.softmax import shifted_exp


def check_targets(target, logits, ignore_index):
    classes = logits.shape[-1]
    if target.shape != logits.shape[:-1]:
        raise ArgumentError(f"cross_entropy: target of shape {target.shape} does not fit logits "
                            f"of shape {logits.shape}; expected target shape "
                            f"{logits.shape[:-1]} (the logits' shape without the class axis)")
    out_of_range = (target != ignore_index) & ((target < 0) | (target >= classes))
    if out_of_range.any():
        bad = int(target[out_of_range].reshape(-1)[0])
        raise IndexError(f"cross_entropy: target {bad} is out of range for {classes} classes "
                         f"(logits of shape {logits.shape}); expected 0 ≤ target < {classes} "
                         f"or ignore_index={ignore_index}")


class CrossEntropy(Function):
    """Cross-entropy of logits z (…, C) against class ids t (…), with the softmax fused in.

    With PyTorch's label smoothing the target distribution is q = (1 − ε) onehot(t) + ε/C, and
    with ℓ = z − logsumexp(z) the log-probabilities, per position
        loss = −Σ_c q_c ℓ_c = logsumexp(z) − (1 − ε) z_t − (ε/C) Σ_c z_c,
    0 where t = ignore_index. Since ∂logsumexp(z)/∂z = softmax(z) and Σ_c q_c = 1,
        ∂loss/∂z = softmax(z) − q,   so   ∂L/∂z = w (softmax(z) − q),
    w being the gradient reaching that position's loss: g/n for "mean" over the n targets
    that are not ignored, g for "sum", its own gᵢ for "none", and 0 where ignored.
    """

    def __init__(self, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        self.ignore_index, self.smoothing, self.reduction = (
            ignore_index, label_smoothing, reduction)

    def forward(self, logits, target):
        z = self.check_and_save_targets(logits, target)
        e, s, m = shifted_exp(z)
        self.probs = e / s
        log_sum_exp = m[:, 0] + get_array_module(z).log(s[:, 0])
        losses = (log_sum_exp - (1 - self.smoothing) * z[self.rows, self.targets]
                  - self.smoothing / z.shape[1] * z.sum(axis=1))
        return self.reduce(losses)

    def backward(self, g):
        grad = self.probs - self.smoothing / self.probs.shape[1]  # softmax(z) − ε/C …
        grad[self.rows, self.targets] -= 1 - self.smoothing         # … − (1 − ε) onehot(t)
        return (grad * self.weights(g)[:, None]).reshape(self.logits_shape), None

    def check_and_save_targets(self, logits, target):
        """Check the inputs; save on the op the shapes, which rows count (``valid``,
        ``count``), their target ids (``rows``, ``targets``); return the logits as rows
        (N, C)."""
        xp = get_array_module(logits)
        if logits.ndim == 0:
            raise ArgumentError("cross_entropy: logits must have a class axis (…, C), got a "
                                "0-d input")
        target = integer_array("cross_entropy", "target", target, xp)
        check_targets(target, logits, self.ignore_index)
        self.target_shape, self.logits_shape = target.shape, logits.shape
        self.valid = target.reshape(-1) != self.ignore_index
        self.targets = xp.where(self.valid, target.reshape(-1), 0)  # ignored rows: any id
        self.count = max(int(self.valid.sum()), 1)  # all ignored: loss 0, not 0/0
        z = logits.reshape(-1, logits.shape[-1])
        self.rows = xp.arange(z.shape[0])
        return z

    def reduce(self, losses):
        """The per-row losses, zero where ignored, reduced as asked."""
        return reduce_losses((losses * self.valid).reshape(self.target_shape), self.reduction,
                             self.count)

    def weights(self, g):
        """w per row: the gradient reaching each row's loss (0 where the target is ignored)."""
        if self.reduction == "none":
            return g.reshape(-1) * self.valid
        return self.valid * (g / self.count if self.reduction == "mean" else g)


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of ``logits`` (N, C) or (B, T, C) against integer class ids ``target``
    (N,) or (B, T), as PyTorch defines it with the class axis last. ``target == ignore_index``
    positions add nothing and "mean" averages over the others (0 if there are none)."""
    check_operand("cross_entropy", "logits", logits, number=False)
    check_int("cross_entropy", "ignore_index", ignore_index)
    check_real("cross_entropy", "label_smoothing", label_smoothing, 0, 1)
    check_choice("cross_entropy", "reduction", reduction, REDUCTIONS)
    return CrossEntropy(ignore_index, label_smoothing, reduction)(logits, target)
