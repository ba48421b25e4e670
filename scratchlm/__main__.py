"""The command line: ``python -m scratchlm {train,sample,eval,pretrain,finetune,prompt}``.

    python -m scratchlm train                      # character-level Shakespeare GPT on the CPU
    python -m scratchlm sample --run runs/shakespeare-char --prompt "ROMEO:" --top-k 10
    python -m scratchlm eval --run runs/shakespeare-char
    python -m scratchlm pretrain --preset bert-zh-small        # then finetune / prompt from it
    python -m scratchlm finetune --from runs/bert-zh-small --task sentiment-zh --method lora
    python -m scratchlm prompt --from runs/bert-zh-small --task sentiment-zh --shots 4

This file parses the arguments and reports errors; each command is a function of the module
that does the work (:mod:`scratchlm.language_model`, :mod:`scratchlm.pretrain`,
:mod:`scratchlm.finetune`).
"""

import argparse
import os
import sys
import traceback

from scratchlm import checks, fast, finetune, language_model, pretrain
from scratchlm import distributed as dist
from scratchlm.errors import ScratchlmError
from scratchlm.language_model import DEFAULT_PRESET, DEFAULT_SEED, TOKENIZER_KINDS
from scratchlm.models import PRESETS


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m scratchlm",
        description="Train, sample from and evaluate GPT language models built from scratch.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also accepted after the "
                             "command)")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a GPT on a corpus (default: character-level Shakespeare on CPU)",
        description="Train a GPT. With no flags: the shakespeare-char preset on Shakespeare's "
                    "plays, 1,500 steps (the README gives its measured time); writes "
                    "runs/<name>/ with checkpoint.npz, loss.png and config.json, then prints a "
                    "sample.")
    train.add_argument("--preset", choices=sorted(PRESETS),
                       help="model size and its training settings (default: "
                            f"{DEFAULT_PRESET}; a resumed run keeps its own)")
    train.add_argument("--corpus", choices=["shakespeare", "chinese", "chinese_reviews", "hsk"],
                       help="training text, from an installed package (default: shakespeare; "
                            "a resumed run keeps its own)")
    train.add_argument("--tokenizer", choices=TOKENIZER_KINDS,
                       help="char: one token per character; bpe: byte-level BPE trained on the "
                            "corpus; gpt2: GPT-2's own (default: char; a resumed run keeps "
                            "its own)")
    train.add_argument("--vocab-size", type=checks.cli_int(1, 2**20),
                       help="BPE vocabulary size (with --tokenizer bpe; default 1000)")
    train.add_argument("--run-name", help="folder name under --out-dir (default: the preset); "
                                          "a name, not a path")
    train.add_argument("--out-dir", default="runs", help="where runs go (default: %(default)s)")
    train.add_argument("--data-dir", help="cache of tokenized corpora (default: "
                                          "$SCRATCHLM_CACHE, else ~/.cache/scratchlm)")
    train.add_argument("--max-steps", type=checks.positive_int, help="optimisation steps")
    train.add_argument("--batch-size", type=checks.positive_int, help="sequences per micro-batch")
    train.add_argument("--grad-accum-steps", type=checks.positive_int,
                       help="micro-batches whose gradients are averaged per step")
    train.add_argument("--block-size", type=checks.cli_int(1, 2**16),
                       help="context length in tokens")
    train.add_argument("--lr", type=checks.cli_real(0, low_open=True), dest="learning_rate",
                       help="peak learning rate (with --resume: applied from the next step)")
    train.add_argument("--warmup-steps", type=checks.count, help="linear warmup steps")
    train.add_argument("--weight-decay", type=checks.cli_real(0, 1e6),
                       help="AdamW decoupled weight decay")
    train.add_argument("--grad-clip", type=checks.cli_real(0, 1e6),
                       help="clip the gradient norm (0: off)")
    train.add_argument("--dropout", type=checks.cli_real(0, 1, high_open=True),
                       help="dropout probability in the model")
    train.add_argument("--eval-interval", type=checks.positive_int,
                       help="steps between validation losses")
    train.add_argument("--eval-batches", type=checks.positive_int,
                       help="batches averaged for each validation loss (default 20)")
    train.add_argument("--checkpoint-interval", type=checks.positive_int,
                       help="steps between checkpoints (one is always written at the end)")
    train.add_argument("--seed", type=checks.seed, help=f"random seed (default: {DEFAULT_SEED})")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out-dir/--run-name from its checkpoint; "
                            "training flags given with it are applied from the next step, "
                            "and printed")
    train.add_argument("--overwrite", action="store_true",
                       help="start a new run in place of an existing one (its checkpoints, "
                            "plot and configuration are deleted)")
    train.add_argument("--skip-nonfinite", action=argparse.BooleanOptionalAction,
                       help="skip (and count) steps whose loss or gradient is NaN or "
                            "infinite, instead of stopping")
    train.add_argument("--force", action="store_true",
                       help="start even when the memory estimate exceeds the memory available")
    train.add_argument("--device", choices=["cpu", "cuda"],
                       help="cpu (NumPy) or cuda (CuPy, needs the gpu extra); default cpu, or "
                            "the resumed run's")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--distributed", action="store_true",
                       help="train data-parallel on the ranks mpiexec started (mpiexec -n N "
                            "python -m scratchlm train --distributed); --batch-size is per rank")
    train.add_argument("--nproc", type=checks.positive_int,
                       help="start N ranks with mpiexec and train data-parallel on them")
    train.add_argument("--zero", type=int, choices=[0, 1], default=0,
                       help="1: shard AdamW's state over the ranks (ZeRO stage 1)")
    train.add_argument("--reverse", action="store_true",
                       help="a reverse language model: train on the corpus backwards, so "
                            "the model predicts each previous token (sample reverses back)")

    sample = commands.add_parser("sample", help="generate text from a trained run",
                                 description="Generate text from a run's checkpoint.")
    sample.add_argument("--run", required=True, help="the run folder (holds checkpoint.npz)")
    sample.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    sample.add_argument("--max-new-tokens", type=checks.positive_int, default=500,
                        help="tokens to generate (default: %(default)s)")
    sample.add_argument("--num-samples", type=checks.positive_int, default=1,
                        help="independent samples (default: %(default)s)")
    sample.add_argument("--temperature", type=checks.cli_real(0, 100, low_open=True), default=0.8,
                        help="<1 sharper, >1 more random (default: %(default)s)")
    sample.add_argument("--top-k", type=checks.positive_int, help="sample among the k likeliest")
    sample.add_argument("--top-p", type=checks.cli_real(0, 1, low_open=True),
                        help="sample within probability mass p")
    sample.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    sample.add_argument("--seed", type=checks.seed, default=0,
                        help="random seed (default: %(default)s)")
    sample.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="cpu (NumPy) or cuda (CuPy)")

    evaluate = commands.add_parser("eval", help="validation loss and perplexity of a run",
                                   description="Mean validation cross-entropy and perplexity.")
    evaluate.add_argument("--run", required=True, help="the run folder (holds checkpoint.npz)")
    evaluate.add_argument("--batches", type=checks.positive_int, default=50,
                          help="validation batches to average (default: %(default)s)")
    evaluate.add_argument("--data-dir", help="tokenized corpus cache (default: $SCRATCHLM_CACHE, "
                                             "else ~/.cache/scratchlm)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    evaluate.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                          help="cpu (NumPy) or cuda (CuPy)")
    pretrain.add_command(commands)
    finetune.add_commands(commands)
    return parser


def restart_with_openblas_wait():
    """Start this command again, once, with ``OPENBLAS_THREAD_TIMEOUT`` set.

    :func:`scratchlm.fast.tune_process` puts the variable in the environment, but OpenBLAS
    read it when NumPy loaded, and NumPy loaded with ``import scratchlm``, before this
    module ran; a new process started with it does see it (a value the user set is kept,
    and no restart happens)."""
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _raised_by_scratchlm(error):
    """Whether the innermost frame of ``error``'s traceback is scratchlm's own code: a
    message written for the user, not a failure inside NumPy or a bug's stray exception."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep)


def error_exit_status(error):
    """The exit status for an exception that should reach the user as one line, or None
    for one that is a bug (its traceback is shown): every ScratchlmError (its
    ``exit_status``); ValueError, TypeError, RuntimeError, LookupError, ImportError and
    OSError that scratchlm raised with its own message (2); any other OSError, such as a
    full disk (1)."""
    if isinstance(error, ScratchlmError):
        return error.exit_status
    own = _raised_by_scratchlm(error)
    if own and isinstance(error, (ValueError, TypeError, RuntimeError, LookupError,
                                  ImportError, OSError)):
        return 2
    if isinstance(error, OSError):
        return 1
    return None


def one_line(error):
    """``error``'s message as one line, starting ``error:``."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    message = message or type(error).__name__
    return message if message.startswith("error:") else f"error: {message}"


def fail(message, status):
    """Print ``message`` on stderr and exit with ``status`` (a SystemExit whose text is the
    message, for callers of :func:`main` that catch it)."""
    print(message, file=sys.stderr)
    sys.stderr.flush()
    stop = SystemExit(message)
    stop.code = status
    raise stop


def _take_flag(argv, flag):
    """Remove ``flag`` from ``argv`` (before a ``--``) wherever it is; whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = flag in argv[:end]
    argv[:end] = [a for a in argv[:end] if a != flag]
    return found


def main(argv=None):
    """Run one command. An error scratchlm reports on purpose (see
    :func:`error_exit_status`) becomes one line on stderr and exit status 2 (1 for a run
    that failed, 130/143 after SIGINT/SIGTERM); ``--debug`` shows the traceback instead."""
    tuned = fast.tune_process()
    if argv is None and not tuned["openblas_wait"]:
        restart_with_openblas_wait()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _take_flag(argv, "--debug")
    args = build_parser().parse_args(argv)
    args.debug = debug
    if args.command == "train" and args.nproc is not None:
        ranks = _without_option(argv, "--nproc") + (["--debug"] if debug else [])
        try:
            raise SystemExit(dist.launch(args.nproc, ranks))
        except (ImportError, FileNotFoundError) as error:
            fail(one_line(error), 2)
    commands = {"train": language_model.command_train, "sample": language_model.command_sample,
                "eval": language_model.command_eval,
                "pretrain": pretrain.command_pretrain, "finetune": finetune.command_finetune,
                "prompt": finetune.command_prompt}
    try:
        commands[args.command](args)
    except KeyboardInterrupt:
        if debug:
            raise
        fail("\ninterrupted (SIGINT)", 130)
    except Exception as error:
        status = error_exit_status(error)
        if dist.world_size() > 1:  # stop every rank (MPI_Abort): none may wait for this one
            shown = traceback.format_exc() if status is None or debug else one_line(error)
            dist.abort(shown.rstrip(), status or 1)
        if status is None or debug:
            raise
        fail(one_line(error), status)


def _without_option(argv, option):
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument == option:
            skip = True
        elif not argument.startswith(option + "="):
            kept.append(argument)
    return kept


if __name__ == "__main__":
    sys.exit(main())
