"""The rank side of tests/test_distributed.py: ``mpiexec -n N python tests/distributed_worker.py
CASE RUN_DIR [options]`` trains the tiny GPT of :func:`tiny_case` data-parallel with the
Trainer and leaves its checkpoint (rank 0) in RUN_DIR; the test compares it with one process.

Cases: ``train`` (to max_steps), ``stop`` (``--stop-at K`` then ``--resume``), ``signal``
(rank ``--victim`` sends itself SIGTERM after step 3), ``kill`` (rank ``--victim`` is killed
with SIGKILL after step 2: mpiexec must stop the others), ``raise`` (rank ``--victim`` raises:
dist.abort stops the others).
"""

import argparse
import os
import signal
import sys

import numpy as np

import scratchlm as sl
from scratchlm import checkpoint
from scratchlm import distributed as dist
from scratchlm.errors import TrainingInterrupted
from scratchlm.models import GPT, GPTConfig
from scratchlm.train import TrainConfig, Trainer


def tiny_case(dtype, batch_size, max_steps=6):
    """(model, token ids, TrainConfig): a 2-layer GPT over 16 symbols in ``dtype``, every
    step checkpointed, no dropout."""
    sl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=16, block_size=8, n_layer=2, n_head=2, n_embd=16))
    model.load_state_dict({k: v.astype(dtype) for k, v in model.state_dict().items()})
    tokens = np.random.default_rng(1).integers(0, 16, size=400)
    config = TrainConfig(max_steps=max_steps, batch_size=batch_size, learning_rate=1e-2,
                         warmup_steps=2, eval_interval=3, eval_batches=2,
                         checkpoint_interval=1, seed=7)
    return model, tokens, config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["train", "stop", "signal", "kill", "raise"])
    parser.add_argument("run_dir")
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--zero", type=int, default=0)
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--victim", type=int, default=1)
    args = parser.parse_args()

    model, tokens, config = tiny_case(np.dtype(args.dtype), args.batch_size, args.max_steps)
    trainer = Trainer(model, tokens[:300], tokens[300:], config, run_dir=args.run_dir,
                      distributed=True, zero=args.zero)
    if args.resume:
        trainer.load_state(checkpoint.load(os.path.join(args.run_dir, "checkpoint.npz")))

    def on_step(trainer, loss):
        if dist.rank() != args.victim:
            return
        if args.case == "signal" and trainer.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        if args.case == "kill" and trainer.step == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.case == "raise" and trainer.step == 2:
            try:
                raise RuntimeError("a planted failure")
            except RuntimeError as error:
                dist.abort(f"{type(error).__name__}: {error}")

    try:
        trainer.train(progress=False, stop_at=args.stop_at, on_step=on_step)
    except TrainingInterrupted as stopped:
        print(f"rank {dist.rank()} stopped at step {stopped.step}", flush=True)
    if args.zero:
        print(f"rank {dist.rank()} optimizer bytes {trainer.optimizer.state_bytes()}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
