"""Does a long training run's memory stay flat? The process's resident memory at chosen steps.

    python bench/memory_over_steps.py [--preset tiny] [--steps 2000] [--at 100,500,1000,2000]

Trains a GPT of the preset on Shakespeare's characters (as ``python -m scratchlm train``
does: validation every 500 steps, a checkpoint saved every 500 steps into a temporary run
folder) and prints the resident set size (``VmRSS`` of ``/proc/self/status``, Linux) and its
peak so far (``VmHWM``) at each of the ``--at`` steps. Memory that grows from step to step
is a leak (a graph kept alive, a list that never empties); a flat line after the first
steps is the allocator's reuse.
"""

import argparse
import tempfile

import harness


def memory_mib():
    """(resident MiB now, peak resident MiB) from /proc/self/status."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--at", default="100,500,1000,2000")
    args = parser.parse_args()
    harness.use_repository()
    import numpy as np

    import scratchlm as sl
    from scratchlm.models import GPT, GPTConfig
    from scratchlm.text import CharTokenizer, load_shakespeare
    from scratchlm.train import TrainConfig, Trainer

    text = load_shakespeare()
    tokenizer = CharTokenizer().train(text)
    ids = np.array(tokenizer.encode(text))
    split = int(0.9 * len(ids))
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size))
    config = TrainConfig(max_steps=args.steps, batch_size=32, eval_interval=500,
                         eval_batches=5, checkpoint_interval=500)
    marks = {int(step) for step in args.at.split(",")}

    def on_step(trainer, loss):
        if trainer.step in marks:
            now, peak = memory_mib()
            print(f"step {trainer.step:>6}: resident {now:7.1f} MiB, peak {peak:7.1f} MiB, "
                  f"loss {loss:.3f}", flush=True)

    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(model, ids[:split], ids[split:], config, run_dir).train(progress=False,
                                                                      on_step=on_step)


if __name__ == "__main__":
    main()
