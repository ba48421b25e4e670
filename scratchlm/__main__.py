"""The command line: ``python -m scratchlm {train,sample,eval,pretrain,finetune,prompt}``.

    python -m scratchlm train                      # character-level Shakespeare GPT on the CPU
    python -m scratchlm sample --run runs/shakespeare-char --prompt "ROMEO:" --top-k 10
    python -m scratchlm eval --run runs/shakespeare-char
    python -m scratchlm pretrain --preset bert-zh-small        # then finetune / prompt from it
    python -m scratchlm finetune --from runs/bert-zh-small --task sentiment-zh --method lora
    python -m scratchlm prompt --from runs/bert-zh-small --task sentiment-zh --shots 4
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import numpy as np

from scratchlm import backend, checkpoint, fast, finetune, pretrain
from scratchlm.models import GPT, PRESETS, GPTConfig
from scratchlm.text import BPETokenizer, CharTokenizer, prepare_corpus, train_val_split
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
TOKENIZER_CLASSES = {"CharTokenizer": CharTokenizer, "BPETokenizer": BPETokenizer}


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m scratchlm",
        description="Train, sample from and evaluate GPT language models built from scratch.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a GPT on a corpus (default: character-level Shakespeare on CPU)",
        description="Train a GPT. With no flags: the shakespeare-char preset on Shakespeare's "
                    "plays, a few minutes on a laptop CPU; writes runs/<name>/ with "
                    "checkpoint.npz, loss.png and config.json, then prints a sample.")
    train.add_argument("--preset", default="shakespeare-char", choices=sorted(PRESETS),
                       help="model size and its training settings (default: %(default)s)")
    train.add_argument("--corpus", default="shakespeare",
                       choices=["shakespeare", "chinese", "chinese_reviews", "hsk"],
                       help="training text, from an installed package (default: %(default)s)")
    train.add_argument("--tokenizer", default="char", choices=TOKENIZER_KINDS,
                       help="char: one token per character; bpe: byte-level BPE trained on the "
                            "corpus; gpt2: GPT-2's own (default: %(default)s)")
    train.add_argument("--vocab-size", type=_positive_int,
                       help="BPE vocabulary size (with --tokenizer bpe; default 1000)")
    train.add_argument("--run-name", help="folder name under --out-dir (default: the preset)")
    train.add_argument("--out-dir", default="runs", help="where runs go (default: %(default)s)")
    train.add_argument("--data-dir", default="data",
                       help="cache of tokenized corpora (default: %(default)s)")
    train.add_argument("--max-steps", type=_positive_int, help="optimisation steps")
    train.add_argument("--batch-size", type=_positive_int, help="sequences per micro-batch")
    train.add_argument("--grad-accum-steps", type=_positive_int,
                       help="micro-batches whose gradients are averaged per step")
    train.add_argument("--block-size", type=_positive_int, help="context length in tokens")
    train.add_argument("--lr", type=float, dest="learning_rate", help="peak learning rate")
    train.add_argument("--warmup-steps", type=int, help="linear warmup steps")
    train.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay")
    train.add_argument("--grad-clip", type=float, help="clip the gradient norm (0: off)")
    train.add_argument("--dropout", type=float, help="dropout probability in the model")
    train.add_argument("--eval-interval", type=_positive_int,
                       help="steps between validation losses")
    train.add_argument("--checkpoint-interval", type=_positive_int,
                       help="steps between checkpoints (one is always written at the end)")
    train.add_argument("--seed", type=int, default=1337, help="random seed (default: %(default)s)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir/--run-name from its checkpoint")
    train.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                       help="cpu (NumPy) or cuda (CuPy, needs the gpu extra)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--reverse", action="store_true",
                       help="a reverse language model: train on the corpus backwards, so "
                            "the model predicts each previous token (sample reverses back)")

    sample = commands.add_parser("sample", help="generate text from a trained run",
                                 description="Generate text from a run's checkpoint.")
    sample.add_argument("--run", required=True, help="the run folder (holds checkpoint.npz)")
    sample.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    sample.add_argument("--max-new-tokens", type=_positive_int, default=500,
                        help="tokens to generate (default: %(default)s)")
    sample.add_argument("--num-samples", type=_positive_int, default=1,
                        help="independent samples (default: %(default)s)")
    sample.add_argument("--temperature", type=float, default=0.8,
                        help="<1 sharper, >1 more random (default: %(default)s)")
    sample.add_argument("--top-k", type=_positive_int, help="sample among the k likeliest")
    sample.add_argument("--top-p", type=float, help="sample within probability mass p")
    sample.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    sample.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cpu (NumPy) or cuda (CuPy)")

    evaluate = commands.add_parser("eval", help="validation loss and perplexity of a run",
                                   description="Mean validation cross-entropy and perplexity.")
    evaluate.add_argument("--run", required=True, help="the run folder (holds checkpoint.npz)")
    evaluate.add_argument("--batches", type=_positive_int, default=50,
                          help="validation batches to average (default: %(default)s)")
    evaluate.add_argument("--data-dir", default="data", help="tokenized corpus cache")
    evaluate.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                          help="cpu (NumPy) or cuda (CuPy)")
    pretrain.add_command(commands, _positive_int)
    finetune.add_commands(commands, _positive_int)
    return parser


# ------------------------------------------------------------------------------- train
def _train_config(args):
    values = dict(TRAIN_PRESETS.get(args.preset, {}), seed=args.seed, device=args.device)
    for name in ("max_steps", "batch_size", "grad_accum_steps", "learning_rate",
                 "warmup_steps", "weight_decay", "grad_clip", "eval_interval",
                 "checkpoint_interval"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    config = TrainConfig(**values)
    config.warmup_steps = min(config.warmup_steps, config.max_steps)
    return config


def _tokenizer_text(tokenizer, run_dir):
    """Save the tokenizer as ``run_dir/tokenizer.json`` and return that JSON text (which the
    checkpoint stores too, so a checkpoint alone is enough to sample)."""
    path = os.path.join(run_dir, "tokenizer.json")
    tokenizer.save(path)
    with open(path, encoding="utf-8") as f:
        return f.read()


def _tokenizer_from_text(text):
    """The tokenizer whose JSON file content is ``text``."""
    kind = json.loads(text)["type"]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "tokenizer.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return TOKENIZER_CLASSES[kind].load(path)


def command_train(args):
    backend.check_device(args.device)
    corpus = prepare_corpus(args.corpus, args.tokenizer, data_dir=args.data_dir,
                            vocab_size=args.vocab_size)
    ids = corpus.ids[::-1].copy() if args.reverse else corpus.ids  # see reverse_text
    train_ids, val_ids = train_val_split(ids, val_fraction=0.1)
    overrides = {"vocab_size": corpus.tokenizer.vocab_size}
    if args.block_size is not None:
        overrides["block_size"] = args.block_size
    if args.dropout is not None:
        overrides["dropout"] = args.dropout
    model_config = GPTConfig.from_preset(args.preset, **overrides)
    train_config = _train_config(args)
    run_dir = os.path.join(args.out_dir, args.run_name or args.preset)
    backend.manual_seed(args.seed)
    model = GPT(model_config)
    extras = {"tokenizer": _tokenizer_text(corpus.tokenizer, run_dir), "corpus": args.corpus,
              "tokenizer_kind": args.tokenizer, "reverse": bool(args.reverse)}
    trainer = Trainer(model, train_ids, val_ids, train_config, run_dir, extras=extras)
    if args.resume:
        trainer.load_state(_load_checkpoint(run_dir))
    print(f"GPT '{args.preset}': {model.num_parameters():,} parameters, "
          f"{model_config.n_layer} layers × {model_config.n_head} heads × {model_config.n_embd}"
          f", context {model_config.block_size}; {len(train_ids):,} training tokens of "
          f"{args.corpus} ({args.tokenizer}, vocabulary {model_config.vocab_size}); "
          f"{train_config.max_steps} steps on {args.device}")
    started = time.perf_counter()
    trainer.train(progress=not args.no_progress)
    minutes = (time.perf_counter() - started) / 60
    val = trainer.history["val_loss"][-1] if trainer.history["val_loss"] else trainer.evaluate()
    print(f"done in {minutes:.1f} min: validation loss {val:.4f} nats/token "
          f"(perplexity {math.exp(val):.2f}); run saved in {run_dir}/ "
          "(checkpoint.npz, loss.png, config.json)")
    prompt = "\n" if args.tokenizer == "char" else " "
    print("\n--- sample ---")
    print(_sample_text(model, corpus.tokenizer, prompt, 400, temperature=0.8, top_k=None,
                       top_p=None, greedy=False, reverse=args.reverse))


# ------------------------------------------------------------------------------ sample
def _load_checkpoint(run_dir):
    path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.exists(path):
        raise SystemExit(f"error: no checkpoint at {path}; train one first with "
                         f"`python -m scratchlm train`")
    try:
        return checkpoint.load(path)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


def _load_run(run_dir, device):
    state = _load_checkpoint(run_dir)
    model = GPT(GPTConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.to(device)
    return model, _tokenizer_from_text(state["extras"]["tokenizer"]), state


def reverse_text(tokenizer, text):
    """A reverse language model reads and writes right to left: its prompt is the *end* of
    a text, fed backwards, and what it generates comes before it (read backwards again)."""
    return tokenizer.decode(tokenizer.encode(text)[::-1])


def _sample_text(model, tokenizer, prompt, max_new_tokens, temperature, top_k, top_p, greedy,
                 reverse=False):
    if not prompt:
        raise SystemExit("error: the prompt is empty; give at least one character")
    try:
        ids = np.array([tokenizer.encode(prompt)[::-1] if reverse else
                        tokenizer.encode(prompt)], dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise SystemExit(f"error: cannot encode the prompt: {error}") from None
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
    train = TrainConfig.from_dict(state["train_config"])
    train.device, train.eval_batches = args.device, args.batches
    kind = state["extras"]["tokenizer_kind"]
    vocab = tokenizer.vocab_size if kind == "bpe" else None
    corpus = prepare_corpus(state["extras"]["corpus"], kind, data_dir=args.data_dir,
                            vocab_size=vocab)
    ids = corpus.ids[::-1].copy() if state["extras"].get("reverse") else corpus.ids
    train_ids, val_ids = train_val_split(ids, val_fraction=0.1)
    trainer = Trainer(model, train_ids, val_ids, train, args.run)
    val = trainer.evaluate()
    print(f"validation loss {val:.4f} nats/token, perplexity {math.exp(val):.2f} "
          f"({args.batches} batches of {train.batch_size}×{model.block_size} tokens)")


def restart_with_openblas_wait():
    """Start this command again, once, with ``OPENBLAS_THREAD_TIMEOUT`` set.

    :func:`scratchlm.fast.tune_process` puts the variable in the environment, but OpenBLAS
    read it when NumPy loaded, and NumPy loaded with ``import scratchlm``, before this
    module ran; a new process started with it does see it (a value the user set is kept,
    and no restart happens)."""
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def main(argv=None):
    tuned = fast.tune_process()
    if argv is None and not tuned["openblas_wait"]:
        restart_with_openblas_wait()
    args = build_parser().parse_args(argv)
    commands = {"train": command_train, "sample": command_sample, "eval": command_eval,
                "pretrain": pretrain.command_pretrain, "finetune": finetune.command_finetune,
                "prompt": finetune.command_prompt}
    try:
        commands[args.command](args)
    except RuntimeError as error:
        if "no GPU was found" in str(error):
            raise SystemExit(f"error: {error}") from None
        raise


if __name__ == "__main__":
    sys.exit(main())
