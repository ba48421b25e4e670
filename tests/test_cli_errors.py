"""The command line reports every error scratchlm raises on purpose as one line on stderr
with exit status 2 (1 for a run that failed), never a traceback; ``--debug`` shows the
traceback; paths that cannot work are refused with what to change."""

import os
import subprocess
import sys

import numpy as np
import pytest

import scratchlm.__main__ as cli
from scratchlm import checkpoint, language_model, optim
from scratchlm.__main__ import main
from scratchlm.models import GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def refused(capsys, argv, status=2):
    """Run ``main(argv)``; it must exit with ``status`` after one line on stderr."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == status
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    return err.strip()


def test_paths_that_cannot_work_are_refused_with_what_to_change(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    err = refused(capsys, ["train", "--out-dir", str(a_file)])
    assert f"--out-dir {a_file} is a file, not a folder; give a folder" in err
    err = refused(capsys, ["train", "--out-dir", str(a_file / "runs")])
    assert f"is inside {a_file}, which is a file" in err
    err = refused(capsys, ["train", "--data-dir", str(a_file), "--out-dir", str(tmp_path)])
    assert "--data-dir" in err and "is a file" in err
    for name in ("/tmp/elsewhere", "../outside", "a/b", "..", "."):
        err = refused(capsys, ["train", "--out-dir", str(tmp_path), "--run-name", name])
        assert f"--run-name {name!r}: give a folder name such as my-run, not a path" in err
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "taken").write_text("a file where the run folder would go")
    err = refused(capsys, ["train", "--out-dir", str(tmp_path / "runs"), "--run-name", "taken"])
    assert "the run folder" in err and "is a file" in err
    assert os.listdir(tmp_path / "runs") == ["taken"]  # nothing was created


def test_a_missing_run_for_sample_eval_and_resume(tmp_path, capsys):
    missing = tmp_path / "nothing"
    for command in ("sample", "eval"):
        err = refused(capsys, [command, "--run", str(missing)])
        assert f"no checkpoint at {missing / 'checkpoint.npz'}: there is no run folder" in err
        assert "train one first" in err
    (tmp_path / "empty").mkdir()
    err = refused(capsys, ["eval", "--run", str(tmp_path / "empty")])
    assert "the run folder has none" in err
    (tmp_path / "empty" / "model.npz").write_bytes(b"x")
    err = refused(capsys, ["sample", "--run", str(tmp_path / "empty" / "model.npz")])
    assert "is a file; --run takes the run folder" in err
    assert f"give its folder, --run {tmp_path / 'empty'}" in err
    err = refused(capsys, ["train", "--resume", "--out-dir", str(tmp_path), "--run-name", "x"])
    assert "cannot --resume" in err and "start it without --resume" in err
    err = refused(capsys, ["train", "--resume", "--overwrite", "--out-dir", str(tmp_path)])
    assert "give one" in err


def test_a_damaged_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really")
    err = refused(capsys, ["sample", "--run", str(tmp_path / "run")])
    assert "checkpoint.npz" in err


def test_bad_numbers_are_refused_by_the_parser(capsys):
    for flag, value in (("--lr", "nan"), ("--lr", "-1"), ("--warmup-steps", "-2"),
                        ("--dropout", "1"), ("--batch-size", "0"), ("--grad-clip", "inf")):
        with pytest.raises(SystemExit) as stop:
            main(["train", flag, value])
        assert stop.value.code == 2
        assert f"argument {flag}" in capsys.readouterr().err


def test_library_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    def library_value_error(args):
        optim.warmup_cosine_lr(-1, 1e-3, 10, 100, 1e-4)  # a ValueError scratchlm raises

    monkeypatch.setattr(language_model, "command_sample", library_value_error)
    err = refused(capsys, ["sample", "--run", "x"])
    assert err.startswith("error: warmup_cosine_lr: step") and "-1" in err
    with pytest.raises(ValueError, match="warmup_cosine_lr"):  # --debug: the exception itself
        main(["sample", "--run", "x", "--debug"])

    def library_config_error(args):
        GPTConfig(n_embd=30, n_head=4)

    monkeypatch.setattr(language_model, "command_sample", library_config_error)
    err = refused(capsys, ["sample", "--run", "x"])
    assert err.startswith("error: GPTConfig: ") and "n_head" in err

    def bug(args):
        return 1 / 0

    monkeypatch.setattr(language_model, "command_sample", bug)
    with pytest.raises(ZeroDivisionError):
        main(["sample", "--run", "x"])

    def foreign_value_error(args):
        raise ValueError("raised outside scratchlm")

    monkeypatch.setattr(language_model, "command_sample", foreign_value_error)
    with pytest.raises(ValueError, match="outside scratchlm"):
        main(["sample", "--run", "x"])

    def disk_full(args):
        raise OSError(28, "No space left on device", "runs/x/checkpoint.npz")

    monkeypatch.setattr(language_model, "command_sample", disk_full)
    err = refused(capsys, ["sample", "--run", "x"], status=1)
    assert "No space left on device" in err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(language_model, "command_sample", interrupted)
    with pytest.raises(SystemExit) as stop:
        main(["sample", "--run", "x"])
    assert stop.value.code == 130 and "interrupted" in capsys.readouterr().err


def test_error_messages_are_joined_into_one_line():
    assert cli.one_line(ValueError("first\n  second\n")) == "error: first second"
    assert cli.one_line(ValueError("")) == "error: ValueError"
    assert cli.one_line(ValueError("error: already")) == "error: already"


@pytest.mark.parametrize("where", ["none", "after", "before"])
def test_the_real_command_line_prints_one_line_and_debug_the_traceback(tmp_path, where):
    argv = ["sample", "--run", str(tmp_path / "missing")]
    if where == "after":
        argv.append("--debug")
    elif where == "before":
        argv.insert(0, "--debug")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-m", "scratchlm", *argv], capture_output=True,
                            text=True, timeout=120, env=env, cwd=str(tmp_path))
    if where == "none":
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("error: no checkpoint at ")
    else:
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert "RunNotFoundError: no checkpoint at" in result.stderr


def test_sample_and_eval_still_work_on_a_good_run(tmp_path, capsys):
    """A run the library wrote (no corpus needed for sample)."""
    import scratchlm as sl
    from scratchlm.models import GPT
    from scratchlm.text import CharTokenizer
    from scratchlm.train import TrainConfig, Trainer

    text = "to be or not to be, that is the question. " * 20
    tokenizer = CharTokenizer().train(text)
    sl.manual_seed(0)
    model = GPT(GPTConfig.from_preset("tiny", vocab_size=tokenizer.vocab_size, block_size=8))
    tokenizer.save(str(tmp_path / "tok.json"))
    extras = {"tokenizer": (tmp_path / "tok.json").read_text(), "corpus": "shakespeare",
              "tokenizer_kind": "char", "reverse": False}
    config = TrainConfig(max_steps=2, batch_size=2, eval_interval=2, eval_batches=1,
                         checkpoint_interval=2)
    Trainer(model, np.array(tokenizer.encode(text)), None, config, str(tmp_path / "run"),
            extras=extras).train(progress=False)
    assert checkpoint.load(str(tmp_path / "run" / "checkpoint.npz"))["step"] == 2
    main(["sample", "--run", str(tmp_path / "run"), "--prompt", "to", "--max-new-tokens", "5"])
    assert capsys.readouterr().out.startswith("to")
    err = refused(capsys, ["sample", "--run", str(tmp_path / "run"), "--prompt", ""])
    assert err == "error: the prompt is empty; give at least one character"

    # eval: progress shown, the corpus cache under $SCRATCHLM_CACHE (nothing in the current
    # folder), the perplexity to four significant digits
    from scratchlm import language_model

    asked = {}

    class Corpus:
        ids = np.array(tokenizer.encode(text))

    Corpus.tokenizer = tokenizer

    def prepare_corpus(name, kind, data_dir, vocab_size):
        asked["data_dir"] = data_dir
        return Corpus

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(language_model, "prepare_corpus", prepare_corpus)
        patch.setenv("SCRATCHLM_CACHE", str(tmp_path / "cache"))
        patch.chdir(elsewhere)
        main(["eval", "--run", str(tmp_path / "run"), "--batches", "3"])
    out, err = capsys.readouterr()
    assert asked["data_dir"] == str(tmp_path / "cache") and os.listdir(elsewhere) == []
    assert f"evaluating {tmp_path / 'run'} on 3 validation batches" in out
    assert "3/3" in err  # the progress bar over the batches
    shown = out.split("perplexity ")[1].split(" ")[0]
    assert len(shown.replace(".", "").lstrip("0")) <= 4, shown
