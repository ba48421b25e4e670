"""Learning-rate schedules: pure functions of the step, and schedulers that apply them.

``step`` counts optimizer updates already taken: the learning rate for update number s
(0-based) is ``lr(s)``. A scheduler sets ``lr(0)`` on construction, and each
``scheduler.step()`` — called after ``optimizer.step()`` — moves to the next one::

    for batch in batches:
        loss.backward(); optimizer.step(); optimizer.zero_grad(); scheduler.step()
"""

import abc
import math

from scratchlm.checks import check_int, check_real
from scratchlm.optim.optimizer import Optimizer


def warmup_cosine_lr(step, max_lr, warmup_steps, total_steps, min_lr):
    """Linear warmup, then cosine decay to ``min_lr`` (nanoGPT's ``get_lr``):

        lr(s) = max_lr · (s + 1) / (warmup + 1)                  for s < warmup
        lr(s) = min_lr + ½(1 + cos(π r)) · (max_lr − min_lr)     for warmup ≤ s < total,
                                                                 r = (s − warmup)/(total − warmup)
        lr(s) = min_lr                                           for s ≥ total

    The warmup never gives 0 (the first update is not wasted); the cosine runs from max_lr
    at s = warmup down to min_lr at s = total and stays there.
    """
    check_int("warmup_cosine_lr", "step", step, 0)
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    ratio = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def noam_lr(step, d_model, warmup_steps, factor=1.0):
    """The original Transformer's schedule (Vaswani et al. 2017, eq. 3), for step ≥ 1:

        lr(step) = factor · d_model^(−1/2) · min(step^(−1/2), step · warmup^(−3/2))

    It rises linearly for ``warmup_steps`` steps, peaks at step = warmup, then decays as
    1/√step.
    """
    check_int("noam_lr", "step", step, 1)
    return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup_steps ** -1.5)


class LRScheduler(abc.ABC):
    """Sets every group's ``lr`` to ``lr_at(step, base_lr)``; ``base_lr`` is the group's
    ``lr`` when the scheduler was made."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a scratchlm.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    @abc.abstractmethod
    def lr_at(self, step, base_lr):
        """The learning rate for update number ``step`` of a group whose base is ``base_lr``."""

    def step(self):
        """Move to the next update's learning rate (call after ``optimizer.step()``)."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self):
        """The learning rates the scheduler last set, one per parameter group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def _apply(self):
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_step, base_lr)

    def state_dict(self):
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state_dict):
        """Continue from a :meth:`state_dict`; sets the optimizer's learning rates too."""
        base_lrs = list(state_dict["base_lrs"])
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict has "
                             f"{len(base_lrs)} base learning rate(s) but the optimizer has "
                             f"{len(self.optimizer.param_groups)} parameter group(s)")
        check_int(f"{type(self).__name__}.load_state_dict", "last_step",
                  state_dict["last_step"], 0)
        self.base_lrs, self.last_step = base_lrs, int(state_dict["last_step"])
        self._apply()


class WarmupCosine(LRScheduler):
    """:func:`warmup_cosine_lr` with each group's initial lr as max_lr and
    ``min_lr_ratio`` times it as min_lr."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr_ratio=0.1):
        check_int("WarmupCosine", "warmup_steps", warmup_steps, 0)
        check_int("WarmupCosine", "total_steps", total_steps, 0)
        check_real("WarmupCosine", "min_lr_ratio", min_lr_ratio, 0, 1)
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer)

    def lr_at(self, step, base_lr):
        return warmup_cosine_lr(step, base_lr, self.warmup_steps, self.total_steps,
                                self.min_lr_ratio * base_lr)


class NoamSchedule(LRScheduler):
    """:func:`noam_lr` for every group (the groups' own lr is replaced, as in the paper);
    update number s (0-based) uses ``noam_lr(s + 1, ...)``."""

    def __init__(self, optimizer, d_model, warmup_steps, factor=1.0):
        check_int("NoamSchedule", "d_model", d_model, 1)
        check_int("NoamSchedule", "warmup_steps", warmup_steps, 1)
        check_real("NoamSchedule", "factor", factor, 0, low_open=True)
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer)

    def lr_at(self, step, base_lr):
        return noam_lr(step + 1, self.d_model, self.warmup_steps, self.factor)
