"""Every number the command line takes is checked for range and finiteness, and every
argument that cannot work is refused: at least 150 bad arguments across every verb (train,
sample, eval, pretrain, finetune, prompt), each run in this process through ``main(argv)``.
Each must end with exit status 2 and an ``error:`` line naming what was wrong — no traceback
and no silent acceptance (nothing trains, nothing is written). ``--overwrite`` and
``pretrain --force`` with a bad later flag lose no run."""

import os

import numpy as np
import pytest
from conftest import lock_held_elsewhere

import scratchlm as sl
from scratchlm import runs
from scratchlm.__main__ import main

NOT_A_NUMBER = ["nan", "inf", "-inf", "1e400", "abc", ""]
HUGE = "4611686018427387904"


def cases():
    """(verb, argv) pairs; {out} stands for a fresh folder."""
    found = []

    def add(verb, flag, values, *before):
        for value in values:
            found.append((f"{verb} {flag} {value!r}", [verb, *before, flag, value]))

    positive = ["0", "-1", "1.5", HUGE, *NOT_A_NUMBER]
    for flag in ("--max-steps", "--batch-size", "--grad-accum-steps", "--eval-interval",
                 "--eval-batches", "--checkpoint-interval", "--block-size", "--vocab-size",
                 "--nproc"):
        add("train", flag, positive[:5])
    add("train", "--warmup-steps", ["-1", "2.5", HUGE, "nan"])
    add("train", "--lr", ["0", "-1e-3", *NOT_A_NUMBER])
    for flag in ("--weight-decay", "--grad-clip"):
        add("train", flag, ["-0.1", "nan", "inf", "x"])
    add("train", "--dropout", ["1", "1.5", "-0.1", "nan"])
    add("train", "--seed", ["-1", str(2**32), "1.5", HUGE, "nan"])
    add("train", "--zero", ["2", "-1"])
    for flag, value in (("--device", "tpu"), ("--preset", "huge"), ("--tokenizer", "words"),
                        ("--corpus", "wikipedia")):
        add("train", flag, [value])
    found.append(("train --tokenizer bpe --vocab-size huge",
                  ["train", "--tokenizer", "bpe", "--vocab-size", HUGE]))

    run = ["--run", "{out}"]
    for flag in ("--max-new-tokens", "--num-samples", "--top-k"):
        add("sample", flag, ["0", "-1", "2.5", HUGE], *run)
    add("sample", "--temperature", ["0", "-1", "nan", "inf", "x"], *run)
    add("sample", "--top-p", ["0", "1.5", "-0.5", "nan"], *run)
    add("sample", "--seed", ["-1", str(2**32), "nan", HUGE], *run)
    add("sample", "--device", ["tpu"], *run)
    add("eval", "--batches", ["0", "-3", "1.5", HUGE, "nan"], *run)
    add("eval", "--device", ["gpu"], *run)

    base = ["--from", "{out}"]
    for flag in ("--max-steps", "--batch-size", "--top-k", "--lora-r", "--prompt-tokens",
                 "--max-train", "--max-test"):
        add("finetune", flag, ["0", "-1", "3.5", HUGE], *base)
    add("finetune", "--epochs", ["0", "-1", "nan", "inf"], *base)
    add("finetune", "--lr", ["0", "-1", "nan"], *base)
    add("finetune", "--max-length", ["0", "-5", str(2**21), HUGE], *base)
    add("finetune", "--lora-alpha", ["0", "nan", "inf"], *base)
    add("finetune", "--lora-dropout", ["1", "-0.1", "nan"], *base)
    add("finetune", "--seed", ["-1", str(2**32), "nan"], *base)
    for flag, value in (("--method", "adapters"), ("--task", "spam"), ("--device", "tpu"),
                        ("--prompt-init", "zeros")):
        add("finetune", flag, [value], *base)
    add("prompt", "--shots", ["-1", "10001", "2.5", "nan"], *base)
    for flag in ("--shots-per-prompt", "--max-test"):
        add("prompt", flag, ["0", "-1", HUGE], *base)
    add("prompt", "--seed", ["-1", "nan"], *base)
    add("prompt", "--task", ["spam"], *base)

    add("pretrain", "--max-steps", ["0", "-1", "1.5", HUGE, "nan"])
    add("pretrain", "--seed", ["-1", str(2**32), "nan"])
    add("pretrain", "--preset", ["bert-zh-huge"])
    for name in ("../../x", "../x", "a/b", "..", ".", "/tmp/x", ""):
        found.append((f"pretrain --run-name {name!r}", ["pretrain", "--run-name", name]))
        found.append((f"train --run-name {name!r}", ["train", "--run-name", name]))
    found.append(("train --resume --overwrite", ["train", "--resume", "--overwrite"]))
    found.append(("train --zero 1 alone", ["train", "--zero", "1"]))
    found.append(("train --device cuda", ["train", "--device", "cuda"]))
    found.append(("sample --run missing", ["sample", "--run", "{out}/missing"]))
    found.append(("eval --run missing", ["eval", "--run", "{out}/missing"]))
    found.append(("finetune --from missing", ["finetune", "--from", "{out}/missing"]))
    found.append(("prompt --template alone", ["prompt", "--from", "{out}", "--template",
                                              "[X]很[MASK]"]))
    found.append(("no verb", []))
    found.append(("unknown verb", ["translate-all"]))
    return found


CASES = cases()


def test_there_are_at_least_150_cases_across_every_verb():
    verbs = {argv[0] for _, argv in CASES if argv}
    assert len(CASES) >= 150
    assert {"train", "sample", "eval", "pretrain", "finetune", "prompt"} <= verbs


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written by mistake would land here
    monkeypatch.setenv("SCRATCHLM_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.skipif(sl.backend.gpu_available(), reason="--device cuda works here")
@pytest.mark.parametrize("name, argv", CASES, ids=[name for name, _ in CASES])
def test_a_bad_argument_is_refused_in_one_error_line(name, argv, out, capsys):
    argv = [a.replace("{out}", str(out)) for a in argv]
    if argv and argv[0] in ("train", "pretrain"):
        argv += ["--out-dir", str(out / "runs")]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2, name  # refused: not run, and not a failed run
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].split(": ", 1)[-1].startswith("error:") or \
        err.strip().splitlines()[-1].startswith("error:"), err
    assert sorted(os.listdir(out)) == [], f"{name} wrote {os.listdir(out)}"


# ------------------------------------------------------------------ no flag loses a run
def make_run(folder):
    """A run folder with a real checkpoint and the files train writes."""
    os.makedirs(folder)
    sl.save({"model": {"w": np.arange(3.0)}, "step": 7}, os.path.join(folder, runs.CHECKPOINT))
    for name in ("config.json", "tokenizer.json"):
        with open(os.path.join(folder, name), "w") as f:
            f.write("{}")
    return {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}


def same_run(folder, files):
    return {name: open(os.path.join(folder, name), "rb").read()
            for name in os.listdir(folder) if name != runs.LOCK_FILE} == files


OVERWRITE_VARIANTS = {
    "no GPU": ["--device", "cuda"],
    "a batch that cannot fit": ["--batch-size", "100000000"],
    "a negative seed": ["--seed", "-1"],
    "a NaN learning rate": ["--lr", "nan"],
    "an unknown corpus": ["--corpus", "wikipedia"],
    "a huge BPE vocabulary": ["--tokenizer", "bpe", "--vocab-size", HUGE],
    "a block of 0": ["--block-size", "0"],
    "--resume too": ["--resume"],
    "a data folder that is a file": ["--data-dir", "{out}/a-file"],
    "--zero without ranks": ["--zero", "1"],
}


@pytest.mark.skipif(sl.backend.gpu_available(), reason="--device cuda works here")
@pytest.mark.parametrize("variant", OVERWRITE_VARIANTS)
def test_overwrite_with_a_bad_later_flag_loses_no_run(variant, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCRATCHLM_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a-file").write_text("not a folder")
    run_dir = tmp_path / "runs" / "mine"
    files = make_run(run_dir)
    flags = [f.replace("{out}", str(tmp_path)) for f in OVERWRITE_VARIANTS[variant]]
    with pytest.raises(SystemExit) as stop:
        main(["train", "--preset", "tiny", "--out-dir", str(tmp_path / "runs"), "--run-name",
              "mine", "--overwrite", "--no-progress", *flags])
    assert stop.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert same_run(run_dir, files)
    assert sorted(os.listdir(tmp_path / "runs")) == ["mine"]  # nothing set aside remains


def test_pretrain_force_with_a_bad_file_loses_no_run(tmp_path, capsys):
    run_dir = tmp_path / "runs" / "gpt2"
    files = make_run(run_dir)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(SystemExit) as stop:
        main(["pretrain", "--hf-gpt2", str(tmp_path / "model.safetensors"), "--force",
              "--out-dir", str(tmp_path / "runs")])
    assert stop.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert same_run(run_dir, files)
    assert sorted(os.listdir(tmp_path / "runs")) == ["gpt2"]


def test_pretrain_force_into_a_run_in_use_is_refused(tmp_path, capsys):
    """Another process holds the lock: ``pretrain --force`` must not replace the run."""
    run_dir = tmp_path / "runs" / "gpt2"
    files = make_run(run_dir)
    with lock_held_elsewhere(run_dir / runs.LOCK_FILE):
        (tmp_path / "model.safetensors").write_bytes(b"not read")
        with pytest.raises(SystemExit) as stop:
            main(["pretrain", "--preset", "gpt-zh-tiny", "--run-name", "gpt2", "--force",
                  "--out-dir", str(tmp_path / "runs"), "--no-progress"])
        assert stop.value.code == 2
        assert "another process is writing into" in capsys.readouterr().err
    assert same_run(run_dir, files)
