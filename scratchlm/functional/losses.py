"""Losses: cross-entropy over classes (fused with log-softmax), binary cross-entropy with
logits, and mean squared error. Reductions follow PyTorch: "mean", "sum" or "none"; a
reduced loss is a 0-d tensor."""

from scratchlm.autograd.function import Function
from scratchlm.backend import get_array_module
from scratchlm.functional import gpu_kernels
from scratchlm.functional.activations import logistic
from scratchlm.functional.checks import check_reduction, integer_array
from scratchlm.functional.rowwise import max_along, row_sum, shared_row_blocks


def _reduce(losses, reduction, count):
    """Sum or average ``losses`` (dividing by ``count``), or return them as they are."""
    if reduction == "none":
        return losses
    total = losses.sum()
    return get_array_module(losses).asarray(total if reduction == "sum" else total / count)


def _check_same_shape(op_name, a, b, names):
    if a.shape != b.shape:
        raise ValueError(f"{op_name}: {names[0]} has shape {a.shape} but {names[1]} has shape "
                         f"{b.shape}; expected equal shapes")


def _check_targets(target, logits, ignore_index):
    classes = logits.shape[-1]
    if target.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: target of shape {target.shape} does not fit logits of "
                         f"shape {logits.shape}; expected target shape {logits.shape[:-1]} "
                         "(the logits' shape without the class axis)")
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
    On the CPU, m = max z, E = e^(z − m) and s = Σ_c E_c are made block by block of rows that
    stay in cache across the passes (the blocks shared out among threads), and softmax = E/s
    is never stored: backward forms w softmax(z) = E · (w/s) in one pass. On the GPU,
    softmax(z) with the row maximum and log Σ e^(z − max) comes from one fused row kernel
    (:mod:`~scratchlm.functional.gpu_kernels`); the array code is its reference.
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        self.ignore_index, self.smoothing, self.reduction = (
            ignore_index, label_smoothing, reduction)

    def forward(self, logits, target):
        xp = get_array_module(logits)
        if logits.ndim == 0:
            raise ValueError("cross_entropy: logits must have a class axis (…, C), got a 0-d "
                             "input")
        target = integer_array("cross_entropy", "target", target, xp)
        _check_targets(target, logits, self.ignore_index)
        classes = logits.shape[-1]
        z = logits.reshape(-1, classes)
        self.target_shape, self.logits_shape = target.shape, logits.shape
        self.valid = target.reshape(-1) != self.ignore_index
        self.target_ids = xp.where(self.valid, target.reshape(-1), 0)  # ignored rows: any id
        self.rows = xp.arange(z.shape[0])
        self.count = max(int(self.valid.sum()), 1)  # all ignored: loss 0, not 0/0
        if gpu_kernels.fusable_rows(z):
            return self._forward_fused(z)
        # Row by row block (kept in cache across the passes): m = max z, E = e^(z − m) and
        # s = Σ_c E_c. Softmax is E/s; the division is left to backward, which scales E once.
        exp_shifted = xp.empty_like(z)
        row_max = xp.empty((z.shape[0], 1), dtype=z.dtype)
        sum_exp = xp.empty((z.shape[0], 1), dtype=z.dtype)

        def exponentiate(rows, _):
            row_max[rows] = max_along(z[rows], 1)
            block = xp.subtract(z[rows], row_max[rows], out=exp_shifted[rows])
            xp.exp(block, out=block)
            sum_exp[rows] = row_sum(block)
        shared_row_blocks(exponentiate, z)
        # loss = log s − (1 − ε)(z_t − m) − (ε/C) Σ_c (z_c − m)
        row_max = row_max[:, 0]
        losses = z[self.rows, self.target_ids] - row_max
        losses *= -(1.0 - self.smoothing)
        if self.smoothing:
            losses -= (self.smoothing / classes) * (row_sum(z)[:, 0] - classes * row_max)
        losses += xp.log(sum_exp[:, 0])
        losses *= self.valid
        self.softmax_numerator, self.softmax_denominator = exp_shifted, sum_exp
        return _reduce(losses.reshape(self.target_shape), self.reduction, self.count)

    def _forward_fused(self, z):
        """The losses above, with softmax(z), max z and log Σ e^(z − max z) per row from one
        kernel (a CuPy array z of rows)."""
        probs, row_max, log_sum_exp = gpu_kernels.softmax_rows(z)
        losses = z[self.rows, self.target_ids] - row_max  # the shifted target logits
        losses *= -(1.0 - self.smoothing)
        if self.smoothing:
            losses -= (self.smoothing / z.shape[1]) * (z - row_max[:, None]).sum(axis=1)
        losses += log_sum_exp
        losses *= self.valid
        self.softmax_numerator, self.softmax_denominator = probs, None
        return _reduce(losses.reshape(self.target_shape), self.reduction, self.count)

    def backward(self, g):
        xp = get_array_module(g)
        classes = self.logits_shape[-1]
        if self.reduction == "none":
            weights = g.reshape(-1) * self.valid
        else:
            weights = self.valid * (g / self.count if self.reduction == "mean" else g)
        # ∂L/∂z = w softmax(z) − w q, with softmax(z) = E/s (just E when s is None), scaling
        # the saved E itself when it is freed right after
        scale = weights[:, None]
        if self.softmax_denominator is not None:
            scale = scale / self.softmax_denominator
        numerator = self.softmax_numerator
        grad = numerator if self.may_overwrite_saved else xp.empty_like(numerator)
        shared_row_blocks(lambda rows, _: xp.multiply(numerator[rows], scale[rows],
                                                      out=grad[rows]), grad)
        grad[self.rows, self.target_ids] -= (1.0 - self.smoothing) * weights
        if self.smoothing:
            grad -= (self.smoothing / classes) * weights[:, None]
        return grad.reshape(self.logits_shape), None


class BinaryCrossEntropyWithLogits(Function):
    """Per element, loss = −[t log σ(x) + (1 − t) log(1 − σ(x))], computed without overflow as
    max(x, 0) − x t + log(1 + e^(−|x|)).

    ∂loss/∂x = σ(x) − t,  ∂loss/∂t = −x; each times the gradient reaching that element's loss
    (g/n for "mean" over n elements, g for "sum", gᵢ for "none").
    """

    new_gradient_arrays = True  # backward returns arrays of its own

    def __init__(self, reduction="mean"):
        self.reduction = reduction

    def forward(self, x, target):
        xp = get_array_module(x)
        target = xp.asarray(target)
        _check_same_shape("binary_cross_entropy_with_logits", x, target, ("logits", "target"))
        if target.dtype.kind != "f":
            target = target.astype(x.dtype)
        self.x, self.target = x, target
        log_one_plus = xp.abs(x, out=xp.empty_like(x))  # becomes log(1 + e^(−|x|))
        xp.negative(log_one_plus, out=log_one_plus)
        xp.exp(log_one_plus, out=log_one_plus)
        xp.log1p(log_one_plus, out=log_one_plus)
        losses = xp.maximum(x, 0)
        losses -= x * target
        losses += log_one_plus
        return _reduce(losses, self.reduction, x.size)

    def backward(self, g):
        weights = g / self.x.size if self.reduction == "mean" else g
        grad_x = grad_target = None
        if self.needs_input_grad[0]:
            grad_x = logistic(self.x)
            grad_x -= self.target
            grad_x *= weights
        if self.needs_input_grad[1]:
            grad_target = -self.x * weights
        return grad_x, grad_target


class MSELoss(Function):
    """L = (1/n) Σ (x − y)²;  ∂L/∂x = 2(x − y) g/n,  ∂L/∂y = −∂L/∂x."""

    new_gradient_arrays = True  # backward returns arrays of its own

    def forward(self, x, y):
        _check_same_shape("mse_loss", x, y, ("input", "target"))
        self.diff = x - y
        return get_array_module(x).asarray((self.diff * self.diff).mean())

    def backward(self, g):
        grad_x = self.diff * (2 * g / self.diff.size)
        grad_y = -grad_x if self.needs_input_grad[1] else None
        return (grad_x if self.needs_input_grad[0] else None), grad_y


def cross_entropy(logits, target, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """Cross-entropy of ``logits`` (N, C) or (B, T, C) against integer class ids ``target``
    (N,) or (B, T), as PyTorch defines it with the class axis last. ``target == ignore_index``
    positions add nothing and "mean" averages over the others (0 if there are none)."""
    check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing={label_smoothing}; expected "
                         "0 ≤ label_smoothing ≤ 1")
    return CrossEntropy(ignore_index, label_smoothing, reduction)(logits, target)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Binary cross-entropy of probabilities σ(logits) against ``target`` in [0, 1] (same
    shape), stable for any logit."""
    check_reduction("binary_cross_entropy_with_logits", reduction)
    return BinaryCrossEntropyWithLogits(reduction)(logits, target)


def mse_loss(x, y):
    """Mean squared error (1/n) Σ (x − y)² over all elements of two same-shaped tensors."""
    return MSELoss()(x, y)
