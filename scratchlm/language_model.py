"""A GPT language-model run, as ``python -m scratchlm train|sample|eval`` runs it: train one on
a corpus (new, resumed with changed settings, or replacing a run), sample from it, evaluate
it. Every check — arguments, device, data, memory, a writable folder — passes before an
existing run is touched; the run folder itself is :mod:`scratchlm.runs`.
"""

import dataclasses
import math
import os
import shlex
import signal
import sys
import tempfile
import time
import warnings

import numpy as np

from scratchlm import backend, memory_estimate, runs
from scratchlm import distributed as dist
from scratchlm.checkpoint_fields import (
    TRAINING_FIELDS,
    check_run_state,
    config_from_state,
    load_model,
    stored_tokenizer,
)
from scratchlm.errors import (
    ConfigError,
    DivergenceError,
    NotEnoughMemoryError,
    RunExistsError,
    RunNotFoundError,
    TrainingInterrupted,
)
from scratchlm.metrics import perplexity
from scratchlm.models import GPT, PRESETS, GPTConfig
from scratchlm.runs import (
    CHECKPOINT,
    load_run_checkpoint,
)
from scratchlm.text import prepare_corpus, train_val_split
from scratchlm.train import TrainConfig, Trainer

#: Training settings of each preset that differ from TrainConfig's defaults.
TRAIN_PRESETS = {
    "shakespeare-char": dict(max_steps=1500, batch_size=32, learning_rate=3e-3,
                             warmup_steps=100, eval_interval=250, checkpoint_interval=500),
    "tiny": dict(max_steps=200, batch_size=16, learning_rate=3e-3, eval_interval=50,
                 checkpoint_interval=100),
    "baby-gpt": dict(max_steps=5000, batch_size=64, learning_rate=1e-3, beta2=0.99,
                     eval_interval=250, checkpoint_interval=1000),
}
TOKENIZER_KINDS = ("char", "bpe", "gpt2")
DEFAULT_PRESET, DEFAULT_CORPUS, DEFAULT_TOKENIZER, DEFAULT_SEED = (
    "shakespeare-char", "shakespeare", "char", 1337)
#: NumPy's warnings as a run diverges (the Trainer reports the step itself).
FLOATING_POINT_WARNINGS = "(overflow|invalid value|divide by zero) encountered"


def _tokenizer_text(tokenizer, run_dir):
    """Save the tokenizer as ``run_dir/tokenizer.json`` and return that JSON text (which the
    checkpoint stores too, so a checkpoint alone is enough to sample)."""
    path = os.path.join(run_dir, "tokenizer.json")
    tokenizer.save(path)
    with open(path, encoding="utf-8") as f:
        return f.read()




#: Training flags (argparse dest -> TrainConfig field) a run takes from the command line.
TRAIN_FLAGS = {"max_steps": "--max-steps", "batch_size": "--batch-size",
               "grad_accum_steps": "--grad-accum-steps", "learning_rate": "--lr",
               "warmup_steps": "--warmup-steps", "weight_decay": "--weight-decay",
               "grad_clip": "--grad-clip", "eval_interval": "--eval-interval",
               "eval_batches": "--eval-batches", "checkpoint_interval": "--checkpoint-interval",
               "skip_nonfinite": "--skip-nonfinite", "device": "--device", "seed": "--seed"}


def _given_training_flags(args):
    """{TrainConfig field: value} of the training flags given on the command line."""
    return {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}


def _train_config(args):
    """A new run's TrainConfig: the preset's settings, then the flags given."""
    values = dict(TRAIN_PRESETS.get(args.preset, {}), device="cpu")
    values.update(_given_training_flags(args))
    config = TrainConfig(**values)
    config.warmup_steps = min(config.warmup_steps, config.max_steps)
    return config


def _run_dir(args):
    runs.check_folder("--out-dir", args.out_dir)
    args.data_dir = args.data_dir or runs.cache_dir()
    runs.check_folder("--data-dir", args.data_dir)
    if args.run_name is not None:
        runs.check_run_name(args.run_name)
    run_dir = os.path.join(args.out_dir, args.run_name or args.preset or DEFAULT_PRESET)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"the run folder {run_dir} is a file; choose another --run-name or "
                          "--out-dir")
    return run_dir


def _refuse_existing_run(run_dir, overwrite):
    """The trained files of the run in ``run_dir`` (empty when there is none); refuse to
    start a new run there unless ``overwrite``. Nothing is touched here: ``--overwrite``
    sets the old run aside only after every check passed (:func:`scratchlm.runs.replacing`)."""
    found = runs.holds_run(run_dir)
    if found and not overwrite:
        raise RunExistsError(f"{run_dir} holds a run already ({', '.join(found)}); continue it "
                             "with --resume, start again in its place with --overwrite, or "
                             "choose another --run-name", path=run_dir)
    return found


def _resumed_settings(args, state, run_dir):
    """(model config, train config, corpus, tokenizer kind, reverse) of a resumed run: its
    own, with the training flags given applied; flags that would change its model or data
    are refused."""
    extras, saved_model = state["extras"], state["model_config"]
    given = {"--corpus": (args.corpus, extras.get("corpus")),
             "--tokenizer": (args.tokenizer, extras.get("tokenizer_kind")),
             "--block-size": (args.block_size, saved_model.get("block_size")),
             "--dropout": (args.dropout, saved_model.get("dropout"))}
    if args.preset is not None:
        given["--preset"] = (args.preset, extras.get("preset"))
    if args.vocab_size is not None:
        given["--vocab-size"] = (args.vocab_size, saved_model.get("vocab_size"))
    if args.reverse:
        given["--reverse"] = (True, bool(extras.get("reverse", False)))
    for flag, (value, saved) in given.items():
        if value is not None and value != saved:
            raise ConfigError(f"{flag} {value}: the run in {run_dir} was trained with {saved}, "
                              "and a resumed run keeps its model and data; drop the "
                              "flag to resume it, or start a new run (another --run-name, "
                              "or --overwrite)")
    train_config = TrainConfig.from_dict({**state["train_config"],
                                          **_given_training_flags(args)})
    runs.check_resume(state["train_config"], train_config, f"train --resume {run_dir}")
    if train_config.max_steps <= state["step"]:
        raise ConfigError(f"the run in {run_dir} is at step {state['step']} and its max_steps "
                          f"is {train_config.max_steps}: nothing to train; give --max-steps "
                          f"above {state['step']} to continue it (the learning-rate schedule "
                          "stretches to the new end)")
    model_config = config_from_state(state, os.path.join(run_dir, CHECKPOINT), GPTConfig,
                                     "train --resume")
    return (model_config, train_config, extras["corpus"],
            extras["tokenizer_kind"], bool(extras.get("reverse", False)))


def _check_memory(model_config, train_config, force, resuming, optimizer_shards=1):
    """Print the memory estimate; refuse (unless ``force``) a run that would not fit.
    Data-parallel, the estimate is per rank (ZeRO-1: 1/N of AdamW's state) and the memory
    available is shared by the ranks of one node."""
    estimate = memory_estimate.estimate_gpt_training(model_config, train_config.batch_size)
    if optimizer_shards > 1:
        estimate = dataclasses.replace(
            estimate, optimizer=-(-estimate.optimizer // optimizer_shards))
    limit = memory_estimate.memory_limit(train_config.device)
    available, where = (None, None) if limit is None else (limit.available, limit.source)
    if available is not None and dist.local_size() > 1:
        available //= dist.local_size()
        where += f", a share of {dist.local_size()} ranks"
    fmt = memory_estimate.format_bytes
    line = f"memory{' per rank' if dist.world_size() > 1 else ''}: {estimate.describe()}"
    if available is not None:
        line += f"; {fmt(available)} available ({where})"
    print(line)
    if available is None or estimate.total <= available:
        return
    if force:
        print("--force: starting anyway, though the estimate exceeds the memory available")
        return
    tries = []
    batch = memory_estimate.fitting_batch_size(model_config, train_config.batch_size, available)
    if batch is not None:
        total = memory_estimate.estimate_gpt_training(model_config, batch).total
        tries.append(f"--batch-size {batch} (about {fmt(total)})")
    if not resuming:
        smaller = []
        for name, fields in PRESETS.items():
            config = GPTConfig(**{**fields, "vocab_size": model_config.vocab_size})
            batch_size = TRAIN_PRESETS.get(name, {}).get("batch_size", TrainConfig.batch_size)
            total = memory_estimate.estimate_gpt_training(config, batch_size).total
            if total <= available and total < estimate.total:
                smaller.append((total, name))
        if smaller:
            total, name = max(smaller)
            tries.insert(0, f"--preset {name} (about {fmt(total)})")
    advice = f"try {' or '.join(tries)}, or" if tries else "use a smaller model or"
    raise NotEnoughMemoryError(
        f"this run needs {estimate.describe()}, but {fmt(available)} is available "
        f"({where}); {advice} pass --force to start anyway",
        needed=estimate.total, available=available)


def _resume_command(args, run_dir):
    """The exact command that continues this run."""
    parts = ["python", "-m", "scratchlm", "train", "--resume", "--out-dir", args.out_dir,
             "--run-name", os.path.basename(run_dir)]
    if dist.world_size() > 1:
        parts += ["--nproc", str(dist.world_size())] + (["--zero", "1"] if args.zero else [])
    if args.data_dir != runs.cache_dir():
        parts += ["--data-dir", args.data_dir]
    if args.no_progress:
        parts.append("--no-progress")
    return shlex.join(parts)


def command_train(args):
    run_dir = _run_dir(args)
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the run and --overwrite replaces it: give one")
    if args.zero and not args.distributed:
        raise ConfigError("--zero 1 shards AdamW's state over ranks: add --distributed (under "
                          "mpiexec) or --nproc N")
    if args.distributed:
        dist.init("nccl" if args.device == "cuda" else "mpi")
        if dist.rank() != 0:  # rank 0 speaks for the group; errors still reach stderr
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the process's lifetime)
    state, replaced = None, []
    if args.resume:
        try:
            with dist.rank_zero_first():  # rank 0 tidies the run folder, then all read it
                state = load_run_checkpoint(run_dir)
        except RunNotFoundError as error:
            raise RunNotFoundError(f"cannot --resume: {error}; start it without --resume",
                                   path=run_dir) from None
        path = os.path.join(run_dir, CHECKPOINT)
        check_run_state(state, path, "train --resume", TRAINING_FIELDS,
                        extras=("corpus", "tokenizer_kind"), train_config_class=TrainConfig)
        stored_tokenizer(state, path, "train --resume")
        load_model(state, path, GPT, GPTConfig, "train --resume")
        model_config, train_config, corpus_name, kind, reverse = _resumed_settings(
            args, state, run_dir)
        preset = state["extras"].get("preset", args.preset or "resumed")
        vocab = model_config.vocab_size if kind == "bpe" else None
    else:
        replaced = _refuse_existing_run(run_dir, args.overwrite)
        args.preset = args.preset or DEFAULT_PRESET
        args.seed = DEFAULT_SEED if args.seed is None else args.seed
        preset, corpus_name = args.preset, args.corpus or DEFAULT_CORPUS
        kind, reverse, vocab = args.tokenizer or DEFAULT_TOKENIZER, args.reverse, args.vocab_size
        train_config = _train_config(args)
    backend.check_device(train_config.device)
    with dist.rank_zero_first():  # rank 0 fills the data caches, then the others read them
        corpus = prepare_corpus(corpus_name, kind, data_dir=args.data_dir, vocab_size=vocab)
    ids = corpus.ids[::-1].copy() if reverse else corpus.ids  # see reverse_text
    train_ids, val_ids = train_val_split(ids, val_fraction=0.1)
    if state is None:
        overrides = {"vocab_size": corpus.tokenizer.vocab_size}
        if args.block_size is not None:
            overrides["block_size"] = args.block_size
        if args.dropout is not None:
            overrides["dropout"] = args.dropout
        model_config = GPTConfig.from_preset(preset, **overrides)
    _check_memory(model_config, train_config, args.force, resuming=state is not None,
                  optimizer_shards=dist.world_size() if args.zero else 1)
    if dist.rank() == 0:
        runs.check_writable(run_dir)
    if not (replaced and dist.rank() == 0):
        return _train_run(args, run_dir, state, preset, corpus, kind, corpus_name, reverse,
                          train_ids, val_ids, model_config, train_config)
    print(f"--overwrite: the run in {run_dir} ({', '.join(replaced)}) is set aside, and "
          "deleted once the new run's first checkpoint is verified")
    with runs.replacing(run_dir):
        _train_run(args, run_dir, state, preset, corpus, kind, corpus_name, reverse,
                   train_ids, val_ids, model_config, train_config)


def _train_run(args, run_dir, state, preset, corpus, kind, corpus_name, reverse, train_ids,
               val_ids, model_config, train_config):
    """Build the model and the Trainer, train, and report (every check has passed)."""
    backend.manual_seed(train_config.seed)
    model = GPT(model_config)
    if state is None:
        with tempfile.TemporaryDirectory() as scratch:  # rank 0 alone writes the run folder
            text = _tokenizer_text(corpus.tokenizer, run_dir if dist.rank() == 0 else scratch)
        extras = {"tokenizer": text, "corpus": corpus_name,
                  "tokenizer_kind": kind, "reverse": bool(reverse), "preset": preset}
    else:
        extras = state["extras"]
    trainer = Trainer(model, train_ids, val_ids, train_config, run_dir, extras=extras,
                      distributed=args.distributed, zero=args.zero)
    if state is not None:
        trainer.load_state(state)
        print(f"resuming {run_dir} at step {trainer.step} of {train_config.max_steps}")
        if trainer.resumed_changes:
            print("changed settings, applied from step {} on and recorded in the checkpoint: "
                  "{}".format(trainer.step + 1, ", ".join(
                      f"{name} {old} → {new}" for name, old, new in trainer.resumed_changes)))
    print(f"GPT '{preset}': {model.num_parameters():,} parameters, "
          f"{model_config.n_layer} layers × {model_config.n_head} heads × {model_config.n_embd}"
          f", context {model_config.block_size}; {len(train_ids):,} training tokens of "
          f"{corpus_name} ({kind}, vocabulary {model_config.vocab_size}); "
          f"{train_config.max_steps} steps on {train_config.device}")
    seconds = trainer.time_step()
    flops = memory_estimate.training_flops(model_config, train_config.batch_size) * (
        train_config.grad_accum_steps)
    remaining = train_config.max_steps - trainer.step
    if dist.world_size() > 1:
        print(f"data-parallel: {dist.world_size()} ranks × batch {train_config.batch_size} "
              f"(global batch {dist.world_size() * train_config.batch_size}); memory and time "
              "per rank, the gradient all-reduce not included"
              + ("; ZeRO-1 shards AdamW's state" if args.zero else ""))
    print(f"time: about {seconds:.2g} s per step ({flops / 1e9:.3g} GFLOP): "
          f"{trainer.step_time.describe(remaining)}")
    sys.stdout.flush()
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            if not getattr(args, "debug", False):  # a diverging run says so itself
                warnings.filterwarnings("ignore", FLOATING_POINT_WARNINGS, RuntimeWarning)
            trainer.train(progress=not args.no_progress)
    except TrainingInterrupted as stop:
        if dist.rank() == 0:  # one report for the group
            print(f"{stop}\nto resume: {_resume_command(args, run_dir)}", file=sys.stderr)
        raise SystemExit(stop.exit_status) from None
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, mid-step
        if args.debug:
            raise
        saved = trainer.saved_step
        resume = (f"the checkpoint of step {saved} is kept; to resume: "
                  f"{_resume_command(args, run_dir)}" if saved is not None
                  else "no checkpoint was saved yet")
        raise TrainingInterrupted(f"interrupted (SIGINT) during step {trainer.step + 1}; "
                                  f"{resume}", signal=signal.SIGINT, step=trainer.step,
                                  checkpoint=trainer.checkpoint_path if saved is not None
                                  else None) from None
    except DivergenceError as error:
        if error.checkpoint is None:
            raise
        lower = f"{train_config.learning_rate / 10:.3g}"
        raise DivergenceError(f"{error}; to continue from that checkpoint at a lower rate: "
                              f"{_resume_command(args, run_dir)} --lr {lower}",
                              step=error.step, checkpoint=error.checkpoint) from None
    minutes = (time.perf_counter() - started) / 60
    val = trainer.history["val_loss"][-1] if trainer.history["val_loss"] else trainer.evaluate()
    print(f"done in {minutes:.1f} min: validation loss {val:.4f} nats/token "
          f"(perplexity {perplexity(val):.2f}); run saved in {run_dir}/ "
          "(checkpoint.npz, loss.png, config.json)")
    skipped = trainer.history["skipped_step"]
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        print(f"skipped {len(skipped)} step(s) with a NaN or infinite loss or gradient (no "
              f"update; saved in the checkpoint's history): {shown}")
    if not math.isfinite(val):
        print("\n(no sample: the validation loss is not finite)")
        return
    if dist.rank() != 0:  # rank 0 shows the sample
        return
    prompt = "\n" if kind == "char" else " "
    print("\n--- sample ---")
    print(_sample_text(model, corpus.tokenizer, prompt, 400, temperature=0.8, top_k=None,
                       top_p=None, greedy=False, reverse=reverse))


# ------------------------------------------------------------------------------ sample
def _load_checkpoint(run_dir):
    """The state of the run in ``run_dir`` (the --run of sample and eval)."""
    if os.path.isfile(run_dir):
        hint = (f"; give its folder, --run {os.path.dirname(run_dir) or '.'}"
                if run_dir.endswith(".npz") else "")
        raise ConfigError(f"--run {run_dir} is a file; --run takes the run folder, which "
                          f"holds {CHECKPOINT}{hint}")
    try:
        return load_run_checkpoint(run_dir)
    except RunNotFoundError as error:
        raise RunNotFoundError(f"{error}; train one first with `python -m scratchlm train "
                               "--run-name NAME` (runs go under runs/NAME)",
                               path=run_dir) from None


def _load_run(run_dir, device):
    state = _load_checkpoint(run_dir)
    path = os.path.join(run_dir, CHECKPOINT)
    model = load_model(state, path, GPT, GPTConfig)
    model.to(device)
    return model, stored_tokenizer(state, path), state


def reverse_text(tokenizer, text):
    """A reverse language model reads and writes right to left: its prompt is the *end* of
    a text, fed backwards, and what it generates comes before it (read backwards again)."""
    return tokenizer.decode(tokenizer.encode(text)[::-1])


def _sample_text(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, greedy,
                 reverse=False):
    if not prompt:
        raise ConfigError("the prompt is empty; give at least one character")
    try:
        ids = np.array([tokenizer.encode(prompt)[::-1] if reverse else
                        tokenizer.encode(prompt)], dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise ConfigError(f"cannot encode the prompt: {error}") from None
    out = model.generate(ids, max_new_tokens, temperature=temperature, top_k=top_k,
                         top_p=top_p, do_sample=not greedy)
    generated = backend.to_numpy(out[0]).tolist()
    return tokenizer.decode(generated[::-1] if reverse else generated)


def command_sample(args):
    backend.check_device(args.device)
    model, tokenizer, state = _load_run(args.run, args.device)
    reverse = bool(state["extras"].get("reverse", False))
    backend.manual_seed(args.seed)
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        print(_sample_text(model, tokenizer, args.prompt, args.max_new_tokens,
                           args.temperature, args.top_k, args.top_p, args.greedy, reverse))


# -------------------------------------------------------------------------------- eval
def command_eval(args):
    backend.check_device(args.device)
    model, tokenizer, state = _load_run(args.run, args.device)
    check_run_state(state, os.path.join(args.run, CHECKPOINT), "eval",
                    ("model", "model_config", "train_config", "extras"),
                    extras=("corpus", "tokenizer_kind"), train_config_class=TrainConfig)
    train = TrainConfig.from_dict(state["train_config"])
    train.device, train.eval_batches = args.device, args.batches
    kind = state["extras"]["tokenizer_kind"]
    vocab = tokenizer.vocab_size if kind == "bpe" else None
    data_dir = args.data_dir or runs.cache_dir()
    runs.check_folder("--data-dir", data_dir)
    print(f"evaluating {args.run} on {args.batches} validation batches (corpus cache: "
          f"{data_dir})", flush=True)
    corpus = prepare_corpus(state["extras"]["corpus"], kind, data_dir=data_dir,
                            vocab_size=vocab)
    ids = corpus.ids[::-1].copy() if state["extras"].get("reverse") else corpus.ids
    train_ids, val_ids = train_val_split(ids, val_fraction=0.1)
    trainer = Trainer(model, train_ids, val_ids, train, args.run)
    val = trainer.evaluate(progress=not args.no_progress)
    print(f"validation loss {val:.4f} nats/token, perplexity {perplexity(val):.4g} "
          f"({args.batches} batches of {train.batch_size}×{model.block_size} tokens)")


