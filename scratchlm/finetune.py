"""Fine-tuning a pre-trained run on a labelled task, and prompting it: the ``finetune`` and
``prompt`` commands.

    python -m scratchlm finetune --from runs/bert-zh-small --task sentiment-zh --method lora
    python -m scratchlm prompt   --from runs/bert-zh-small --task sentiment-zh --shots 4

Methods (what trains; the rest is frozen, see :mod:`scratchlm.peft`):

    scratch        everything, from a random initialization (the baseline pre-training must beat)
    full           everything, from the pre-trained weights
    top-k          the top k blocks (``--top-k``) and the head
    head           the classification head only
    lora           LoRA adapters (``--lora-r``, ``--lora-alpha``) on the attention's fused
                   q/k/v projection ``c_attn``, and the head
    prompt-tuning  ``--prompt-tokens`` virtual tokens, and the head

The model is :class:`BertForSequenceClassification` for a BERT run and
:class:`GPTForSequenceClassification` for a GPT run. Training draws random batches of the
task's training split (AdamW, warmup + cosine, :class:`scratchlm.train.Trainer`); the score
is accuracy and macro-F1 on the test split, which ``load_sentiment``'s seed fixes. Each run
writes ``results.json`` (method, trainable / total parameters, training time, accuracy,
F1) and its trained weights: for LoRA the adapter only, naming its base run.
"""

import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from scratchlm import backend, checkpoint, checks, runs
from scratchlm.autograd.grad_mode import no_grad
from scratchlm.checkpoint_fields import check_run_state, config_from_state, stored_tokenizer
from scratchlm.errors import ConfigError, RunExistsError
from scratchlm.metrics import classification_scores
from scratchlm.models.bert import BertConfig, BertForPreTraining
from scratchlm.models.classification import (
    BertForSequenceClassification,
    GPTForSequenceClassification,
)
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.peft import (
    PromptTuning,
    apply_lora,
    count_parameters,
    describe_parameters,
    freeze,
    save_lora,
)
from scratchlm.text.bpe_tokenizer import BPETokenizer
from scratchlm.text.sentiment import (
    SENTIMENT_TASKS,
    balanced_sample,
    encode_for_classifier,
    load_sentiment,
)
from scratchlm.text.special_chars import SpecialCharTokenizer
from scratchlm.train import TrainConfig, Trainer

METHODS = ("scratch", "full", "top-k", "head", "lora", "prompt-tuning")
#: Peak learning rates that suit each method (fewer trainable numbers take larger steps).
DEFAULT_LR = {"scratch": 1e-3, "full": 5e-4, "top-k": 1e-3, "head": 3e-3, "lora": 3e-3,
              "prompt-tuning": 3e-2}


@dataclass
class FinetuneConfig:
    method: str = "full"
    task: str = "sentiment-zh"
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 32
    learning_rate: float | None = None  # None: DEFAULT_LR[method]
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    max_length: int | None = None  # None: the model's context
    top_k: int = 2
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple = ("c_attn",)
    prompt_tokens: int = 20
    prompt_init: str = "vocab"  # "random" or "vocab" (embeddings of random real tokens)
    max_train: int | None = None  # use only this many training examples
    max_test: int | None = None  # score only this many test examples
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"finetune: method must be one of {METHODS}, got {self.method!r}")
        if self.task not in SENTIMENT_TASKS:
            raise ValueError(f"finetune: task must be one of {SENTIMENT_TASKS}, "
                             f"got {self.task!r}")


# ------------------------------------------------------------------------ runs on disk
def load_run(run_dir):
    """(kind "bert"/"gpt", model config dict, model state dict, tokenizer) of a pre-trained
    run folder (``pretrain`` or ``train`` output)."""
    path = os.path.join(run_dir, "checkpoint.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"finetune: no checkpoint at {path}; pre-train first with "
                                "`python -m scratchlm pretrain --preset bert-zh-small`")
    state = check_run_state(checkpoint.load(path), path, "finetune")
    kind = state.get("extras", {}).get("model_kind", "gpt")
    config_from_state(state, path, BertConfig if kind == "bert" else GPTConfig, "finetune")
    return kind, state["model_config"], state["model"], _tokenizer(state, path)


class GPT2Tokens:
    """GPT-2's byte-level BPE with the ids a GPT classifier and in-context prompts need:
    padding is <|endoftext|> (GPT-2 has no pad token; Hugging Face pads with it too) and
    demonstrations are separated by a newline."""

    def __init__(self, bpe):
        self.bpe = bpe
        self.pad_id = bpe.vocab_size - 1  # <|endoftext|>, 50256
        self.sep_id = bpe.encode("\n")[0]
        self.cls_id = self.mask_id = None

    @property
    def vocab_size(self):
        return self.bpe.vocab_size

    def encode(self, text):
        return self.bpe.encode(text)

    def decode(self, ids):
        return self.bpe.decode(list(ids))


def _tokenizer(state, path):
    """The run's tokenizer: the character tokenizer of ``pretrain`` runs, or GPT-2's BPE of
    an imported GPT-2 (``pretrain --hf-gpt2``)."""
    tokenizer = stored_tokenizer(state, path, "finetune")
    if isinstance(tokenizer, SpecialCharTokenizer):
        return tokenizer
    if isinstance(tokenizer, BPETokenizer) and state["extras"].get("model_kind") == "gpt":
        return GPT2Tokens(tokenizer)
    raise ValueError(f"finetune: the tokenizer of {path} has no padding and special tokens "
                     "to classify with; start from a `python -m scratchlm pretrain` run (or "
                     "a GPT-2 imported with `pretrain --hf-gpt2`)")


def context_length(kind, config):
    return config["max_position"] if kind == "bert" else config["block_size"]


def build_classifier(kind, model_config, state, cfg, tokenizer):
    """The classifier for ``cfg.method``: pre-trained body (random for "scratch"), a new
    head, frozen as the method says. Returns the module to train (a PromptTuning wrapper
    for prompt tuning)."""
    backend.manual_seed(cfg.seed)
    if kind == "bert":
        config = BertConfig(**model_config)
        model = BertForSequenceClassification(config, num_labels=2)
    else:
        config = GPTConfig(**model_config)
        model = GPTForSequenceClassification(config, num_labels=2,
                                             pad_token_id=tokenizer.pad_id)
    if cfg.method != "scratch":
        model.load_pretrained_body(state)
    head = ["classifier"] if kind == "bert" else ["score"]
    if cfg.method == "top-k":
        freeze(model, train_top_k=cfg.top_k, train=head)
    elif cfg.method == "head":
        freeze(model, train_top_k=0, train=head)
    elif cfg.method == "lora":
        apply_lora(model, list(cfg.lora_targets), r=cfg.lora_r, alpha=cfg.lora_alpha,
                   dropout=cfg.lora_dropout, modules_to_save=head)
    elif cfg.method == "prompt-tuning":
        model = PromptTuning(model, cfg.prompt_tokens, init=cfg.prompt_init, train=head)
    return model


def _batches(kind, tokenizer, data, max_length):
    ids, mask = encode_for_classifier(tokenizer, data.texts, max_length, kind)
    return ids, mask, data.labels


def _draw(ids, mask, labels, device):
    def draw(rng, batch_size):
        rows = rng.choice(len(labels), size=batch_size, replace=len(labels) < batch_size)
        width = int(mask[rows].sum(axis=1).max())  # trim the padding no row needs
        return (backend.to_device(ids[rows, :width], device),
                backend.to_device(mask[rows, :width], device),
                backend.to_device(labels[rows], device))
    return draw


def _loss(model, batch):
    ids, mask, labels = batch
    return model(ids, attention_mask=mask, labels=labels).loss


def evaluate(model, ids, mask, labels, batch_size=128, progress=False, device="cpu"):
    """Predictions of ``model`` on encoded texts, and their accuracy and macro-F1."""
    from tqdm.auto import tqdm

    model.eval()
    predictions = []
    for start in tqdm(range(0, len(labels), batch_size), disable=not progress, desc="test",
                      unit="batch", dynamic_ncols=True):
        rows = slice(start, start + batch_size)
        width = int(mask[rows].sum(axis=1).max())
        with no_grad():
            logits = model(backend.to_device(ids[rows, :width], device),
                           attention_mask=backend.to_device(mask[rows, :width], device)).logits
        predictions.append(backend.to_numpy(logits.data).argmax(axis=1))
    predictions = np.concatenate(predictions)
    return predictions, classification_scores(labels, predictions, num_labels=2)


def finetune(run_dir, cfg, out_dir=None, progress=True):
    """Fine-tune the pre-trained run in ``run_dir`` as ``cfg`` says; returns the results
    dict (and writes it, with the trained weights, into ``out_dir`` when given)."""
    kind, model_config, state, tokenizer = load_run(run_dir)
    task = load_sentiment(cfg.task)
    train_data = task.train if cfg.max_train is None else task.train.subset(
        np.arange(min(cfg.max_train, len(task.train))))
    test_data = task.test if cfg.max_test is None else task.test.subset(
        np.arange(min(cfg.max_test, len(task.test))))
    length = context_length(kind, model_config)
    if cfg.max_length is not None:
        if cfg.max_length > length:
            raise ConfigError(f"finetune: max_length={cfg.max_length}, but the model in "
                              f"{run_dir} reads at most {length} tokens; give --max-length "
                              f"{length} or less")
        length = cfg.max_length
    if cfg.method == "prompt-tuning":
        length -= cfg.prompt_tokens  # the virtual tokens take positions too
        if length < 4:
            raise ValueError(f"finetune: {cfg.prompt_tokens} virtual tokens leave {length} "
                             f"positions of the context for the text; use fewer")
    model = build_classifier(kind, model_config, state, cfg, tokenizer)
    trainable, total = count_parameters(model)
    steps = cfg.max_steps or max(1, int(round(cfg.epochs * len(train_data) / cfg.batch_size)))
    lr = cfg.learning_rate or DEFAULT_LR[cfg.method]
    train_config = TrainConfig(max_steps=steps, batch_size=cfg.batch_size, learning_rate=lr,
                               warmup_steps=max(1, int(cfg.warmup_fraction * steps)),
                               weight_decay=cfg.weight_decay, beta2=0.999, grad_clip=1.0,
                               seed=cfg.seed, device=cfg.device, eval_interval=10**9)
    train_arrays = _batches(kind, tokenizer, train_data, length)
    test_arrays = _batches(kind, tokenizer, test_data, length)
    trainer = Trainer(model, _draw(*train_arrays, cfg.device), None, train_config,
                      loss_fn=_loss)
    if progress:
        print(f"finetune {cfg.method} of {run_dir} ({kind.upper()}) on {cfg.task}: "
              f"{describe_parameters(model)}; {steps} steps of {cfg.batch_size}, "
              f"lr {lr:g}, {len(train_data):,} training / {len(test_data):,} test texts")
    started = time.perf_counter()
    history = trainer.train(progress=progress)
    train_seconds = time.perf_counter() - started
    _, scores = evaluate(model, *test_arrays, progress=progress, device=cfg.device)
    results = {"run": os.fspath(run_dir), "model_kind": kind, "method": cfg.method,
               "task": cfg.task, "trainable_parameters": trainable, "total_parameters": total,
               "train_seconds": round(train_seconds, 1), "steps": steps,
               "final_train_loss": float(np.mean(history["train_loss"][-20:])),
               "accuracy": scores["accuracy"], "f1": scores["f1"],
               "test_size": len(test_data), "config": _jsonable(asdict(cfg))}
    if cfg.method == "lora":
        results["method"] = f"lora-r{cfg.lora_r}"
    if cfg.method == "top-k":
        results["method"] = f"top-{cfg.top_k}"
    if out_dir is not None:
        save_results(model, results, out_dir, cfg, run_dir)
    return results


def _jsonable(values):
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}


def save_results(model, results, out_dir, cfg, base):
    """``results.json`` and the trained weights (LoRA: the adapter only; prompt tuning: the
    trainable arrays only; otherwise the whole classifier), written under the folder's lock
    (:func:`scratchlm.runs.run_lock`): one process writes into it at a time."""
    with runs.run_lock(out_dir):
        _write_results(model, results, out_dir, cfg, base)


def _write_results(model, results, out_dir, cfg, base):
    weights = os.path.join(out_dir, "adapter.npz" if cfg.method in ("lora", "prompt-tuning")
                           else "model.npz")
    if cfg.method == "lora":
        save_lora(model, weights, base=base)
    elif cfg.method == "prompt-tuning":
        checkpoint.save({"adapter": {n: backend.to_numpy(p.data) for n, p in
                                     model.named_parameters() if p.requires_grad},
                         "base": os.fspath(base), "prompt_tokens": cfg.prompt_tokens}, weights)
    else:
        checkpoint.save({"model": model.state_dict(), "base": os.fspath(base),
                         "results": results}, weights)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)


# ------------------------------------------------------------------------- prompting
def prompt_run(run_dir, task_name="sentiment-zh", shots=0, seed=0, template=None,
               verbalizer=None, shots_per_prompt=None, demo_chars=None, max_test=None,
               progress=True, calibrate=False):
    """Cloze (BERT run) or in-context (GPT run) classification of the test split with
    ``shots`` demonstrations drawn from the training split (balanced, by ``seed``)."""
    from scratchlm.prompting import Prompt, label_scores

    kind, model_config, state, tokenizer = load_run(run_dir)
    if kind == "bert":
        model = BertForPreTraining(BertConfig(**model_config))
    else:
        model = GPT(GPTConfig(**model_config))
    model.load_state_dict(state)
    prompt = (Prompt(template, verbalizer) if template is not None
              else Prompt.for_task(task_name))
    task = load_sentiment(task_name)
    test = task.test if max_test is None else task.test.subset(
        np.arange(min(max_test, len(task.test))))
    demonstrations = None
    length = context_length(kind, model_config)
    if shots:
        if shots_per_prompt is None:
            shots_per_prompt = max(1, min(shots, length // 32))
        # demonstrations: training texts short enough to be shown whole, together taking
        # at most half of the context
        template = len(tokenizer.encode(prompt.template.replace("[X]", "").replace(
            "[MASK]", prompt.word_of(0)))) + 1
        room = max(1, (length // 2) // shots_per_prompt - template)
        texts = task.train.texts
        candidates = [i for i, t in enumerate(texts) if len(t) <= 8 * room]
        sizes = {i: len(tokenizer.encode(texts[i])) for i in candidates}
        fitting = [i for i in candidates if sizes[i] <= room]
        if min(np.bincount(task.train.labels[fitting], minlength=2)) < shots:
            fitting = sorted(candidates, key=sizes.get)[: 20 * shots]  # the shortest, cut
        rng = np.random.default_rng(seed)
        demonstrations = balanced_sample(task.train.subset(fitting), shots, rng)
        if demo_chars is None:
            demo_chars = 8 * room  # a character is at most a token; cut only the longest
    started = time.perf_counter()
    scores = label_scores(model, tokenizer, test.texts, prompt, kind, length,
                          demonstrations=demonstrations, shots_per_prompt=shots_per_prompt,
                          demo_chars=demo_chars, progress=progress, calibrate=calibrate)
    seconds = time.perf_counter() - started
    metrics = classification_scores(test.labels, scores.argmax(1), num_labels=2)
    method = (("cloze" if kind == "bert" else "in-context") + f" {shots}-shot"
              + (", calibrated" if calibrate else ""))
    return {"run": os.fspath(run_dir), "model_kind": kind, "method": method,
            "task": task_name, "shots": shots, "shots_per_prompt": shots_per_prompt,
            "template": prompt.template, "verbalizer": prompt.verbalizer,
            "trainable_parameters": 0, "total_parameters": model.num_parameters(),
            "train_seconds": 0.0, "score_seconds": round(seconds, 1),
            "accuracy": metrics["accuracy"], "f1": metrics["f1"],
            "predicted_positive": float(scores.argmax(1).mean()), "test_size": len(test)}


# ------------------------------------------------------------------------ command line
def add_commands(commands):
    positive = checks.positive_int
    ft = commands.add_parser(
        "finetune", help="fine-tune a pre-trained run on a labelled task",
        description="Fine-tune a pre-trained BERT or GPT run on a classification task and "
                    "report accuracy and F1 on its held-out test split.")
    ft.add_argument("--from", dest="run", required=True, help="the pre-trained run folder")
    ft.add_argument("--task", default="sentiment-zh", choices=SENTIMENT_TASKS)
    ft.add_argument("--method", default="full", choices=METHODS,
                    help="what trains (default: %(default)s)")
    ft.add_argument("--epochs", type=checks.cli_real(0, 1e6, low_open=True), default=1.0,
                    help="passes over the training split")
    ft.add_argument("--max-steps", type=positive, help="steps (overrides --epochs)")
    ft.add_argument("--batch-size", type=positive, default=32)
    ft.add_argument("--lr", type=checks.cli_real(0, low_open=True), dest="learning_rate",
                    help=f"peak learning rate (default per method: {DEFAULT_LR})")
    ft.add_argument("--max-length", type=checks.cli_int(1, 2**20),
                    help="tokens per text (default: the model's context)")
    ft.add_argument("--top-k", type=positive, default=2, help="blocks that train (top-k)")
    ft.add_argument("--lora-r", type=positive, default=8, help="LoRA rank r")
    ft.add_argument("--lora-alpha", type=checks.cli_real(0, 1e6, low_open=True), default=16.0,
                    help="LoRA α (scale α/r)")
    ft.add_argument("--lora-dropout", type=checks.cli_real(0, 1, high_open=True), default=0.0,
                    help="dropout on the LoRA path")
    ft.add_argument("--lora-targets", default="c_attn",
                    help="comma-separated Linear names to adapt (default: %(default)s)")
    ft.add_argument("--prompt-tokens", type=positive, default=20,
                    help="virtual tokens of prompt tuning")
    ft.add_argument("--prompt-init", default="vocab", choices=["vocab", "random"],
                    help="prompt tuning's start: embeddings of random real tokens, or "
                         "U(-0.5, 0.5) (default: %(default)s)")
    ft.add_argument("--max-train", type=positive, help="use only this many training texts")
    ft.add_argument("--max-test", type=positive, help="score only this many test texts")
    ft.add_argument("--seed", type=checks.seed, default=0)
    ft.add_argument("--out", help="output folder (default: <run>-<task>-<method>)")
    ft.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    ft.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ft.add_argument("--no-progress", action="store_true")

    pr = commands.add_parser(
        "prompt", help="classify with prompts, without training (cloze or in-context)",
        description="Zero- or few-shot classification: a cloze template scored by BERT's "
                    "masked-LM head, or in-context demonstrations scored by GPT.")
    pr.add_argument("--from", dest="run", required=True, help="the pre-trained run folder")
    pr.add_argument("--task", default="sentiment-zh", choices=SENTIMENT_TASKS)
    pr.add_argument("--shots", type=checks.cli_int(0, 10**4), default=0,
                    help="demonstrations (0, 4, 16, ...)")
    pr.add_argument("--shots-per-prompt", type=positive,
                    help="demonstrations that share one prompt (the rest are ensembled)")
    pr.add_argument("--template", help="e.g. '[X]总之很[MASK]。' ([X]: the text)")
    pr.add_argument("--verbalizer", help="label words, e.g. '差=0,好=1'")
    pr.add_argument("--max-test", type=positive, help="score only this many test texts")
    pr.add_argument("--calibrate", action="store_true",
                    help="contextual calibration: subtract the scores of an empty text")
    pr.add_argument("--seed", type=checks.seed, default=0, help="which demonstrations are drawn")
    pr.add_argument("--out", help="results file (default: <run>-<task>-prompt-<k>shot.json)")
    pr.add_argument("--force", action="store_true", help="overwrite an existing results file")
    pr.add_argument("--no-progress", action="store_true")


def _print_results(results):
    print(f"{results['method']}: accuracy {100 * results['accuracy']:.2f}%, "
          f"F1 {100 * results['f1']:.2f} on {results['test_size']:,} test texts; "
          f"trainable {results['trainable_parameters']:,} / {results['total_parameters']:,}; "
          f"training {results['train_seconds']:.0f} s")


def command_finetune(args):
    cfg = FinetuneConfig(method=args.method, task=args.task, epochs=args.epochs,
                         max_steps=args.max_steps, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, max_length=args.max_length,
                         top_k=args.top_k, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                         lora_dropout=args.lora_dropout,
                         lora_targets=tuple(args.lora_targets.split(",")),
                         prompt_tokens=args.prompt_tokens, prompt_init=args.prompt_init,
                         max_train=args.max_train,
                         max_test=args.max_test, seed=args.seed, device=args.device)
    suffix = {"lora": f"lora-r{args.lora_r}", "top-k": f"top{args.top_k}"}.get(args.method,
                                                                             args.method)
    out = args.out or f"{os.path.normpath(args.run)}-{args.task}-{suffix}"
    if os.path.exists(os.path.join(out, "results.json")) and not args.force:
        raise RunExistsError(f"{out}/results.json exists; pass --force to overwrite it "
                             "or --out for another folder", path=out)
    results = finetune(args.run, cfg, out_dir=out, progress=not args.no_progress)
    _print_results(results)
    print(f"results in {out}/results.json")


def _verbalizer(text):
    pairs = [item.split("=") for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise ConfigError(f"--verbalizer {text!r}: write word=label pairs, e.g. 差=0,好=1")
    return {word: int(label) for word, label in pairs}


def command_prompt(args):
    if (args.template is None) != (args.verbalizer is None):
        raise ConfigError("give --template and --verbalizer together")
    calibrated = "-calibrated" if args.calibrate else ""
    out = args.out or (f"{os.path.normpath(args.run)}-{args.task}-prompt-{args.shots}shot"
                       f"{calibrated}.json")
    if os.path.exists(out) and not args.force:
        raise RunExistsError(f"{out} exists; pass --force to overwrite it or --out", path=out)
    results = prompt_run(args.run, args.task, args.shots, args.seed, args.template,
                         _verbalizer(args.verbalizer) if args.verbalizer else None,
                         args.shots_per_prompt, max_test=args.max_test,
                         progress=not args.no_progress, calibrate=args.calibrate)
    _print_results(results)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, ensure_ascii=False)
    print(f"results in {out}")
