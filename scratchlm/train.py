"""Training: the one loop for every model (GPT, BERT, the encoder-decoder), with validation,
checkpoints, progress and the loss plot.

One optimisation step, with gradient accumulation over ``grad_accum_steps`` micro-batches:

    g = (1/A) Σₐ ∇θ L(batchₐ)                     mean gradient of A micro-batches
    g ← g · min(1, c / ‖g‖)                        clip the global norm to c
    θ ← AdamW(θ, g, lr(step))                      lr: linear warmup, then cosine decay

AdamW decays the weight matrices only (:func:`scratchlm.optim.weight_decay_groups`). Every
``eval_interval`` steps the mean loss over a fixed set of validation batches is recorded. A
checkpoint holds everything the next step depends on — weights, optimizer moments, the
step, both random generators, the loss history — so a resumed run continues with the
bit-identical loss curve (on the CPU) as if it had never stopped.

What the loop trains on is a pair of functions: ``draw(rng, batch_size) -> batch`` and
``loss_fn(model, batch) -> loss``. A language model's are built in: token ids as 1-D
arrays give random windows of ``block_size`` tokens (:func:`scratchlm.text.get_batch`).
"""

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from scratchlm import backend, checkpoint, fast, optim
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.text import get_batch


@dataclass
class TrainConfig:
    max_steps: int = 2000
    batch_size: int = 32
    grad_accum_steps: int = 1
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    eps: float = 1e-8  # AdamW's ε
    grad_clip: float = 1.0  # 0: no clipping
    eval_interval: int = 250
    eval_batches: int = 20
    checkpoint_interval: int = 500
    seed: int = 1337
    device: str = "cpu"

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def model_loss(model, batch):
    """The loss a model computes itself from the arrays of ``batch``: ``model(*batch)[1]``,
    as GPT's ``model(inputs, targets)`` and the encoder-decoder's ``model(src, tgt_in,
    tgt_out)`` return (logits, loss)."""
    return model(*batch)[1]


class Trainer:
    """Trains ``model`` on ``train_data`` and validates on ``val_data``.

    The data are either token ids, 1-D arrays longer than ``model.block_size``, for a
    language model; or functions ``draw(rng, batch_size) -> batch`` of any batch that
    ``loss_fn(model, batch)`` turns into a scalar loss (default :func:`model_loss`). ``rng``
    is the trainer's ``np.random.Generator`` (seeded by ``config.seed``, saved in
    checkpoints); validation draws from a fresh generator seeded ``config.seed + 1`` each
    time, so every evaluation sees the same batches. ``val_data=None`` skips validation.

    ``run_dir`` receives ``checkpoint.npz``, ``loss.png`` and ``config.json`` (``None``: no
    files); ``extras`` (e.g. the tokenizer as a JSON string) are stored in the checkpoint as
    they are.
    """

    def __init__(self, model, train_data, val_data, config, run_dir=None, extras=None,
                 loss_fn=model_loss):
        self.model, self.config, self.run_dir = model, config, run_dir
        self.train_data = self._checked_data("train", train_data)
        self.val_data = None if val_data is None else self._checked_data("validation", val_data)
        self.loss_fn = loss_fn
        self.extras = extras or {}
        self.tokens_per_step = None  # known for token ids: shown on the progress bar
        if not callable(self.train_data):
            self.tokens_per_step = config.batch_size * config.grad_accum_steps * model.block_size
        backend.manual_seed(config.seed)
        model.to(config.device)
        self.optimizer = optim.AdamW(
            optim.weight_decay_groups(model.named_parameters(), config.weight_decay),
            lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps)
        self.scheduler = optim.WarmupCosine(self.optimizer, config.warmup_steps,
                                            config.max_steps, config.min_lr_ratio)
        self.data_rng = np.random.default_rng(config.seed)
        self.step = 0
        self.history = {"step": [], "train_loss": [], "val_step": [], "val_loss": []}

    def _checked_data(self, name, data):
        """``data`` as the loop uses it: a batch function as it is, token ids as a 1-D array
        with more than one block of tokens."""
        if callable(data):
            return data
        data, block = np.asarray(data), self.model.block_size
        if data.ndim != 1 or len(data) <= block:
            raise ValueError(f"Trainer: the {name} data has {data.size} tokens; it needs "
                             f"more than block_size={block} in one 1-D array")
        return data

    # ------------------------------------------------------------------------ the loop
    def train_step(self):
        """One optimisation step; returns the mean training loss of its micro-batches."""
        cfg, model = self.config, self.model
        model.train()
        total = 0.0
        for _ in range(cfg.grad_accum_steps):
            loss = self.loss_fn(model, self._batch(self.train_data, self.data_rng))
            if cfg.grad_accum_steps > 1:
                loss = loss / cfg.grad_accum_steps
            loss.backward()
            total += loss.item()
        if cfg.grad_clip:
            optim.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        return total

    def _batch(self, data, rng):
        """A batch of ``data``: drawn by its function, or random windows of token ids moved
        to the device."""
        if callable(data):
            return data(rng, self.config.batch_size)
        x, y = get_batch(data, self.config.batch_size, self.model.block_size, rng)
        return backend.to_device(x, self.config.device), backend.to_device(y, self.config.device)

    def evaluate(self, data=None):
        """Mean loss over ``eval_batches`` batches drawn the same way at every evaluation."""
        data = self.val_data if data is None else self._checked_data("evaluation", data)
        if data is None:
            raise ValueError("Trainer.evaluate: no validation data; give val_data or data")
        rng = np.random.default_rng(self.config.seed + 1)
        self.model.eval()
        losses = []
        with no_grad():
            for _ in range(self.config.eval_batches):
                losses.append(self.loss_fn(self.model, self._batch(data, rng)).item())
        self.model.train()
        return float(np.mean(losses))

    def train(self, progress=True, stop_at=None, on_step=None):
        """Run until ``max_steps`` (or ``stop_at``), validating and checkpointing on the way;
        returns the history. ``on_step(trainer, loss)``, if given, is called after every
        step (e.g. to log). Tunes the process for training first
        (:func:`scratchlm.fast.tune_process`: the allocator keeps freed memory for reuse)."""
        from tqdm.auto import tqdm

        fast.tune_process()
        cfg = self.config
        last = min(cfg.max_steps, stop_at or cfg.max_steps)
        bar = tqdm(total=last, initial=self.step, disable=not progress, unit="step",
                   dynamic_ncols=True)
        started, first_step = time.perf_counter(), self.step
        while self.step < last:
            loss = self.train_step()
            self.history["step"].append(self.step)
            self.history["train_loss"].append(loss)
            if progress:
                bar.set_postfix(self._progress(loss, started, first_step), refresh=False)
                bar.update(1)  # redraws the bar once per step
            if on_step is not None:
                on_step(self, loss)
            if self.val_data is not None and (self.step % cfg.eval_interval == 0
                                              or self.step == cfg.max_steps):
                self._validate(bar)
            if self.run_dir is not None and (self.step % cfg.checkpoint_interval == 0
                                             or self.step == last):
                self.save()
        bar.close()
        return self.history

    def _progress(self, loss, started, first_step):
        """The progress bar's figures: loss, learning rate, and tokens per second when the
        data are token ids."""
        figures = {"loss": f"{loss:.3f}", "lr": f"{self.scheduler.get_last_lr()[0]:.1e}"}
        if self.tokens_per_step is not None:
            elapsed = time.perf_counter() - started
            figures["tok_s"] = f"{self.tokens_per_step * (self.step - first_step) / elapsed:,.0f}"
        return figures

    def _validate(self, bar):
        val = self.evaluate()
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(val)
        bar.write(f"step {self.step}: validation loss {val:.4f} "
                  f"(perplexity {math.exp(min(val, 50)):.2f})")
        sys.stdout.flush()  # show it now even when stdout is a file

    # ----------------------------------------------------------------- saving, resuming
    @property
    def checkpoint_path(self):
        return os.path.join(self.run_dir, "checkpoint.npz")

    def state(self):
        return {
            "model": self.model.state_dict(),
            "model_config": self.model.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_config": asdict(self.config),
            "step": self.step,
            "rng": {"data": self.data_rng.bit_generator.state,
                    "engine": backend.get_rng_state()},
            "history": self.history,
            "extras": self.extras,
        }

    def save(self):
        """Write the checkpoint, the loss plot and the configuration into ``run_dir``."""
        if self.run_dir is None:
            raise ValueError("Trainer.save: this trainer has no run_dir to save into")
        os.makedirs(self.run_dir, exist_ok=True)
        checkpoint.save(self.state(), self.checkpoint_path)
        with open(os.path.join(self.run_dir, "config.json"), "w", encoding="utf-8") as f:
            json.dump({"model": self.model.config.to_dict(), "train": asdict(self.config)},
                      f, indent=2)
        plot_losses(self.history, os.path.join(self.run_dir, "loss.png"))

    def load_state(self, state):
        """Continue from a :meth:`state` (as saved): weights, optimizer, step, generators."""
        self.model.load_state_dict(state["model"])
        self.model.to(self.config.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.data_rng.bit_generator.state = state["rng"]["data"]
        backend.set_rng_state(state["rng"]["engine"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.extras = state.get("extras", {})


def plot_losses(history, path):
    """Training loss per step (and its running mean) with validation loss, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    steps, train = np.asarray(history["step"]), np.asarray(history["train_loss"])
    if len(train):
        ax.plot(steps, train, color="tab:blue", alpha=0.3, lw=0.8, label="train (per step)")
        window = max(1, len(train) // 50)
        smooth = np.convolve(train, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color="tab:blue", label="train (running mean)")
    if history["val_loss"]:
        ax.plot(history["val_step"], history["val_loss"], "o-", color="tab:orange",
                label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
