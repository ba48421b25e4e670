"""Training: the one loop for every model (GPT, BERT, the encoder-decoder).

One optimisation step, with gradient accumulation over A = ``grad_accum_steps`` micro-batches:

    g = (1/A) Σₐ ∇θ L(batchₐ)                     mean gradient of A micro-batches
    g ← g · min(1, c / ‖g‖)                        clip the global norm to c = ``grad_clip``
    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²            AdamW's moments
    θ ← θ − lr(t) · (m̂ / (√v̂ + ε) + λ θ)                      λ on weight matrices only
    lr(t) = lr · t / warmup                         for t < warmup, then cosine decay to
    lr(t) = lr · (r + (1 − r) · ½ (1 + cos(π · (t − warmup) / (T − warmup))))    r · lr

with m̂, v̂ the bias-corrected moments, T = ``max_steps`` and r = ``min_lr_ratio``. Every
``eval_interval`` steps the mean loss over ``eval_batches`` fixed validation batches is
recorded. A NaN or infinite loss or gradient norm makes no update (``skip_nonfinite``: the
step is skipped and counted; otherwise :class:`~scratchlm.errors.DivergenceError`).

What the loop trains on is a pair of functions: ``draw(rng, batch_size) -> batch`` and
``loss_fn(model, batch) -> loss``. A language model's are built in: token ids as 1-D
arrays give random windows of ``block_size`` tokens (:func:`scratchlm.text.get_batch`).
Where the run is kept — checkpoints that resume bit-identically, the lock, what survives a
kill — is :mod:`scratchlm.runs`.
"""

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from scratchlm import backend, fast, optim, runs
from scratchlm import distributed as dist
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.checks import check_bool, check_choice, check_int, check_real
from scratchlm.errors import ArgumentError, ConfigError, DivergenceError, TrainingInterrupted
from scratchlm.metrics import perplexity
from scratchlm.text import get_batch
from scratchlm.time_estimate import StepTimeEstimate, core_use, fastest_of, format_duration


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
    skip_nonfinite: bool = False  # skip (and count) steps with a NaN/Inf loss or gradient

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise :class:`~scratchlm.errors.ConfigError` (a ValueError) naming the first
        field that cannot work and what it takes; the Trainer calls it again, since fields
        may be assigned after construction."""
        where = "TrainConfig"
        try:
            for name in ("max_steps", "batch_size", "grad_accum_steps", "eval_interval",
                         "eval_batches", "checkpoint_interval"):
                check_int(where, name, getattr(self, name), 1)
            check_int(where, "warmup_steps", self.warmup_steps, 0)
            check_real(where, "learning_rate", self.learning_rate, 0, low_open=True,
                       hint="(try 1e-3)")
            check_real(where, "min_lr_ratio", self.min_lr_ratio, 0, 1)
            check_real(where, "weight_decay", self.weight_decay, 0)
            check_real(where, "beta1", self.beta1, 0, 1, high_open=True)
            check_real(where, "beta2", self.beta2, 0, 1, high_open=True)
            check_real(where, "eps", self.eps, 0, low_open=True)
            check_real(where, "grad_clip", self.grad_clip, 0, hint="(0: no clipping)")
            check_int(where, "seed", self.seed, 0, 2**32, hint="(NumPy's seeds)")
            check_choice(where, "device", self.device, ("cpu", "cuda"))
            check_bool(where, "skip_nonfinite", self.skip_nonfinite)
        except ArgumentError as error:
            raise ConfigError(str(error)) from None

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

    ``run_dir`` receives ``checkpoint.npz`` (and ``checkpoint.prev.npz``, the one before),
    ``loss.png`` and ``config.json`` (``None``: no files); ``extras`` (e.g. the tokenizer as
    a JSON string) are stored in the checkpoint as they are.

    ``distributed=True`` trains data-parallel over the processes ``mpiexec`` started
    (:mod:`scratchlm.distributed`): ``batch_size`` is per rank, every rank draws the same
    global batch of N·``batch_size`` and trains on its shard, the gradients, losses and stop
    signals are averaged or agreed over the ranks, and rank 0 alone writes the run folder —
    so N ranks take the steps of one process with batch N·``batch_size``. ``zero=1`` also
    shards AdamW's state over the ranks (ZeRO stage 1).
    """

    def __init__(self, model, train_data, val_data, config, run_dir=None, extras=None,
                 loss_fn=model_loss, distributed=False, zero=0):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"Trainer: config must be a TrainConfig, got {type(config).__name__}")
        config.validate()
        if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
            raise TypeError(f"Trainer: run_dir must be a path or None, got {run_dir!r}")
        if not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be callable, got {loss_fn!r}")
        self.model, self.config = model, config
        self.run_dir = None if run_dir is None else os.fspath(run_dir)
        self.train_data = self._checked_data("train", train_data)
        self.val_data = None if val_data is None else self._checked_data("validation", val_data)
        self.loss_fn = loss_fn
        self.extras = extras or {}
        self.tokens_per_step = None  # known for token ids: shown on the progress bar
        if not callable(self.train_data):
            self.tokens_per_step = config.batch_size * config.grad_accum_steps * model.block_size
        if zero not in (0, 1) or (zero and not distributed):
            raise ConfigError(f"Trainer: zero must be 0 or 1 (ZeRO stage 1, with "
                              f"distributed=True), got zero={zero!r}, "
                              f"distributed={distributed!r}")
        backend.manual_seed(config.seed)
        model.to(config.device)
        self.data_parallel = None
        if distributed:
            dist.init("nccl" if config.device == "cuda" else "mpi")
            self.data_parallel = dist.DataParallel(model)
            if self.tokens_per_step is not None:
                self.tokens_per_step *= dist.world_size()
        self.optimizer = optim.AdamW(
            optim.weight_decay_groups(model.named_parameters(), config.weight_decay),
            lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps)
        self.scheduler = optim.WarmupCosine(self.optimizer, config.warmup_steps,
                                            config.max_steps, config.min_lr_ratio)
        if zero:
            self.optimizer = dist.ZeroRedundancyOptimizer(self.optimizer)
        self.data_rng = np.random.default_rng(config.seed)
        self.step = 0
        self.history = {"step": [], "train_loss": [], "val_step": [], "val_loss": [],
                        "skipped_step": []}
        self.resumed_changes = []  # (field, checkpoint's value, applied value) at load_state
        self.config_changes = []  # every change applied on resuming, saved in the checkpoint
        self.saved_step = None  # the step of the checkpoint on disk, when this trainer knows it
        self.step_time = None  # a StepTimeEstimate once time_step has measured
        self.step_threads = None  # the threads time_step measured on (the run starts so)
        self.removed_files = []  # stale temporary files the last recover_run removed
        self._stop_signal = None

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
        """One optimisation step; returns the mean training loss of its micro-batches.

        A NaN or infinite loss or gradient norm makes no update: it raises
        :class:`~scratchlm.errors.DivergenceError`, or with ``config.skip_nonfinite`` the
        step is skipped — the step count and the learning-rate schedule move on, the
        weights and AdamW's moments do not — and recorded in ``history["skipped_step"]``."""
        cfg, model = self.config, self.model
        model.train()
        total = 0.0
        for _ in range(cfg.grad_accum_steps):
            loss = self.loss_fn(model, self._batch(self.train_data, self.data_rng))
            if cfg.grad_accum_steps > 1:
                loss = loss / cfg.grad_accum_steps
            loss.backward()
            total += loss.item()
        if self.data_parallel is not None:
            self.data_parallel.all_reduce_gradients()
            total = float(dist.all_reduce(total)[0])
        if cfg.grad_clip:
            norm = optim.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        else:
            norm = gradient_norm(model.parameters())
        if not (math.isfinite(total) and math.isfinite(norm)):
            self.optimizer.zero_grad()
            if not cfg.skip_nonfinite:
                raise self._divergence(total, norm)
            self.history["skipped_step"].append(self.step + 1)
        else:
            self.optimizer.step()
            self.optimizer.zero_grad()
        self.scheduler.step()
        self.step += 1
        return total

    def _divergence(self, loss, norm):
        step, lr = self.step + 1, self.scheduler.get_last_lr()[0]
        kept = ""
        if self.run_dir is not None and os.path.exists(self.checkpoint_path):
            at = "" if self.saved_step is None else f" (step {self.saved_step})"
            kept = f"; the last good checkpoint, {self.checkpoint_path}{at}, is kept"
        return DivergenceError(
            f"training diverged at step {step}: the loss is {loss:.4g} and the gradient norm "
            f"{norm:.4g} (learning rate {lr:.3g}); the step was not taken{kept}. Try a lower "
            f"learning rate (e.g. {self.config.learning_rate / 10:.3g}, --lr on the command "
            "line), or skip such steps with skip_nonfinite (--skip-nonfinite)",
            step=step, checkpoint=self.checkpoint_path if kept else None)

    def _batch(self, data, rng):
        """A batch of ``data``: drawn by its function, or random windows of token ids moved
        to the device. Data-parallel: this rank's shard of a global batch of N·batch_size
        (every rank draws the same one)."""
        ranks = 1 if self.data_parallel is None else dist.world_size()
        size = self.config.batch_size * ranks
        if callable(data):
            batch = data(rng, size)
        else:
            x, y = get_batch(data, size, self.model.block_size, rng)
            batch = backend.to_device(x, self.config.device), backend.to_device(
                y, self.config.device)
        return batch if self.data_parallel is None else dist.shard_batch(batch)

    def evaluate(self, data=None, progress=False):
        """Mean loss over ``eval_batches`` batches drawn the same way at every evaluation
        (``progress``: with a bar over the batches)."""
        data = self.val_data if data is None else self._checked_data("evaluation", data)
        if data is None:
            raise ValueError("Trainer.evaluate: no validation data; give val_data or data")
        rng = np.random.default_rng(self.config.seed + 1)
        self.model.eval()
        losses = []
        with no_grad(), progress_bar(self.config.eval_batches, 0, progress, "batch") as bar:
            for _ in range(self.config.eval_batches):
                losses.append(self.loss_fn(self.model, self._batch(data, rng)).item())
                bar.update(1)
        self.model.train()
        if self.data_parallel is not None:
            return float(dist.all_reduce(np.mean(losses))[0])
        return float(np.mean(losses))

    def time_step(self, repeats=3, budget_s=30.0):
        """Seconds one optimisation step takes: the fastest of ``repeats`` of the run's own
        steps (:meth:`train_step`: its batches drawn, forward and backward, the clipping,
        the AdamW update, the schedule) after one warm-up step
        (:func:`~scratchlm.time_estimate.fastest_of`), and everything they changed put
        back afterwards — the weights, AdamW's state, the schedule, the step count, both
        random generators — so the run stays bit-identical. A step slower than
        ``budget_s`` ends the measuring (then its time is returned: an upper bound). The
        first step starts threads, grows the allocator's pools and makes AdamW's moments,
        often several times slower than the rest. The steps run on the threads the run
        will have (:class:`scratchlm.fast.ThreadsFollowLoad`: beside a busy process, fewer
        BLAS threads than cores, or every product waits for the thread that lost its
        core), and the run starts on the same count; the process is tuned for training
        first, as :meth:`train` tunes it. Data-parallel, forward and backward
        passes of a throwaway batch stand for the step (a rank's step joins collective
        operations every rank must reach). Also measures how many cores other processes
        use, and keeps both as :attr:`step_time`, which the progress bar refreshes from
        the run's own steps."""
        fast.tune_process()  # as train() does: the allocator keeps freed memory
        if self.data_parallel is None:
            saved, measured = self._training_state(), self._timed_train_step
        else:
            saved, measured = {"engine_rng": backend.get_rng_state()}, self._timed_pass(
                self._batch(self.train_data, np.random.default_rng(0)))
        try:
            # on the threads the run will have: as many as other processes leave free
            with fast.ThreadsFollowLoad(interval_s=0.0) as threads:
                use = core_use()
                threads.check()
                self.step_threads = threads.threads
                seconds, _ = fastest_of(measured, repeats=repeats, budget_s=budget_s)
        finally:
            self._restore_training_state(saved)
        if self.data_parallel is not None:
            seconds *= self.config.grad_accum_steps
        self.step_time = StepTimeEstimate(seconds, use)
        return seconds

    def _timed_train_step(self):
        """One step that is timed, then undone: an overflow in it is the run's to report
        (its own first step meets the same), so NumPy's warnings are silenced here."""
        try:
            with np.errstate(all="ignore"):
                self.train_step()
        except DivergenceError:  # the time still counts
            self.optimizer.zero_grad()
        backend.synchronize(self.config.device)

    def _timed_pass(self, batch):
        def one_pass():
            self.model.train()
            self.loss_fn(self.model, batch).backward()
            backend.synchronize(self.config.device)
            self.model.zero_grad()
        return one_pass

    def _training_state(self):
        """Copies of everything :meth:`train_step` changes."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "step": self.step,
                "skipped_step": list(self.history["skipped_step"]),
                "data_rng": self.data_rng.bit_generator.state,
                "engine_rng": backend.get_rng_state()}

    def _restore_training_state(self, saved):
        """Put back what :meth:`_training_state` copied (the parts it holds)."""
        self.optimizer.zero_grad()
        self.model.zero_grad()
        if "model" in saved:
            self.model.load_state_dict(saved["model"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.step = saved["step"]
            self.history["skipped_step"] = saved["skipped_step"]
            self.data_rng.bit_generator.state = saved["data_rng"]
        backend.set_rng_state(saved["engine_rng"])

    def train(self, progress=True, stop_at=None, on_step=None, handle_signals=None,
              on_validate=None):
        """Run until ``max_steps`` (or ``stop_at``), validating and checkpointing on the way;
        returns the history. ``on_step(trainer, loss)``, if given, is called after every
        step (e.g. to log). After each validation the loop prints ``step N: validation loss
        L (perplexity P)``; ``on_validate(trainer, val_loss)``, if given, is called instead
        (to report it otherwise: in another language, to a log; data-parallel, on every
        rank). Tunes the process for training first
        (:func:`scratchlm.fast.tune_process`: the allocator keeps freed memory for reuse),
        and every two seconds fits BLAS's and the fast layer's threads to the cores other
        processes leave free (:class:`scratchlm.fast.ThreadsFollowLoad`).

        With a ``run_dir``: the run folder is locked for this process
        (:class:`~scratchlm.errors.RunInUseError` if another holds it), temporary files of an
        interrupted save are removed, and (``handle_signals``, default: when there is a
        run_dir and this is the main thread) SIGINT/SIGTERM finish the current step, save a
        checkpoint and raise :class:`~scratchlm.errors.TrainingInterrupted`; a second signal
        stops at once (KeyboardInterrupt for SIGINT, the default action for SIGTERM)."""
        fast.tune_process()
        cfg = self.config
        cfg.validate()
        last = min(cfg.max_steps, stop_at or cfg.max_steps)
        if handle_signals is None:
            handle_signals = self.run_dir is not None
        writer = dist.rank() == 0  # data-parallel: rank 0 alone writes the run folder
        if self.data_parallel is not None:
            dist.barrier()  # every rank has loaded what it resumes from
        with contextlib.ExitStack() as stack:
            if self.run_dir is not None and writer:
                runs.check_writable(self.run_dir)
                stack.enter_context(runs.run_lock(self.run_dir))
                self.removed_files = runs.recover_run(self.run_dir)
            if handle_signals:
                stack.enter_context(self._signals_stop_training())
            threads = stack.enter_context(fast.ThreadsFollowLoad(
                start_threads=self.step_threads))
            bar = stack.enter_context(progress_bar(last, self.step, progress and writer))
            started, first_step = time.perf_counter(), self.step
            stopping = None
            while self.step < last and stopping is None:
                threads.check()
                step_started = time.perf_counter()
                loss = self.train_step()
                if self.step_time is not None:
                    self.step_time.observe(time.perf_counter() - step_started)
                self.history["step"].append(self.step)
                self.history["train_loss"].append(loss)
                if progress:
                    bar.set_postfix(self._progress(loss, started, first_step), refresh=False)
                    bar.update(1)  # redraws the bar once per step
                if on_step is not None:
                    on_step(self, loss)
                if self.val_data is not None and (self.step % cfg.eval_interval == 0
                                                  or self.step == cfg.max_steps):
                    self._validate(bar, on_validate)
                if self.run_dir is not None and (self.step % cfg.checkpoint_interval == 0
                                                 or self.step == last):
                    self.save()
                stopping = self._agreed_stop()
            if stopping is not None:
                self._stop_signal = stopping
                bar.close()
                raise self._interrupted()
        return self.history

    def _agreed_stop(self):
        """The signal that ends training after this step, if any: this process's, or
        data-parallel, any rank's — every rank gets the same answer, so all stop together."""
        if self.data_parallel is None:
            return self._stop_signal
        return int(dist.all_reduce(self._stop_signal or 0, op="max")[0]) or None

    def _interrupted(self):
        """Save (unless this step is saved already) and say so, after a signal."""
        signum = self._stop_signal
        name = signal.Signals(signum).name
        if self.run_dir is None:
            self._stop_signal = None
            return TrainingInterrupted(f"{name} stopped training after step {self.step} "
                                       "(no run_dir: nothing saved)", signal=signum,
                                       step=self.step)
        if self.saved_step != self.step:
            self.save()  # (a second signal meanwhile stops at once; the last one is kept)
        self._stop_signal = None
        return TrainingInterrupted(f"{name} stopped training after step {self.step}; "
                                   f"checkpoint saved in {self.checkpoint_path}",
                                   signal=signum, step=self.step,
                                   checkpoint=self.checkpoint_path)

    @contextlib.contextmanager
    def _signals_stop_training(self):
        """SIGINT and SIGTERM set a flag the loop reads after each step; a second one
        stops at once. Only the main thread can set signal handlers: elsewhere, nothing."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._stop_signal is not None:  # the second signal: stop now
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            self._stop_signal = signum
            again = "Ctrl-C" if signum == signal.SIGINT else "the signal"
            os.write(2, (f"\n{signal.Signals(signum).name}: stopping after the current "
                         f"step, with a checkpoint ({again} again stops at once)\n").encode())

        self._stop_signal = None
        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def _progress(self, loss, started, first_step):
        """The progress bar's figures: loss, learning rate, and tokens per second when the
        data are token ids."""
        figures = {"loss": f"{loss:.3f}", "lr": f"{self.scheduler.get_last_lr()[0]:.1e}"}
        if self.history["skipped_step"]:
            figures["skipped"] = str(len(self.history["skipped_step"]))
        if self.tokens_per_step is not None:
            elapsed = time.perf_counter() - started
            figures["tok_s"] = f"{self.tokens_per_step * (self.step - first_step) / elapsed:,.0f}"
        if self.step_time is not None:
            left = self.step_time.remaining(self.config.max_steps - self.step)
            figures["left"] = format_duration(left)
        return figures

    def _validate(self, bar, on_validate=None):
        val = self.evaluate()
        self.history["val_step"].append(self.step)
        self.history["val_loss"].append(val)
        if on_validate is not None:
            on_validate(self, val)
        elif dist.rank() == 0:
            bar.write(f"step {self.step}: validation loss {val:.4f} "
                      f"(perplexity {perplexity(val):.2f})")
        sys.stdout.flush()  # show it now even when stdout is a file

    # ----------------------------------------------------------------- saving, resuming
    @property
    def checkpoint_path(self):
        if self.run_dir is None:
            return None
        return os.path.join(self.run_dir, runs.CHECKPOINT)

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
            "config_changes": self.config_changes,
            "extras": self.extras,
        }

    def save(self):
        """Write the checkpoint, the loss plot and the configuration into ``run_dir``.

        The checkpoint goes to ``checkpoint.next.npz``, is read back and checked (every
        array's CRC-32, every value finite), and only then replaces ``checkpoint.npz``,
        which becomes ``checkpoint.prev.npz``. A state holding NaN or Inf is never written:
        :class:`~scratchlm.errors.DivergenceError`, and the checkpoint on disk is kept.
        Data-parallel, every rank calls it and rank 0 alone writes."""
        if self.run_dir is None:
            raise ValueError("Trainer.save: this trainer has no run_dir to save into")
        state = self.state()  # data-parallel with ZeRO: every rank sends rank 0 its share
        if dist.rank() != 0:
            self.saved_step = self.step
            return
        bad = runs.nonfinite_arrays(state)
        if bad:
            kept = (f"; {self.checkpoint_path} is kept" if os.path.exists(self.checkpoint_path)
                    else "")
            raise DivergenceError(
                f"Trainer.save: at step {self.step} {len(bad)} array(s) hold NaN or Inf "
                f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the checkpoint was "
                f"not written{kept}. Try a lower learning rate (e.g. "
                f"{self.config.learning_rate / 10:.3g})", step=self.step,
                checkpoint=self.checkpoint_path if kept else None)
        os.makedirs(self.run_dir, exist_ok=True)
        with runs.run_lock(self.run_dir):
            runs.recover_run(self.run_dir)
            runs.write_checkpoint(state, self.run_dir)
            runs.write_text_atomic(os.path.join(self.run_dir, "config.json"), json.dumps(
                {"model": self.model.config.to_dict(), "train": asdict(self.config)},
                indent=2))
            self._plot_losses(os.path.join(self.run_dir, "loss.png"))
        self.saved_step = self.step

    def _plot_losses(self, path):
        """The loss curves (:func:`scratchlm.viz.history_curves`) as a PNG at ``path``."""
        from scratchlm import viz  # matplotlib loads only when a run is saved

        temporary = f"{path}.tmp.png"
        viz.history_curves(self.history).savefig(temporary, dpi=110)
        os.replace(temporary, path)

    def load_state(self, state):
        """Continue from a :meth:`state` (as saved): weights, optimizer, step, generators.

        This trainer's config is what the run continues with: where it differs from the
        checkpoint's ``train_config`` (a new learning rate, more steps, another batch
        size...), the new values are applied — AdamW's hyperparameters, the schedule's peak,
        warmup and length — and listed in :attr:`resumed_changes` as (field, old, new); the
        next checkpoint records them. A different ``seed`` is refused
        (:class:`~scratchlm.errors.ConfigError`): the random generators continue from the
        checkpoint, so a new seed could not take effect."""
        changes = runs.check_resume(state.get("train_config") or {}, self.config,
                                    "Trainer.load_state")
        self.model.load_state_dict(state["model"])
        self.model.to(self.config.device)
        # The moments and the schedule's position come from the checkpoint; the
        # hyperparameters (AdamW's, the schedule's peak) from this trainer's config.
        saved = state["optimizer"]
        groups = [{**old, **{k: v for k, v in new.items() if k != "params"}}
                  for old, new in zip(saved["param_groups"], self.optimizer.param_groups)]
        self.optimizer.load_state_dict({"state": saved["state"], "param_groups": groups})
        self.scheduler.load_state_dict({**state["scheduler"],
                                        "base_lrs": self.scheduler.base_lrs})
        self.step = int(state["step"])
        self.data_rng.bit_generator.state = state["rng"]["data"]
        backend.set_rng_state(state["rng"]["engine"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.history.setdefault("skipped_step", [])
        self.extras = state.get("extras", {})
        self.resumed_changes = changes
        self.config_changes = [dict(c) for c in state.get("config_changes", [])]
        self.config_changes += [{"step": self.step, "field": name, "from": old, "to": new}
                                for name, old, new in changes]
        self.saved_step = self.step


def gradient_norm(params):
    """‖g‖₂ over the gradients of ``params`` (those that have one), as a float; the value
    :func:`scratchlm.optim.clip_grad_norm_` returns, without clipping anything."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    xp = backend.get_array_module(grads[0])
    return math.sqrt(float(sum(xp.vdot(g.reshape(-1), g.reshape(-1)) for g in grads)))


def progress_bar(total, initial, shown, unit="step"):
    """tqdm's bar over the steps, or a stand-in that draws nothing when ``shown`` is False
    (tqdm is not even imported then)."""
    if not shown:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True)


class _NoBar:
    """The progress bar's methods the loop calls, doing nothing but ``write``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def set_postfix(self, *args, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass

    def write(self, text):
        print(text)
