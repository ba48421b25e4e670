"""Optimizers, learning-rate schedules and gradient clipping.

    import scratchlm.optim as optim
    optimizer = optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    scheduler = optim.WarmupCosine(optimizer, warmup_steps=100, total_steps=2000)
    ...
    loss.backward()
    optim.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step(); optimizer.zero_grad(); scheduler.step()
"""

from scratchlm.optim.adam import Adam, AdamW
from scratchlm.optim.clip import clip_grad_norm_
from scratchlm.optim.lr_scheduler import (
    LRScheduler,
    NoamSchedule,
    WarmupCosine,
    noam_lr,
    warmup_cosine_lr,
)
from scratchlm.optim.optimizer import Optimizer, weight_decay_groups
from scratchlm.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "LRScheduler",
           "WarmupCosine", "NoamSchedule", "warmup_cosine_lr", "noam_lr", "weight_decay_groups"]
